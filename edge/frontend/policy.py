"""Which landmark stages run on a frame: the task routing of the front end, in one place.

The front end (:mod:`edge.frontend.landmarks`) has two stages, MediaPipe's pose landmarker (the
body, 33 joints) and its hand landmarker (two 21-joint hands). Together they are ~99% of
a frame's cost; the network is a rounding error. The task the runtime routes to says
which stage it needs, so the front end asks this module per frame (:func:`decide`):

* ``full`` -- both stages on every frame (what the front end did before routing; the
  reference every other policy is measured against).
* ``action`` -- the body only. The hand stage never runs and the hand slots are
  **masked**: nothing was measured, and a masked hand is what the model already sees
  whenever MediaPipe loses a hand.
* ``gesture`` -- the hands on every frame; the body only as far as the hands need it.
  The pose places and assigns the hands (:func:`edge.frontend.landmarks.assign_hands` checks a
  hand's label against the nearer pose wrist) and gives the preprocessing its scale
  (centre and size from the shoulders and hips). Both change slowly compared with the
  fingers, so the pose runs every ``pose_every``-th frame, and at once on the frame after
  the number of hands changed (tracking lost, or a new hand found: the hands must be
  re-placed) and while no person is known. In between, the last pose is **carried**
  (its joints kept, age counted) for at most ``max_age`` frames. Masking it instead would
  change the model's input far more than a pose a few frames old: with no body the
  preprocessing would fall back to scaling by palm size.
* ``auto`` -- the body as often as it changes, the hands when they are in play.

  The **pose** runs on every frame while the body moves, and every ``still_every``-th
  (2nd) frame while it is still: it runs when no person is known (no run yet, or the
  last run found none), on the frame after a hand run found another number of hands than
  the run before it (the hands must be re-placed, as in ``gesture``), while the body's
  motion is unknown (fewer than two runs with a person) or at least ``still``, and when
  ``still_every`` frames have passed. The motion (:func:`body_motion`) is measured
  between the last two pose runs: the largest move of the shoulders, elbows, wrists
  and hips (:data:`MOTION_JOINTS`) visible in both, in torso sizes (the preprocessing's
  scale: the larger of the shoulder width and 0.6 x the torso length), divided by the
  frames between the runs. Below ``still`` (0.01 torso per frame) a carried pose at most
  ``still_every`` - 1 frames old is off by less than 0.01 torso if the body keeps that
  speed, about MediaPipe's own frame-to-frame jitter on a still body (median 0.005
  torso for the arms on the carphone clip); any faster, and the pose runs on every frame
  until the body is still again. A move that starts while the pose is skipped is seen at
  the next run, at most ``still_every`` - 1 frames late. 0.01 is what kept every event of
  the full front end on the two real videos measured (docs/benchmarks.md); 0.02 lost two
  of five on one. ``still_every`` was 3 until 2026-12-05: on the Megamind clip started at
  three different frames that lost 1 or 2 begin events at two of the three starts, 2
  lost one at one start (docs/benchmarks.md); a pose carried two frames is a staircase
  in the body's motion that the action head reads.

  Two settings, off by default, thin the pose of a *moving* body too: ``moving_every``
  (its period while moving) and ``extrapolate`` (a carried pose moves on at the speed of
  its last two runs instead of standing still). On the Megamind clip they bring ``auto``
  under half the full front end's CPU but match 16-19 of its 31 begin events where the
  default matches 24, held or extrapolated (docs/benchmarks.md), so the defaults keep the
  pose on every frame while the body moves.

  The **hands** run when the body says they are in play (:func:`hands_in_play`: a wrist
  visible in the image and raised above its elbow or above mid-torso; the carried body
  when the pose was skipped), or while the last hand run found a hand (tracking).
  Otherwise the hand stage runs every ``hand_every``-th frame, so that a hand the pose
  missed is still found within ``hand_every`` frames. When the body says a hand is in
  play but ``give_up_after`` hand runs in a row found nothing (a hand holding a phone, a
  hand in a glove), the lower rate applies too until a hand is found. A skipped hand
  stage follows a hand run that found no hand, so the carried hands are no hands: the
  slots are masked, exactly what the last run said.

  **How many hands** a hand run looks for (:func:`hands_wanted`, ``StagePlan.max_hands``):
  MediaPipe's hand landmarker runs its palm detector on every call while it tracks fewer
  hands than it was made for, so one made for two hands that tracks one pays for a palm
  search on every frame (25 against 9 ms of CPU per frame on the Megamind clip,
  docs/benchmarks.md). ``auto`` therefore looks for **one** hand unless the body says two
  may be there: two hands are looked for while the last hand run found two (tracking
  both), when no body is known, and when both wrists are in view
  (:func:`wrists_in_view`) -- but when ``give_up_after`` such runs in a row found fewer
  than two (a hand the palm detector does not find), only every ``hand_every``-th frame
  until two are found. A second hand that comes into view is so found at once when the
  body sees its wrist, else within ``hand_every`` frames. ``full`` and ``gesture`` always
  look for two.

One rule covers every skipped stage: its joints are **carried from the stage's last run
while that run is at most** ``max_age`` **frames old, and masked after that**
(:class:`StageRouter` does it; ``LandmarkFrame.pose_age`` / ``hands_age`` say how old
they are). The decision itself is a pure function of a frozen :class:`StageState` and
the body's landmarks, so it is tested on synthetic frames, and the same
:class:`StageRouter` replays a recording as if the stages had been skipped
(:func:`route_recording`), which is how the effect on events is measured on recorded
clips (docs/benchmarks.md).

Usage: StageRouter(policy_for_task("auto")) inside a landmark front end; see
:class:`edge.frontend.landmarks.Landmarker`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from edge.core.errors import SkelmtlError
from edge.core.layout import (
    L_HIP,
    L_SHOULDER,
    L_WRIST,
    MP75,
    N_POSE,
    NUM_JOINTS,
    R_HIP,
    R_SHOULDER,
    R_WRIST,
)
from edge.core.preprocess import body_sizes

FRONT_END_TASKS = ("full", "action", "gesture", "auto")
NOSE, L_ELBOW, R_ELBOW = 0, 13, 14
# The joints whose motion decides whether ``auto`` may carry the pose: the ones actions are
# made of and that place the hands (the face and legs move, or guess, for other reasons).
MOTION_JOINTS = (L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST, L_HIP, R_HIP)
# As the preprocessing's ``torso`` scale: 0.6 x the torso length stands in for the shoulder
# width of a person seen from the side.
_SIDES = ((L_SHOULDER, L_ELBOW, L_WRIST, L_HIP), (R_SHOULDER, R_ELBOW, R_WRIST, R_HIP))
HAND_SLICE = slice(N_POSE, NUM_JOINTS)
_LEFT_HAND, _RIGHT_HAND = slice(N_POSE, N_POSE + 21), slice(N_POSE + 21, NUM_JOINTS)


class PolicyError(SkelmtlError, ValueError):
    """A front-end policy with an unknown task or a setting out of range."""


@dataclass(frozen=True)
class FrontEndPolicy:
    """What the front end runs for one routed task (the rules are in the module doc).

    Attributes:
        task: ``full``, ``action``, ``gesture`` or ``auto`` (:data:`FRONT_END_TASKS`).
        hand_every: ``auto``: the hand stage's period while no hand is in play.
        pose_every: ``gesture``: the pose stage's period while hands are tracked.
        still_every: ``auto``: the pose stage's period while the body is still.
        still: ``auto``: body motion (torso sizes per frame, :func:`body_motion`) below
            which the body is still.
        max_age: frames a skipped stage's joints are carried before they are masked.
        moving_every: ``auto``: the pose stage's period while the body moves (1: every
            frame).
        extrapolate: a carried pose (``gesture`` and ``auto``) moves on at the speed
            between its last two runs instead of standing still (:class:`StageRouter`:
            the joints visible in both runs; others hold). The moved joints are not
            clamped to the image, so a carried wrist may leave it.
        give_up_after: ``auto``: hand runs in a row that may find nothing while the body
            says a hand is in play, before the lower rate applies.
        min_visibility: pose visibility a wrist needs to count as in view.
        margin: how far outside the image (in image widths/heights) a wrist may lie.
    """

    task: str = "full"
    hand_every: int = 4
    pose_every: int = 3
    still_every: int = 2
    still: float = 0.01
    max_age: int = 4
    give_up_after: int = 3
    min_visibility: float = 0.5
    margin: float = 0.02
    moving_every: int = 1
    extrapolate: bool = False

    def __post_init__(self) -> None:
        if self.task not in FRONT_END_TASKS:
            raise PolicyError(f"front-end task {self.task!r}: use one of {list(FRONT_END_TASKS)}")
        for name in ("hand_every", "pose_every", "still_every", "give_up_after", "moving_every"):
            if int(getattr(self, name)) < 1:
                raise PolicyError(f"front-end policy: {name} must be >= 1, got "
                                  f"{getattr(self, name)}")
        if self.max_age < 0:
            raise PolicyError(f"front-end policy: max_age must be >= 0, got {self.max_age}")
        if not self.still >= 0:
            raise PolicyError(f"front-end policy: still must be >= 0, got {self.still}")


def policy_for_task(task: str, *, hand_task: str = "gesture", body_task: str = "action",
                    **settings: int | float) -> FrontEndPolicy:
    """The policy for a router task: the model's body task -> ``action``, its hand task ->
    ``gesture``, ``auto`` and ``full`` as they are; any other task runs everything."""
    if task in ("auto", "full"):
        kind = task
    elif task == body_task:
        kind = "action"
    elif task == hand_task:
        kind = "gesture"
    else:
        kind = "full"
    return FrontEndPolicy(task=kind, **settings)  # type: ignore[arg-type]


@dataclass(frozen=True)
class StageState:
    """What the decision remembers between frames.

    Attributes:
        pose_age, hands_age: frames since the stage last ran (0: the previous frame;
            None: never).
        person: the last pose run found a person.
        hands_found: hands found by the last hand run.
        hands_changed: the last hand run found another number of hands than the run
            before it (tracking lost, or a new hand to place) and no pose ran with it.
        misses: hand runs in a row that found nothing while a hand was in play.
        pair_misses: ``auto``: hand runs in a row that looked for two hands because both
            wrists were in view and found fewer.
        pair_age: ``auto``: frames since a hand run last looked for two hands (None:
            never).
        motion: the body's motion between the last two pose runs (:func:`body_motion`;
            None: unknown).
    """

    pose_age: int | None = None
    hands_age: int | None = None
    person: bool = False
    hands_found: int = 0
    hands_changed: bool = False
    misses: int = 0
    motion: float | None = None
    pair_misses: int = 0
    pair_age: int | None = None


@dataclass(frozen=True)
class StagePlan:
    """The stages to run on one frame, and why (``reason`` names the rule).

    ``max_hands``: how many hands the hand stage looks for (1 or 2, :func:`hands_wanted`;
    ``pair_reason`` names the rule). A front end whose hand stage costs the same either way
    may look for two.
    """

    pose: bool
    hands: bool
    reason: str
    in_play: bool = False
    max_hands: int = 2
    pair_reason: str = ""


def hands_in_play(pose: np.ndarray | None, visibility: np.ndarray | None,
                  policy: FrontEndPolicy) -> bool:
    """Whether the body says a hand is in view and raised.

    Args:
        pose: ``(33, >=2)`` normalised pose landmarks (x right, y down), or None.
        visibility: ``(33,)`` pose visibility (None: all 1).
        policy: ``min_visibility`` and ``margin``.

    Returns:
        True when, on either side, the wrist is visible, inside the image (up to
        ``margin``) and higher than its elbow or than the middle of the torso (halfway
        from the shoulder to the hip). A relaxed arm hanging at the side is in view but
        not raised, and is checked at the lower rate only.
    """
    if pose is None or len(pose) < N_POSE:
        return False
    vis = np.ones(N_POSE, np.float32) if visibility is None else np.asarray(visibility)
    lo, hi = -policy.margin, 1.0 + policy.margin
    for shoulder, elbow, wrist, hip in _SIDES:
        x, y = float(pose[wrist, 0]), float(pose[wrist, 1])
        if vis[wrist] < policy.min_visibility or not (lo <= x <= hi and lo <= y <= hi):
            continue
        if y < float(pose[elbow, 1]):
            return True
        if vis[hip] >= policy.min_visibility and vis[shoulder] >= policy.min_visibility:
            if y < 0.5 * (float(pose[shoulder, 1]) + float(pose[hip, 1])):
                return True
    return False


def wrists_in_view(pose: np.ndarray | None, visibility: np.ndarray | None,
                   policy: FrontEndPolicy) -> int:
    """How many wrists (0-2) the body shows visible (``min_visibility``) and inside the
    image (up to ``margin``); 0 without a body. ``pose``: ``(33, >=2)`` normalised."""
    if pose is None or len(pose) < N_POSE:
        return 0
    vis = np.ones(N_POSE, np.float32) if visibility is None else np.asarray(visibility)
    lo, hi = -policy.margin, 1.0 + policy.margin
    return sum(int(vis[w] >= policy.min_visibility and lo <= float(pose[w, 0]) <= hi
                   and lo <= float(pose[w, 1]) <= hi) for w in (L_WRIST, R_WRIST))


def hands_wanted(policy: FrontEndPolicy, state: StageState, pose: np.ndarray | None = None,
                 visibility: np.ndarray | None = None) -> tuple[int, str]:
    """How many hands a hand run looks for on this frame, and the rule (module doc).

    Args:
        policy: the routed task's policy (only ``auto`` ever looks for one).
        state: what the previous frames left.
        pose, visibility: the freshest body (as for :func:`decide`), or None.

    Returns:
        ``(1 or 2, reason)``.
    """
    if policy.task != "auto":
        return 2, "two hands"
    if state.hands_found >= 2:
        return 2, "two hands tracked"
    if pose is None:
        return 2, "no body"
    if wrists_in_view(pose, visibility, policy) < 2:
        return 1, "one wrist in view or none"
    if state.pair_misses < policy.give_up_after:
        return 2, "both wrists in view"
    if _due(state.pair_age, policy.hand_every):
        return 2, f"both wrists in view, every {policy.hand_every} frames"
    return 1, "both wrists in view, second hand not found lately"


def torso_size(pose: np.ndarray, visibility: np.ndarray | None = None,
               min_visibility: float = 0.5) -> float | None:
    """The body's size in the preprocessing's ``torso`` sense
    (:func:`edge.core.preprocess.body_sizes` of one frame, a joint counting when it is
    ``min_visibility`` visible), or None without both shoulders (``pose``: ``(33, >=2)``;
    x, y only are used)."""
    vis = np.ones(N_POSE, np.float32) if visibility is None else np.asarray(visibility)
    # mp75's body joints are MediaPipe's 33 in order, so its shoulder and hip indices
    # address the pose alone.
    xy = np.asarray(pose, np.float64)[None, :N_POSE, :2]
    size, body = body_sizes(xy, (vis[:N_POSE] >= min_visibility)[None], MP75, "torso")
    return float(size[0]) if body[0] and size[0] > 1e-6 else None


def body_motion(before: tuple[np.ndarray, np.ndarray], after: tuple[np.ndarray, np.ndarray],
                frames: int, min_visibility: float = 0.5) -> float | None:
    """How fast the body moved between two pose runs, in torso sizes per frame.

    Args:
        before, after: ``(33, >=2)`` joints and ``(33,)`` visibility of the two runs.
        frames: frames from the first run to the second (>= 1).
        min_visibility: a joint counts when it is this visible in both runs.

    Returns:
        The largest move of :data:`MOTION_JOINTS` visible in both, divided by the torso
        size of the second run (:func:`torso_size`) and by ``frames``; None when it cannot
        be told (no torso, no joint visible in both).
    """
    size = torso_size(after[0], after[1], min_visibility)
    sel = list(MOTION_JOINTS)
    seen = (np.asarray(before[1])[sel] >= min_visibility) & \
        (np.asarray(after[1])[sel] >= min_visibility)
    if size is None or not seen.any():
        return None
    move = np.linalg.norm(np.asarray(after[0], np.float64)[sel, :2]
                          - np.asarray(before[0], np.float64)[sel, :2], axis=1)
    return float(move[seen].max()) / size / max(int(frames), 1)


def _due(age: int | None, every: int) -> bool:
    return age is None or age + 1 >= every


def pose_due(policy: FrontEndPolicy, state: StageState) -> tuple[bool, str]:
    """Whether the pose stage runs on this frame (decided before any stage runs)."""
    if policy.task not in ("gesture", "auto"):
        return True, "every frame"
    if state.pose_age is None or not state.person:
        return True, "no person known"
    if state.hands_changed:
        return True, "hands lost or found"
    if policy.task == "auto":
        if state.motion is None:
            return True, "body motion unknown"
        if state.motion >= policy.still:
            if _due(state.pose_age, policy.moving_every):
                return True, "body moving"
            return False, "body moving, carried"
    every = policy.still_every if policy.task == "auto" else policy.pose_every
    if _due(state.pose_age, every):
        return True, f"every {every} frames"
    return False, "hands tracked" if policy.task == "gesture" else "body still"


def decide(policy: FrontEndPolicy, state: StageState, pose: np.ndarray | None = None,
           visibility: np.ndarray | None = None) -> StagePlan:
    """The stages to run on a frame.

    Args:
        policy: the routed task's policy.
        state: what the previous frames left (:func:`advance`).
        pose, visibility: the freshest body: this frame's when :func:`pose_due` said run
            (the pose runs first), else the carried one; None when none is known.

    Returns:
        The plan; ``plan.pose`` equals :func:`pose_due`'s answer.
    """
    run_pose, why = pose_due(policy, state)
    if policy.task == "full":
        return StagePlan(True, True, "full")
    if policy.task == "action":
        return StagePlan(True, False, "action: no hands")
    if policy.task == "gesture":
        return StagePlan(run_pose, True, f"gesture: pose {why}" if run_pose
                         else f"gesture: pose skipped, {why}")
    in_play = hands_in_play(pose, visibility, policy)
    body = f"auto: pose {why}" if run_pose else f"auto: pose skipped, {why}"
    wanted, pair = hands_wanted(policy, state, pose, visibility)
    if state.hands_found > 0:
        why_hands = "hands tracked"
    elif in_play and state.misses < policy.give_up_after:
        why_hands = "hand in play"
    elif _due(state.hands_age, policy.hand_every):
        why_hands = f"hands every {policy.hand_every} frames"
    else:
        return StagePlan(run_pose, False, f"{body}; no hand in play" if not in_play
                         else f"{body}; in play, none found lately", in_play)
    return StagePlan(run_pose, True, f"{body}; {why_hands}", in_play, wanted, pair)


def advance(state: StageState, plan: StagePlan, *, person: bool, hands_found: int,
            motion: float | None = None) -> StageState:
    """The state after a frame run by ``plan`` (``person``/``hands_found``: what the stages
    that ran found; ``motion``: the body's motion from the previous pose run to this one,
    :func:`body_motion`; all ignored for a stage that did not run)."""
    def older(age: int | None) -> int | None:
        return None if age is None else age + 1

    new = replace(state, pose_age=0 if plan.pose else older(state.pose_age),
                  hands_age=0 if plan.hands else older(state.hands_age),
                  pair_age=older(state.pair_age))
    if plan.pose:
        new = replace(new, person=person, motion=motion if person else None)
    if plan.hands:
        misses = state.misses + 1 if (plan.in_play and hands_found == 0) else 0
        new = replace(new, hands_found=hands_found,
                      hands_changed=hands_found != state.hands_found and not plan.pose,
                      misses=misses)
        if plan.max_hands >= 2:
            # Only a look for two because both wrists were in view can miss the second.
            pair_misses = (state.pair_misses + 1 if hands_found < 2 and
                           plan.pair_reason.startswith("both wrists") else 0)
            new = replace(new, pair_age=0, pair_misses=pair_misses)
    return new


class StageRouter:
    """The policy's state and the carried joints of one front end (not thread-safe).

    A front end calls :meth:`plan_pose`, runs the pose when told, calls :meth:`plan`
    with the freshest body, runs the hands when told, and hands the merged frame to
    :meth:`finish`, which fills the skipped stage's joints (carried up to ``max_age``
    frames, else masked) and advances the state.
    """

    def __init__(self, policy: FrontEndPolicy) -> None:
        self.policy = policy
        self.state = StageState()
        self._pose: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._hands: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        # (33, 3) per-frame speed of the pose between its last two runs (0 where a joint
        # was not visible in both); kept only when the policy extrapolates.
        self._pose_speed: np.ndarray | None = None
        self.counts = {"pose": 0, "hands": 0, "frames": 0}

    def reset(self) -> None:
        self.state = StageState()
        self._pose = self._hands = self._pose_speed = None
        self.counts = {"pose": 0, "hands": 0, "frames": 0}

    def plan_pose(self) -> bool:
        return pose_due(self.policy, self.state)[0]

    def carried_pose(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(33, 3)`` joints and ``(33,)`` visibility of the last pose run that found a
        person and is young enough to carry (its joints moved on to this frame when the
        policy extrapolates), else None."""
        if self._pose is None or self.state.pose_age is None:
            return None
        if self.state.pose_age + 1 > self.policy.max_age or not self._pose[2].any():
            return None
        return self._moved(self.state.pose_age + 1), self._pose[1]

    def _moved(self, age: int) -> np.ndarray:
        """The last pose run's ``(33, 3)`` joints as carried ``age`` frames on: held, or
        moved on at its last speed when the policy extrapolates."""
        assert self._pose is not None
        if not self.policy.extrapolate or self._pose_speed is None:
            return self._pose[0]
        return (self._pose[0] + age * self._pose_speed).astype(self._pose[0].dtype)

    def plan(self, pose: np.ndarray | None, visibility: np.ndarray | None) -> StagePlan:
        return decide(self.policy, self.state, pose, visibility)

    def finish(self, plan: StagePlan, joints: np.ndarray, mask: np.ndarray,
               visibility: np.ndarray) -> tuple[int, int]:
        """Fill the skipped stages of one merged frame in place; returns the ages
        ``(pose_age, hands_age)``: 0 measured now, k carried from k frames ago, -1 masked.

        Args:
            plan: what ran.
            joints: ``(75, 3)``; mask: ``(75,)``; visibility: ``(75,)`` -- the merged
                frame, with the stages that ran filled and the others empty.
        """
        motion = None
        if plan.pose and self._pose is not None and self.state.pose_age is not None \
                and self._pose[2].any() and mask[:N_POSE].any():
            motion = body_motion(self._pose[:2], (joints[:N_POSE], visibility[:N_POSE]),
                                 self.state.pose_age + 1, self.policy.min_visibility)
        if plan.pose and self.policy.extrapolate:
            speed = None
            if self._pose is not None and self.state.pose_age is not None:
                # As body_motion: a joint moves on only where both runs saw it (the live
                # front ends mark every joint of a found person present; a guessed one,
                # such as a leg out of the image, would move on at its jitter).
                mv = self.policy.min_visibility
                both = (self._pose[2] & mask[:N_POSE] & (self._pose[1] >= mv)
                        & (visibility[:N_POSE] >= mv))[:, None]
                speed = np.where(both, (joints[:N_POSE] - self._pose[0])
                                 / (self.state.pose_age + 1), 0.0).astype(np.float32)
            self._pose_speed = speed
        ages = []
        for ran, cut, name in ((plan.pose, slice(0, N_POSE), "_pose"),
                               (plan.hands, HAND_SLICE, "_hands")):
            age = 0
            if ran:
                setattr(self, name, (joints[cut].copy(), visibility[cut].copy(),
                                     mask[cut].copy()))
            else:
                last = getattr(self, name)
                prev = self.state.pose_age if name == "_pose" else self.state.hands_age
                age = -1 if (last is None or prev is None) else prev + 1
                if 0 < age <= self.policy.max_age and last[2].any():
                    joints[cut], visibility[cut], mask[cut] = \
                        self._moved(age) if name == "_pose" else last[0], last[1], last[2]
                else:
                    age = -1
                    joints[cut], visibility[cut], mask[cut] = 0.0, 0.0, False
            ages.append(age)
        self.counts["frames"] += 1
        self.counts["pose"] += int(plan.pose)
        self.counts["hands"] += int(plan.hands)
        hands = int(mask[_LEFT_HAND].any()) + int(mask[_RIGHT_HAND].any())
        self.state = advance(self.state, plan, person=bool(mask[:N_POSE].any()),
                             hands_found=hands, motion=motion)
        return ages[0], ages[1]


