"""Checkpoint -> ONNX with skelmtl metadata, simplified and fully checked.

Usage: skelmtl export runs/exp/best.pt -o model.onnx [--per-task] [--opset 17]

The graph has one input ``input`` ``(N, C', T, V)`` with a dynamic batch axis, one output
``logits_<task>`` per task head and ``task_logits`` for the task head, and carries
:class:`edge.core.metadata.ModelMeta` as JSON under ``metadata_props["skelmtl"]`` (layout,
window, preprocessing version, streams, task and label names, model arguments,
``precision="fp32"``, producer versions). Export uses the TorchScript-based exporter
(``dynamo=False``): it folds BatchNorm into the convolutions and gives plain, stable node
names, which quantization and TensorRT's parser handle best. The graph is then simplified
(onnxslim: constant folding, dead-node removal) and checked with onnx's full checker,
and ONNX Runtime's outputs are compared with PyTorch's before the file is written.

Soft-sharing models keep one trunk per task, so ``--per-task`` also writes
``<stem>.<task>.onnx`` per task, computing only what that task's head needs
(``graph_tasks=(task,)``, no task head), for runtimes that run one task at a time.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edge import __version__ as skelmtl_version
from edge.core.atomic import atomic_write, sha256_file
from edge.core.errors import SkelmtlError
from edge.core.metadata import INPUT_NAME, META_KEY, ModelMeta

DEFAULT_OPSET = 17
MIN_OPSET = 17
VERIFY_ATOL = 1e-4
Log = Callable[[str], None]
# Progress goes to this logger; the command shows it (main), a library caller chooses.
LOG = logging.getLogger(__name__)


class ExportError(SkelmtlError, RuntimeError):
    """The model cannot be exported as asked; the message says why."""


class _Outputs(nn.Module):
    """Wraps a registry model so that it returns a tuple in the metadata's output order."""

    def __init__(self, model: nn.Module, tasks: Sequence[str] | None, names: list[str]) -> None:
        super().__init__()
        self.model, self.tasks, self.names = model, list(tasks) if tasks else None, names

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(x, tasks=self.tasks)
        return tuple(out[n] for n in self.names)


def _versions() -> dict[str, str]:
    import onnx

    v = {"skelmtl": skelmtl_version, "torch": torch.__version__, "onnx": onnx.__version__}
    try:
        import onnxslim

        v["onnxslim"] = onnxslim.__version__
    except ImportError:
        pass
    return v


def _simplify(model: Any, log: Log) -> Any:
    """onnxslim (constant folding, dead nodes, redundant casts); the input as-is if absent."""
    try:
        import onnxslim
    except ImportError:
        log("onnxslim is not installed: keeping the exporter's constant-folded graph")
        return model
    before = len(model.graph.node)
    slim = onnxslim.slim(model)
    log(f"onnxslim: {before} -> {len(slim.graph.node)} nodes")
    return slim


def _shape(vi: Any) -> tuple[str | int, ...]:
    return tuple(d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim)


def export_model(model: nn.Module, meta: ModelMeta, out: str | os.PathLike[str], *,
                 tasks: Sequence[str] | None = None, opset: int = DEFAULT_OPSET,
                 simplify: bool = True, producer: dict[str, Any] | None = None,
                 log: Log = LOG.info) -> Path:
    """Export one graph of ``model``.

    Args:
        model: a registry model (``model(x, tasks=None) -> {output name: logits}``).
        meta: its metadata (from the checkpoint).
        out: the ``.onnx`` file to write (atomically).
        tasks: None for every head and the task head; one task name for a per-task graph.
        opset: ONNX opset (>= 17).
        simplify: run onnxslim.
        producer: extra provenance for ``meta.producer`` (checkpoint hash, data).
        log: progress lines (default: this module's logger at INFO).

    Returns:
        ``out``.

    Raises:
        ExportError: opset below 17, unknown task, or ONNX Runtime disagreeing with
            PyTorch by more than 1e-4.
    """
    import onnx

    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset} is too old; use {MIN_OPSET} or newer")
    out = Path(out)
    if tasks is not None:
        unknown = [t for t in tasks if t not in meta.tasks]
        if unknown:
            raise ExportError(f"unknown tasks {unknown}; the model has {list(meta.tasks)}")
        meta = meta.with_(graph_tasks=tuple(tasks), has_task_head=False)
    names = meta.output_names()
    model = model.eval()
    wrapper = _Outputs(model, tasks, names).eval()
    p = meta.preprocess
    gen = torch.Generator().manual_seed(0)
    example = torch.randn(2, p.channels, p.window, 75, generator=gen)
    dynamic = {INPUT_NAME: {0: "N"}, **{n: {0: "N"} for n in names}}
    with tempfile.TemporaryDirectory(prefix="skelmtl-export-") as tmp:
        raw = Path(tmp) / "raw.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            # The TorchScript exporter warns that it is deprecated in favour of dynamo; it
            # is still the one whose graphs quantize and parse cleanly.
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapper, (example,), str(raw), dynamo=False, opset_version=opset,
                              input_names=[INPUT_NAME], output_names=names,
                              dynamic_axes=dynamic, do_constant_folding=True)
        onnx_model = onnx.load(str(raw))
    if simplify:
        onnx_model = _simplify(onnx_model, log)

    full = dict(meta.producer)
    full.update(_versions())
    full.update(producer or {})
    full["opset"] = opset
    meta_out = meta.with_(precision="fp32", producer=full)
    del onnx_model.metadata_props[:]
    entry = onnx_model.metadata_props.add()
    entry.key, entry.value = META_KEY, meta_out.to_json()
    onnx_model.producer_name, onnx_model.producer_version = "skelmtl", skelmtl_version
    onnx_model.doc_string = (f"skelmtl {meta.model_name}: tasks {list(meta.graph_tasks)}; "
                             "metadata under metadata_props['skelmtl']")
    try:
        onnx.checker.check_model(onnx_model, full_check=True)
    except onnx.checker.ValidationError as e:
        raise ExportError(f"the exported graph fails onnx's checker: {e}") from None

    graph_in = [(i.name, _shape(i)) for i in onnx_model.graph.input]
    graph_out = [(o.name, _shape(o)) for o in onnx_model.graph.output]
    if [n for n, _ in graph_in] != [INPUT_NAME] or [n for n, _ in graph_out] != names:
        raise ExportError(f"exported I/O {graph_in} -> {graph_out} do not match the metadata's "
                          f"{INPUT_NAME} -> {names}")
    for kind, items in (("input", graph_in), ("output", graph_out)):
        for n, s in items:
            log(f"{kind} {n}: {s}")
    log(f"windows of {p.window} frames at {p.fps:g} frames/s ({p.window / p.fps:.2f} s; "
        "every source is resampled to that rate)" if p.fps is not None else
        f"windows of {p.window} frames at the source's own rate (no preprocess.fps)")
    if not isinstance(graph_in[0][1][0], str):
        raise ExportError("the batch axis of the exported input is not dynamic")

    diff = _verify(onnx_model, wrapper, names, p.channels, p.window)
    log(f"ONNX Runtime vs PyTorch on random windows: max |diff| / max(1, |logit|) {diff:.2e}")
    if diff > VERIFY_ATOL:
        raise ExportError(f"ONNX Runtime disagrees with PyTorch by {diff:.2e} of the logit "
                          f"scale (> {VERIFY_ATOL})")
    atomic_write(out, onnx_model.SerializeToString())
    log(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, opset {opset}, "
        f"{len(onnx_model.graph.node)} nodes)")
    return out


