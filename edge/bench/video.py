"""The video pass: decode, the landmark front end in every variant, and end to end.

One pass over the frames (no decoded image is kept): each frame is decoded once, then goes
through one :class:`edge.frontend.landmarks.Landmarker` per front-end variant
(:data:`edge.bench.options.FRONT_END_VARIANTS`: ``full`` = pose + hands on every frame,
and the routed ``action``, ``gesture``, ``auto`` of :mod:`edge.frontend.policy`), and
through one more feeding the streaming pipeline (end to end = that frame's decode + full
landmarks + push). The order rotates frame by frame, so a slow spell hits every variant
alike and their ratios hold on a noisy machine, like the model backends'. Each variant's
landmark frames are kept for the event agreement (:mod:`edge.bench.frontend`).

Another implementation of the front end (:data:`edge.frontend.landmarks.FRONT_ENDS`) is a variant
``IMPL:POLICY`` (``onnx:full``, ``onnx:auto``: MediaPipe's models converted to ONNX, on
ONNX Runtime with the run's ``--providers`` and ``--threads``), timed in the same
rotation against the same MediaPipe full front end; when it cannot open (its converted
models absent, onnxruntime missing) its rows are skipped with the reason and the others
still run.

Rows: ``landmarks_pose``, ``landmarks_hands`` and ``landmarks (pose + hands + merge)``
for the full front end (the names the report always had), ``... <variant>`` for the
others. A skipped stage costs 0 ms on its frame, so a routed variant's cost per frame is
its **mean**, not its median.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edge.bench.frontend import hand_deviation, pose_deviation, video_agreement
from edge.bench.inputs import Landmarks, ModelFiles
from edge.bench.models import _add_e2e, _open_pipeline
from edge.bench.options import (
    BenchError,
    BenchOptions,
    _optional,
    _short,
    split_variant,
    variant_key,
)
from edge.bench.ratios import front_end_label
from edge.bench.report import Ratio
from edge.bench.stats import Recorder, make_entry

STAGES = ("video_decode", "landmarks_pose", "landmarks_hands", "landmarks", "end_to_end")


class _Variant:
    """One front end being timed: its landmarker and what it measured."""

    def __init__(self, name: str, landmarker: Any, how: str = "") -> None:
        self.name, self.lm, self.how = name, landmarker, how
        self.pose_ms: list[float] = []
        self.hands_ms: list[float] = []
        self.all_ms: list[float] = []
        self.cpu_ms: list[float] = []
        self.frames: list[Any] = []
        self.reasons: list[str] = []
        self.one_hand: list[bool] = []  # a hand run that looked for one hand (StagePlan)

    def __call__(self, img: np.ndarray, t: float, i: int) -> None:
        c0, t0 = time.process_time_ns(), time.perf_counter_ns()
        out = self.lm.process(img, t, i)
        self.all_ms.append((time.perf_counter_ns() - t0) / 1e6)
        self.cpu_ms.append((time.process_time_ns() - c0) / 1e6)
        self.pose_ms.append(float(self.lm.last_timings["pose_ms"]))
        self.hands_ms.append(float(self.lm.last_timings["hands_ms"]))
        self.frames.append(out)
        plan = getattr(self.lm, "last_plan", None)
        self.reasons.append(str(getattr(plan, "reason", "")))
        self.one_hand.append(bool(getattr(plan, "hands", False))
                             and getattr(plan, "max_hands", 2) == 1)

    def rows(self, rec: Recorder, w: int) -> None:
        lm = self.lm
        found = np.stack([f.mask for f in self.frames[w:]]) if len(self.frames) > w else \
            np.zeros((0, 75), bool)
        share = f"{found[:, :33].any(1).mean():.0%}" if len(found) else "-"
        hands = f"{found[:, 33:].any(1).mean():.0%}" if len(found) else "-"
        if split_variant(self.name)[0] == "mediapipe":
            what = (f"MediaPipe Tasks video mode ({Path(str(lm.pose_model)).name}, "
                    f"{Path(str(lm.hand_model)).name if lm.hand_model else 'no hand model'})")
        else:
            what = (f"{split_variant(self.name)[0]} front end, video mode "
                    f"({getattr(lm, 'model_dir', '?')}{self.how})")
        note = f"{what}; person in {share} of frames, hands in {hands}"
        if self.name != "full":
            n = max(len(self.pose_ms[w:]), 1)
            note += (f"; policy {self.name}: pose ran on "
                     f"{sum(v > 0 for v in self.pose_ms[w:]) / n:.0%} and hands on "
                     f"{sum(v > 0 for v in self.hands_ms[w:]) / n:.0%} of the timed frames "
                     "(a skipped stage counts 0 ms: compare means); "
                     + plan_reasons(self.reasons[w:]))
            runs = sum(v > 0 for v in self.hands_ms[w:])
            if any(self.one_hand[w:]):
                note += (f"; the hand stage looked for one hand on "
                         f"{sum(self.one_hand[w:]) / max(runs, 1):.0%} of its runs")
        suffix = "" if self.name == "full" else f" {self.name}"
        rec.add(make_entry("landmarks_pose", f"landmarks_pose{suffix}", self.pose_ms[w:],
                           unit="frame", reason=note))
        rec.add(make_entry("landmarks_hands", f"landmarks_hands{suffix}", self.hands_ms[w:],
                           unit="frame", reason=note))
        rec.add(make_entry("landmarks", front_end_label(self.name), self.all_ms[w:],
                           unit="frame", reason=note))


def plan_reasons(reasons: list[str]) -> str:
    """``why: <rule> <share>, ...``: how often each rule of the policy decided a frame
    (:attr:`edge.frontend.policy.StagePlan.reason`), most frequent first."""
    if not reasons:
        return "why: -"
    counts = Counter(reasons)
    return "why: " + ", ".join(f"'{r}' {n / len(reasons):.0%}"
                               for r, n in counts.most_common())


def cpu_ratios(variants: dict[str, _Variant], w: int) -> dict[str, Ratio]:
    """``front_end_<variant>_over_full_cpu``: the process CPU time a routed front end spent
    per frame over the full one's. On a machine shared with other jobs a frame's wall time
    includes waiting for a core; the CPU time does not, so this ratio holds where the
    wall-time one (``front_end_<variant>_over_full``) wanders."""
    full = variants["full"].cpu_ms[w:]
    out: dict[str, Ratio] = {}
    for name, v in variants.items():
        mine = v.cpu_ms[w:]
        if name == "full" or not full or not mine or sum(full) <= 0:
            continue
        out[f"front_end_{variant_key(name)}_over_full_cpu"] = Ratio(
            sum(mine) / sum(full), f"{front_end_label(name)} (CPU time)",
            f"{front_end_label('full')} (CPU time)",
            f"process CPU time per frame, {np.mean(mine):.1f} vs {np.mean(full):.1f} ms over "
            f"{len(mine)} frames; not inflated by waiting for a core on a busy machine"
            + ("; the aim is <= 0.5" if name.endswith("auto") else ""))
    return out


def _open_landmarker(variant: str = "full", opts: BenchOptions | None = None) -> Any:
    """A variant's landmark front end in video mode (:func:`split_variant`); raises when
    its library or model files are missing (the caller records why). Another
    implementation than MediaPipe's runs on the run's ONNX Runtime providers and threads
    (1 for the default 0, as the ONNX front end's own default)."""
    from edge.frontend.landmarks import open_front_end

    impl, policy = split_variant(variant)
    if impl == "mediapipe":
        return open_front_end(impl, mode="video", policy=policy)
    opts = opts or BenchOptions()
    return open_front_end(impl, mode="video", policy=policy, providers=opts.providers,
                          threads=opts.threads or 1)


def _bench_video(rec: Recorder, opts: BenchOptions, video: Path | None, reason: str | None,
                 files: ModelFiles, window: int) -> tuple[Landmarks | None, dict[str, Ratio]]:
    """Decode, landmarks (every front-end variant) and video end to end.

    Returns:
        The full front end's landmarks (for preprocessing when there are no clips), and
        ratios of the routed variants against the full one on this video: CPU time per
        frame (:func:`cpu_ratios`) and event agreement.
    """
    if video is None:
        for s in STAGES:
            rec.skip(s, s, reason or "no video", unit="frame")
        return None, {}
    variants: dict[str, _Variant] = {}
    e2e_lmk = pipe = None
    why_not = e2e_why = None
    names = list(dict.fromkeys(("full", *opts.front_ends)))
    try:
        for name in (n for n in names if split_variant(n)[0] == "mediapipe"):
            variants[name] = _Variant(name, _open_landmarker(name))
    except Exception as e:  # MediaPipe or its model files missing
        why_not = f"landmark front end unavailable: {_short(e)}"
        _close([v.lm for v in variants.values()])
        variants = {}
    for name in (n for n in names if split_variant(n)[0] != "mediapipe"):
        try:
            if variants:  # without the full MediaPipe front end there is no reference
                variants[name] = _Variant(name, _open_landmarker(name, opts),
                                          f", ONNX Runtime providers {opts.providers}, "
                                          f"{opts.threads or 1} thread(s) per model")
        except Exception as e:  # converted models absent, onnxruntime missing: a skip
            why = f"{name} front end unavailable: {_short(e)}"
            for stage, label in (("landmarks_pose", f"landmarks_pose {name}"),
                                 ("landmarks_hands", f"landmarks_hands {name}"),
                                 ("landmarks", front_end_label(name))):
                rec.skip(stage, label, why, unit="frame")
    if variants:
        try:
            pipe, model_path = _open_pipeline(files, opts)
            e2e_lmk = _open_landmarker("full")
        except Exception as e:  # pipeline missing or model refused
            e2e_why = f"streaming pipeline unavailable: {_short(e)}"
            if pipe is not None:
                with contextlib.suppress(Exception):
                    pipe.close()
            pipe = None
    # Warm-up fills the window buffer, so the timed frames include inference.
    w = max(opts.warmup, int(window))
    n = w + opts.frames
    decode_ms: list[float] = []
    e2e_ms: list[float] = []
    ran: list[bool] = []
    size = (0, 0)
    sources = _optional("edge.frontend.sources")
    how = "edge.frontend.sources (OpenCV read + BGR->RGB)" if sources else "OpenCV read + BGR->RGB"

    def end_to_end(img: np.ndarray, t: float, i: int, decode: float) -> None:
        assert e2e_lmk is not None and pipe is not None
        t0 = time.perf_counter_ns()
        lf = e2e_lmk.process(img, t, i)
        before = pipe.windows
        pipe.push(lf)
        e2e_ms.append(decode + (time.perf_counter_ns() - t0) / 1e6)
        ran.append(pipe.windows > before)

    try:
        for i, (dt, frame) in enumerate(_frames(sources, video, n)):
            decode_ms.append(dt)
            img = _image(frame)
            size = (img.shape[1], img.shape[0])
            if not variants:
                continue
            t = i / 30.0  # monotonic even when the file loops
            calls: list[Any] = list(variants.values())
            if pipe is not None:
                calls.append(lambda img, t, i, dt=dt: end_to_end(img, t, i, dt))
            k = i % len(calls)
            for call in calls[k:] + calls[:k]:
                call(img, t, i)
    except Exception as e:  # a video that fails to decode skips the video stages
        for s in STAGES:
            rec.skip(s, s, f"{video}: cannot decode ({_short(e)})", unit="frame")
        _close([v.lm for v in variants.values()], e2e_lmk, pipe)
        return None, {}
    _close([v.lm for v in variants.values()], e2e_lmk, pipe)
    rec.add(make_entry("video_decode", "video_decode", decode_ms[w:], unit="frame",
                       reason=f"{video.name} {size[0]}x{size[1]}, {how}; the file is looped "
                              "when it has fewer frames than asked"))
    if not variants:
        for s in STAGES[1:]:
            rec.skip(s, s, str(why_not), unit="frame")
        rec.memory("landmarks")
        return None, {}
    for v in variants.values():
        v.rows(rec, w)
    full = variants["full"].frames
    lm = Landmarks(np.stack([f.joints for f in full]), np.stack([f.mask for f in full]),
                   np.asarray([f.t * 1000.0 for f in full]), "landmarks of the video")
    agreement = cpu_ratios(variants, w)
    timed = {k: v.frames[w:] for k, v in variants.items()}
    agreement.update(pose_deviation(timed, video.stem))
    agreement.update(hand_deviation(timed, video.stem))
    if pipe is None:
        rec.skip("end_to_end", "end_to_end", str(e2e_why), unit="frame")
    else:
        _add_e2e(rec, "end_to_end", e2e_ms, ran, w,
                 f"decode + full landmarks + Pipeline.push, {model_path.name}, task auto, "
                 f"stride {pipe.stride}; interleaved frame by frame with the landmark stages")
        if len(variants) > 1:
            agreement.update(video_agreement(
                lambda task: _open_pipeline(files, opts, task)[0],
                {k: v.frames for k, v in variants.items()}, video.stem))
    rec.memory("landmarks")
    return lm, agreement


def _close(landmarkers: list[Any], *others: Any) -> None:
    for obj in (*landmarkers, *others):
        if obj is not None:
            with contextlib.suppress(Exception):
                obj.close()


def _frames(sources: Any, video: Path, n: int) -> Iterator[tuple[float, Any]]:
    """``n`` (decode ms, frame) pairs, looping the file; frames are
    :class:`edge.frontend.sources.VideoFrame` when :mod:`edge.frontend.sources` is there (its own per-frame
    ``last_decode_ms``: read + colour conversion), else RGB arrays timed the same way."""
    done = 0
    while done < n:
        got = 0
        for item in (_iter_source(sources, video) if sources else _iter_cv2(video)):
            yield item
            got += 1
            done += 1
            if done >= n:
                return
        if got == 0:
            raise BenchError(f"{video}: no frames decoded")


def _iter_source(sources: Any, video: Path) -> Iterator[tuple[float, Any]]:
    with sources.open_source(str(video)) as src:
        for frame in src:
            yield float(src.last_decode_ms), frame


def _iter_cv2(video: Path) -> Iterator[tuple[float, np.ndarray]]:
    import cv2

    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise BenchError(f"{video}: OpenCV cannot open it")
    try:
        while True:
            t0 = time.perf_counter_ns()
            ok, bgr = cap.read()
            if not ok:
                return
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            yield (time.perf_counter_ns() - t0) / 1e6, rgb
    finally:
        cap.release()


def _image(frame: Any) -> np.ndarray:
    return frame.image if hasattr(frame, "image") else frame
