"""Streaming building blocks: ring buffer, window schedule, smoothing, hysteresis, states,
the newest-wins queue."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from edge.core.events import Event
from edge.core.preprocess import PreprocessConfig, preprocess
from edge.runtime.stream import (
    Closed,
    FrameError,
    LabelTracker,
    LatestQueue,
    PresenceTracker,
    RingBuffer,
    Smoother,
    StreamConfig,
    StreamConfigError,
    as_frame,
    batch_inputs,
    presence_state,
    threaded_reader,
    window_bounds,
    window_due,
)
from tests.runtime_models import synthetic_frames


# -- ring buffer ------------------------------------------------------------------------
def test_ring_buffer_keeps_last_frames_in_order_after_wrapping() -> None:
    rb = RingBuffer(4, channels=2)
    for i in range(10):
        j = np.full((75, 3), float(i), np.float32)
        rb.push(j, np.ones(75, bool), t=i / 10)
    x, m, t = rb.last(4)
    assert x.shape == (4, 75, 2) and m.all()
    np.testing.assert_array_equal(x[:, 0, 0], [6, 7, 8, 9])
    np.testing.assert_allclose(t, [0.6, 0.7, 0.8, 0.9])
    assert len(rb) == 4 and rb.total == 10
    with pytest.raises(ValueError, match="holds 4"):
        rb.last(5)


def test_ring_buffer_masks_nan_joints() -> None:
    rb = RingBuffer(2, channels=3)
    j = np.ones((75, 3), np.float32)
    j[5, 1] = np.nan
    j[6] = np.inf
    rb.push(j, np.ones(75, bool), 0.0)
    x, m, _ = rb.last(1)
    assert not m[0, 5] and not m[0, 6] and m[0, 7]
    assert np.isfinite(x).all() and x[0, 5].tolist() == [0, 0, 0]


@pytest.mark.parametrize("item,match", [
    ((np.zeros((74, 3)), np.zeros(75, bool), 0.0), r"\(75, C\)"),
    ((np.zeros((75, 3)), np.zeros(74, bool), 0.0), r"mask must be \(75,\)"),
    ("frame", "a frame is an object"),
])
def test_as_frame_refuses_bad_shapes(item: object, match: str) -> None:
    with pytest.raises(FrameError, match=match):
        as_frame(item)


def test_as_frame_accepts_objects_with_t_joints_mask() -> None:
    class F:
        t, joints, mask = 1.5, np.zeros((75, 3)), np.ones(75, bool)

    j, m, t = as_frame(F())
    assert j.dtype == np.float32 and m.dtype == bool and t == 1.5


# -- window schedule --------------------------------------------------------------------
@pytest.mark.parametrize("n,w,s", [(100, 32, 4), (31, 32, 4), (32, 32, 1), (50, 16, 7)])
def test_window_due_matches_window_bounds(n: int, w: int, s: int) -> None:
    due_at = [i for i in range(1, n + 1) if window_due(i, w, s)]
    bounds = window_bounds(n, w, s)
    assert [b for _, b in bounds] == due_at
    assert all(b - a == w for a, b in bounds)
    assert len(bounds) == (0 if n < w else (n - w) // s + 1)


@pytest.mark.parametrize("n,expected", [(40, [(0, 16), (8, 24), (16, 32), (24, 40)]),
                                        (15, [(0, 15)]), (8, [(0, 8)]), (2, [(0, 2)]),
                                        (1, [])])
def test_window_bounds_flush_short_streams(n: int, expected: list[tuple[int, int]]) -> None:
    assert window_bounds(n, 16, 8, flush=True) == expected


def test_batch_inputs_are_preprocess_of_each_window() -> None:
    f, m = synthetic_frames(40, hand_speed=0.03)
    f[7, 3] = np.nan
    cfg = PreprocessConfig(window=16)
    x = batch_inputs(f, m, cfg, stride=8)
    assert x.shape == (4, cfg.channels, 16, 75)
    np.testing.assert_array_equal(x[2], preprocess(f[16:32], m[16:32], cfg))
    assert np.isfinite(x).all()


# -- smoothing --------------------------------------------------------------------------
def test_ema_and_mean_smoothing_values() -> None:
    ps = [np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.array([0.0, 1.0])]
    ema = Smoother("ema", alpha=0.5)
    out = [ema(p) for p in ps]
    np.testing.assert_allclose(out[-1], [0.25, 0.75])
    mean = Smoother("mean", size=2)
    out = [mean(p) for p in ps]
    np.testing.assert_allclose(out[1], [0.5, 0.5])
    np.testing.assert_allclose(out[2], [0.0, 1.0])
    none = Smoother("none")
    np.testing.assert_array_equal(none(ps[0]), ps[0])
    ema.reset()
    np.testing.assert_array_equal(ema(ps[1]), ps[1])


@pytest.mark.parametrize("kwargs,match", [
    ({"smoothing": "median"}, "smoothing"), ({"alpha": 0.0}, "alpha"),
    ({"enter": 0.3, "exit": 0.5}, "exit <= enter"), ({"state_frames": 0}, "state_frames"),
    ({"stride": 0}, "stride"), ({"queue_size": 0}, "queue_size"),
    ({"min_duration": -1}, "min_duration"),
])
def test_stream_config_refuses_nonsense(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(StreamConfigError, match=match):
        StreamConfig(**kwargs)  # type: ignore[arg-type]


# -- hysteresis -------------------------------------------------------------------------
def _feed(tr: LabelTracker, seq: list[list[float]]) -> list[Event]:
    ev: list[Event] = []
    for i, p in enumerate(seq):
        ev += tr.update(np.asarray(p), t_centre=float(i), t=float(i) + 0.5, frame=i)
    return ev


def test_hysteresis_enters_above_enter_and_exits_below_exit() -> None:
    tr = LabelTracker("gesture", ("wave", "stop"), enter=0.6, exit=0.4)
    seq = [[0.5, 0.5], [0.7, 0.3], [0.5, 0.5], [0.45, 0.55], [0.3, 0.7]]
    ev = _feed(tr, seq)
    # Window 2 (0.5) and 3 (0.45) stay above exit: no flicker; window 4 ends wave and
    # begins stop (0.7 >= enter) in the same update.
    assert [(e.kind, e.label, e.frame) for e in ev] == [
        ("begin", "wave", 1), ("end", "wave", 4), ("begin", "stop", 4)]
    begin, end = ev[0], ev[1]
    assert begin.start == 1.0 and begin.confidence == pytest.approx(0.7)
    assert end.start == 1.0 and end.end == 3.0 and end.reason == "below_exit"
    assert end.confidence == pytest.approx(0.7)  # the peak while active
    assert tr.active_label == "stop"


def test_hysteresis_replaced_when_another_label_enters() -> None:
    tr = LabelTracker("gesture", ("a", "b", "c"), enter=0.5, exit=0.2)
    ev = _feed(tr, [[0.8, 0.1, 0.1], [0.3, 0.6, 0.1]])
    assert [(e.kind, e.label, e.reason) for e in ev] == [
        ("begin", "a", None), ("end", "a", "replaced"), ("begin", "b", None)]


def test_min_duration_delays_begin_and_ignores_short_blips() -> None:
    tr = LabelTracker("action", ("x", "y"), enter=0.6, exit=0.4, min_duration=2.0)
    ev = _feed(tr, [[0.9, 0.1], [0.9, 0.1], [0.1, 0.9], [0.9, 0.1], [0.9, 0.1], [0.9, 0.1]])
    assert [(e.kind, e.label, e.frame, e.start) for e in ev] == [("begin", "x", 5, 3.0)]


def test_ignored_labels_never_produce_events_but_end_others() -> None:
    tr = LabelTracker("gesture", ("wave", "none"), enter=0.6, exit=0.4, ignore=("none",))
    ev = _feed(tr, [[0.9, 0.1], [0.1, 0.9], [0.1, 0.9], [0.9, 0.1]])
    # "none" is active in frames 1-2 but silent.
    assert [(e.kind, e.label, e.reason) for e in ev] == [
        ("begin", "wave", None), ("end", "wave", "below_exit"), ("begin", "wave", None)]
    assert tr.active_label == "wave"
    assert tr.close("end_of_stream", 9.0, 9)[0].reason == "end_of_stream"
    assert tr.close("end_of_stream", 9.0, 9) == []


# -- presence ---------------------------------------------------------------------------
def test_presence_states() -> None:
    m = np.zeros(75, bool)
    assert presence_state(m) == "no_person"
    m[:33] = True
    assert presence_state(m) == "no_hands"
    m[40] = True
    assert presence_state(m) == "tracking"
    m[:33] = False
    assert presence_state(m) == "tracking"  # hands alone (a close-up) are tracked


def test_presence_tracker_debounces_single_missing_frames() -> None:
    body = np.zeros(75, bool)
    body[:33] = True
    full = body.copy()
    full[54:] = True
    pt = PresenceTracker(state_frames=3)
    seq = [full, full, body, full, body, body, body, full]
    ev = [(e.state, e.frame) for i, m in enumerate(seq) for e in pt.update(m, float(i), i)]
    assert ev == [("tracking", 0), ("no_hands", 6)]


# -- threaded mode ----------------------------------------------------------------------
def test_latest_queue_drops_oldest_and_counts() -> None:
    q: LatestQueue[int] = LatestQueue(3)
    kept = [q.put(i) for i in range(5)]
    assert kept == [True, True, True, False, False] and q.dropped == 2
    q.close()
    assert [q.get(), q.get(), q.get()] == [2, 3, 4]
    with pytest.raises(Closed):
        q.get()
    with pytest.raises(Closed):
        q.put(9)


def test_latest_queue_get_timeout() -> None:
    q: LatestQueue[int] = LatestQueue(1)
    with pytest.raises(TimeoutError):
        q.get(timeout=0.01)


def test_threaded_reader_reraises_source_error_after_draining() -> None:
    def source():
        yield 1
        yield 2
        raise OSError("camera unplugged")

    items, q, _ = threaded_reader(source(), maxsize=10)
    got = []
    with pytest.raises(OSError, match="camera unplugged"):
        for x in items:
            got.append(x)
    assert got == [1, 2] and q.dropped == 0


def test_threaded_reader_newest_frames_win_when_consumer_is_slow() -> None:
    took_first, done = threading.Event(), threading.Event()

    def source():
        yield 0
        took_first.wait(10)
        yield from range(1, 100)
        done.set()

    items, q, _ = threaded_reader(source(), maxsize=4)
    assert next(items) == 0
    took_first.set()
    assert done.wait(10)  # the consumer is "busy" until the reader has read everything
    assert list(items) == [96, 97, 98, 99]
    assert q.dropped == 95
