"""Usage: python -m trainer.tuning configs/experiments/tuning/msr.yaml [--summary] [--variants NAME ...]

Choosing a recipe without looking at test: leave-one-subject-out cross-validation on the
train split of one store (or, with ``folds: k``, k folds stratified by label, for clips
that carry no subject).

A 10% validation slice of a small dataset (36 clips of MSR Action3D) cannot tell two
recipes apart: one clip is 2.8 points and the slice saturates near 97%. Here each training
subject in turn becomes the validation split of a fold store (the test clips are left out
of the fold stores altogether, so nothing in this study can read them), every variant of
the recipe is trained on every fold, and a variant's score is its accuracy over all the
held-out clips: every train clip is scored once, by a model that never saw its subject,
as the test protocol scores unseen subjects. Each run's held-out accuracy is given twice:
at its best epoch, which the held-out fold itself picks (optimistic), and as the mean over
its last epochs, which involves no choice.

Resumable and shareable like ``skelmtl accuracy``: a run is skipped once its record
(``<records>/<variant>/<fold>.json``, a tracked folder, :mod:`trainer.records`) exists, and
several workers (one per core) claim runs with a lock file. The summary (``summary`` in
the config, markdown) is rewritten from the records after every run; ``--summary``
rewrites it from the records alone (a fresh clone's empty ``runs/``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from edge.core.atomic import atomic_write
from edge.core.clipstore import ClipStore, is_store, write_store
from trainer.accuracy import claim, release
from trainer.config import read_yaml
from trainer.records import Records

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TuningConfig:
    """Attributes:
    store: the clip store whose train split is cross-validated.
    runs: folder of the fold stores and runs (working files).
    records: folder of the runs' records (``<variant>/<fold>.json``, what the summary is
        made of; a tracked folder); default: the runs folder.
    summary: the markdown table written after every run.
    base: the training config every run starts from (YAML path).
    variants: name -> dotted-key overrides of the base config.
    seed: the training seed of every run.
    seeds: more seeds: every variant is trained at each of these too (its runs and records
        under ``<variant>/seed<s>/``), and the summary gives the pooled accuracy's mean and
        sample std over the seeds whose folds are all done. One seed can mislead: on
        F-PHAB the same recipe pooled 84.8, 83.4 and 81.9% at seeds 0-2, as far apart as
        any change tried (docs/tuning/fpha.md).
    folds: 0 to hold out one subject at a time; k > 1 for k folds stratified by label
        (for stores whose clips carry no subject, e.g. JHMDB).
    notes: paragraphs printed under the table (what was read from it).
    """

    store: str
    runs: str
    summary: str
    base: str
    variants: dict[str, dict[str, Any]]
    seed: int = 0
    seeds: tuple[int, ...] = ()
    folds: int = 0
    notes: tuple[str, ...] = ()
    records: str = ""

    @property
    def run_records(self) -> Records:
        """The records of this study's runs."""
        return Records(Path(self.records or self.runs), Path(self.runs))


