"""The streaming pipeline: streaming equals batch, events and states, routing with per-task
graphs, bad input (no person, one hand, NaNs, wrong frames, sources that stop), the
newest-wins drop count, and flat memory over 100,000 replayed frames."""

from __future__ import annotations

import json
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.backends.base import Backend
from edge.core.events import Event
from edge.core.metadata import MetadataError, ModelMeta
from edge.core.recording import Recording, save_recording
from edge.frontend.sources import SourceError, open_source
from edge.runtime.pipeline import Pipeline, PipelineError, resolve_model_paths
from edge.runtime.router import RouterError
from edge.runtime.stream import FrameError, StreamConfig
from tests.runtime_models import (
    per_task_onnx,
    synthetic_frames,
    tiny_meta,
    tiny_onnx,
    volleyball_sequence,
)

pytest.importorskip("onnx")  # the tiny models are written with onnx.helper (no torch)


class Scripted(Backend):
    """A backend whose logits come from a script: ``script(call_index, x) -> outputs``."""

    name = "scripted"

    def __init__(self, meta: ModelMeta, script: Callable[[int, np.ndarray], dict[str, Any]]
                 ) -> None:
        self.meta = meta
        self.path = Path(f"scripted-{'-'.join(meta.graph_tasks)}")
        self.script = script
        self.calls = 0

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        x = self.check_input(x)
        out = self.script(self.calls, x)
        self.calls += 1
        return {k: np.asarray(v, np.float32).reshape(len(x), -1) for k, v in out.items()}


def _logits(p: list[float]) -> np.ndarray:
    return np.log(np.asarray(p) + 1e-9)


def _schema_ok(events: list[Event]) -> None:
    for e in events:
        d = json.loads(e.to_json())
        assert Event.from_dict(d).to_dict() == d


def _push_all(pipe: Pipeline, frames: np.ndarray, mask: np.ndarray, fps: float = 30.0
              ) -> list[Event]:
    ev: list[Event] = []
    for i in range(len(frames)):
        ev += pipe.push((frames[i], mask[i], i / fps))
    return ev


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_onnx(tmp_path_factory.mktemp("m") / "tiny.onnx")


# -- streaming == batch ---------------------------------------------------------------
def test_streaming_gives_the_same_logits_as_one_batch(tiny: Path, shared_data: Path) -> None:
    parts = [volleyball_sequence(shared_data, lab, 2) for lab in ("pointL", "Substi", "DbHit")]
    frames = np.concatenate([p[0] for p in parts])
    mask = np.concatenate([p[1] for p in parts])
    frames[40, 60:70] = np.nan  # a glitch mid-stream: masked the same way in both paths
    pipe = Pipeline.from_model(tiny, task="auto")
    streamed: list[dict[str, np.ndarray]] = []
    for i in range(len(frames)):
        n = pipe.windows
        pipe.push((frames[i], mask[i], i / 30))
        if pipe.windows != n:
            assert pipe.last_result is not None
            streamed.append(pipe.last_result.outputs)
    batch = pipe.infer_clip(frames, mask)
    assert len(streamed) == len(batch["task_logits"]) == (90 - 16) // 4 + 1
    for k in batch:
        np.testing.assert_allclose(np.stack([s[k] for s in streamed]), batch[k], rtol=1e-5,
                                   atol=1e-6, err_msg=k)


def test_a_stream_shorter_than_a_window_gets_one_window_at_finish(tiny: Path,
                                                                   shared_data: Path) -> None:
    f, m = volleyball_sequence(shared_data, "pointL", 9)
    f, m = f[:12], m[:12]  # 12 frames < window 16
    pipe = Pipeline.from_model(tiny, task="gesture", enter=0.2, exit=0.1)
    ev = _push_all(pipe, f, m)
    assert pipe.windows == 0 and [e.kind for e in ev] == ["state"]
    ev = pipe.finish()
    assert pipe.windows == 1 and pipe.last_result is not None
    assert [e.kind for e in ev] == ["begin", "end", "stream"]
    assert ev[0].start == pytest.approx(6 / 30) and ev[1].reason == "end_of_stream"
    batch = pipe.infer_clip(f, m)  # the same window in batch form
    np.testing.assert_allclose(batch["logits_gesture"][0],
                               pipe.last_result.outputs["logits_gesture"], rtol=1e-5)
    short = Pipeline.from_model(tiny, task="gesture")
    _push_all(short, f[:1], m[:1])  # one frame: no motion, no window
    assert [e.kind for e in short.finish()] == ["stream"] and short.windows == 0
    off = Pipeline.from_model(tiny, task="gesture", flush=False)
    _push_all(off, f, m)
    assert [e.kind for e in off.finish()] == ["stream"] and off.windows == 0


