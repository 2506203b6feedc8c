"""The bundled default model: its metadata, INT8 against FP32, and the bundled clips.

These run on what `make demo` ships (edge/assets), so a retrained or recalibrated model
that breaks the runtime contract, or a clip that lost its label, fails here.
"""

from __future__ import annotations

import numpy as np
import pytest

from edge.assets import bundled_clips, bundled_model
from edge.core.recording import load_recording

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def pipelines():  # type: ignore[no-untyped-def]
    from edge.runtime.pipeline import Pipeline

    pipes = {p: Pipeline.from_model(bundled_model(p), task="auto", intra_op_threads=1)
             for p in ("fp32", "int8")}
    yield pipes
    for p in pipes.values():
        p.close()


def test_metadata_says_what_the_card_says(pipelines) -> None:  # type: ignore[no-untyped-def]
    for precision, pipe in pipelines.items():
        meta = pipe.meta
        assert meta.precision == precision
        assert meta.tasks == ("action", "gesture") and meta.has_task_head
        assert meta.labels["gesture"] == ("DbHit", "Nothing", "OutofB", "Substi",
                                          "pointL", "pointR")
        assert len(meta.labels["action"]) == 14
        assert (meta.window, meta.stride, meta.preprocess.dims) == (32, 4, 2)


def test_int8_agrees_with_fp32_on_the_bundled_clips(pipelines) -> None:  # type: ignore[no-untyped-def]
    clips = bundled_clips()
    assert len(clips) == 12
    agree = right = 0
    for path in clips:
        rec = load_recording(path)
        true = rec.meta["label"]
        out = {p: pipe.infer_clip(rec.frames, rec.mask) for p, pipe in pipelines.items()}
        labels = pipelines["int8"].meta.labels["gesture"]
        # Clip-level decision: mean gesture logits over the clip's windows.
        pred = {p: labels[int(np.argmax(o["logits_gesture"].mean(axis=0)))] for p, o in out.items()}
        agree += pred["int8"] == pred["fp32"]
        right += pred["int8"] == true
        # The task head routes every referee clip to the gesture task.
        assert (out["int8"]["task_logits"].argmax(axis=1) == 1).all(), path.name
        d = np.abs(out["int8"]["logits_gesture"] - out["fp32"]["logits_gesture"]).max()
        assert d < 1.0, f"{path.name}: INT8 gesture logits differ by {d:.3f}"
    assert agree == 12
    assert right >= 11, f"{right}/12 bundled clips right"