def load_tuning(path: str | os.PathLike[str]) -> TuningConfig:
    """Read a tuning config; unknown keys are refused."""
    raw = read_yaml(path)
    names = {f.name for f in dataclasses.fields(TuningConfig)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise SystemExit(f"{path}: unknown keys {unknown}; known: {sorted(names)}")
    cfg = TuningConfig(**dict(raw, seeds=tuple(raw.get("seeds") or ())))
    if cfg.seed in cfg.seeds or len(set(cfg.seeds)) != len(cfg.seeds):
        raise SystemExit(f"{path}: seeds must be distinct and other than seed {cfg.seed}, "
                         f"got {list(cfg.seeds)}")
    if cfg.folds == 1 or cfg.folds < 0:
        raise SystemExit(f"{path}: folds must be 0 (one subject per fold) or at least 2, "
                         f"got {cfg.folds}")
    return cfg


def subject_folds(store: str | os.PathLike[str], out: Path) -> list[Path]:
    """Write one fold store per training subject: that subject's train clips become the
    ``val`` split, the other subjects' the ``train`` split; test clips are not copied.

    Returns:
        The fold store paths, in subject order (existing ones are reused).
    """
    src = ClipStore(store, mmap=True)
    train = [i for i, s in enumerate(src.column("split")) if s == "train"]
    subjects = sorted({src.column("subject")[i] for i in train}, key=lambda s: (len(s), s))
    if len(subjects) < 2:
        raise SystemExit(f"{store}: its train split has {len(subjects)} subject(s); "
                         "cross-validation by subject needs at least 2")
    paths = []
    for subj in subjects:
        dst = out / f"fold_{subj}"
        if not is_store(dst):
            clips = (dataclasses.replace(src[i], split="val" if src[i].subject == subj
                                         else "train") for i in train)
            write_store(clips, dst, info={"tuning": f"{store}, subject {subj} held out"})
        paths.append(dst)
    return paths


def stratified_folds(store: str | os.PathLike[str], out: Path, k: int,
                     seed: int = 0) -> list[Path]:
    """Write k fold stores of the train split, stratified by label: fold i's clips become
    the ``val`` split, the rest the ``train`` split; test clips are not copied.

    Each label's train clips are shuffled (``seed``) and dealt round-robin to the folds,
    so every fold holds about 1/k of every class.

    Returns:
        The fold store paths, in fold order (existing ones are reused).
    """
    src = ClipStore(store, mmap=True)
    train = [i for i, s in enumerate(src.column("split")) if s == "train"]
    if len(train) < k:
        raise SystemExit(f"{store}: its train split has {len(train)} clip(s), fewer than "
                         f"the {k} folds asked for")
    rng = np.random.default_rng(seed)
    fold_of: dict[int, int] = {}
    labels = src.labels()
    for lab in sorted({labels[i] for i in train}):
        idx = [i for i in train if labels[i] == lab]
        for j, i in enumerate(rng.permutation(idx)):
            fold_of[int(i)] = j % k
    paths = []
    for f in range(k):
        dst = out / f"fold_k{f}"
        if not is_store(dst):
            clips = (dataclasses.replace(src[i], split="val" if fold_of[i] == f else "train")
                     for i in train)
            write_store(clips, dst, info={"tuning": f"{store}, fold {f} of {k} held out "
                                                    f"(stratified, seed {seed})"})
        paths.append(dst)
    return paths


# The held-out fold both picks a run's best epoch and scores it, so "val" is optimistic,
# and more so for a recipe whose score wanders from epoch to epoch (augmentation does):
# the maximum of a noisier curve is higher. The mean over the last epochs involves no
# choice, so a recipe whose gain is only that optimism shows no gain there.
LAST_EPOCHS = 20


def _result(run: Path) -> dict[str, Any]:
    """Held-out accuracy of a finished run: at the best epoch of its history (``val``), and
    the mean over its last :data:`LAST_EPOCHS` epochs (``val_last``)."""
    from trainer.train import best_epoch

    rows = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    best = rows[best_epoch(rows)]
    return {"val": best["score"], "val_loss": best.get("val_loss"), "epoch": best["epoch"],
            "epochs": len(rows), "val_last": _last_mean(rows)}


def _last_mean(rows: list[dict[str, Any]]) -> float:
    return float(np.mean([r["score"] for r in rows[-LAST_EPOCHS:]]))


def run_all(cfg: TuningConfig, only: list[str] | None = None) -> None:
    """Train every (variant, fold) not yet done, claiming each; then write the summary.

    Args:
        cfg: the study.
        only: train only these variants (a study stopped part-way keeps its other
            variants' finished folds in the summary without finishing them).
    """
    unknown = sorted(set(only or ()) - set(cfg.variants))
    if unknown:
        raise SystemExit(f"{cfg.runs}: no variant(s) {unknown}; the config has "
                         f"{list(cfg.variants)}")
    root = Path(cfg.runs)
    folds = (stratified_folds(cfg.store, root / "stores", cfg.folds) if cfg.folds
             else subject_folds(cfg.store, root / "stores"))
    base = read_yaml(cfg.base)
    records = cfg.run_records
    for seed in (cfg.seed, *cfg.seeds):
        for name, overrides in cfg.variants.items():
            if only and name not in only:
                continue
            for fold in folds:
                key = f"{_prefix(cfg, name, seed)}/{fold.name}"
                if records.has(key):
                    continue
                missing = _missing_teachers(cfg, overrides, fold.name)
                if missing:  # another variant of this study (or seed) may be their runs
                    logger.warning("%s: teachers not trained yet (%s); run the study again "
                                   "once they are", key, ", ".join(missing))
                    continue
                run = root / key
                run.mkdir(parents=True, exist_ok=True)
                fd = claim(run)
                if fd is None:
                    continue
                try:
                    if not records.has(key):  # not finished by the last holder
                        _train_fold(cfg, base, name, overrides, fold, run, seed, key)
                finally:
                    release(run, fd)
    write_summary(cfg)


def _prefix(cfg: TuningConfig, name: str, seed: int) -> str:
    """Where a variant's runs at ``seed`` live (runs and records): ``<variant>`` at the
    study's ``seed`` (as before ``seeds`` existed), ``<variant>/seed<s>`` at the others."""
    return name if seed == cfg.seed else f"{name}/seed{seed}"


def _train_fold(cfg: TuningConfig, base: dict[str, Any], name: str,
                overrides: dict[str, Any], fold: Path, run: Path, seed: int,
                key: str) -> None:
    """Train one variant on one fold store at ``seed``; its record (``key``) last."""
    n_val = ClipStore(fold).column("split").count("val")
    tag = name if seed == cfg.seed else f"{name}-seed{seed}"
    conf = dict(base, name=f"{tag}-{fold.name}", seed=seed, out=str(run))
    conf["data"] = dict(base.get("data", {}), sources=[{"store": str(fold)}])
    (run / "config.yaml").write_text(yaml.safe_dump(conf, sort_keys=False))
    sets = [f"{k}={json.dumps(for_fold(v, fold.name))}" for k, v in overrides.items()]
    cmd = [sys.executable, "-m", "skelmtl.cli", "train", "--config",
           str(run / "config.yaml"), "--overwrite", "--no-progress"] \
        + (["--set", *sets] if sets else [])
    logger.info("%s", " ".join(cmd))
    with open(run / "train.log", "w") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
    res = dict(_result(run), n_val=n_val, variant=name, fold=fold.name)
    if seed != cfg.seed:
        res["seed"] = seed
    cfg.run_records.write(key, res)
    write_summary(cfg)


def _missing_teachers(cfg: TuningConfig, overrides: dict[str, Any], fold: str) -> list[str]:
    """The teacher checkpoints a variant names for ``fold`` that are not ready: a run of
    this study is ready once it has its record (its checkpoints are written every epoch,
    while a worker may still be training it), another file once it exists."""
    from trainer.distill import teacher_path

    paths = for_fold(overrides.get("loss.distill_from") or [], fold)
    if isinstance(paths, str):  # one path given without a list
        paths = [paths]
    records = cfg.run_records
    out = []
    for p in map(teacher_path, paths):
        key = records.run_key(p)
        if not p.is_file() or key is not None and not records.has(key):
            out.append(str(p))
    return out


def for_fold(value: Any, fold: str) -> Any:
    """An override's value with ``{fold}`` in its strings replaced by the fold's name, so a
    variant can name each fold's own runs (``loss.distill_from``: that fold's teachers)."""
    if isinstance(value, str):
        return value.replace("{fold}", fold)
    if isinstance(value, list):
        return [for_fold(v, fold) for v in value]
    return value


def write_summary(cfg: TuningConfig) -> None:
    """The table: per variant, held-out accuracy pooled over all folds (clip-weighted),
    from the records."""
    records = cfg.run_records
    how = (f"{cfg.folds} folds stratified by label held out in turn" if cfg.folds
           else "each training subject held out in turn")
    lines = [f"# Cross-validation {'by label' if cfg.folds else 'by subject'}: {cfg.store} "
             "(train split only)", "",
             f"`python -m trainer.tuning` over `{cfg.base}`, seed {cfg.seed}"
             + (f" (the last column: also seeds {', '.join(map(str, cfg.seeds))})"
                if cfg.seeds else "")
             + f"; {how}; accuracy pooled over every held-out clip.", "",
             f"| variant | overrides | folds done | held-out top-1 % at the best epoch | per fold "
             f"| mean of the last {LAST_EPOCHS} epochs % | per fold | epochs |"
             + (f" over seeds: best epoch / last {LAST_EPOCHS}, mean ± std |" if cfg.seeds else ""),
             "|---|---|---|---|---|---|---|---|" + ("---|" if cfg.seeds else "")]
    n_folds = len(_fold_names(cfg))
    for name, overrides in cfg.variants.items():
        res = [_with_last(cfg, r) for r in records.glob(f"{name}/*")]
        if not res:
            continue
        (best, per), (last, per_last) = _pooled(res, "val"), _pooled(res, "val_last")
        eps = ", ".join(str(r["epochs"]) for r in res)
        row = (f"| {name} | `{json.dumps(overrides)}` | {len(res)} | {best} | {per} "
               f"| {last} | {per_last} | {eps} |")
        if cfg.seeds:
            row += f" {_over_seeds(cfg, name, n_folds)} |"
        lines.append(row)
    lines += [line for n in cfg.notes for line in ("", n)]
    atomic_write(Path(cfg.summary), "\n".join(lines) + "\n")


def _fold_names(cfg: TuningConfig) -> list[str]:
    """The fold names of a study's records at its ``seed`` (how many folds a whole seed
    has), from the records alone, so that ``--summary`` needs no fold stores."""
    return sorted({r["fold"] for r in cfg.run_records.glob("*/*")})


def _over_seeds(cfg: TuningConfig, name: str, n_folds: int) -> str:
    """The pooled held-out accuracy's mean ± sample std over the seeds whose ``n_folds``
    folds are all recorded, best epoch / last epochs, as a table cell."""
    pooled: list[list[float]] = []
    for seed in (cfg.seed, *cfg.seeds):
        res = cfg.run_records.glob(f"{_prefix(cfg, name, seed)}/*")
        if len(res) != n_folds or any(r.get("val_last") is None for r in res):
            continue
        pooled.append([_pooled_value(res, k) for k in ("val", "val_last")])
    if len(pooled) < 2:
        return f"- ({len(pooled)} seed{'s' * (len(pooled) != 1)} done)"
    a = 100 * np.array(pooled)
    mean, std = a.mean(axis=0), a.std(axis=0, ddof=1)
    return (f"{mean[0]:.1f} ± {std[0]:.1f} / {mean[1]:.1f} ± {std[1]:.1f} "
            f"({len(pooled)} seeds)")


def _pooled(res: list[dict[str, Any]], key: str) -> tuple[str, str]:
    """Clip-weighted accuracy over the folds and the per-fold list, as table cells ("-"
    when a fold's record lacks ``key``)."""
    if any(r.get(key) is None for r in res):
        return "-", "-"
    return (f"{100 * _pooled_value(res, key):.1f}",
            ", ".join(f"{100 * r[key]:.1f}" for r in res))


def _pooled_value(res: list[dict[str, Any]], key: str) -> float:
    """``key`` (an accuracy) over the folds' records, weighted by their held-out clips."""
    n = np.array([r["n_val"] for r in res])
    return float((np.array([r[key] for r in res]) * n).sum() / n.sum())


def _with_last(cfg: TuningConfig, rec: dict[str, Any]) -> dict[str, Any]:
    """A record written before ``val_last`` existed gains it from its run's history when
    that is still on disk (and is rewritten with it); otherwise it is returned as it is."""
    if "val_last" in rec:
        return rec
    hist = Path(cfg.runs) / rec["variant"] / rec["fold"] / "history.jsonl"
    if not hist.is_file():
        return rec
    rows = [json.loads(line) for line in hist.read_text().splitlines()]
    rec = dict(rec, val_last=_last_mean(rows))
    cfg.run_records.write(f"{rec['variant']}/{rec['fold']}", rec)
    return rec


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m trainer.tuning", description=__doc__.split("\n")[2])
    p.add_argument("config")
    p.add_argument("--summary", action="store_true",
                   help="only rewrite the summary, from the records")
    p.add_argument("--variants", nargs="+", metavar="NAME",
                   help="train only these variants (default: all)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="tuning: %(message)s")
    cfg = load_tuning(a.config)
    write_summary(cfg) if a.summary else run_all(cfg, a.variants)


if __name__ == "__main__":
    main()
