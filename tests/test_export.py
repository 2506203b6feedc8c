"""Checkpoint -> ONNX: metadata, dynamic batch, checker, and ONNX Runtime == PyTorch.

The comparison runs on real clips from ``../shared/data`` (volleyball referee signals and
MSR Action3D, through the runtime's preprocessing) when present, otherwise on the
synthetic learnable clips of ``tests/synth.py``; the weights are random but fixed, which
is enough: export bugs show as disagreement whatever the weights.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from edge.core.metadata import INPUT_NAME, META_KEY, ModelMeta
from edge.core.preprocess import PreprocessConfig, preprocess
from tests import synth
from tests.conftest import SHARED_DATA
from trainer.checkpoint import save_checkpoint
from trainer.export import ExportError, export_checkpoint
from trainer.models import create_model

LABELS = {"action": ("raise", "sweep", "push"), "gesture": ("curl_index", "curl_middle",
                                                            "curl_pinky")}
WINDOW = 16


def _quiet(msg: str) -> None:
    pass


def _windows(cfg: PreprocessConfig) -> np.ndarray:
    """Real clips when the shared data is here, synthetic ones otherwise."""
    clips: list[tuple[np.ndarray, np.ndarray]] = []
    if SHARED_DATA.is_dir():
        from trainer.datasets import read_dataset

        for name in ("volleyball_referee", "msr_action3d"):
            for c in itertools.islice(read_dataset(SHARED_DATA / name), 5):
                clips.append((np.asarray(c.frames), np.asarray(c.mask)))
    else:
        rng = np.random.default_rng(0)
        for label in synth.ACTIONS:
            x = synth.action_clip(label, rng, 24)
            clips.append((x, np.ones(x.shape[:2], bool)))
        for label in synth.GESTURES:
            x = synth.gesture_clip(label, rng, 24)
            clips.append((x, np.ones(x.shape[:2], bool)))
    return np.stack([preprocess(f[..., : cfg.dims], m, cfg) for f, m in clips])


def _checkpoint(tmp: Path, sharing: str, name: str = "stgcn_tiny",
                **model_kw: object) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    meta = ModelMeta(preprocess=PreprocessConfig(window=WINDOW), tasks=("action", "gesture"),
                     labels=LABELS, stride=4)
    # The jcd family reads the joint stream and mask itself; here actions see the body,
    # gestures the body and the right hand (as the trainer records them from data).
    body, hand = [0, 11, 12, 13, 14, 15, 16, 23, 24], list(range(54, 75))
    extra = dict(dims=2, joints=body + hand, task_joints={"action": body}) \
        if name.startswith("jcd") else {}
    model = create_model(name, in_channels=meta.preprocess.channels,
                         tasks={t: len(v) for t, v in LABELS.items()}, sharing=sharing, **extra,
                         **model_kw)
    # Non-trivial BatchNorm statistics, so that folding them is actually tested.
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
    model.eval()
    path = save_checkpoint(tmp / f"{name}-{sharing}.pt", model, meta, extra_note="test")
    return path, model


@pytest.mark.parametrize(("name", "sharing", "model_kw"), [
    ("stgcn_tiny", "hard", {}), ("stgcn_tiny", "soft", {}), ("stgcn_tiny", "learned", {}),
    ("jcd_tiny", "hard", {}), ("jcd_tiny", "hard", {"activation": "leaky_relu"})])
def test_onnxruntime_matches_torch(tmp_path: Path, name: str, sharing: str,
                                   model_kw: dict[str, object]) -> None:
    """Through onnxslim, as shipped (it once folded the jcd graph's strided slices wrongly)."""
    torch.set_num_threads(1)
    ck, model = _checkpoint(tmp_path, sharing, name, **model_kw)
    files = export_checkpoint(ck, tmp_path / "model.onnx", per_task=True, log=_quiet)
    assert [f.name for f in files] == ["model.onnx", "model.action.onnx", "model.gesture.onnx"]

    m = onnx.load(str(files[0]))
    onnx.checker.check_model(m, full_check=True)
    opset = next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx"))
    assert opset >= 17
    meta = ModelMeta.from_json({p.key: p.value for p in m.metadata_props}[META_KEY])
    assert meta.precision == "fp32" and meta.labels == LABELS and meta.window == WINDOW
    assert meta.model_args["sharing"] == sharing
    assert {"torch", "onnx", "skelmtl", "checkpoint_sha256"} <= set(meta.producer)
    assert [i.name for i in m.graph.input] == [INPUT_NAME]
    assert [o.name for o in m.graph.output] == meta.output_names() == [
        "logits_action", "logits_gesture", "task_logits"]
    assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch
    assert not [n.op_type for n in m.graph.node if n.op_type == "Einsum"]
    acts = {n.op_type for n in m.graph.node} & {"Relu", "LeakyRelu"}
    assert acts == ({"LeakyRelu"} if model_kw.get("activation") == "leaky_relu" else {"Relu"})

    x = _windows(meta.preprocess)
    sess = ort.InferenceSession(str(files[0]), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        want = {k: v.numpy() for k, v in model(torch.from_numpy(x)).items()}
    for batch in (x[:1], x):  # dynamic batch: 1 and all clips
        got = dict(zip(meta.output_names(), sess.run(None, {INPUT_NAME: batch})))
        for name, value in got.items():
            assert np.abs(value - want[name][: len(batch)]).max() <= 1e-4, name

    for task, f in zip(("action", "gesture"), files[1:]):
        pm = onnx.load(str(f))
        pmeta = ModelMeta.from_json({p.key: p.value for p in pm.metadata_props}[META_KEY])
        assert pmeta.graph_tasks == (task,) and not pmeta.has_task_head
        assert [o.name for o in pm.graph.output] == [f"logits_{task}"]
        s = ort.InferenceSession(str(f), providers=["CPUExecutionProvider"])
        (got,) = s.run(None, {INPUT_NAME: x})
        assert np.abs(got - want[f"logits_{task}"]).max() <= 1e-4
        if sharing != "hard" or name.startswith("jcd"):  # separate trunks or views: smaller
            assert len(pm.graph.node) < len(m.graph.node)


def test_bad_requests(tmp_path: Path) -> None:
    ck, _ = _checkpoint(tmp_path, "hard")
    with pytest.raises(ExportError, match="opset 16 is too old"):
        export_checkpoint(ck, tmp_path / "m.onnx", opset=16, log=_quiet)
    from trainer.checkpoint import CheckpointError

    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt"):
        export_checkpoint(tmp_path / "junk.pt", tmp_path / "m.onnx", log=_quiet)


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str],
             caplog: pytest.LogCaptureFixture) -> None:
    from skelmtl.cli import main

    ck, _ = _checkpoint(tmp_path, "hard")
    assert main(["export", str(ck), "-o", str(tmp_path / "m.onnx")]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == str(tmp_path / "m.onnx")
    # Progress goes through the logging module (the command's handler prints it on stderr
    # as "skelmtl export: ..."; under pytest, the capture handler has it).
    assert ("trainer.export", logging.INFO, "input input: ('N', 7, 16, 75)") in \
        caplog.record_tuples
    assert main(["export", str(tmp_path / "missing.pt"), "-o", str(tmp_path / "x.onnx")]) == 2
