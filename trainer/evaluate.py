"""Usage: skelmtl eval MODEL [--data STORE ...] [--split test] [-o report_dir] [--backend auto]

Scores any model artefact on a split of clip stores: a training checkpoint (``.pt``), an
FP32 or INT8 ONNX model (``.onnx``) or a TensorRT engine (``.engine``, where TensorRT
exists). Every artefact runs through the runtime's own backends (:mod:`edge.backends`;
a checkpoint through the ``torch`` backend) on windows made by the one preprocessing
function with the model's own metadata, so the number printed is the number the
deployed file gives. Output: top-1, top-5 and per-class accuracy per task head, the task
head's accuracy, a confusion matrix PNG per task and ``report.json``.

The stores default to those the model was trained on: a checkpoint keeps its training
config; an exported model finds it through the checkpoint its metadata names
(``producer.checkpoint``, checked by SHA-256) when that file sits beside it. Otherwise
pass ``--data``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edge.backends import AUTO_BY_SUFFIX, Backend, load_backend
from edge.core.atomic import atomic_path, atomic_write, sha256_file
from edge.core.clipstore import StoreError
from edge.core.errors import SkelmtlError
from edge.core.metadata import TASK_OUTPUT, ModelMeta, logits_name
from trainer.config import DataConfig, SourceConfig, TrainConfig, from_dict

log = logging.getLogger(__name__)

# Suffixes read as training checkpoints (the config inside them names the stores).
CHECKPOINT_SUFFIXES = (".pt", ".ckpt")


class EvalError(SkelmtlError, ValueError):
    """A model or data that cannot be evaluated; the message names the file."""


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


def training_config(model: Path, meta: ModelMeta) -> TrainConfig | None:
    """The training config of ``model``: its own (checkpoint) or its checkpoint's.

    An exported model names its checkpoint in ``meta.producer`` (file name and SHA-256);
    the config is taken from that checkpoint only when it lies beside the model and its
    hash matches, so a retrained ``best.pt`` never lends its stores to an older export.
    """
    from trainer.checkpoint import read_checkpoint

    if model.suffix.lower() in CHECKPOINT_SUFFIXES:
        ck_path = model
    else:
        name, digest = meta.producer.get("checkpoint"), meta.producer.get("checkpoint_sha256")
        if not isinstance(name, str) or not name:
            return None
        ck_path = model.parent / Path(name).name
        if not ck_path.is_file() or (digest and sha256_file(ck_path) != digest):
            return None
    config = read_checkpoint(ck_path).get("config") or {}
    return from_dict(config, f"{ck_path}:config") if config else None


def evaluate_model(model: str | os.PathLike[str], *, data: list[str] | None = None,
                   split: str = "test", out_dir: str | os.PathLike[str] | None = None,
                   batch_size: int = 128, backend: str = "auto",
                   backend_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Evaluate a model artefact on ``split``; write the report and PNGs to ``out_dir``.

    Args:
        model: a checkpoint, an ONNX model (FP32 or INT8) or a TensorRT engine.
        data: clip stores; None = the stores of the model's training config.
        split: ``test`` (any split name of the stores) or ``val`` (the training run's
            validation split, carved with its seed).
        out_dir: where ``report.json`` and ``confusion_<task>.png`` go (None: nowhere).
        batch_size: windows per backend call.
        backend: a name of :func:`edge.backends.available_backends`, or ``auto`` (by the
            file's suffix: ``torch`` for checkpoints, ``onnxruntime``, ``tensorrt``).
        backend_options: passed to the backend (e.g. ``{"providers": "cuda"}``).

    Returns:
        The report: ``model``, ``backend``, ``precision``, ``split``; per task ``n``,
        ``top1``, ``top5``, ``per_class``, ``confusion``, ``labels``; ``task_head``
        accuracy when the model has one.

    Raises:
        SkelmtlError: unreadable model, no data, labels the model does not know, an empty
            split (each message names the file).
    """
    path = Path(model)
    if not path.is_file():
        raise EvalError(f"{path}: no such model file")
    if backend == "auto" and path.suffix.lower() not in AUTO_BY_SUFFIX:
        raise EvalError(f"{path}: not a model artefact (expected one of "
                        f"{sorted(AUTO_BY_SUFFIX)}), or name the backend with --backend")
    with _open_backend(path, backend, backend_options or {}) as be:
        meta = be.meta
        cfg = training_config(path, meta)
        if data:
            dcfg = DataConfig(sources=tuple(SourceConfig(store=s) for s in data))
        elif cfg is not None:
            dcfg = cfg.data
        else:
            raise EvalError(f"{path}: no --data given and no training config found "
                            "(a checkpoint keeps one; an exported model finds it through "
                            "its checkpoint beside it); pass --data STORE")
        report = _score(be, path, dcfg, split, cfg.seed if cfg is not None else 0, batch_size)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for t, r in report["tasks"].items():
            plot_confusion(np.asarray(r["confusion"]), r["labels"], out / f"confusion_{t}.png",
                           f"{t}: top-1 {r['top1']:.3f} on {split} (n={r['n']})")
        _write_json(out / "report.json", report)
    return report


def _open_backend(path: Path, backend: str, options: dict[str, Any]) -> Backend:
    """The backend for ``path``; checkpoints through the trainer's own torch backend even
    where its entry point is not registered (a source checkout run without installing)."""
    if backend in ("auto", "torch") and path.suffix.lower() in CHECKPOINT_SUFFIXES:
        from trainer.backend import TorchBackend

        return TorchBackend(path, **options)
    return load_backend(path, backend, **options)


def evaluate_checkpoint(checkpoint: str | os.PathLike[str], **kw: Any) -> dict[str, Any]:
    """:func:`evaluate_model` under its former name (callers pass checkpoints)."""
    return evaluate_model(checkpoint, **kw)