# -- events ---------------------------------------------------------------------------
def test_events_from_scripted_windows() -> None:
    meta = tiny_meta(("gesture",))
    script = [[0.1, 0.1, 0.1, 0.7]] * 2 + [[0.9, 0.05, 0.03, 0.02]] * 4 + \
        [[0.05, 0.05, 0.85, 0.05]] * 4
    b = Scripted(meta, lambda k, x: {"logits_gesture": _logits(script[min(k, 9)])})
    pipe = Pipeline(b, "auto", StreamConfig(alpha=1.0, enter=0.6, exit=0.4,
                                            ignore_labels=("none",)))
    f, m = synthetic_frames(16 + 4 * 9)
    ev = _push_all(pipe, f, m, fps=10.0)
    ev += pipe.finish("ended", "test over")
    _schema_ok(ev)
    got = [(e.kind, e.label, e.frame, e.reason) for e in ev]
    # Windows complete at frames 15, 19, 23, ...; window k's logits are script[k].
    assert got == [("state", None, 0, None), ("begin", "wave", 23, None),
                   ("end", "wave", 39, "below_exit"), ("begin", "stop", 39, None),
                   ("end", "stop", 51, "end_of_stream"), ("stream", None, 51, "test over")]
    begin = ev[1]
    assert begin.t == pytest.approx(2.3) and begin.start == pytest.approx(1.6)  # centre 8+8
    assert begin.task == "gesture" and begin.confidence == pytest.approx(0.9, abs=1e-6)
    assert ev[-1].state == "ended"
    assert pipe.stats()["windows"] == 10 and b.calls == 10
    assert set(pipe.stats()["latency_ms"]) == {"preprocess", "model", "route"}
    with pytest.raises(PipelineError, match="finished"):
        pipe.push((f[0], m[0], 99.0))
    pipe.reset()
    assert pipe.push((f[0], m[0], 0.0))[0].state == "tracking"


def test_no_person_skips_inference_and_closes_labels() -> None:
    meta = tiny_meta(("gesture",))
    b = Scripted(meta, lambda k, x: {"logits_gesture": _logits([0.9, 0.04, 0.03, 0.03])})
    pipe = Pipeline(b, "gesture", StreamConfig(alpha=1.0, state_frames=3))
    f, m = synthetic_frames(80)
    m[30:70] = False  # the person leaves for 40 frames
    f[30:70] = 0.0
    ev = _push_all(pipe, f, m)
    states = [(e.state, e.frame) for e in ev if e.kind == "state"]
    assert states == [("tracking", 0), ("no_person", 32), ("tracking", 72)]
    ends = [e for e in ev if e.kind == "end"]
    assert [(e.label, e.reason, e.frame) for e in ends] == [("wave", "no_person", 32)]
    # Windows due at frames 35..71 (every 4) fall while nobody is there: 10 skipped.
    assert pipe.skipped_windows == 10 and b.calls == pipe.windows
    assert [e.frame for e in ev if e.kind == "begin"] == [15, 75]


def test_one_hand_and_no_hands_states(tiny: Path) -> None:
    f, m = synthetic_frames(60, hand_speed=0.04)
    m[:, 33:54] = False  # the left hand is never seen
    m[30:, 54:] = False  # the right hand leaves at frame 30
    pipe = Pipeline.from_model(tiny, task="gesture")
    ev = _push_all(pipe, f, m)
    assert [(e.state, e.frame) for e in ev if e.kind == "state"] == [
        ("tracking", 0), ("no_hands", 32)]
    assert pipe.windows == (60 - 16) // 4 + 1 and pipe.skipped_windows == 0
    assert pipe.last_result is not None and np.isfinite(pipe.last_result.probs).all()


