"""The whole journey on a dataset no reader knows, through the commands a user types.

A motion-capture export in a layout of its own (:mod:`tests.mocap_layout`) becomes a store
through the tutorial's own Python block ("A layout we have no reader for"); then
``skelmtl train`` (4 epochs of a tiny network), ``export``, ``calibrate`` to INT8, ``eval``
of the INT8 artefact, ``demo --make-clips`` and ``run`` on the recordings, each checked by
what it writes. The model works at 15 frames/s while the takes are recorded at 30 and last
under a second: training resamples each clip from its store's rate, and the stream gets a
window for recordings shorter than the window, as training computes it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from edge.core.clipstore import ClipStore
from edge.core.events import read_jsonl
from skelmtl.cli import main as skelmtl

from .mocap_layout import LABELS, SUBJECTS, TEST_SUBJECTS, invent
from .test_tutorial import REPO, _run_python, doc_blocks

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

TAKES = 5


def _ok(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    rc = skelmtl(argv)
    out, err = capsys.readouterr()
    assert rc == 0, f"skelmtl {' '.join(argv)} -> {rc}\n{out}\n{err[-3000:]}"
    return out


def test_store_train_export_int8_eval_run(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from calibration.quantize import quantizer_missing

    if quantizer_missing():
        pytest.skip(quantizer_missing())
    # 1. The store, by the tutorial's Python path for a layout without a reader.
    src = invent(tmp_path / "exports", takes=TAKES)
    block, = [b for b in doc_blocks() if "mydata" in b.tags]
    env = dict(os.environ, MOCAP=str(src),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO),
                                                        os.environ.get("PYTHONPATH")])))
    rc, out = _run_python(block.code, env, tmp_path, tmp_path, 0)
    assert rc == 0, out
    store = tmp_path / "runs" / "tutorial" / "mocap.store"
    n_test = len(LABELS) * len(TEST_SUBJECTS) * TAKES
    assert len(ClipStore(store)) == len(LABELS) * len(SUBJECTS) * TAKES

    # 2. Train a tiny model for four epochs (no augmentation: the two classes are far apart
    # and 4 epochs of clean clips separate them).
    cfg = tmp_path / "mocap.yaml"
    cfg.write_text(yaml.safe_dump({
        "name": "mocap", "out": str(tmp_path / "train"), "seed": 0, "threads": 1,
        "data": {"sources": [{"store": str(store)}], "val_fraction": 0.2},
        "preprocess": {"window": 12, "dims": 3, "fps": 15.0},
        "model": {"name": "stgcn_tiny", "overrides": {"blocks": [[8, 1], [16, 1]]}},
        "augment": {"mirror": 0.0, "rotate_deg": 0.0, "scale": 0.0, "crop": 1.0,
                    "drop_hand": 0.0, "drop_hands": 0.0},
        "optim": {"epochs": 4, "batch_size": 8, "lr": 0.01, "warmup_epochs": 0}}))
    _ok(["train", "--config", str(cfg), "--no-progress"], capsys)
    best = tmp_path / "train" / "best.pt"
    assert best.is_file()

    # 3. Export, 4. calibrate to INT8.
    model = tmp_path / "model"
    _ok(["export", str(best), "-o", str(model / "model.onnx")], capsys)
    _ok(["calibrate", str(model / "model.onnx"), "-o", str(model / "model.int8.onnx"),
         "--data", str(store), "--size", "32"], capsys)
    from edge.backends import load_backend

    with load_backend(model / "model.int8.onnx", "onnxruntime") as be:
        assert be.meta.fps == 15.0 and be.meta.preprocess.version == 3

    # 5. Score the INT8 file, as deployed, and the checkpoint it came from.
    out = _ok(["eval", str(model / "model.int8.onnx"), "--data", str(store),
               "-o", str(tmp_path / "eval_int8")], capsys)
    assert out.splitlines()[0].startswith("    action: top-1 ")
    int8 = json.loads((tmp_path / "eval_int8" / "report.json").read_text())
    _ok(["eval", str(best), "-o", str(tmp_path / "eval_pt")], capsys)
    fp32 = json.loads((tmp_path / "eval_pt" / "report.json").read_text())
    assert (int8["backend"], int8["precision"]) == ("onnxruntime", "int8")
    assert int8["tasks"]["action"]["n"] == fp32["tasks"]["action"]["n"] == n_test
    assert int8["tasks"]["action"]["labels"] == sorted(LABELS)
    assert np.asarray(int8["tasks"]["action"]["confusion"]).sum() == n_test
    assert fp32["tasks"]["action"]["top1"] == 1.0
    # INT8 may change at most one decision of the FP32 model on these clips.
    assert int8["tasks"]["action"]["top1"] >= 1.0 - 1 / n_test - 1e-9

    # 6. Stream test clips of the store through the INT8 model.
    clips = tmp_path / "clips"
    _ok(["demo", "--make-clips", str(store), "--out", str(clips), "--per-label", "1"],
        capsys)
    recordings = sorted(clips.glob("*.landmarks.npz"))
    assert len(recordings) == len(LABELS)
    events_file = tmp_path / "events.jsonl"
    _ok(["run", "--model", str(model), "--source", str(clips), "--jsonl", str(events_file),
         "--threads", "1"], capsys)
    events = list(read_jsonl(events_file))
    assert events[-1].kind == "stream" and events[-1].state == "ended"
    begins = [e for e in events if e.kind == "begin"]
    # Each recording is one performance of its label; both labels are recognised.
    assert {e.task for e in begins} == {"action"}
    assert {e.label for e in begins} == set(LABELS)
