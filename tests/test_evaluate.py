"""skelmtl eval: one report for every model artefact (checkpoint, FP32 ONNX, INT8 ONNX)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.core.errors import SkelmtlError
from trainer.config import from_dict
from trainer.evaluate import evaluate_model
from trainer.train import train

from .synth import make_store

pytest.importorskip("onnxruntime")


def _quiet(msg: str) -> None:
    return None


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny trained model as a checkpoint, its FP32 export and its INT8 calibration."""
    from calibration.quantize import calibrate, quantizer_missing
    from trainer.export import export_checkpoint

    root = tmp_path_factory.mktemp("eval")
    store = make_store(root / "store", n_per_class=8, t=20)
    cfg = from_dict({"name": "e", "seed": 0, "out": str(root / "run"), "threads": 1,
                     "data": {"sources": [{"store": str(store)}], "val_fraction": 0.2},
                     "preprocess": {"window": 16, "dims": 3},
                     # a full-weight task head, so that its decisions are not near-ties
                     "loss": {"task_head_weight": 1.0},
                     "model": {"name": "stgcn_tiny", "dropout": 0.0,
                               "overrides": {"blocks": [[16, 1], [32, 1]]}},
                     # No augmentation and a high rate: 8 short epochs (about a second)
                     # make the action and task heads decisive, so that INT8 rounding has
                     # no near-ties to flip there.
                     "augment": {"mirror": 0.0, "rotate_deg": 0.0, "scale": 0.0, "crop": 1.0,
                                 "drop_hand": 0.0, "drop_hands": 0.0},
                     # The recipe this was written for (the defaults changed since).
                     "optim": {"epochs": 8, "batch_size": 8, "lr": 0.01, "warmup_epochs": 0,
                               "optimizer": "adamw", "schedule": "cosine", "patience": 0,
                               "weight_decay": 1e-4}})
    res = train(cfg, progress=False, log=_quiet)
    fp32 = export_checkpoint(res.best, root / "run" / "model.onnx", log=_quiet)[0]
    out = {"store": store, "pt": res.best, "fp32": fp32}
    if quantizer_missing() is None:
        calibrate(fp32, root / "run" / "model.int8.onnx", [store], size=24, log=_quiet)
        out["int8"] = root / "run" / "model.int8.onnx"
    return out


def _same_scores(a: dict, b: dict, tol: float = 0.0) -> None:
    assert a["tasks"].keys() == b["tasks"].keys()
    for t in a["tasks"]:
        assert a["tasks"][t]["n"] == b["tasks"][t]["n"]
        assert a["tasks"][t]["labels"] == b["tasks"][t]["labels"]
        assert abs(a["tasks"][t]["top1"] - b["tasks"][t]["top1"]) <= tol, t


def test_checkpoint_and_fp32_onnx_give_the_same_report(models: dict[str, Path],
                                                        tmp_path: Path) -> None:
    pt = evaluate_model(models["pt"], out_dir=tmp_path / "pt")
    onnx = evaluate_model(models["fp32"], out_dir=tmp_path / "onnx")
    assert (pt["backend"], pt["precision"]) == ("torch", "fp32")
    assert (onnx["backend"], onnx["precision"]) == ("onnxruntime", "fp32")
    # 8 clips per class, every 4th in test: 2 per class, 3 classes per task.
    assert pt["tasks"]["action"]["n"] == 6 and pt["tasks"]["gesture"]["n"] == 6
    # The exported graph computes what the checkpoint computes: same predictions.
    _same_scores(pt, onnx)
    for t in pt["tasks"]:
        assert pt["tasks"][t]["confusion"] == onnx["tasks"][t]["confusion"]
    assert pt["task_head"] == onnx["task_head"]
    saved = json.loads((tmp_path / "onnx" / "report.json").read_text())
    assert saved["model"] == str(models["fp32"]) and saved["split"] == "test"
    assert np.asarray(saved["tasks"]["action"]["confusion"]).sum() == 6
    assert (tmp_path / "onnx" / "confusion_gesture.png").read_bytes()[:4] == b"\x89PNG"


def test_int8_onnx_is_scored_like_the_others(models: dict[str, Path]) -> None:
    if "int8" not in models:
        pytest.skip("this onnxruntime cannot quantize")
    fp32 = evaluate_model(models["fp32"], data=[str(models["store"])])
    int8 = evaluate_model(models["int8"], data=[str(models["store"])])
    assert int8["precision"] == "int8"
    # The decisive heads score the same in INT8: every action clip, every task.
    assert fp32["tasks"]["action"]["top1"] == int8["tasks"]["action"]["top1"] == 1.0
    assert fp32["task_head"] == int8["task_head"] == 1.0
    # The gesture head of so short a training is near chance (test_train.py says why):
    # its near-ties may flip, at most 2 of its 6 clips.
    _same_scores(fp32, int8, tol=2 / 6 + 1e-9)