def test_nan_landmarks_count_as_missing(tiny: Path) -> None:
    f, m = synthetic_frames(20)
    g = f.copy()
    g[5:9, 54:] = np.nan  # NaNs where the right hand is "seen"
    m2 = m.copy()
    m2[5:9, 54:] = False
    a = Pipeline.from_model(tiny, task="gesture")
    b = Pipeline.from_model(tiny, task="gesture")
    _push_all(a, g, m)
    _push_all(b, f, m2)
    assert a.last_result is not None and b.last_result is not None
    np.testing.assert_array_equal(a.last_result.outputs["logits_gesture"],
                                  b.last_result.outputs["logits_gesture"])


@pytest.mark.parametrize("frame,match", [
    ((np.zeros((75, 2)), np.ones(75, bool), 0.0), "the model uses 3D joints"),
    ((np.zeros((33, 3)), np.ones(33, bool), 0.0), r"\(75, C\)"),
    ({"t": 0}, "a frame is an object"),
])
def test_wrong_frames_are_refused(frame: Any, match: str) -> None:
    meta = tiny_meta(("gesture",)).with_(preprocess=tiny_meta().preprocess.__class__(
        window=16, dims=3))
    pipe = Pipeline(Scripted(meta, lambda k, x: {"logits_gesture": np.zeros(4)}), "auto")
    with pytest.raises(FrameError, match=match):
        pipe.push(frame)


# -- routing and per-task graphs ------------------------------------------------------
def test_routed_away_closes_the_other_task_label() -> None:
    meta = tiny_meta()
    # Task head: action for windows 0-2, then gesture; heads always confident.
    def script(k: int, x: np.ndarray) -> dict[str, Any]:
        return {"logits_action": _logits([0.9, 0.05, 0.05]),
                "logits_gesture": _logits([0.05, 0.9, 0.03, 0.02]),
                "task_logits": [4.0, -4.0] if k < 3 else [-4.0, 4.0]}

    pipe = Pipeline(Scripted(meta, script), "auto", StreamConfig(alpha=1.0),
                    {"task_alpha": 1.0})
    f, m = synthetic_frames(16 + 4 * 5)
    ev = _push_all(pipe, f, m)
    got = [(e.kind, e.task, e.label, e.reason) for e in ev if e.kind != "state"]
    assert got == [("begin", "action", "walk", None),
                   ("end", "action", "walk", "routed_away"),
                   ("begin", "gesture", "point", None)]
    assert pipe.last_result is not None
    assert pipe.last_result.route.reason == "task_head"


def _count_calls(pipe: Pipeline) -> dict[str, int]:
    counts: dict[str, int] = {}
    for g in pipe.graphs:
        name = g.meta.graph_tasks[0]
        counts[name] = 0
        real = g.infer

        def wrapped(x: np.ndarray, real: Any = real, name: str = name) -> Any:
            counts[name] += 1
            return real(x)

        g.infer = wrapped  # type: ignore[method-assign]
    return counts


def test_per_task_graphs_fixed_task_loads_and_runs_only_its_graph(tmp_path: Path) -> None:
    per_task_onnx(tmp_path, tiny_meta())
    assert [p.name for p in resolve_model_paths(tmp_path)] == ["model.action.onnx",
                                                               "model.gesture.onnx"]
    pipe = Pipeline.from_model(tmp_path, task="gesture")
    assert [g.meta.graph_tasks for g in pipe.graphs] == [("gesture",)]
    counts = _count_calls(pipe)
    f, m = synthetic_frames(40)
    _push_all(pipe, f, m)
    assert counts == {"gesture": pipe.windows} and pipe.windows == 7
    assert pipe.last_result is not None
    assert set(pipe.last_result.outputs) == {"logits_gesture", "task_logits"}


def test_per_task_graphs_rule_runs_only_the_chosen_graph(tmp_path: Path) -> None:
    meta = tiny_meta(has_task_head=False)
    per_task_onnx(tmp_path, meta)
    pipe = Pipeline.from_model(tmp_path, task="auto")
    assert pipe.router.mode == "rule"
    counts = _count_calls(pipe)
    moving, _ = synthetic_frames(40, hand_speed=0.05)
    still, _ = synthetic_frames(40, hand_speed=0.0, body_speed=0.01)
    _, m = synthetic_frames(40)
    _push_all(pipe, np.concatenate([moving, still]), np.concatenate([m, m]))
    assert sum(counts.values()) == pipe.windows  # one graph per window, never both
    assert counts["gesture"] >= 5 and counts["action"] >= 5