def _verify(onnx_model: Any, wrapper: nn.Module, names: list[str], channels: int,
            window: int) -> float:
    """Max |ONNX Runtime - PyTorch| / max(1, max |logit|) over all outputs, batch 3.

    Random normal windows are far outside the training distribution and can give logits
    in the hundreds, where float32 rounding alone exceeds 1e-4 absolute; scaling by the
    logit size keeps this a check of the graph, not of rounding. The absolute 1e-4 bar
    on real clips is tests/test_export.py's.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        return 0.0
    x = np.random.default_rng(1).normal(size=(3, channels, window, 75)).astype(np.float32)
    sess = ort.InferenceSession(onnx_model.SerializeToString(),
                                providers=["CPUExecutionProvider"])
    got = sess.run(names, {INPUT_NAME: x})
    with torch.no_grad():
        want = wrapper(torch.from_numpy(x))
    return max(float(np.abs(g - w.numpy()).max()) / max(1.0, float(np.abs(w.numpy()).max()))
               for g, w in zip(got, want))




def export_checkpoint(checkpoint: str | os.PathLike[str], out: str | os.PathLike[str], *,
                      per_task: bool = False, opset: int = DEFAULT_OPSET,
                      simplify: bool = True, log: Log = LOG.info) -> list[Path]:
    """Export a checkpoint: the full graph, plus one graph per task with ``per_task``.

    Returns:
        The written files, the full model first.
    """
    from trainer.checkpoint import load_checkpoint

    checkpoint, out = Path(checkpoint), Path(out)
    ck = load_checkpoint(checkpoint)
    with torch.no_grad():  # a library call must not switch autograd off for its caller
        return _export_loaded(ck, checkpoint, out, per_task=per_task, opset=opset,
                              simplify=simplify, log=log)


def _export_loaded(ck: Any, checkpoint: Path, out: Path, *, per_task: bool, opset: int,
                   simplify: bool, log: Log) -> list[Path]:
    producer: dict[str, Any] = {"checkpoint": checkpoint.name,
                                "checkpoint_sha256": sha256_file(checkpoint)}
    fp = ck.extra.get("fingerprint") or ck.extra.get("data_fingerprint")
    if fp:
        producer["data_fingerprint"] = fp
    written = [export_model(ck.model, ck.meta, out, opset=opset, simplify=simplify,
                            producer=producer, log=log)]
    if per_task:
        if len(ck.meta.tasks) < 2:
            raise ExportError(f"{checkpoint}: --per-task needs a model with several tasks")
        sharing = getattr(ck.model, "model_args", {}).get("sharing", "")
        if sharing == "hard":
            log("note: a hard-sharing model's per-task graphs still run the whole shared "
                "trunk; they only drop the other heads")
        for t in ck.meta.tasks:
            path = out.with_name(f"{out.stem}.{t}{out.suffix}")
            written.append(export_model(ck.model, ck.meta, path, tasks=[t], opset=opset,
                                        simplify=simplify, producer=producer, log=log))
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``skelmtl export``."""
    parser.add_argument("checkpoint", type=Path, help="checkpoint from 'skelmtl train'")
    parser.add_argument("-o", "--output", type=Path, required=True, help="model.onnx to write")
    parser.add_argument("--per-task", action="store_true",
                        help="also write <stem>.<task>.onnx, one graph per task")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    parser.add_argument("--no-simplify", action="store_true", help="skip onnxslim")


def main(args: argparse.Namespace) -> int:
    """Export; prints the written paths."""
    if LOG.level == logging.NOTSET:  # the command shows its progress (a caller's level wins)
        LOG.setLevel(logging.INFO)
    for p in export_checkpoint(args.checkpoint, args.output, per_task=args.per_task,
                               opset=args.opset, simplify=not args.no_simplify):
        print(p)
    return 0
