"""Usage: skelmtl accuracy configs/experiments/accuracy.yaml [--only jhmdb ...] [--no-peer] [--table-only]

The accuracy table the project keeps: on every dataset, the project's edge model and the
measured peer (DD-Net, ``../shared/peers/ddnet.py``) side by side, each trained on the
same split of the same clips on this machine, mean +- std over seeds (JHMDB: over its
three official splits), with parameters, MFLOPs per window and the INT8 top-1 of the
deployed artefact (exported, quantized by ``skelmtl calibrate``, scored by ``skelmtl
eval`` through ONNX Runtime).

Resumable: each finished run writes its record, the row the table is made of, last, as
``<records>/<key>.json`` in a tracked folder (:mod:`trainer.records`), and is skipped once
that exists; an interrupted training continues from its ``last.pt`` in the ignored runs
folder. Several workers may share one runs folder (one per core): each claims the next free
run with a file lock. The table (``results``, markdown) and the report (``report``, JSON)
are rewritten from the records after every run (``--table-only``: from the records alone,
as on a fresh clone whose ``runs/`` is empty).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from edge.core.atomic import atomic_write
from trainer.config import ConfigError, TrainConfig, from_dict, read_yaml
from trainer.records import Records

logger = logging.getLogger(__name__)
CLAIM = ".claimed"


@dataclass(frozen=True)
class DatasetSpec:
    """One row of the table.

    Attributes:
        title: what the row is called in the table.
        variants: one dict per data variant (JHMDB: one per official split): ``store``
            (a clip store path; built with ``convert`` when missing), ``convert`` (the
            ``skelmtl data convert`` arguments that build it), ``peer`` (the peer's
            arguments for the same data).
        seeds: seeds per variant (JHMDB: one seed per split, as the peer's table).
        overrides: changes to the base training config (dotted keys).
    """

    title: str
    variants: tuple[dict[str, Any], ...]
    seeds: tuple[int, ...] = (0, 1, 2)
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AccuracyConfig:
    """Attributes:
    name: the table's name.
    runs: folder of the runs (checkpoints, exports, logs: working files).
    records: folder of the runs' records (``<key>.json``, what the table is made of; a
        tracked folder); default: the runs folder.
    results: the markdown table; report: the JSON report.
    base: the training config every run starts from (a YAML path or a mapping).
    datasets: name -> :class:`DatasetSpec`.
    peer: ``script`` (the peer's command file), ``filters`` (its widths), ``threads``;
        empty or a missing script: no peer column.
    calibrate: ``skelmtl calibrate`` options for the INT8 column (method, size).
    """

    name: str
    runs: str
    results: str
    report: str
    base: dict[str, Any]
    datasets: dict[str, DatasetSpec]
    peer: dict[str, Any] = field(default_factory=dict)
    calibrate: dict[str, Any] = field(default_factory=lambda: {"method": "entropy", "size": 512})
    notes: tuple[str, ...] = ()
    records: str = ""

    @property
    def run_records(self) -> Records:
        """The records of this table's runs."""
        return Records(Path(self.records or self.runs), Path(self.runs))


def load_accuracy_config(path: str | os.PathLike[str]) -> AccuracyConfig:
    """Read the YAML; unknown keys and a bad base config are refused naming the file."""
    path = Path(path)
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping")
    known = {f.name for f in dataclasses.fields(AccuracyConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown keys {unknown}; allowed: {sorted(known)}")
    base = raw.get("base", {})
    if isinstance(base, str):
        base_path = path.parent / base
        try:
            base = yaml.safe_load(base_path.read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"{path}: base {base_path}: {e}") from None
    datasets = {}
    dfields = {f.name for f in dataclasses.fields(DatasetSpec)}
    for name, d in (raw.get("datasets") or {}).items():
        if not isinstance(d, dict) or set(d) - dfields or "variants" not in d:
            raise ConfigError(f"{path}: datasets.{name}: expected a mapping with 'variants' "
                              f"and optionally {sorted(dfields - {'variants'})}")
        datasets[name] = DatasetSpec(title=str(d.get("title", name)),
                                     variants=tuple(d["variants"]),
                                     seeds=tuple(d.get("seeds", (0, 1, 2))),
                                     overrides=dict(d.get("overrides", {})))
    try:
        cfg = AccuracyConfig(name=raw["name"], runs=raw["runs"], results=raw["results"],
                             report=raw["report"], base=base, datasets=datasets,
                             peer=dict(raw.get("peer") or {}),
                             calibrate=dict(raw.get("calibrate") or {"method": "entropy",
                                                                      "size": 512}),
                             notes=tuple(raw.get("notes", ())),
                             records=str(raw.get("records") or raw["runs"]))
    except KeyError as e:
        raise ConfigError(f"{path}: missing key {e}") from None
    for name in datasets:  # every run's training config must load before any trains
        for v in range(len(datasets[name].variants)):
            run_config(cfg, name, v, 0)
    # A teacher no run of the table makes would be waited for forever, and so would a
    # run's own checkpoint or a student's (students run last, all in one group).
    runs = {r.key: r for r in plan(cfg)}
    for run in runs.values():
        for p in teachers_of(cfg, run):
            key = _run_key(cfg, p, set(runs))
            if key is None and not p.is_file():
                raise ConfigError(f"{path}: datasets.{run.dataset}: teacher {p} is no file "
                                  "and not the checkpoint of a run of this table")
            if key is not None and teachers_of(cfg, runs[key]):
                raise ConfigError(f"{path}: datasets.{run.dataset}: teacher {p} is a "
                                  "distilled run's (its own or another student's); teachers "
                                  "must be runs without teachers")
    return cfg


@dataclass(frozen=True)
class Run:
    dataset: str
    variant: int
    seed: int

    @property
    def key(self) -> str:
        return f"{self.dataset}/v{self.variant}/seed{self.seed}"


def plan(cfg: AccuracyConfig, only: list[str] | None = None) -> list[Run]:
    """Every (dataset, variant, seed), seed-major so early stops leave whole seeds; the
    distilled datasets (``loss.distill_from`` in their overrides) last, after the runs
    that may be their teachers."""
    runs = []
    for seed_i in range(max((len(d.seeds) for d in cfg.datasets.values()), default=0)):
        for name, d in cfg.datasets.items():
            if only and name not in only or seed_i >= len(d.seeds):
                continue
            runs += [Run(name, v, d.seeds[seed_i]) for v in range(len(d.variants))]
    return sorted(runs, key=lambda r: bool(teachers_of(cfg, r)))  # stable: order kept


def teachers_of(cfg: AccuracyConfig, run: Run) -> list[Path]:
    """The teacher checkpoints a run distills from (none for most)."""
    from trainer.distill import teacher_path

    return [teacher_path(p) for p in run_config(cfg, run.dataset, run.variant,
                                                run.seed).loss.distill_from]


def teacher_digests(paths: list[Path]) -> dict[str, str]:
    """SHA-256 of each teacher checkpoint, so a student whose teacher was retrained is
    trained again (:func:`teachers_changed`)."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def teachers_changed(cfg: AccuracyConfig, run: Run) -> bool:
    """Whether a finished student's teachers differ from those it learned from. A run
    without a record is not finished (its folder's ``teachers.json`` guards a resume:
    :func:`run_ours`); teachers not on disk (a fresh clone: records only) are not compared."""
    paths = teachers_of(cfg, run)
    if not paths or not cfg.run_records.has(run.key) or not all(p.is_file() for p in paths):
        return False
    return bool(cfg.run_records.read(run.key).get("teachers") != teacher_digests(paths))


def _run_key(cfg: AccuracyConfig, checkpoint: Path,
             keys: set[str] | None = None) -> str | None:
    """The key of this table's run whose folder holds ``checkpoint`` (None: not one);
    ``keys``: the table's run keys, when the caller has them."""
    rel = cfg.run_records.run_key(checkpoint)
    return rel if rel in (keys if keys is not None else {r.key for r in plan(cfg)}) else None


def unready_teachers(cfg: AccuracyConfig, run: Run) -> list[str]:
    """The run's teachers not ready to teach, each with why. A teacher that is a run of
    this table is ready once that run has its record (its ``best.pt`` appears after its
    first epoch, while a worker may still be training it); another file once it exists."""
    out = []
    for p in teachers_of(cfg, run):
        key = _run_key(cfg, p)
        if key is not None and cfg.run_records.has(key) and not p.is_file():
            out.append(f"{p} (run {key} is recorded but its checkpoint is gone: drop its "
                       "record to train it again)")
        elif key is not None and not cfg.run_records.has(key) or not p.is_file():
            out.append(f"{p} (not trained yet)")
    return out


def run_config(cfg: AccuracyConfig, dataset: str, variant: int, seed: int) -> TrainConfig:
    """The training config of one run."""
    d = cfg.datasets[dataset]
    base = json.loads(json.dumps(cfg.base))
    base.setdefault("data", {})["sources"] = [{"store": d.variants[variant]["store"]}]
    base["name"] = f"{dataset}-v{variant}-seed{seed}"
    base["seed"] = seed
    base["out"] = str(Path(cfg.runs) / dataset / f"v{variant}" / f"seed{seed}")
    tc = from_dict(base, f"{cfg.name}: base")
    return tc.replace(**d.overrides) if d.overrides else tc


def claim(out: Path) -> int | None:
    """Take ``out`` for this process: an open, exclusively locked ``.claimed`` file.

    The lock (``flock``) is the claim: the kernel drops it when its process dies, so a
    killed worker's run is free again without any stale-claim guessing, and of several
    workers trying at once exactly one gets it. After locking, the path must still name
    the locked file (a finishing worker unlinks it), else the claim is retried.

    Returns:
        The file descriptor to pass to :func:`release`, or None when another live
        process holds the run.
    """
    import fcntl

    out.mkdir(parents=True, exist_ok=True)
    f = out / CLAIM
    for _ in range(5):
        fd = os.open(f, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            same = os.fstat(fd).st_ino == os.stat(f).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"{platform.node()} {os.getpid()}\n".encode())
            return fd
        os.close(fd)  # we locked a file its holder had just unlinked: try the new one
    return None


def release(out: Path, fd: int) -> None:
    """Give a claim back (unlink first, so nobody locks the old file after us)."""
    (out / CLAIM).unlink(missing_ok=True)
    os.close(fd)


def ensure_store(variant: dict[str, Any]) -> None:
    """Build a variant's clip store with ``skelmtl data convert`` when it is missing."""
    store = Path(variant["store"])
    if (store / "meta.json").is_file():
        return
    args = variant.get("convert")
    if not args:
        raise ConfigError(f"{store}: no clip store there and no 'convert' arguments to build it")
    cmd = [sys.executable, "-m", "skelmtl.cli", "data", "convert", *map(str, args), str(store)]
    logger.info("+ %s", shlex.join(cmd))
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise ConfigError(f"{store}: data convert failed: {last}")


def recipe_changed(cfg: AccuracyConfig, run: Run) -> bool:
    """Whether a finished run was trained with another recipe than the config now gives
    (its ``config.yaml`` against :func:`run_config`, the joints the trainer fills in
    left out): the run is then trained again, so the table never mixes recipes silently.
    The old numbers stay in the history of the tracked record. A run whose folder is gone
    (a fresh clone: only its record) is not compared, and keeps its record."""
    tc = run_config(cfg, run.dataset, run.variant, run.seed)
    saved = tc.out_dir / "config.yaml"
    if not saved.is_file():
        return False  # nothing to compare with (a result copied in by hand)

    def recipe(d: dict[str, Any]) -> dict[str, Any]:
        d = json.loads(json.dumps(d, default=str))
        d.pop("out", None)
        if not tc.preprocess.joints:
            d.get("preprocess", {}).pop("joints", None)
        return d

    old = from_dict(yaml.safe_load(saved.read_text()), str(saved)).to_dict()
    if recipe(old) == recipe(tc.to_dict()):
        return False
    return True


def run_ours(cfg: AccuracyConfig, run: Run) -> dict[str, Any]:
    """Train, score FP32 on test, export, quantize, score INT8 on test."""
    from calibration.quantize import calibrate
    from trainer.checkpoint import load_checkpoint
    from trainer.evaluate import evaluate_model
    from trainer.export import export_checkpoint
    from trainer.models import count_flops, count_params
    from trainer.train import train

    tc = run_config(cfg, run.dataset, run.variant, run.seed)
    out = tc.out_dir
    t0 = time.perf_counter()
    # the folder holds a run of another recipe, or one taught by other teachers (a student
    # interrupted before its teachers were retrained must not resume with the new ones)
    fresh = recipe_changed(cfg, run) or teachers_changed(cfg, run)
    digests = teacher_digests(teachers_of(cfg, run))
    stamp = out / "teachers.json"
    if digests:
        fresh = fresh or (stamp.is_file() and json.loads(stamp.read_text()) != digests)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(stamp, json.dumps(digests, indent=1))
    res = train(tc, resume=not fresh, overwrite=fresh, progress=False)
    wall = time.perf_counter() - t0
    test = tc.data.test_split
    fp32 = evaluate_model(res.best, split=test, out_dir=out / "eval")
    onnx = out / "model.onnx"
    export_checkpoint(res.best, onnx, log=lambda m: logger.debug("%s", m))
    int8 = out / "model.int8.onnx"
    calibrate(onnx, int8, [str(s.store) for s in tc.data.sources],
              method=cfg.calibrate.get("method", "entropy"),
              size=int(cfg.calibrate.get("size", 512)), trt_cache=None,
              log=lambda m: logger.debug("%s", m))
    q = evaluate_model(int8, data=[str(s.store) for s in tc.data.sources], split=test,
                       out_dir=out / "eval_int8")
    ck = load_checkpoint(res.best)
    pre = ck.meta.preprocess
    shape = (1, pre.channels, pre.window, 75)
    task = next(iter(fp32["tasks"]))
    return {"dataset": run.dataset, "variant": run.variant, "seed": run.seed,
            "store": str(tc.data.sources[0].store), "task": task,
            "top1": fp32["tasks"][task]["top1"], "top1_int8": q["tasks"][task]["top1"],
            "n_test": fp32["tasks"][task]["n"], "best_val": res.best_val,
            "epochs": len(res.history), "stopped": bool(res.history and
                                                        res.history[-1].get("stopped")),
            "params": count_params(ck.model), "mflops": count_flops(ck.model, shape) / 1e6,
            "joints": len(pre.joints) or 75, "model": ck.meta.model_name,
            "train_s": round(wall, 1),
            **({"teachers": digests} if digests else {})}


def run_peer(cfg: AccuracyConfig, run: Run, filters: int, out: Path) -> dict[str, Any]:
    """The peer's own command on the same data and seed; the result.json it writes in
    ``out``, with the command added."""
    variant = cfg.datasets[run.dataset].variants[run.variant]
    cmd = [sys.executable, str(cfg.peer["script"]), *map(str, variant["peer"]),
           "--filters", str(filters), "--seed", str(run.seed),
           "--threads", str(cfg.peer.get("threads", 1)), "--out", str(out)]
    logger.info("+ %s", shlex.join(cmd))
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise ConfigError(f"peer run {out} failed: {last}")
    res: dict[str, Any] = json.loads((out / "result.json").read_text())
    res["command"] = shlex.join(cmd[1:])
    return res


def run_accuracy(path: str | os.PathLike[str], *, only: list[str] | None = None,
                 peer: bool = True) -> Path:
    """Run (or continue) every run of the table; returns the markdown table's path."""
    cfg = load_accuracy_config(path)
    root = Path(cfg.runs)
    records = cfg.run_records
    script = Path(cfg.peer.get("script", "")) if cfg.peer else None
    if peer and script is not None and not script.is_file():
        logger.warning("peer script %s not found: no peer runs this time", script)
        peer = False
    peer = peer and script is not None  # a config without a peer has no peer column
    for run in plan(cfg, only):
        variant = cfg.datasets[run.dataset].variants[run.variant]
        jobs: list[tuple[str, Any]] = [(run.key, lambda r=run: run_ours(cfg, r))]
        if peer and "peer" in variant:
            for f in cfg.peer.get("filters", [64]):
                pkey = f"peer/f{f}/{run.key}"
                jobs.append((pkey, lambda r=run, f=f, o=root / pkey: run_peer(cfg, r, f, o)))
        jobs = [(key, job) for key, job in jobs if not records.has(key)
                or key == run.key and _redo(cfg, run)]
        missing = unready_teachers(cfg, run) if any(k == run.key for k, _ in jobs) else []
        if missing:
            # Another worker may still be training them: leave the run for a later pass.
            logger.warning("%s: teachers not ready: %s; run the command again once they "
                           "are", run.key, ", ".join(missing))
            jobs = [(key, job) for key, job in jobs if key != run.key]
        if jobs:  # a recorded run needs no store (a fresh clone may have no data)
            ensure_store(variant)
        for key, job in jobs:
            out = root / key
            fd = claim(out)
            if fd is None:
                continue
            try:
                # Finished (or retrained) by the worker that held it before us?
                redo = key == run.key and _redo(cfg, run)
                if records.has(key) and not redo:
                    continue
                if redo:
                    logger.warning("%s: trained with another recipe or other teachers than "
                                   "%s gives now: training it again", out, cfg.name)
                    records.drop(key)
                logger.info("== %s", out)
                records.write(key, job())
                write_table(cfg, path)
            finally:
                release(out, fd)
    return write_table(cfg, path)


def _redo(cfg: AccuracyConfig, run: Run) -> bool:
    return recipe_changed(cfg, run) or teachers_changed(cfg, run)


def one(key: str, rs: list[dict[str, Any]]) -> str:
    """The mean of ``key`` over runs, as a table cell (sizes are equal across seeds)."""
    v = [x[key] for x in rs]
    if not v:
        return "-"
    return f"{np.mean(v):.2f}" if key == "mflops" else f"{int(np.mean(v)):,}"


def _ms(v: list[float]) -> str:
    if not v:
        return "-"
    a = 100 * np.asarray(v)
    return f"{a.mean():.1f}" + (f" ± {a.std(ddof=1):.1f}" if len(a) > 1 else "") + f" (n={len(a)})"


def summarise(cfg: AccuracyConfig) -> dict[str, Any]:
    """Per dataset: ours and the peer's runs, means, stds and sizes, from the records."""
    records = cfg.run_records
    rows = {}
    for name, d in cfg.datasets.items():
        ours = records.glob(f"{name}/v*/seed*")
        planned = len(d.variants) * len(d.seeds)
        row: dict[str, Any] = {"title": d.title, "planned": planned, "ours": ours,
                               "peer": {}}
        for f in cfg.peer.get("filters", [64]) if cfg.peer else []:
            row["peer"][f"f{f}"] = [{"seed": r["config"]["seed"], "split": r["config"]["split"],
                                     "test_top1": r["test_top1"], "params": r["params"],
                                     "mflops": r["mflops_per_clip"],
                                     "epochs": r["epochs_run"], "train_s": r["train_s"]}
                                    for r in records.glob(f"peer/f{f}/{name}/v*/seed*")]
        rows[name] = row
    return rows


def write_table(cfg: AccuracyConfig, config_path: str | os.PathLike[str]) -> Path:
    """Write the markdown table and the JSON report (atomically)."""
    rows = summarise(cfg)
    peers = [f"f{f}" for f in cfg.peer.get("filters", [64])] if cfg.peer else []
    head = ["dataset", "skelmtl FP32 top-1 %", "skelmtl INT8 top-1 %", "params", "MFLOPs",
            "epochs"]
    for p in peers:
        head += [f"DD-Net {p} top-1 %", f"DD-Net {p} params", f"DD-Net {p} MFLOPs"]
    lines = [f"# Accuracy: {cfg.name}", "",
             "Test top-1 on each dataset's stated split (../shared/data/README.md), mean ± "
             "sample std over runs (n = runs finished). Both models are trained on the same "
             "train split, choose their recipe and checkpoint without test (the notes say "
             "how, per dataset), and are scored once on test, on this machine. Made by:", "",
             f"    skelmtl accuracy {config_path}", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows.values():
        ours = r["ours"]
        cells = [f"{r['title']}", _ms([o["top1"] for o in ours]),
                 _ms([o["top1_int8"] for o in ours]), one("params", ours), one("mflops", ours),
                 f"{np.mean([o['epochs'] for o in ours]):.0f}" if ours else "-"]
        for p in peers:
            pr = r["peer"].get(p, [])
            cells += [_ms([x["test_top1"] for x in pr]), one("params", pr), one("mflops", pr)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Runs finished / planned: " + ", ".join(
        f"{n} {len(r['ours'])}/{r['planned']}" for n, r in rows.items()), ""]
    lines += [f"- {n}" for n in cfg.notes]
    lines.append("")
    md = Path(cfg.results)
    md.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(md, "\n".join(lines))
    rep = Path(cfg.report)
    rep.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(rep, json.dumps({"schema": 1, "name": cfg.name, "command":
                                  f"skelmtl accuracy {config_path}", "datasets": rows},
                                 indent=1, default=str))
    return md


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="accuracy config YAML (configs/experiments/accuracy.yaml)")
    p.add_argument("--only", nargs="*", help="dataset names to run")
    p.add_argument("--no-peer", action="store_true", help="skip the peer's runs")
    p.add_argument("--table-only", action="store_true",
                   help="rewrite the table and the report from the records, run nothing")


def main(args: argparse.Namespace) -> int:
    logger.setLevel(logging.INFO)
    logging.getLogger("trainer.train").setLevel(logging.INFO)
    if args.table_only:
        print(write_table(load_accuracy_config(args.config), args.config))
        return 0
    print(run_accuracy(args.config, only=args.only, peer=not args.no_peer))
    return 0