def test_per_task_graphs_with_task_head_run_a_second_graph_only_on_a_switch(
        tmp_path: Path, tiny: Path) -> None:
    per_task_onnx(tmp_path, tiny_meta())
    pipe = Pipeline.from_model(tmp_path, task="auto")
    counts = _count_calls(pipe)
    f, m = synthetic_frames(60, hand_speed=0.02)
    _push_all(pipe, f, m)
    routed = pipe.last_result.task if pipe.last_result else None
    # The routed task's graph runs every window; the other only for the first window when
    # the first guess (action) was wrong.
    assert routed is not None
    assert counts[routed] == pipe.windows
    assert sum(counts.values()) <= pipe.windows + 1
    # Same numbers as the one-graph export with the same weights.
    one = Pipeline.from_model(tiny, task="auto")
    _push_all(one, f, m)
    assert one.last_result is not None and pipe.last_result is not None
    np.testing.assert_allclose(pipe.last_result.smoothed, one.last_result.smoothed, rtol=1e-5)


def test_graphs_of_different_models_are_refused(tmp_path: Path) -> None:
    a = tiny_onnx(tmp_path / "model.action.onnx", tiny_meta(graph_tasks=("action",)))
    other = tiny_meta(stride=8, graph_tasks=("gesture",))
    b = tiny_onnx(tmp_path / "model.gesture.onnx", other)
    with pytest.raises(MetadataError, match="are not graphs of one model: their stride differ"):
        Pipeline.from_model([a, b])


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"task": "dance"}, RouterError, "not in this model"),
    ({"config": StreamConfig(), "enter": 0.7}, PipelineError, "either config= or"),
    ({"providers": "cuda"}, Exception, "CUDAExecutionProvider"),
])
def test_from_model_errors(tiny: Path, kwargs: dict[str, Any], exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        Pipeline.from_model(tiny, **kwargs)


def test_from_model_folder_without_model(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="no model file"):
        Pipeline.from_model(tmp_path)
    with pytest.raises(PipelineError, match="no such model file"):
        Pipeline.from_model(tmp_path / "x.onnx")


# -- sources ----------------------------------------------------------------------------
def _recording(path: Path, frames: np.ndarray, mask: np.ndarray, **meta: Any) -> Path:
    ts = np.arange(len(frames)) * 1000.0 / 30.0
    return save_recording(path, Recording(frames, mask, ts, {"fps": 30, **meta}))


def test_run_replays_real_recordings(tiny: Path, tmp_path: Path, shared_data: Path) -> None:
    for i, lab in enumerate(("pointR", "Nothing")):
        f, m = volleyball_sequence(shared_data, lab, 4)
        _recording(tmp_path / f"{i}.landmarks.npz", f, m, label=lab, task="gesture")
    pipe = Pipeline.from_model(tiny, task="auto", enter=0.3, exit=0.2)
    source = open_source(tmp_path)
    ev = list(pipe.run(source))
    _schema_ok(ev)
    assert ev[0].kind == "state" and ev[-1].kind == "stream" and ev[-1].state == "ended"
    assert "replayed 60 frames" in (ev[-1].reason or "")
    assert pipe.frames == 60 and pipe.windows == (60 - 16) // 4 + 1
    assert ev[-1].t == pytest.approx(59 / 30, abs=1e-6)  # the 2nd file follows the 1st


class StoppingSource:
    """A source that stops early (like a camera unplugged) or raises mid-stream."""

    live = False

    def __init__(self, n: int, fail: bool) -> None:
        self.n, self.fail = n, fail
        self.ended_early = False
        self.end_reason: str | None = None

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray, float]]:
        f, m = synthetic_frames(self.n)
        for i in range(self.n):
            yield f[i], m[i], i / 30
        if self.fail:
            raise SourceError("camera 0: read failed (device unplugged)")
        self.ended_early = True
        self.end_reason = "camera 0: no frame for 2.0 s; stopped after 30 frames"


