"""Usage: skelmtl experiment configs/experiments/mtl_vs_stl.yaml [--seeds 0 1] [--only NAME ...]

The result the project stands on: single-task (STL) baselines against multi-task (MTL)
variants (hard / soft cross-stitch / learned sharing x mean / DWA / uncertainty loss
weighting) on composite sets, several seeds each. Test accuracy per task goes to each
run's record, ``<records>/<composite>/<variant>/seed<n>.json`` in a tracked folder
(:mod:`trainer.records`), and a markdown table (mean +- std over seeds) built from the
records at the config's ``results:`` path, by default ``<runs>/results.md``.

Stores come by path (``stores: {name: {path: my.store}}``, or a bare path): a clip store
built with ``skelmtl data convert`` or the Python API (``edge.core.clipstore.write_store``) is
used as is. A ``src:`` that is a published dataset is converted once into
``<runs>/stores/<name>`` (``skelmtl data convert SRC DST --format F OPTIONS...``).
Relative paths (``runs``, ``results``, stores) are taken from the working directory, as
every path on the command line.

Resumable: a finished run (one with a record) is skipped, an interrupted one continues
from its ``last.pt`` in the ignored runs folder; the table is rewritten after every run, so
a session that stops early still leaves every finished number in the records, and
``--table-only`` rebuilds it from the records alone (a fresh clone's empty ``runs/``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from edge.core.atomic import atomic_write
from edge.core.clipstore import ClipStore
from edge.core.errors import SkelmtlError
from trainer.config import ConfigError, TrainConfig, from_dict
from trainer.records import Records

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreSpec:
    """Where a store of the experiment comes from.

    Attributes:
        src: a published dataset, converted with ``skelmtl data convert`` into
            ``<runs>/stores/<name>``; a ``src`` that already is a clip store is used as is.
        format: the reader (``--format``); empty = autodetect.
        options: more ``data convert`` options, e.g. ``[--split-protocol, "1"]``.
        path: a clip store already built (by ``data convert`` or the Python API), used
            as is and never converted; excludes ``src``.
    """

    src: str = ""
    format: str = ""
    options: tuple[str, ...] = ()
    path: str = ""


@dataclass(frozen=True)
class CompositeSpec:
    """Sources (store names from ``stores`` plus per-source options) and config changes."""

    sources: tuple[dict[str, Any], ...]
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExperimentConfig:
    """Attributes:
    name: experiment name.
    runs: folder for the runs (checkpoints, logs, converted stores: working files).
    records: folder of the runs' records (``<key>.json``, what the table is made of; a
        tracked folder); default: the runs folder.
    results: the markdown table written after each run (default ``<runs>/results.md``;
        never the project's docs unless the config names that path).
    seeds: seeds per variant.
    stores: name -> StoreSpec: a store by ``path``, or a dataset ``src`` converted into
        ``<runs>/stores/<name>`` when missing.
    composites: name -> CompositeSpec.
    sharing: MTL sharing modes; weighting: loss weightings (their product is run).
    stl: also train the single-task baselines.
    base: the TrainConfig every run starts from (dict, or a YAML path).
    anchors: published numbers to print beside the table.
    notes: sentences printed under the table (e.g. which run became the bundled model).
    """

    name: str
    runs: str
    results: str = ""
    seeds: tuple[int, ...] = (0, 1, 2)
    stores: dict[str, StoreSpec] = field(default_factory=dict)
    composites: dict[str, CompositeSpec] = field(default_factory=dict)
    sharing: tuple[str, ...] = ("hard", "soft", "learned")
    weighting: tuple[str, ...] = ("mean", "dwa", "uncertainty")
    stl: bool = True
    base: dict[str, Any] = field(default_factory=dict)
    anchors: tuple[dict[str, Any], ...] = ()
    notes: tuple[str, ...] = ()
    records: str = ""

    @property
    def run_records(self) -> Records:
        """The records of this experiment's runs."""
        return Records(Path(self.records or self.runs), Path(self.runs))


def load_experiment(path: str | os.PathLike[str]) -> ExperimentConfig:
    """Load and check an experiment YAML (unknown keys are refused)."""
    path = Path(path)
    try:
        d = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: cannot read experiment config ({e})") from None
    names = {f.name for f in dataclasses.fields(ExperimentConfig)}
    unknown = set(d) - names
    if unknown:
        raise ConfigError(f"{path}: unknown keys {sorted(unknown)}; allowed {sorted(names)}")
    try:
        stores = {k: _store_spec(k, v, path) for k, v in (d.get("stores") or {}).items()}
        comps = {k: CompositeSpec(tuple(v["sources"]), dict(v.get("overrides", {})))
                 for k, v in d.get("composites", {}).items()}
    except (KeyError, TypeError, AttributeError) as e:
        raise ConfigError(f"{path}: malformed stores/composites ({e})") from None
    base = d.get("base", {})
    if isinstance(base, str):
        base = yaml.safe_load((path.parent / base).read_text()) if not Path(base).is_file() \
            else yaml.safe_load(Path(base).read_text())
    for c in comps.values():
        for s in c.sources:
            if s.get("store") not in stores:
                raise ConfigError(f"{path}: composite source {s} names no store in 'stores'")
    runs = str(d.get("runs", f"runs/experiments/{path.stem}"))
    exp = ExperimentConfig(
        name=d.get("name", path.stem), runs=runs,
        results=str(d.get("results") or Path(runs) / "results.md"), seeds=tuple(d.get("seeds", (0, 1, 2))),
        stores=stores, composites=comps, sharing=tuple(d.get("sharing", ("hard", "soft", "learned"))),
        weighting=tuple(d.get("weighting", ("mean", "dwa", "uncertainty"))),
        stl=bool(d.get("stl", True)), base=base, anchors=tuple(d.get("anchors", ())),
        notes=tuple(str(n) for n in d.get("notes", ())), records=str(d.get("records") or runs))
    from_dict(exp.base, f"{path}:base")  # validate early
    return exp


def _store_spec(name: str, v: Any, config: Path) -> StoreSpec:
    """One ``stores:`` entry: a bare path, ``{path: ...}`` or ``{src: ..., format, options}``."""
    if isinstance(v, str):
        return StoreSpec(path=v)
    if not isinstance(v, dict):
        raise ConfigError(f"{config}: store {name!r}: expected a path or a mapping with "
                          f"'path' or 'src', got {v!r}")
    unknown = set(v) - {f.name for f in dataclasses.fields(StoreSpec)}
    if unknown:
        raise ConfigError(f"{config}: store {name!r}: unknown keys {sorted(unknown)}; "
                          "allowed: path, or src with format and options")
    if bool(v.get("path")) == bool(v.get("src")):
        raise ConfigError(f"{config}: store {name!r}: give exactly one of 'path' (a clip "
                          "store) and 'src' (a dataset to convert)")
    if v.get("path") and (v.get("format") or v.get("options")):
        raise ConfigError(f"{config}: store {name!r}: 'format' and 'options' convert a "
                          "'src'; a 'path' store is used as it is")
    options = v.get("options") or ()
    if isinstance(options, str) or not all(isinstance(o, (str, int, float)) for o in options):
        raise ConfigError(f"{config}: store {name!r}: options must be a list of strings, "
                          f"got {options!r}")
    return StoreSpec(src=str(v.get("src") or ""), format=str(v.get("format") or ""),
                     options=tuple(str(o) for o in options), path=str(v.get("path") or ""))


@dataclass(frozen=True)
class Run:
    """One training run of the grid."""

    composite: str
    variant: str  # "stl" or "<sharing>-<weighting>"
    seed: int
    task: str = ""  # for STL runs, the single task

    @property
    def key(self) -> str:
        v = f"stl-{self.task}" if self.variant == "stl" else self.variant
        return f"{self.composite}/{v}/seed{self.seed}"


def plan(exp: ExperimentConfig, tasks_of: dict[str, list[str]]) -> list[Run]:
    """All runs, seed-major so that each finished seed completes a whole table."""
    runs = []
    for seed in exp.seeds:
        for comp in exp.composites:
            if exp.stl:
                runs += [Run(comp, "stl", seed, t) for t in tasks_of[comp]]
            runs += [Run(comp, f"{s}-{w}", seed) for s in exp.sharing for w in exp.weighting]
    return runs


def run_config(exp: ExperimentConfig, run: Run, stores: dict[str, Path]) -> TrainConfig:
    """The training config of ``run``; ``stores`` maps store names to their folders."""
    comp = exp.composites[run.composite]
    sources = []
    for s in comp.sources:
        s = dict(s)
        s["store"] = str(stores[s["store"]])
        sources.append(s)
    d = json.loads(json.dumps(exp.base))
    d.setdefault("data", {})["sources"] = sources
    for k, v in comp.overrides.items():
        node = d
        *parents, leaf = k.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = v
    d["seed"] = run.seed
    d["name"] = run.key.replace("/", "_")
    d["out"] = str(Path(exp.runs) / run.key)
    d.setdefault("model", {})
    if run.variant == "stl":
        d["tasks"] = [run.task]
        d["model"]["sharing"] = "hard"
        d.setdefault("loss", {})["weighting"] = "mean"
        # Label pairs of the composite's other tasks mean nothing to this baseline (and
        # the trainer refuses pairs of no task): keep its own task's.
        aug = d.get("augment", {})
        if aug.get("mirror_labels"):
            own = _task_labels(sources, run.task)
            aug["mirror_labels"] = [p for p in aug["mirror_labels"] if set(p) <= own]
    else:
        sharing, weighting = run.variant.split("-")
        d["model"]["sharing"] = sharing
        d.setdefault("loss", {})["weighting"] = weighting
    return from_dict(d, f"{exp.name}:{run.key}")


def _task_labels(sources: list[dict[str, Any]], task: str) -> set[str]:
    """The labels ``task`` has in the stores of ``sources``."""
    from edge.core.clipstore import ClipStore

    out: set[str] = set()
    for s in sources:
        st = ClipStore(s["store"])
        out |= {lab for lab, t in zip(st.labels(), st.task_of()) if t == task}
    return out


def is_store(path: Path) -> bool:
    """Whether ``path`` is a clip store (a folder with a store ``meta.json``)."""
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and "format" in meta and "clips" in meta


def ensure_stores(exp: ExperimentConfig, store_dir: Path,
                  config: str | os.PathLike[str] = "experiment", *,
                  convert: bool = True) -> dict[str, Path]:
    """The folder of every store, converting each dataset ``src`` once.

    Args:
        exp: the experiment.
        store_dir: where converted stores go (``<runs>/stores``).
        config: the config path, for messages.
        convert: convert what is missing (False: raise ConfigError instead).

    Returns:
        Store name -> clip store folder.

    Raises:
        ConfigError: a ``path`` that is no clip store; a conversion that fails (the
            converter's one-line message, after the config and store name).
    """
    out: dict[str, Path] = {}
    for name, spec in exp.stores.items():
        if spec.path:
            p = Path(spec.path)
            if not is_store(p):
                raise ConfigError(f"{config}: store {name!r}: {p} is not a clip store (no "
                                  "store meta.json); build it with 'skelmtl data convert' or "
                                  "edge.core.clipstore.write_store, or give the dataset as 'src'")
            out[name] = p
            continue
        src = Path(spec.src)
        if is_store(src):
            # A store built already (e.g. with the Python API) is data, not a dataset to
            # convert: converting it again would fail or duplicate it.
            log.info("store %s: %s is a clip store, used as is", name, src)
            out[name] = src
            continue
        dst = store_dir / name
        if not is_store(dst):
            if not convert:
                raise ConfigError(f"{config}: store {name!r} is not converted yet ({dst})")
            convert_store(name, spec, dst, config)
        out[name] = dst
    return out


class _ArgumentParser(argparse.ArgumentParser):
    """An argument parser that raises instead of printing usage and exiting."""

    def error(self, message: str) -> Any:
        raise ConfigError(message)


def convert_store(name: str, spec: StoreSpec, dst: Path,
                  config: str | os.PathLike[str] = "experiment") -> None:
    """``skelmtl data convert SRC DST --format F OPTIONS...``, in this process."""
    from trainer.datasets import cli as data_cli

    argv = ["convert", spec.src, str(dst)] + (["--format", spec.format] if spec.format else [])
    argv += list(spec.options)
    log.info("store %s: skelmtl data %s", name, " ".join(argv))
    parser = _ArgumentParser(prog="skelmtl data")
    data_cli.add_arguments(parser)
    try:
        args = parser.parse_args(argv)
        dst.parent.mkdir(parents=True, exist_ok=True)
        data_cli.main(args)
    except SkelmtlError as e:
        raise ConfigError(f"{config}: store {name!r}: cannot convert {spec.src}: {e}") from None


def tasks_of_composites(exp: ExperimentConfig, stores: dict[str, Path]) -> dict[str, list[str]]:
    """Composite name -> the sorted task names of its sources (after renames)."""
    out = {}
    for cname, comp in exp.composites.items():
        ts: set[str] = set()
        for s in comp.sources:
            st = ClipStore(stores[s["store"]])
            ts |= {s.get("task") or t for t in st.task_names}
        out[cname] = sorted(ts)
    return out


def run_experiment(path: str | os.PathLike[str], *, seeds: list[int] | None = None,
                   only: list[str] | None = None, progress: bool = False) -> Path:
    """Run (or continue) the experiment; returns the results table path."""
    exp = load_experiment(path)
    if seeds:
        exp = dataclasses.replace(exp, seeds=tuple(seeds))
    root = Path(exp.runs)
    stores = ensure_stores(exp, root / "stores", path)
    tasks_of = tasks_of_composites(exp, stores)
    records = exp.run_records
    for run in plan(exp, tasks_of):
        if only and not any(o in run.key for o in only):
            continue
        out = root / run.key
        if records.has(run.key):
            continue
        claim = claim_run(out)
        if claim is None:
            continue
        try:
            if not records.has(run.key):  # not finished by the worker that held it before
                _run_one(exp, run, out, stores, path, progress, tasks_of)
        finally:
            release_run(out, claim)
    return write_table(exp, path, tasks_of)


CLAIM = ".claimed"
TAKEOVER = ".takeover."


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def _new_claim() -> str:
    # The nonce makes every claim distinct, so a stale claim's takeover marker (named by
    # the claim's text) can never match a later claim of a reused pid.
    return f"{os.uname().nodename} {os.getpid()} {uuid.uuid4().hex}"


def _stale(text: str) -> bool:
    """Whether a claim's text names a worker that is gone (or is not a claim at all)."""
    parts = text.split()
    if len(parts) < 2 or not parts[1].isdigit():
        return True  # claims appear whole (link of a written file): garbage is stale
    return parts[0] == os.uname().nodename and not _pid_alive(int(parts[1]))


def _create(f: Path, text: str) -> bool:
    """Create ``f`` holding ``text`` unless it exists; atomic, and never seen half-written."""
    tmp = f.with_name(f"{f.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text)
    try:
        os.link(tmp, f)  # fails with EEXIST when f exists: exactly one creator wins
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink()


def _take_over(out: Path, seen: str, me: str, chain: str = "") -> bool:
    """Replace the stale claim ``seen`` of ``out`` with ``me``; True for exactly one caller.

    Every worker that judged the same claim stale races to create one marker named by a
    hash of that claim's text (O_EXCL via link): one wins. The winner checks that the claim
    is still ``seen`` (it can only have changed if the claim was released and made anew,
    which makes it a different claim) and renames its own claim over it. A marker whose
    worker died before finishing is itself stale: the takers then race for a marker one
    level down (named by the claim and that marker), so a crash never blocks the run.
    """
    import hashlib

    f = out / CLAIM
    marker = out / (TAKEOVER + hashlib.sha1((seen + chain).encode()).hexdigest()[:16])
    if not _create(marker, me):
        try:
            holder = marker.read_text()
        except FileNotFoundError:  # released meanwhile: the claim is someone else's now
            return False
        if _stale(holder) and chain.count("\n") < 16:
            return _take_over(out, seen, me, chain + "\n" + holder)
        return False
    try:
        now = f.read_text()
    except FileNotFoundError:
        now = None
    if now != seen:
        marker.unlink()
        return False
    tmp = f.with_name(f"{f.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(me)
    os.replace(tmp, f)
    return True


def claim_run(out: Path) -> str | None:
    """Claim a run folder for this process; None if a live worker on this host holds it.

    Several ``skelmtl experiment`` workers may share one runs folder (one per core): each
    takes the next unclaimed run. A claim is created whole by a hard link, which fails when
    one exists, so two workers never train the same run; a claim whose process is gone (a
    killed session) is stale and is taken over by exactly one worker (:func:`_take_over`),
    and the run resumes from its ``last.pt``.

    Returns:
        The claim's text (pass it to :func:`release_run`), or None.
    """
    out.mkdir(parents=True, exist_ok=True)
    f = out / CLAIM
    me = _new_claim()
    for _ in range(3):
        if _create(f, me):
            return me
        try:
            seen = f.read_text()
        except FileNotFoundError:  # released meanwhile: try to create it again
            continue
        if not _stale(seen):
            return None
        return me if _take_over(out, seen, me) else None
    return None


def release_run(out: Path, claim: str) -> None:
    """Remove this worker's claim of ``out`` and the takeover markers (claims are unique)."""
    f = out / CLAIM
    try:
        if f.read_text() == claim:
            f.unlink()
    except FileNotFoundError:
        pass
    for m in out.glob(TAKEOVER + "*"):
        m.unlink(missing_ok=True)


def _run_one(exp: ExperimentConfig, run: Run, out: Path, stores: dict[str, Path],
             path: str | os.PathLike[str], progress: bool,
             tasks_of: dict[str, list[str]]) -> None:
    """Train, evaluate on the test split and record one run (its record last)."""
    from trainer.evaluate import evaluate_checkpoint
    from trainer.train import train

    cfg = run_config(exp, run, stores)
    log.info("== %s", run.key)
    t0 = time.perf_counter()
    res = train(cfg, resume=True, progress=progress)
    rep = evaluate_checkpoint(res.best, split=cfg.data.test_split, out_dir=out / "eval")
    wall = time.perf_counter() - t0
    rows = [{"composite": run.composite, "variant": run.variant, "seed": run.seed,
             "task": t, "top1": r["top1"], "n": r["n"], "wall_s": round(wall, 1),
             "best_val": res.best_val} for t, r in rep["tasks"].items()]
    exp.run_records.write(run.key, rows)
    write_table(exp, path, tasks_of)
    log.info("   %s  (%.0f s)", "  ".join(f"{r['task']}={r['top1']:.4f}" for r in rows), wall)


def collect(exp: ExperimentConfig) -> list[dict[str, Any]]:
    """The finished runs' rows, from their records (one per run: reruns never double count)."""
    return [row for rec in exp.run_records.glob("*/*/seed*") for row in rec]


def run_key(row: dict[str, Any]) -> str:
    """The :attr:`Run.key` a result row belongs to (an STL run per task)."""
    v = f"stl-{row['task']}" if row["variant"] == "stl" else row["variant"]
    return f"{row['composite']}/{v}/seed{row['seed']}"


def write_table(exp: ExperimentConfig, config_path: str | os.PathLike[str],
                tasks_of: dict[str, list[str]] | None = None) -> Path:
    """Write the markdown results table (mean +- std of test top-1 over seeds).

    Args:
        exp: the experiment.
        config_path: its YAML (named in the table).
        tasks_of: composite -> task names, for the planned number of runs (STL trains one
            network per task); None = the tasks of the finished rows.
    """
    rows = collect(exp)
    cols = [(c, t) for c in exp.composites for t in
            sorted({r["task"] for r in rows if r["composite"] == c})]
    variants = (["stl"] if exp.stl else []) + [f"{s}-{w}" for s in exp.sharing for w in exp.weighting]
    cell: dict[tuple[str, str, str], list[float]] = {}
    wall: dict[str, float] = {}
    for r in rows:
        cell.setdefault((r["variant"], r["composite"], r["task"]), []).append(100 * r["top1"])
        key = f"{r['composite']}/{r['variant']}/{r['seed']}"
        wall[key] = r["wall_s"]

    def fmt(v: list[float]) -> str:
        if not v:
            return "-"
        sd = f" ± {np.std(v, ddof=1):.1f}" if len(v) > 1 else ""
        return f"{np.mean(v):.1f}{sd} (n={len(v)})"

    lines = [f"# Results: {exp.name}", "",
             "Test top-1 accuracy (%) per task, mean ± sample std over seeds (n = finished "
             "seeds). STL = one single-task network per task; every other row is one "
             "multi-task network (sharing-weighting). Models are selected on a validation "
             "split carved from the train split; test splits are only used for these numbers.",
             "", f"Made by: `skelmtl experiment {config_path}` "
             f"(resumable; rerun to continue). Total training+evaluation wall time of the "
             f"finished runs: {sum(wall.values()) / 3600:.2f} h on this machine.", ""]
    head = "| variant | " + " | ".join(f"{c} {t}" for c, t in cols) + " |"
    lines += [head, "|" + "---|" * (len(cols) + 1)]
    for v in variants:
        lines.append(f"| {v} | " + " | ".join(fmt(cell.get((v, c, t), [])) for c, t in cols)
                     + " |")
    if exp.stl:
        lines += ["", "Difference to STL (percentage points, mean over seeds):", "",
                  head, "|" + "---|" * (len(cols) + 1)]
        for v in variants[1:]:
            diffs = []
            for c, t in cols:
                a, b = cell.get((v, c, t), []), cell.get(("stl", c, t), [])
                diffs.append(f"{np.mean(a) - np.mean(b):+.1f}" if a and b else "-")
            lines.append(f"| {v} | " + " | ".join(diffs) + " |")
        lines += [""] + _verdict(cell, variants, cols)
    if tasks_of is None:
        tasks_of = {c: sorted({r["task"] for r in rows if r["composite"] == c})
                    for c in exp.composites}
    planned = {r.key for r in plan(exp, tasks_of)}
    done = {run_key(r) for r in rows}
    n_mtl = len(variants) - int(exp.stl)
    per_comp = " + ".join(f"{len(tasks_of[c])} STL + {n_mtl} MTL" if exp.stl
                          else f"{n_mtl} MTL" for c in exp.composites)
    lines += ["", f"Finished runs: {len(done & planned)} of {len(planned)} planned "
              f"({len(exp.seeds)} seeds x ({per_comp}) trainings; one STL training per "
              "task); '-' marks runs not finished yet."]
    if exp.notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in exp.notes]
    if exp.anchors:
        lines += ["", "Published anchors on the same data:", ""]
        lines += [f"- {a['name']}: {a['value']} ({a.get('note', '')})" for a in exp.anchors]
    lines += ["", f"Per-run rows: `{Path(exp.records or exp.runs)}/<composite>/<variant>/"
              "seed<n>.json` (one file per run, one JSON object per task).", ""]
    out = Path(exp.results or Path(exp.runs) / "results.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(out, "\n".join(lines))
    return out


def _clear(a: list[float], b: list[float]) -> bool:
    """Whether mean(b) - mean(a) exceeds two standard errors (Welch); needs 2+ seeds each."""
    if len(a) < 2 or len(b) < 2:
        return False
    se = float(np.sqrt(np.var(a, ddof=1) / len(a) + np.var(b, ddof=1) / len(b)))
    d = abs(float(np.mean(b)) - float(np.mean(a)))
    return d > 2 * se if se > 0 else d > 0


def _verdict(cell: dict[tuple[str, str, str], list[float]], variants: list[str],
             cols: list[tuple[str, str]]) -> list[str]:
    """Plain sentences: the best MTL variant per column against STL, and every loss.

    A difference is called *clear* when it exceeds two standard errors of the difference
    of the two means (Welch, seeds as samples); with 2-3 seeds that is a rough screen, not
    a significance test.
    """
    out = ["Where MTL wins and where it loses (means over the finished seeds). A difference "
           "is marked *clear* when it exceeds two standard errors of the difference of the "
           "means (Welch, seeds as samples, at least 2 seeds each); with 3 seeds that is a "
           "rough screen, not a significance test:", ""]
    losses = []
    for c, t in cols:
        stl = cell.get(("stl", c, t), [])
        runs = {v: cell[(v, c, t)] for v in variants[1:] if cell.get((v, c, t))}
        mtl = {v: float(np.mean(r)) for v, r in runs.items()}
        if not stl or not mtl:
            continue
        best = max(mtl, key=lambda v: mtl[v])
        base = float(np.mean(stl))
        above = [v for v, m in mtl.items() if m > base]
        clear = [v for v in above if _clear(stl, runs[v])]
        out.append(f"- {c} {t}: STL {base:.1f}; best MTL {best} {mtl[best]:.1f} "
                   f"({mtl[best] - base:+.1f}); MTL variants above STL: "
                   f"{len(above)} of {len(mtl)}"
                   + (f", clearly: {', '.join(clear)}." if clear else ", none clearly."))
        losses += [f"{v} on {c} {t} ({m - base:+.1f}"
                   + (", clear)" if _clear(stl, runs[v]) else ")")
                   for v, m in mtl.items() if m < base]
    out += ["", "MTL below STL: " + ("; ".join(losses) if losses else "none so far") + "."]
    return out


def _atomic_write(path: Path, text: str) -> None:
    atomic_write(path, text)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="experiment YAML")
    p.add_argument("--seeds", type=int, nargs="*", help="run only these seeds")
    p.add_argument("--only", nargs="*", help="run only keys containing one of these strings")
    p.add_argument("--table-only", action="store_true",
                   help="rewrite the table from the records and stop")
    p.add_argument("--progress", action="store_true", help="show a progress bar per epoch")


def main(args: argparse.Namespace) -> int:
    if not logging.getLogger().handlers:  # progress lines on stderr, as the other commands
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.table_only:
        exp = load_experiment(args.config)
        try:
            tasks_of: dict[str, list[str]] | None = tasks_of_composites(
                exp, ensure_stores(exp, Path(exp.runs) / "stores", args.config, convert=False))
        except SkelmtlError:  # stores not built yet: count the tasks of finished runs
            tasks_of = None
        out = write_table(exp, args.config, tasks_of)
    else:
        out = run_experiment(args.config, seeds=args.seeds, only=args.only,
                             progress=args.progress)
    sys.stdout.write(f"results: {out}\n")
    return 0