def test_exported_model_without_its_checkpoint_asks_for_data(models: dict[str, Path],
                                                             tmp_path: Path) -> None:
    lone = tmp_path / "model.onnx"
    lone.write_bytes(models["fp32"].read_bytes())
    with pytest.raises(SkelmtlError, match=r"model\.onnx: no --data given.*pass --data STORE"):
        evaluate_model(lone)
    rep = evaluate_model(lone, data=[str(models["store"])])
    assert rep["tasks"]["action"]["n"] == 6


def test_val_split_and_bad_inputs(models: dict[str, Path], tmp_path: Path) -> None:
    val = evaluate_model(models["fp32"], split="val")
    assert val["split"] == "val" and sum(r["n"] for r in val["tasks"].values()) > 0
    with pytest.raises(SkelmtlError, match=r"no clips in split 'nosuch'"):
        evaluate_model(models["fp32"], split="nosuch")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(SkelmtlError, match=r"junk\.onnx"):
        evaluate_model(junk, data=[str(models["store"])])
    with pytest.raises(SkelmtlError, match=r"missing\.onnx: no such model file"):
        evaluate_model(tmp_path / "missing.onnx")
    txt = tmp_path / "model.txt"
    txt.write_text("x")
    with pytest.raises(SkelmtlError, match=r"model\.txt: not a model artefact"):
        evaluate_model(txt)


def _cli(args: list[str], stdout: int | None = subprocess.PIPE) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "skelmtl.cli", "eval", *args], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=300)


def test_cli_on_onnx_prints_the_scores_and_no_torch_advice(models: dict[str, Path],
                                                           tmp_path: Path) -> None:
    p = _cli([str(models["fp32"]), "-o", str(tmp_path / "r")])
    assert p.returncode == 0, p.stderr
    assert "weights_only" not in p.stderr + p.stdout
    lines = p.stdout.splitlines()
    assert lines[0].strip().startswith("action: top-1 ")
    assert lines[-1] == f"report: {tmp_path / 'r' / 'report.json'}"
    bad = _cli([str(tmp_path / "r" / "report.json")])
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        f"skelmtl eval: error: {tmp_path / 'r' / 'report.json'}: not a model artefact "
        "(expected one of ['.ckpt', '.engine', '.onnx', '.plan', '.pt']), or name the "
        "backend with --backend"]


def test_cli_reader_that_closed_the_pipe_is_no_error(models: dict[str, Path]) -> None:
    # `skelmtl eval ... | head -1`: the reader is gone before the scores are written. A
    # pipe whose read end is closed gives EPIPE on the first write, every time.
    r, w = os.pipe()
    os.close(r)
    try:
        p = _cli([str(models["fp32"])], stdout=w)
    finally:
        os.close(w)
    assert p.returncode == 0
    assert "BrokenPipeError" not in p.stderr and "Traceback" not in p.stderr


def test_tensorrt_engine_is_scored_through_its_backend(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """An engine file runs through the TensorRT backend (here TensorRT's stand-in, which
    computes a fixed function of the windows) and is scored like any model."""
    from edge.core.clipstore import Clip, write_store
    from edge.core.preprocess import preprocess

    from .runtime_models import tiny_meta
    from .synth import action_clip
    from .test_backends import FakeMemory, _engine_file, fake_reference, make_fake_tensorrt

    mem = FakeMemory()
    monkeypatch.setitem(sys.modules, "tensorrt", make_fake_tensorrt(mem, named=True))
    meta = tiny_meta(precision="int8")
    engine = _engine_file(tmp_path / "m.engine", meta)
    rng = np.random.default_rng(0)
    clips = []
    for i, (task, label) in enumerate([("action", "walk"), ("action", "jump"),
                                       ("action", "sit"), ("gesture", "wave"),
                                       ("gesture", "stop")] * 3):
        x = action_clip("raise", rng, 14 + i)
        clips.append(Clip(frames=x, mask=np.ones(x.shape[:2], bool), label=label, task=task,
                          split="test" if i % 3 else "train", clip_id=str(i)))
    store = write_store(clips, tmp_path / "store")
    rep = evaluate_model(engine, data=[str(store)], backend_options={"cuda": mem})
    assert (rep["backend"], rep["precision"]) == ("tensorrt", "int8")
    for task in ("action", "gesture"):
        test = [c for c in clips if c.split == "test" and c.task == task]
        x = np.stack([preprocess(c.frames, c.mask, meta.preprocess) for c in test])
        pred = fake_reference(meta, x)[f"logits_{task}"].argmax(1)
        truth = np.asarray([meta.labels[task].index(c.label) for c in test])
        assert rep["tasks"][task]["n"] == len(test)
        assert rep["tasks"][task]["top1"] == pytest.approx(float((pred == truth).mean()))
    assert mem.closed  # the backend was closed after scoring