def route_recording(frames: np.ndarray, mask: np.ndarray, policy: FrontEndPolicy
                    ) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """A recording as the front end would have produced it under ``policy``.

    A stage that runs yields the recorded joints of its slots (what the full front end
    measured); a skipped one is filled by :class:`StageRouter`. A hand run that looks for
    one hand (``StagePlan.max_hands``) keeps one recorded hand: the slot the previous frame
    had, else the left one. The pose's visibility is
    not recorded, so a present joint counts as visible. What this cannot show: that a
    tracker skipped for some frames finds the same joints as one that ran on all of them
    (the live measurement on video covers that).

    Args:
        frames: ``(T, 75, C)`` recorded joints; mask: ``(T, 75)``.
        policy: the policy to replay.

    Returns:
        ``(frames, mask, counts)``: the routed copy and how often each stage ran.
    """
    router = StageRouter(policy)
    out_f = np.zeros_like(frames)
    out_m = np.zeros_like(mask, dtype=bool)
    c = frames.shape[2]
    for i in range(len(frames)):
        joints = np.zeros((NUM_JOINTS, 3), np.float32)
        joints[:, :c] = frames[i]
        vis = mask[i].astype(np.float32)
        m = np.zeros(NUM_JOINTS, bool)
        run_pose = router.plan_pose()
        if run_pose:
            m[:N_POSE] = mask[i, :N_POSE]
            body = (joints[:N_POSE], vis[:N_POSE]) if m[:N_POSE].any() else None
        else:
            body = router.carried_pose()
        plan = router.plan(*(body if body is not None else (None, None)))
        if plan.hands:
            m[HAND_SLICE] = mask[i, HAND_SLICE]
            if plan.max_hands == 1 and m[_LEFT_HAND].any() and m[_RIGHT_HAND].any():
                keep_right = i > 0 and out_m[i - 1, _RIGHT_HAND].any() \
                    and not out_m[i - 1, _LEFT_HAND].any()
                m[_LEFT_HAND if keep_right else _RIGHT_HAND] = False
        joints[~m] = 0.0
        vis[~m] = 0.0
        router.finish(plan, joints, m, vis)
        out_f[i] = joints[:, :c]
        out_m[i] = m
    return out_f, out_m, dict(router.counts)


__all__ = ["FRONT_END_TASKS", "FrontEndPolicy", "PolicyError", "StagePlan", "StageRouter",
           "StageState", "advance", "body_motion", "decide", "hands_in_play", "hands_wanted",
           "policy_for_task", "pose_due", "route_recording", "torso_size", "wrists_in_view"]
