"""edge.runtime.replay: bundled real clips replayed through the bundled model and scored
against the true labels in their metadata (what ``skelmtl demo`` prints), the stream's
segments, and clips written from a store and read back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.core.errors import SkelmtlError
from edge.core.events import Event
from edge.runtime.replay import (
    ClipScore,
    ReplayResult,
    Segment,
    concatenate,
    event_agrees,
    export_clips,
    replay_continuous,
    replay_each,
    segment_at,
)


@pytest.fixture(scope="module")
def pipe() -> Any:
    pytest.importorskip("onnxruntime")
    from edge.assets import bundled_model
    from edge.runtime.pipeline import Pipeline

    # FP32: the same numbers on every CPU (INT8 kernels differ by instruction set).
    with Pipeline.from_model(bundled_model("fp32"), intra_op_threads=1) as p:
        yield p


def _clips(*names: str) -> list[Path]:
    from edge.assets import bundled_clips

    by_name = {p.name.split(".")[0]: p for p in bundled_clips()}
    return [by_name[n] for n in names]


def test_replay_each_scores_two_bundled_clips_against_their_labels(pipe: Any) -> None:
    seen: list[tuple[Any, ...]] = []
    result = replay_each(pipe, _clips("00_DbHit", "01_Nothing"),
                         on_clip=lambda s: seen.append(("clip", s.name)),
                         on_event=lambda e, s: seen.append(
                             (e.kind, e.frame, e.label, e.state, s.name if s else None)))
    assert seen == [
        ("clip", "00_DbHit"),
        ("state", 0, None, "tracking", "00_DbHit"),
        ("begin", 29, "DbHit", None, "00_DbHit"),
        ("end", 29, "DbHit", None, "00_DbHit"),
        ("stream", 29, None, "ended", "00_DbHit"),
        ("clip", "01_Nothing"),
        ("state", 0, None, "no_hands", "01_Nothing"),
        ("state", 27, None, "tracking", "01_Nothing"),
        ("begin", 29, "Nothing", None, "01_Nothing"),
        ("end", 29, "Nothing", None, "01_Nothing"),
        ("stream", 29, None, "ended", "01_Nothing")]
    a, b = result.clips
    assert a.segment == Segment("00_DbHit", 0.0, 1.0, "DbHit", "gesture")
    assert (a.windows, a.began, a.predicted, a.right) == (1, ("DbHit",), ("gesture", "DbHit"),
                                                          True)
    # One window: the scores are its probabilities over the 6 gesture labels.
    assert sorted(a.scores) == [("gesture", n) for n in
                                ("DbHit", "Nothing", "OutofB", "Substi", "pointL", "pointR")]
    assert sum(a.scores.values()) == pytest.approx(1.0, abs=1e-5)
    assert a.scores[("gesture", "DbHit")] == pytest.approx(0.6591, abs=0.005)
    assert b.scores[("gesture", "Nothing")] == pytest.approx(0.9484, abs=0.005)
    assert (b.windows, b.began, b.right) == (1, ("Nothing",), True)
    assert (len(result.scored), result.right, result.missed) == (2, 2, 0)


def test_replay_continuous_counts_windows_by_their_centre(pipe: Any) -> None:
    pipe.reset()
    seen: list[tuple[Any, ...]] = []
    result = replay_continuous(pipe, _clips("05_pointR", "06_DbHit"),
                               on_event=lambda e, s: seen.append(
                                   (e.kind, round(e.t, 4), e.label, e.reason,
                                    s.name if s else None)))
    assert seen == [
        ("state", 0.0, None, None, None),  # a state event has no span: no clip
        ("begin", 1.0333, "pointR", None, "05_pointR"),
        ("end", 1.7, "pointR", "below_exit", "05_pointR"),
        ("begin", 1.7, "DbHit", None, "06_DbHit"),
        ("end", 1.9667, "DbHit", "end_of_stream", "06_DbHit"),
        ("stream", 1.9667, None, None, None)]
    a, b = result.clips
    assert (a.segment.start, a.segment.end, b.segment.start, b.segment.end) == (0.0, 1.0, 1.0,
                                                                                 2.0)
    assert (a.windows, a.began, a.predicted) == (4, ("pointR",), ("gesture", "pointR"))
    assert (b.windows, b.began, b.predicted) == (4, ("DbHit",), ("gesture", "DbHit"))
    assert a.scores[("gesture", "pointR")] == pytest.approx(3.9049, abs=0.02)  # sum of 4
    assert b.scores[("gesture", "DbHit")] == pytest.approx(3.5130, abs=0.02)
    assert (result.right, result.missed) == (2, 0)


def test_concatenate_places_clips_one_frame_apart() -> None:
    segments, frames = concatenate(_clips("00_DbHit", "05_pointR"))
    assert [(s.name, s.start, s.end, s.label) for s in segments] == [
        ("00_DbHit", 0.0, 1.0, "DbHit"), ("05_pointR", 1.0, 2.0, "pointR")]
    items = list(frames)
    assert len(items) == 60
    joints, mask, t = items[30]
    assert (joints.shape, mask.shape, t) == ((75, 3), (75,), 1.0)
    assert segment_at(segments, 0.999).name == "00_DbHit"  # type: ignore[union-attr]
    assert segment_at(segments, 1.0).name == "05_pointR"  # type: ignore[union-attr]
    assert segment_at(segments, 2.0) is None and segment_at(segments, None) is None


def test_scores_truth_and_counts_without_a_model() -> None:
    seg = Segment("c", 0.0, 1.0, "wave", "action")
    right = ClipScore(seg, {("action", "wave"): 1.2, ("action", "clap"): 0.8}, 2, ("wave",))
    wrong_task = ClipScore(seg, {("gesture", "wave"): 1.0}, 1, ())
    missed = ClipScore(Segment("m", 1.0, 2.0, "clap", None), {}, 0, ())
    unlabelled = ClipScore(Segment("u", 2.0, 3.0, None, None), {("action", "clap"): 1.0}, 1, ())
    assert (right.right, wrong_task.right, missed.right) == (True, False, False)
    assert missed.predicted is None
    result = ReplayResult((right, wrong_task, missed, unlabelled))
    assert (len(result.scored), result.right, result.missed) == (3, 1, 1)

    def ev(label: str, task: str) -> Event:
        return Event("begin", 0.5, 15, task=task, label=label, confidence=0.9, start=0.0)

    assert event_agrees(ev("wave", "action"), seg)
    assert not event_agrees(ev("wave", "gesture"), seg)
    assert event_agrees(ev("clap", "gesture"), missed.segment)  # a clip without a task
    assert not event_agrees(ev("wave", "action"), None)


def _store(tmp_path: Path) -> Path:
    from edge.core.clipstore import Clip, write_store

    rng = np.random.default_rng(0)

    def clip(label: str, split: str, n: int) -> Clip:
        return Clip(frames=rng.normal(size=(n, 75, 2)).astype(np.float32),
                    mask=np.ones((n, 75), bool), label=label, task="gesture", split=split,
                    clip_id=f"{label}_{split}_{n}", dataset="toy", fps=15.0, source="mp75")

    clips = [clip("a", "test", 5), clip("a", "test", 6), clip("a", "test", 7),
             clip("b", "test", 8), clip("b", "train", 9)]
    return write_store(clips, tmp_path / "toy.store")


def test_export_clips_writes_labels_interleaved_and_replayable(tmp_path: Path) -> None:
    from edge.core.recording import load_recording

    out = tmp_path / "clips"
    paths = export_clips(_store(tmp_path), out, per_label=2)
    assert [p.name for p in paths] == ["00_a.landmarks.npz", "01_b.landmarks.npz",
                                       "02_a.landmarks.npz"]
    rec = load_recording(paths[1])
    assert (len(rec), rec.meta["label"], rec.meta["task"], rec.meta["split"]) == (8, "b",
                                                                                 "gesture",
                                                                                 "test")
    assert rec.meta["clip_id"] == "b_test_8" and rec.meta["fps"] == 15.0
    assert rec.frames.shape == (8, 75, 3) and not rec.frames[..., 2].any()  # 2D: z = 0
    np.testing.assert_allclose(np.diff(rec.timestamps_ms), 1000.0 / 15.0)
    segments, _ = concatenate(paths)
    assert [(s.name, s.label, round(s.end, 4)) for s in segments] == [
        ("00_a", "a", 0.3333), ("01_b", "b", 0.8667), ("02_a", "a", 1.2667)]  # 5, 8 and 6 frames at 15 fps
    with pytest.raises(SkelmtlError) as e:
        export_clips(tmp_path / "toy.store", out, split="val")
    assert str(e.value) == f"{tmp_path / 'toy.store'}: no clip in split 'val'"
