"""The task router: which task's head speaks for a window.

``task`` is a task name of the model (``"action"``, ``"gesture"``, ...) or ``"auto"``:

* a fixed task: always that task; only graphs that compute it run.
* ``auto`` on a model with a task head (``meta.has_task_head``): the task whose
  ``task_logits`` probability is highest, smoothed over windows with an EMA
  (``task_alpha``) so that one odd window does not flip the route.
* ``auto`` on a model without a task head: the **hand-motion rule**
  (:func:`hand_motion_rule`), decided from the window's landmarks *before* inference, so
  that with per-task graphs only the chosen one runs:

  1. no hand in at least ``min_hand_fraction`` of the window's frames -> the body task
     (``action``): gestures need hands;
  2. hands but no body anywhere in the window (a close-up of hands) -> the hand task
     (``gesture``);
  3. otherwise compare motion energies, the mean per-frame displacement of the present
     hand joints (both hand slots, 42 joints) and of the trunk and legs (shoulders, hips,
     knees, ankles: the joints that move when the whole body acts, not when the arms
     signal); hand energy > ``motion_ratio`` x body energy -> ``gesture``, else ``action``.
     Both are in the same units, so the ratio is scale-free.

  A single-task model always routes to its task. The rule needs the two tasks named by
  ``hand_task`` / ``body_task`` (defaults ``gesture`` / ``action``) in the model.

Per-task graphs: a model exported per task is several files whose ``meta.graph_tasks`` is
``(task,)``. :meth:`Router.plan` says which task's graph to run first; with a task head
the pipeline reads ``task_logits`` from it and runs the routed task's graph only when it
differs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.core.errors import SkelmtlError
from edge.core.layout import L_HIP, L_SHOULDER, N_POSE, R_HIP, R_SHOULDER
from edge.core.metadata import TASK_OUTPUT, ModelMeta
from edge.runtime.stream import softmax

# Trunk and legs: shoulders, hips, knees, ankles (MediaPipe pose indices).
BODY_JOINTS = (L_SHOULDER, R_SHOULDER, L_HIP, R_HIP, 25, 26, 27, 28)
HAND_JOINTS = tuple(range(N_POSE, N_POSE + 42))


class RouterError(SkelmtlError, ValueError):
    """A task the model does not have, or an ``auto`` rule the model cannot follow."""


@dataclass(frozen=True)
class RouteDecision:
    """Which task speaks for a window, and why.

    Attributes:
        task: the routed task.
        reason: ``fixed``, ``single_task``, ``task_head`` or ``rule:<why>``.
        task_probs: smoothed task-head probabilities per task (task head only).
        hand_energy, body_energy: the rule's motion energies (rule only).
    """

    task: str
    reason: str
    task_probs: dict[str, float] | None = None
    hand_energy: float | None = None
    body_energy: float | None = None


@dataclass(frozen=True)
class MotionStats:
    """What the hand-motion rule looks at in one window."""

    hand_fraction: float
    body_fraction: float
    hand_energy: float
    body_energy: float


def motion_stats(frames: np.ndarray, mask: np.ndarray) -> MotionStats:
    """Hand presence and hand/body motion energies of a window.

    Args:
        frames: ``(T, 75, C)`` raw window (any units; only ratios matter).
        mask: ``(T, 75)`` presence.
    """
    frames = np.asarray(frames, np.float64)
    mask = np.asarray(mask, bool)
    hand_fraction = float(mask[:, N_POSE:].any(axis=1).mean()) if len(mask) else 0.0
    body_fraction = float(mask[:, :N_POSE].any(axis=1).mean()) if len(mask) else 0.0

    def energy(joints: tuple[int, ...]) -> float:
        if len(frames) < 2:
            return 0.0
        x, m = frames[:, joints, :2], mask[:, joints]
        both = m[1:] & m[:-1]
        if not both.any():
            return 0.0
        d = np.linalg.norm(x[1:] - x[:-1], axis=-1)
        return float(d[both].mean())

    return MotionStats(hand_fraction, body_fraction, energy(HAND_JOINTS), energy(BODY_JOINTS))


def hand_motion_rule(stats: MotionStats, hand_task: str, body_task: str,
                     min_hand_fraction: float = 0.5, motion_ratio: float = 1.2
                     ) -> tuple[str, str]:
    """``(task, reason)`` by the documented rule (see the module docstring)."""
    if stats.hand_fraction < min_hand_fraction:
        return body_task, "rule:few_hands"
    if stats.body_fraction == 0.0:
        return hand_task, "rule:hands_only"
    if stats.hand_energy > motion_ratio * stats.body_energy:
        return hand_task, "rule:hands_move"
    return body_task, "rule:body_moves"


class Router:
    """Chooses the task per window (see the module docstring).

    Args:
        meta: the model's metadata (for per-task graphs: any one of them; ``tasks`` and
            ``has_task_head`` are the same in all).
        task: a task name of the model, or ``"auto"``.
        hand_task, body_task: the tasks the hand-motion rule chooses between.
        min_hand_fraction, motion_ratio: the rule's thresholds.
        task_alpha: EMA weight of the newest window's task-head probabilities.

    Raises:
        RouterError: unknown task; ``auto`` without a task head on a multi-task model
            lacking ``hand_task``/``body_task``.
    """

    def __init__(self, meta: ModelMeta, task: str = "auto", *, hand_task: str = "gesture",
                 body_task: str = "action", min_hand_fraction: float = 0.5,
                 motion_ratio: float = 1.2, task_alpha: float = 0.5) -> None:
        self.tasks = tuple(meta.tasks)
        if task != "auto" and task not in self.tasks:
            raise RouterError(f"task {task!r} is not in this model; it has {list(self.tasks)} "
                              f"(or use 'auto')")
        self.task = task
        self.hand_task, self.body_task = hand_task, body_task
        self.min_hand_fraction, self.motion_ratio = min_hand_fraction, motion_ratio
        self.task_alpha = task_alpha
        if task != "auto" or len(self.tasks) == 1:
            self.mode = "fixed" if task != "auto" else "single_task"
        elif meta.has_task_head:
            self.mode = "task_head"
        else:
            missing = [t for t in (hand_task, body_task) if t not in self.tasks]
            if missing:
                raise RouterError(f"task 'auto' on a model without a task head uses the hand-"
                                  f"motion rule, which needs tasks {hand_task!r} and "
                                  f"{body_task!r}; the model has {list(self.tasks)}. Name a "
                                  f"task, or set hand_task/body_task")
            self.mode = "rule"
        self._task_probs: np.ndarray | None = None
        self.last: RouteDecision | None = None

    @property
    def tasks_needed(self) -> tuple[str, ...]:
        """Tasks whose graphs can ever run (a fixed task loads only its own)."""
        if self.mode in ("fixed", "single_task"):
            return (self.tasks[0],) if self.mode == "single_task" else (self.task,)
        return self.tasks

    def before_inference(self, frames: np.ndarray, mask: np.ndarray) -> RouteDecision | None:
        """The decision when it needs no model output (fixed, single task, rule), else None.

        Args:
            frames: ``(T, 75, C)`` the window's raw frames; mask: ``(T, 75)``.
        """
        if self.mode == "fixed":
            self.last = RouteDecision(self.task, "fixed")
        elif self.mode == "single_task":
            self.last = RouteDecision(self.tasks[0], "single_task")
        elif self.mode == "rule":
            s = motion_stats(frames, mask)
            task, why = hand_motion_rule(s, self.hand_task, self.body_task,
                                         self.min_hand_fraction, self.motion_ratio)
            self.last = RouteDecision(task, why, hand_energy=s.hand_energy,
                                      body_energy=s.body_energy)
        else:
            return None
        return self.last

    def first_graph_task(self) -> str:
        """With a task head and per-task graphs: the graph to run first (the last route)."""
        return self.last.task if self.last is not None else self.tasks[0]

    def from_task_head(self, task_logits: np.ndarray) -> RouteDecision:
        """Decide from one window's ``task_logits`` ``(len(tasks),)``.

        Raises:
            RouterError: the task head's size does not match the model's tasks.
        """
        z = np.asarray(task_logits, np.float64).reshape(-1)
        if z.shape[0] != len(self.tasks):
            raise RouterError(f"{TASK_OUTPUT} has {z.shape[0]} values for "
                              f"{len(self.tasks)} tasks {list(self.tasks)}")
        p = softmax(z)
        a = self.task_alpha
        self._task_probs = p if self._task_probs is None else a * p + (1 - a) * self._task_probs
        probs = {t: float(v) for t, v in zip(self.tasks, self._task_probs)}
        self.last = RouteDecision(self.tasks[int(np.argmax(self._task_probs))], "task_head",
                                  task_probs=probs)
        return self.last

    def reset(self) -> None:
        self._task_probs = None
        self.last = None


__all__ = ["BODY_JOINTS", "HAND_JOINTS", "MotionStats", "RouteDecision", "Router",
           "RouterError", "hand_motion_rule", "motion_stats"]