@pytest.mark.parametrize("fail,state,reason", [
    (False, "lost", "no frame for 2.0 s"),
    (True, "failed", "device unplugged"),
])
def test_source_that_stops_mid_stream(fail: bool, state: str, reason: str) -> None:
    meta = tiny_meta(("gesture",))
    b = Scripted(meta, lambda k, x: {"logits_gesture": _logits([0.9, 0.04, 0.03, 0.03])})
    pipe = Pipeline(b, "auto", StreamConfig(alpha=1.0))
    ev = list(pipe.run(StoppingSource(30, fail)))
    _schema_ok(ev)
    assert [(e.kind, e.reason) for e in ev[-2:]] == [
        ("end", "end_of_stream"), ("stream", ev[-1].reason)]
    assert ev[-1].state == state and reason in (ev[-1].reason or "")
    assert ev[-1].frame == 29


def test_threaded_run_drops_oldest_frames_and_reports_it() -> None:
    """Inference blocks until the reader has read everything: the newest frames win.

    The source hands out the first 16 frames one by one (each after the previous one was
    pushed), then waits until the first window's inference has started, then reads the
    other 184 frames at once; inference resumes only when all are read.
    """
    read_all, in_infer = threading.Event(), threading.Event()
    consumed = threading.Semaphore(0)
    n = 200

    def frames() -> Iterator[tuple[np.ndarray, np.ndarray, float]]:
        f, m = synthetic_frames(n)
        for i in range(n):
            if 0 < i < 16:
                assert consumed.acquire(timeout=20)
            elif i == 16:
                assert in_infer.wait(20)
            yield f[i], m[i], i / 30
        read_all.set()

    def script(k: int, x: np.ndarray) -> dict[str, Any]:
        if k == 0:
            in_infer.set()
            assert read_all.wait(20)
        return {"logits_gesture": _logits([0.25, 0.25, 0.25, 0.25])}

    meta = tiny_meta(("gesture",))
    pipe = Pipeline(Scripted(meta, script), "auto", StreamConfig(queue_size=8))
    real_push = pipe.push

    def push(frame: Any, **kw: Any) -> list[Event]:
        out = real_push(frame, **kw)
        consumed.release()
        return out

    pipe.push = push  # type: ignore[method-assign]
    ev = list(pipe.run(frames(), threaded=True))
    _schema_ok(ev)
    # 16 frames reach the pipeline before the first window blocks; of the other 184 the
    # queue keeps the newest 8.
    assert pipe.frames == 24 and pipe.dropped == 176
    drops = [e for e in ev if e.kind == "drop"]
    assert len(drops) == 1 and drops[0].dropped == 176 and drops[0].frame == 16
    assert "176 frame(s) dropped" in (drops[0].reason or "")
    assert ev[-1].kind == "stream" and ev[-1].dropped == 176
    assert pipe.stats()["dropped"] == 176


def test_memory_stays_flat_over_100k_replayed_frames(shared_data: Path) -> None:
    """100,000 frames of a real clip replayed in a loop: allocations do not grow."""
    f, m = volleyball_sequence(shared_data, "DbHit", 5)
    meta = tiny_meta(("gesture",), stride=16)
    pipe = Pipeline(Scripted(meta, lambda k, x: {"logits_gesture": _logits(
        [0.7, 0.1, 0.1, 0.1] if (k // 5) % 2 else [0.1, 0.7, 0.1, 0.1])}), "auto",
        StreamConfig(alpha=1.0))

    def replay(n: int) -> Iterator[tuple[np.ndarray, np.ndarray, float]]:
        for i in range(n):
            yield f[i % len(f)], m[i % len(f)], i / 30

    total, warm = 100_000, 40_000  # by 40k the latency deques (2048 windows) are full
    events = 0
    base = end = 0
    try:
        for i, step in enumerate(pipe.steps(replay(total))):
            events += len(step.events)
            if i == warm:  # every bounded buffer is full: trace from here
                tracemalloc.start()
                base, _ = tracemalloc.get_traced_memory()
        end, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert pipe.frames == total and events > 1000  # labels alternate: many events
    print(f"growth over {total - warm} frames: {end - base} bytes")
    assert end - base < 32 * 1024, f"grew by {end - base} bytes"
