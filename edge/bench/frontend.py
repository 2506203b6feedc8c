"""What routing the front end changes in the events: a routed front end against the full one.

The front-end variants (:mod:`edge.frontend.policy`: ``action``, ``gesture``, ``auto``)
skip landmark stages; here their events are compared with those of the full front end
(pose + hands on every frame) under the same task:

* on a video (:func:`video_agreement`): the landmark frames each variant's own
  :class:`edge.frontend.landmarks.Landmarker` produced in the benchmark's pass, each fed to a
  fresh :class:`edge.runtime.pipeline.Pipeline`;
* on recorded clips (:func:`replay_agreement`): each clip as the variant would have seen
  it (:func:`edge.frontend.policy.route_recording`: the recorded joints where a stage
  runs, carried or masked where it is skipped), each clip its own stream.

The measure (:func:`event_agreement`): ``begin`` events of the same task and label whose
times differ by at most ``tolerance_s`` are matched one to one; the agreement is the F1
of the matching, 2 x matched / (events of the reference + events of the variant), 1 when
neither has an event. Beside it, the share of windows with the same routed task and top
label.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.bench.options import split_variant, variant_key
from edge.bench.report import Ratio

LOG = logging.getLogger(__name__)

# A begin event may move by this much (s) and still be the same event: two strides at 30 fps.
TOLERANCE_S = 0.3


@dataclass(frozen=True)
class Agreement:
    """Events and windows of a variant against the full front end's.

    Attributes:
        matched: begin events matched (same task and label, within the tolerance).
        reference, variant: begin events of the full front end and of the variant.
        windows, windows_same: windows compared, and those with the same task and label.
    """

    matched: int = 0
    reference: int = 0
    variant: int = 0
    windows: int = 0
    windows_same: int = 0

    @property
    def value(self) -> float:
        total = self.reference + self.variant
        return 1.0 if total == 0 else 2.0 * self.matched / total

    def __add__(self, other: Agreement) -> Agreement:
        return Agreement(self.matched + other.matched, self.reference + other.reference,
                         self.variant + other.variant, self.windows + other.windows,
                         self.windows_same + other.windows_same)

    def note(self) -> str:
        share = self.windows_same / self.windows if self.windows else float("nan")
        return (f"begin events matched {self.matched} of {self.reference} (full) and "
                f"{self.variant} (routed); windows with the same task and label "
                f"{self.windows_same}/{self.windows} ({share:.0%})")


def event_agreement(reference: Sequence[Any], variant: Sequence[Any],
                    windows: tuple[Sequence[Any], Sequence[Any]] = ((), ()),
                    tolerance_s: float = TOLERANCE_S) -> Agreement:
    """Match the ``begin`` events of two runs (see the module doc).

    Args:
        reference, variant: :class:`edge.core.events.Event` sequences.
        windows: the two runs' :class:`edge.runtime.pipeline.WindowResult` sequences, compared
            position by position (the shorter one decides how many).
        tolerance_s: the largest time difference of a match.
    """
    ref = [e for e in reference if e.kind == "begin"]
    got = [e for e in variant if e.kind == "begin"]
    used = [False] * len(got)
    matched = 0
    for e in ref:
        best, best_dt = -1, tolerance_s
        for j, g in enumerate(got):
            dt = abs(g.t - e.t)
            if not used[j] and (g.task, g.label) == (e.task, e.label) and dt <= best_dt:
                best, best_dt = j, dt
        if best >= 0:
            used[best] = True
            matched += 1
    a, b = windows
    n = min(len(a), len(b))
    same = sum(1 for x, y in zip(a, b) if (x.task, x.label) == (y.task, y.label))
    return Agreement(matched, len(ref), len(got), n, same)


def run_stream(pipe: Any, frames: Iterable[Any]) -> tuple[list[Any], list[Any]]:
    """Events and window results of one stream through a reset pipeline."""
    pipe.reset()
    events: list[Any] = []
    windows: list[Any] = []
    for step in pipe.steps(frames, threaded=False):
        events.extend(step.events)
        if step.new_window and step.result is not None:
            windows.append(step.result)
    return events, windows


def pipeline_task(pipe: Any, variant: str) -> str | None:
    """The model task a front-end variant serves (``action`` or ``onnx:action`` -> the
    router's body task); None when the model lacks it (a ``gesture`` front end on an
    action-only model serves nothing, so its events are not compared)."""
    router = pipe.router
    policy = split_variant(variant)[1]
    task = {"action": router.body_task, "gesture": router.hand_task}.get(policy, "auto")
    return task if task == "auto" or task in router.tasks else None


def _served_task(open_pipe: Any, variant: str) -> str | None:
    probe = open_pipe("auto")
    try:
        task = pipeline_task(probe, variant)
    finally:
        probe.close()
    if task is None:
        LOG.info("bench: the %s front end serves a task this model lacks: its events are "
                 "not compared", variant)
    return task


def video_agreement(open_pipe: Any, runs: Mapping[str, Sequence[Any]], name: str
                    ) -> dict[str, Ratio]:
    """``events_<variant>_vs_full_<name>`` ratios from each variant's landmark frames
    (``onnx:auto`` -> ``events_onnx_auto_vs_full_<name>``).

    Args:
        open_pipe: ``task -> Pipeline`` (a new pipeline on the benchmark's model).
        runs: variant -> its :class:`edge.frontend.landmarks.LandmarkFrame` list; ``full`` is the
            reference.
        name: the video's name, for the ratio's key.
    """
    out: dict[str, Ratio] = {}
    for variant, frames in runs.items():
        if variant == "full":
            continue
        task = _served_task(open_pipe, variant)
        if task is None:
            continue
        with open_pipe(task) as pipe:
            ref = run_stream(pipe, runs["full"])
            got = run_stream(pipe, frames)
        agr = event_agreement(ref[0], got[0], (ref[1], got[1]))
        out[f"events_{variant_key(variant)}_vs_full_{name}"] = Ratio(
            agr.value, f"{variant} front end, task {task}", f"full front end, task {task}",
            f"{name}: {agr.note()}")
    return out


def _versus_full(runs: Mapping[str, Sequence[Any]]) -> Iterator[tuple[str, Iterable[Any]]]:
    """``(variant, pairs of (full frame, variant frame))`` for every variant but ``full``."""
    ref = runs.get("full", ())
    for variant, frames in runs.items():
        if variant != "full":
            yield variant, zip(ref, frames)


def _spread(errs: Sequence[float]) -> tuple[float | None, str]:
    """The mean of ``errs`` (None without any) and its 95th percentile as text."""
    if not errs:
        return None, "-"
    return float(np.mean(errs)), f"{np.percentile(errs, 95):.4f}"


def pose_deviation(runs: Mapping[str, Sequence[Any]], name: str) -> dict[str, Ratio]:
    """``pose_<variant>_vs_full_<name>``: how far a variant's body joints are from the full
    front end's on the same frames, in torso sizes (the preprocessing's scale,
    :func:`edge.frontend.policy.torso_size` of the full front end's pose).

    The value is the mean, over the frames where both found a person, of the mean distance
    (x, y) over the pose joints both report and the full front end sees (visibility >= 0.5;
    the guessed ones, legs out of the picture, wander in any tracker); the note gives the
    95th percentile and the frames compared. A carried pose shows here as the body's motion since its run; an
    implementation's own differences (``onnx:*``) show too.

    Args:
        runs: variant -> its :class:`edge.frontend.landmarks.LandmarkFrame` list, frame by
            frame; ``full`` is the reference.
        name: the video's name, for the ratio's key.
    """
    from edge.core.layout import N_POSE
    from edge.frontend.policy import torso_size

    out: dict[str, Ratio] = {}
    for variant, pairs in _versus_full(runs):
        errs = []
        for a, b in pairs:
            both = a.mask[:N_POSE] & b.mask[:N_POSE] & (a.visibility[:N_POSE] >= 0.5)
            size = torso_size(a.joints[:N_POSE], a.visibility[:N_POSE]) if both.any() else None
            if size is None:
                continue
            d = np.linalg.norm(a.joints[:N_POSE, :2] - b.joints[:N_POSE, :2], axis=1)
            errs.append(float(d[both].mean()) / size)
        value, p95 = _spread(errs)
        out[f"pose_{variant_key(variant)}_vs_full_{name}"] = Ratio(
            value, f"{variant} front end, pose joints", "full front end, pose joints",
            f"{name}: mean distance of the visible joints in torso sizes over {len(errs)} "
            f"frames with a person in both (95th percentile {p95}); carried poses count "
            "with their age")
    return out


def hand_deviation(runs: Mapping[str, Sequence[Any]], name: str) -> dict[str, Ratio]:
    """``hands_<variant>_vs_full_<name>``: how far a variant's hands are from the full front
    end's on the same frames, in torso sizes (of the full front end's pose).

    The value is the mean, over the hand slots (left, right) both filled on a frame whose
    full pose has a torso, of the mean distance (x, y) of the 21 joints; the note gives the
    95th percentile and how many hands the full front end found that the variant did not
    have in that slot (missed: skipped, carried past ``max_age`` or not found) and the
    reverse (extra). A carried hand counts with its age.

    Args:
        runs: variant -> its :class:`edge.frontend.landmarks.LandmarkFrame` list, frame by
            frame; ``full`` is the reference.
        name: the video's name, for the ratio's key.
    """
    from edge.core.layout import LEFT_HAND0, N_HAND, N_POSE, RIGHT_HAND0
    from edge.frontend.policy import torso_size

    out: dict[str, Ratio] = {}
    slots = [slice(s, s + N_HAND) for s in (LEFT_HAND0, RIGHT_HAND0)]
    for variant, pairs in _versus_full(runs):
        errs: list[float] = []
        found = missed = extra = 0
        for a, b in pairs:
            size = torso_size(a.joints[:N_POSE], a.visibility[:N_POSE]) \
                if a.mask[:N_POSE].any() else None
            for cut in slots:
                have_a, have_b = bool(a.mask[cut].any()), bool(b.mask[cut].any())
                found += have_a
                missed += have_a and not have_b
                extra += have_b and not have_a
                if have_a and have_b and size is not None:
                    d = np.linalg.norm(a.joints[cut, :2] - b.joints[cut, :2], axis=1)
                    errs.append(float(d.mean()) / size)
        value, p95 = _spread(errs)
        out[f"hands_{variant_key(variant)}_vs_full_{name}"] = Ratio(
            value, f"{variant} front end, hand joints", "full front end, hand joints",
            f"{name}: mean distance of the 21 joints in torso sizes over {len(errs)} hands "
            f"in the same slot (95th percentile {p95}); of the full front end's {found} "
            f"hands {missed} missed, {extra} extra; carried hands count with their age")
    return out


def replay_agreement(open_pipe: Any, clips: Sequence[Path], variants: Sequence[str]
                     ) -> dict[str, Ratio]:
    """``events_<variant>_vs_full_clips`` ratios: every clip replayed as the variant would
    have seen it, against the clip as recorded (each clip its own stream)."""
    from edge.core.recording import Recording, load_recording
    from edge.frontend.landmarks import from_recording
    from edge.frontend.policy import policy_for_task, route_recording

    recs = [load_recording(c) for c in clips]
    out: dict[str, Ratio] = {}
    for variant in variants:
        if variant == "full":
            continue
        task = _served_task(open_pipe, variant)
        if task is None:
            continue
        total = Agreement()
        ran = np.zeros(3, np.int64)
        with open_pipe(task) as pipe:
            for rec in recs:
                f, m, counts = route_recording(rec.frames, rec.mask, policy_for_task(variant))
                routed = Recording(f, m, rec.timestamps_ms, rec.meta)
                ran += (counts["frames"], counts["pose"], counts["hands"])
                ref = run_stream(pipe, from_recording(rec))
                got = run_stream(pipe, from_recording(routed))
                total = total + event_agreement(ref[0], got[0], (ref[1], got[1]))
        frames = max(int(ran[0]), 1)
        out[f"events_{variant}_vs_full_clips"] = Ratio(
            total.value, f"{variant} front end (replayed), task {task}",
            f"recorded clips, task {task}",
            f"{len(recs)} clips: {total.note()}; pose ran on {ran[1] / frames:.0%} and "
            f"hands on {ran[2] / frames:.0%} of {int(ran[0])} frames")
    return out
