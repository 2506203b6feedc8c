"""Usage: skelmtl eval CHECKPOINT [--data STORE ...] [--split test] [-o report_dir]

Evaluates a checkpoint on a split of its composite (by default the stores it was trained
on, read from the checkpoint's config): top-1, top-5 and per-class accuracy per task head,
the task head's accuracy, a confusion matrix PNG per task and ``report.json``.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edge.atomic import atomic_write
from edge.clipstore import StoreError
from trainer.checkpoint import load_checkpoint
from trainer.config import DataConfig, SourceConfig, from_dict
from trainer.data import ClipDataset, Composite


def topk(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Share of rows whose label is among the ``k`` largest logits."""
    if len(labels) == 0:
        return float("nan")
    k = min(k, logits.shape[1])
    top = np.argsort(-logits, axis=1)[:, :k]
    return float((top == labels[:, None]).any(1).mean())


def confusion(pred: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """``(n, n)`` counts, rows = true class, columns = predicted class."""
    m = np.zeros((n, n), dtype=np.int64)
    np.add.at(m, (labels, pred), 1)
    return m


def evaluate_checkpoint(checkpoint: str | os.PathLike[str], *, data: list[str] | None = None,
                        split: str = "test", out_dir: str | os.PathLike[str] | None = None,
                        batch_size: int = 128) -> dict[str, Any]:
    """Evaluate ``checkpoint`` on ``split``; write the report and PNGs to ``out_dir``.

    Returns:
        The report: per task ``n``, ``top1``, ``top5``, ``per_class``; ``task_head``
        accuracy when the model has one; the checkpoint and split.
    """
    from trainer.train import predict

    ck = load_checkpoint(checkpoint)
    meta = ck.meta
    cfg = from_dict(ck.config, f"{checkpoint}:config") if ck.config else None
    if data:
        dcfg = DataConfig(sources=tuple(SourceConfig(store=s) for s in data))
    elif cfg is not None:
        dcfg = cfg.data
    else:
        raise StoreError(f"{checkpoint}: no data given and the checkpoint keeps no config")
    dcfg = replace(dcfg, test_split=split) if split != "val" else dcfg
    comp = Composite(dcfg, [t for t in meta.tasks])
    # Map the composite's label indices onto the model's label order, by name.
    for t in comp.tasks:
        unknown = set(comp.labels[t]) - set(meta.labels[t])
        if unknown:
            raise StoreError(f"{checkpoint}: data has {t} labels the model does not know: "
                             f"{sorted(unknown)[:8]}")
    seed = cfg.seed if cfg is not None else 0
    idx = comp.splits(seed)["val" if split == "val" else "test"]
    if not idx:
        raise StoreError(f"no clips in split {split!r} of {[s.store for s in dcfg.sources]}")
    ds = ClipDataset(comp, idx, meta.preprocess)
    res = predict(ck.model, ds, comp.tasks, torch.device("cpu"), batch_size)
    report: dict[str, Any] = {"checkpoint": str(checkpoint), "split": split, "tasks": {}}
    for ti, t in enumerate(comp.tasks):
        sel = res["task"] == ti
        if not sel.any():
            continue
        names = meta.labels[t]
        to_model = np.asarray([names.index(lab) for lab in comp.labels[t]])
        y = to_model[res["label"][sel]]
        logits = res[f"logits_{t}"][sel]
        pred = logits.argmax(1)
        cm = confusion(pred, y, len(names))
        per_class = {names[c]: float(cm[c, c] / cm[c].sum()) for c in range(len(names))
                     if cm[c].sum()}
        report["tasks"][t] = {"n": int(sel.sum()), "top1": float((pred == y).mean()),
                              "top5": topk(logits, y, 5), "per_class": per_class,
                              "confusion": cm.tolist(), "labels": list(names)}
    if "task_logits" in res:
        report["task_head"] = float((res["task_logits"].argmax(1) == res["task"]).mean())
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for t, r in report["tasks"].items():
            plot_confusion(np.asarray(r["confusion"]), r["labels"], out / f"confusion_{t}.png",
                           f"{t}: top-1 {r['top1']:.3f} on {split} (n={r['n']})")
        _write_json(out / "report.json", report)
    return report


def plot_confusion(cm: np.ndarray, labels: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(labels)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    size = max(4.0, 0.35 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(n), labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def _write_json(path: Path, obj: Any) -> None:
    atomic_write(path, json.dumps(obj, indent=1))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint")
    p.add_argument("--data", nargs="*", help="clip stores (default: the checkpoint's own)")
    p.add_argument("--split", default="test", help="test (default) or val")
    p.add_argument("-o", "--out", help="folder for report.json and confusion PNGs")


def main(args: argparse.Namespace) -> int:
    rep = evaluate_checkpoint(args.checkpoint, data=args.data, split=args.split,
                              out_dir=args.out)
    for t, r in rep["tasks"].items():
        print(f"{t:>10}: top-1 {r['top1']:.4f}  top-5 {r['top5']:.4f}  (n={r['n']})")
    if "task_head" in rep:
        print(f"{'task head':>10}: {rep['task_head']:.4f}")
    if args.out:
        print(f"report: {Path(args.out) / 'report.json'}")
    return 0
