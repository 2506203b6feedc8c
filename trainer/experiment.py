"""Usage: skelmtl experiment configs/experiments/mtl_vs_stl.yaml [--seeds 0 1] [--only NAME ...]

The result the project stands on: single-task (STL) baselines against multi-task (MTL)
variants (hard / soft cross-stitch / learned sharing x mean / DWA / uncertainty loss
weighting) on composite sets, several seeds each. Test accuracy per task goes to
``results.jsonl`` and the table in ``docs/results.md`` (mean +- std over seeds).

Resumable: a finished run (``result.json`` in its folder) is skipped, an interrupted one
continues from its ``last.pt``; the table is rewritten after every run, so a session that
stops early still leaves every finished number on disk.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from edge.atomic import atomic_write
from trainer.config import ConfigError, TrainConfig, from_dict


@dataclass(frozen=True)
class StoreSpec:
    """A clip store built from a published dataset with ``skelmtl data convert``."""

    src: str
    format: str = ""
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class CompositeSpec:
    """Sources (store names from ``stores`` plus per-source options) and config changes."""

    sources: tuple[dict[str, Any], ...]
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExperimentConfig:
    """Attributes:
    name: experiment name.
    runs: folder for the runs and results.jsonl.
    results: the markdown table written after each run.
    seeds: seeds per variant.
    stores: name -> StoreSpec; built into ``<runs>/stores/<name>`` when missing.
    composites: name -> CompositeSpec.
    sharing: MTL sharing modes; weighting: loss weightings (their product is run).
    stl: also train the single-task baselines.
    base: the TrainConfig every run starts from (dict, or a YAML path).
    anchors: published numbers to print beside the table.
    notes: sentences printed under the table (e.g. which run became the bundled model).
    """

    name: str
    runs: str
    results: str = "docs/results.md"
    seeds: tuple[int, ...] = (0, 1, 2)
    stores: dict[str, StoreSpec] = field(default_factory=dict)
    composites: dict[str, CompositeSpec] = field(default_factory=dict)
    sharing: tuple[str, ...] = ("hard", "soft", "learned")
    weighting: tuple[str, ...] = ("mean", "dwa", "uncertainty")
    stl: bool = True
    base: dict[str, Any] = field(default_factory=dict)
    anchors: tuple[dict[str, Any], ...] = ()
    notes: tuple[str, ...] = ()


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
        stores = {k: StoreSpec(v["src"], v.get("format", ""), tuple(v.get("options", ())))
                  for k, v in d.get("stores", {}).items()}
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
    exp = ExperimentConfig(
        name=d.get("name", path.stem), runs=d.get("runs", f"runs/experiments/{path.stem}"),
        results=d.get("results", "docs/results.md"), seeds=tuple(d.get("seeds", (0, 1, 2))),
        stores=stores, composites=comps, sharing=tuple(d.get("sharing", ("hard", "soft", "learned"))),
        weighting=tuple(d.get("weighting", ("mean", "dwa", "uncertainty"))),
        stl=bool(d.get("stl", True)), base=base, anchors=tuple(d.get("anchors", ())),
        notes=tuple(str(n) for n in d.get("notes", ())))
    from_dict(exp.base, f"{path}:base")  # validate early
    return exp


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


def run_config(exp: ExperimentConfig, run: Run, store_dir: Path) -> TrainConfig:
    comp = exp.composites[run.composite]
    sources = []
    for s in comp.sources:
        s = dict(s)
        s["store"] = str(store_dir / s["store"])
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
    else:
        sharing, weighting = run.variant.split("-")
        d["model"]["sharing"] = sharing
        d.setdefault("loss", {})["weighting"] = weighting
    return from_dict(d, f"{exp.name}:{run.key}")


def ensure_stores(exp: ExperimentConfig, store_dir: Path) -> None:
    """Convert each published dataset once with ``skelmtl data convert``."""
    for name, spec in exp.stores.items():
        dst = store_dir / name
        if (dst / "meta.json").is_file():
            continue
        cmd = [sys.executable, "-m", "edge.cli", "data", "convert", spec.src, str(dst)]
        if spec.format:
            cmd += ["--format", spec.format]
        cmd += list(spec.options)
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)


def run_experiment(path: str | os.PathLike[str], *, seeds: list[int] | None = None,
                   only: list[str] | None = None, progress: bool = False) -> Path:
    """Run (or continue) the experiment; returns the results table path."""
    from edge.clipstore import ClipStore

    exp = load_experiment(path)
    if seeds:
        exp = dataclasses.replace(exp, seeds=tuple(seeds))
    root = Path(exp.runs)
    store_dir = root / "stores"
    ensure_stores(exp, store_dir)
    tasks_of = {}
    for cname, comp in exp.composites.items():
        ts: set[str] = set()
        for s in comp.sources:
            st = ClipStore(store_dir / s["store"])
            ts |= {s.get("task") or t for t in st.task_names}
        tasks_of[cname] = sorted(ts)
    results = root / "results.jsonl"
    for run in plan(exp, tasks_of):
        if only and not any(o in run.key for o in only):
            continue
        out = root / run.key
        if (out / "result.json").is_file() or not claim_run(out):
            continue
        try:
            _run_one(exp, run, out, store_dir, results, path, progress)
        finally:
            (out / CLAIM).unlink(missing_ok=True)
    return write_table(exp, path)


CLAIM = ".claimed"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def claim_run(out: Path) -> bool:
    """Claim a run folder for this process; False if a live worker on this host holds it.

    Several ``skelmtl experiment`` workers may share one runs folder (one per core): each
    takes the next unclaimed run. The claim file is created with O_EXCL, so two workers
    never train the same run; a claim whose process is gone (a killed session) is stale and
    is taken over, and the run resumes from its ``last.pt``.
    """
    out.mkdir(parents=True, exist_ok=True)
    f = out / CLAIM
    me = f"{os.uname().nodename} {os.getpid()}"
    for _ in range(2):
        try:
            fd = os.open(f, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                host, pid = f.read_text().split()
                stale = host == os.uname().nodename and not _pid_alive(int(pid))
            except (OSError, ValueError):  # half-written or vanished: treat as stale
                stale = True
            if not stale:
                return False
            f.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(me)
        return True
    return False


def _run_one(exp: ExperimentConfig, run: Run, out: Path, store_dir: Path, results: Path,
             path: str | os.PathLike[str], progress: bool) -> None:
    """Train, evaluate on the test split and record one run (its result.json last)."""
    from trainer.evaluate import evaluate_checkpoint
    from trainer.train import train

    cfg = run_config(exp, run, store_dir)
    print(f"== {run.key}", flush=True)
    t0 = time.perf_counter()
    res = train(cfg, resume=True, progress=progress)
    rep = evaluate_checkpoint(res.best, split=cfg.data.test_split, out_dir=out / "eval")
    wall = time.perf_counter() - t0
    rows = [{"composite": run.composite, "variant": run.variant, "seed": run.seed,
             "task": t, "top1": r["top1"], "n": r["n"], "wall_s": round(wall, 1),
             "best_val": res.best_val} for t, r in rep["tasks"].items()]
    with open(results, "a") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    _atomic_write(out / "result.json", json.dumps(rows, indent=1))
    write_table(exp, path)
    print("   " + "  ".join(f"{r['task']}={r['top1']:.4f}" for r in rows)
          + f"  ({wall:.0f} s)", flush=True)


def collect(exp: ExperimentConfig) -> list[dict[str, Any]]:
    """The finished runs' rows (from each run's result.json, so reruns never double count)."""
    rows = []
    for f in sorted(Path(exp.runs).glob("*/*/seed*/result.json")):
        rows += json.loads(f.read_text())
    return rows


def write_table(exp: ExperimentConfig, config_path: str | os.PathLike[str]) -> Path:
    """Write the markdown results table (mean +- std of test top-1 over seeds)."""
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
    planned = len(exp.seeds) * len(exp.composites) * len(variants)
    done = len({(r["composite"], r["variant"], r["seed"]) for r in rows})
    lines += ["", f"Finished runs: {done} of {planned} planned "
              f"({len(exp.seeds)} seeds x {len(exp.composites)} composites x "
              f"{len(variants)} variants); '-' marks runs not finished yet."]
    if exp.notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in exp.notes]
    if exp.anchors:
        lines += ["", "Published anchors on the same data:", ""]
        lines += [f"- {a['name']}: {a['value']} ({a.get('note', '')})" for a in exp.anchors]
    lines += ["", f"Per-run rows: `{Path(exp.runs) / 'results.jsonl'}` "
              "(one JSON object per run and task).", ""]
    out = Path(exp.results)
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
    p.add_argument("--table-only", action="store_true", help="rewrite the table and stop")
    p.add_argument("--progress", action="store_true", help="show a progress bar per epoch")


def main(args: argparse.Namespace) -> int:
    if args.table_only:
        out = write_table(load_experiment(args.config), args.config)
    else:
        out = run_experiment(args.config, seeds=args.seeds, only=args.only,
                             progress=args.progress)
    print(f"results: {out}")
    return 0
