"""edge.runtime.loop: the frame loop of ``skelmtl run`` and ``demo``, on the bundled model
and a bundled real clip; its sinks, a closed output, the overlay on errors, the source cut,
the heartbeat, the presence counts and the checks on output files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from edge.core.errors import SkelmtlError
from edge.core.events import Event
from edge.runtime.loop import (
    FirstFrames,
    Heartbeat,
    PresenceCount,
    check_distinct,
    check_output,
    model_files,
    run_stream,
)

CLIP = "00_DbHit.landmarks.npz"  # 30 frames at 30 fps, a referee's double-hit signal


@pytest.fixture(scope="module")
def pipe() -> Any:
    pytest.importorskip("onnxruntime")
    from edge.assets import bundled_model
    from edge.runtime.pipeline import Pipeline

    # FP32: the same numbers on every CPU (INT8 kernels differ by instruction set).
    with Pipeline.from_model(bundled_model("fp32"), intra_op_threads=1) as p:
        yield p


def _clip() -> Path:
    from edge.assets import bundled_clips

    return next(p for p in bundled_clips() if p.name == CLIP)


def _source() -> Any:
    from edge.frontend.sources import open_source

    return open_source(str(_clip()))


def test_run_stream_events_and_summary_of_a_bundled_clip(pipe: Any) -> None:
    pipe.reset()
    got: list[Event] = []
    steps: list[Any] = []
    with _source() as src:
        s = run_stream(pipe, src, sinks=[got.append], on_step=[steps.append])
    replayed = f"{_clip()}: replayed 30 frames"
    assert [(e.kind, e.frame, e.label, e.state, e.reason) for e in got] == [
        ("state", 0, None, "tracking", None),
        ("begin", 29, "DbHit", None, None),
        ("end", 29, "DbHit", None, "end_of_stream"),
        ("stream", 29, None, "ended", replayed)]
    assert got[1].confidence == pytest.approx(0.6591, abs=0.005)
    assert (got[2].start, got[2].end) == (0.5, 0.5)
    assert (s.frames, s.events, s.state, s.reason, s.output_closed) == (30, 4, "ended",
                                                                         replayed, False)
    assert (s.overlay, s.overlay_frames) == (None, 0)
    assert (s.stats["frames"], s.stats["windows"], s.stats["dropped"]) == (30, 1, 0)
    assert (s.stats["backend"], s.stats["precision"]) == ("onnxruntime", "fp32")
    assert len(steps) == 31 and steps[-1].frame is None  # and the step that ends the stream


def test_a_closed_output_stops_the_stream_and_the_others_still_get_its_end(pipe: Any) -> None:
    from edge.runtime.publish import PipeClosed

    pipe.reset()
    closed: list[str] = []
    kept: list[Event] = []

    def reader_gone(ev: Event) -> None:
        raise PipeClosed("stdout: the reader closed the pipe")

    with _source() as src:
        s = run_stream(pipe, src, sinks=[reader_gone, kept.append],
                       on_output_closed=lambda: closed.append("once"))
    assert closed == ["once"]
    assert s.output_closed and s.state == "ended" and s.reason == "standard output closed"
    # Stopped at the first frame's event: the stream ended there, and the file-like sink
    # behind the closed one still got the stream's end.
    assert [(e.kind, e.frame) for e in kept] == [("state", 0), ("stream", 0)]
    assert s.frames == 1 and s.stats["windows"] == 0


def test_a_stop_asked_before_the_output_closes_keeps_its_reason(pipe: Any) -> None:
    from edge.runtime.publish import PipeClosed

    pipe.reset()
    pipe.stop("stopped by SIGTERM")

    def reader_gone(ev: Event) -> None:
        raise PipeClosed("gone")

    with _source() as src:
        s = run_stream(pipe, src, sinks=[reader_gone])
    assert (s.output_closed, s.reason, s.frames) == (True, "stopped by SIGTERM", 0)


class _Overlay:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.frames = 0

    def write(self, step: Any) -> None:
        self.calls.append("write")
        self.frames += step.frame is not None

    def abort(self) -> None:
        self.calls.append("abort")

    def close(self) -> Path | None:
        self.calls.append("close")
        return Path("out.mp4")


def test_the_overlay_is_closed_after_a_run_and_aborted_when_it_raises(pipe: Any) -> None:
    pipe.reset()
    ov = _Overlay()
    with _source() as src:
        s = run_stream(pipe, src, overlay=ov)  # type: ignore[arg-type]
    assert ov.calls == ["write"] * 31 + ["close"]
    assert (s.overlay, s.overlay_frames) == (Path("out.mp4"), 30)

    def broken(ev: Event) -> None:
        if ev.kind == "begin":
            raise SkelmtlError("sink failed")

    pipe.reset()
    ov = _Overlay()
    with _source() as src, pytest.raises(SkelmtlError, match="^sink failed$"):
        run_stream(pipe, src, overlay=ov, sinks=[broken])  # type: ignore[arg-type]
    # A 30-frame clip is shorter than the window: its one window, and its begin, come
    # with the step that ends the stream (StreamConfig.flush).
    assert ov.calls == ["write"] * 31 + ["abort"]


def test_first_frames_cuts_a_source_with_its_reason(pipe: Any) -> None:
    pipe.reset()
    got: list[Event] = []
    with _source() as src:
        s = run_stream(pipe, FirstFrames(src, 12, reason="stopped after --max-frames 12"),
                       sinks=[got.append])
    assert (s.frames, s.state, s.reason) == (12, "ended", "stopped after --max-frames 12")
    assert got[-1].reason == "stopped after --max-frames 12"
    short = FirstFrames([1, 2, 3], 5)
    assert list(short) == [1, 2, 3] and short.end_reason is None
    cut = FirstFrames([1, 2, 3], 2)
    assert list(cut) == [1, 2] and cut.end_reason == "stopped after 2 frames"


def test_presence_count_of_a_bundled_clip(pipe: Any) -> None:
    from edge.core.recording import load_recording

    rec = load_recording(_clip())
    pipe.reset()
    counts = PresenceCount()
    with _source() as src:
        run_stream(pipe, src, on_step=[counts])
    assert counts.frames == 30
    assert counts.with_person == int(rec.mask[:, :33].any(1).sum())
    assert counts.with_hands == int(rec.mask[:, 33:].any(1).sum())
    assert (counts.with_person, counts.with_hands) == (30, 30)


def test_heartbeat_is_rate_limited(tmp_path: Path) -> None:
    t = [0.0]
    hb = Heartbeat(None)
    hb.beat()
    assert hb.touches == 0  # disabled without a path
    hb = Heartbeat(tmp_path / "state" / "alive", every=1.0, clock=lambda: t[0])
    for now in (0.0, 0.2, 0.9, 1.0, 1.5, 2.1):
        t[0] = now
        hb.step(None)  # type: ignore[arg-type]
    assert hb.touches == 3  # at 0.0, 1.0 and 2.1
    assert (tmp_path / "state" / "alive").is_file()


def test_check_output_names_the_file_and_the_option(tmp_path: Path) -> None:
    check_output(None, "--jsonl")
    check_output(tmp_path / "ev.jsonl", "--jsonl")
    with pytest.raises(SkelmtlError) as e:
        check_output(tmp_path, "--overlay")
    assert str(e.value) == f"{tmp_path}: is a folder; --overlay takes a file name"
    with pytest.raises(SkelmtlError) as e:
        check_output(tmp_path / "no" / "s.json", "--stats")
    assert str(e.value) == f"{tmp_path / 'no' / 's.json'}: folder {tmp_path / 'no'} does not " \
                           "exist (--stats)"


def test_check_distinct_refuses_an_output_that_is_an_input_or_another_output(
        tmp_path: Path) -> None:
    clip = tmp_path / "a.landmarks.npz"
    clip.write_bytes(b"x")
    out = tmp_path / "ev.jsonl"
    check_distinct([(out, "--jsonl")], [(clip, "--source")])
    with pytest.raises(SkelmtlError) as e:
        check_distinct([(tmp_path / "." / clip.name, "--jsonl")], [(clip, "--source")])
    assert str(e.value) == f"{tmp_path / '.' / clip.name}: --jsonl would overwrite the " \
                           "--source input"
    with pytest.raises(SkelmtlError) as e:
        check_distinct([(out, "--jsonl"), (out, "--stats")], [])
    assert str(e.value) == f"{out}: given to both --jsonl and --stats"


def test_model_files_lists_a_folders_files(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    for name in ("model.onnx", "card.md"):
        (tmp_path / "m" / name).write_bytes(b"")
    (tmp_path / "m" / "sub").mkdir()
    one = tmp_path / "x.onnx"
    got = model_files([tmp_path / "m", str(one)])
    assert sorted(map(os.fspath, got[:2])) == sorted(
        os.fspath(tmp_path / "m" / n) for n in ("model.onnx", "card.md"))
    assert got[2:] == [one]