def _score(be: Backend, path: Path, dcfg: DataConfig, split: str, seed: int,
           batch_size: int) -> dict[str, Any]:
    from trainer.data import ClipDataset, Composite

    meta = be.meta
    graph = meta.graph_tasks or meta.tasks
    if split != "val":
        dcfg = replace(dcfg, test_split=split)
    stores = [s.store for s in dcfg.sources]
    # Score only the tasks both the stores and the graph have: a two-task model can be
    # scored on a store of one task, a per-task graph on a two-task store.
    in_stores = Composite(dcfg).tasks
    tasks = [t for t in in_stores if t in graph]
    if not tasks:
        raise EvalError(f"{path}: the model's tasks {list(graph)} are in none of the stores "
                        f"{stores} (they have {list(in_stores)})")
    comp = Composite(dcfg, tasks)
    for t in comp.tasks:
        unknown = set(comp.labels[t]) - set(meta.labels[t])
        if unknown:
            raise EvalError(f"{path}: data has {t} labels the model does not know: "
                            f"{sorted(unknown)[:8]}")
    idx = comp.splits(seed)["val" if split == "val" else "test"]
    if not idx:
        raise StoreError(f"no clips in split {split!r} of {stores}")
    # ClipDataset makes each window with edge.core.preprocess.preprocess, the model's own
    # preprocessing config and each clip's fps (resampled to the model's rate when it has
    # one): the same function training, calibration and the runtime use.
    ds = ClipDataset(comp, idx, meta.preprocess)
    outs: dict[str, list[np.ndarray]] = {}
    task_idx = np.zeros(len(ds), np.int64)
    label_idx = np.zeros(len(ds), np.int64)
    for a in range(0, len(ds), batch_size):
        items = [ds[k] for k in range(a, min(a + batch_size, len(ds)))]
        x = np.stack([np.asarray(it[0]) for it in items]).astype(np.float32)
        task_idx[a: a + len(items)] = [int(it[1]) for it in items]
        label_idx[a: a + len(items)] = [int(it[2]) for it in items]
        for k, v in be.infer(x).items():
            outs.setdefault(k, []).append(np.asarray(v, dtype=np.float32))
    res = {k: np.concatenate(v) for k, v in outs.items()}
    report: dict[str, Any] = {"model": str(path), "checkpoint": str(path), "backend": be.name,
                              "precision": be.precision, "split": split, "tasks": {}}
    for ti, t in enumerate(comp.tasks):
        sel = task_idx == ti
        if not sel.any():
            continue
        names = list(meta.labels[t])
        to_model = np.asarray([names.index(lab) for lab in comp.labels[t]])
        y = to_model[label_idx[sel]]
        logits = res[logits_name(t)][sel]
        pred = logits.argmax(1)
        cm = confusion(pred, y, len(names))
        per_class = {names[c]: float(cm[c, c] / cm[c].sum()) for c in range(len(names))
                     if cm[c].sum()}
        report["tasks"][t] = {"n": int(sel.sum()), "top1": float((pred == y).mean()),
                              "top5": topk(logits, y, 5), "per_class": per_class,
                              "confusion": cm.tolist(), "labels": names}
    if TASK_OUTPUT in res and meta.has_task_head:
        # The task head's classes are the model's task order, the composite's may differ.
        to_head = np.asarray([list(meta.tasks).index(t) for t in comp.tasks])
        report["task_head"] = float((res[TASK_OUTPUT].argmax(1) == to_head[task_idx]).mean())
    return report


def plot_confusion(cm: np.ndarray, labels: list[str], path: Path, title: str) -> None:
    """Row-normalised confusion matrix as a PNG, written atomically."""
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
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def _write_json(path: Path, obj: Any) -> None:
    atomic_write(path, json.dumps(obj, indent=1))


def format_report(rep: dict[str, Any]) -> list[str]:
    """The report as the lines ``skelmtl eval`` prints."""
    lines = [f"{t:>10}: top-1 {r['top1']:.4f}  top-5 {r['top5']:.4f}  (n={r['n']})"
             for t, r in rep["tasks"].items()]
    if "task_head" in rep:
        lines.append(f"{'task head':>10}: {rep['task_head']:.4f}")
    return lines


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="checkpoint (.pt), ONNX model (FP32 or INT8) or TensorRT "
                                 "engine")
    p.add_argument("--data", nargs="*", help="clip stores (default: the model's training "
                                             "stores)")
    p.add_argument("--split", default="test", help="test (default), another split name of "
                                                   "the stores, or val")
    p.add_argument("-o", "--out", help="folder for report.json and confusion PNGs")
    p.add_argument("--backend", default="auto",
                   help="auto (by suffix), torch, onnxruntime or tensorrt")
    p.add_argument("--providers", default=None,
                   help="ONNX Runtime execution providers: cpu (default), cuda, tensorrt, best")
    p.add_argument("--batch-size", type=int, default=128, help="windows per backend call")


def main(args: argparse.Namespace) -> int:
    options = {"providers": args.providers} if args.providers else {}
    rep = evaluate_model(args.model, data=args.data, split=args.split, out_dir=args.out,
                         batch_size=args.batch_size, backend=args.backend,
                         backend_options=options)
    lines = format_report(rep)
    if args.out:
        lines.append(f"report: {Path(args.out) / 'report.json'}")
    return write_lines(lines)


def write_lines(lines: list[str]) -> int:
    """Print ``lines`` to stdout; a reader that stops early (``| head -1``) is no error."""
    try:
        for line in lines:
            sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader has gone: point stdout at /dev/null so that the interpreter's own
        # flush at exit does not raise again, and end quietly like other Unix filters.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return 0
