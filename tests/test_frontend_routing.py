"""The front end's task routing (edge/frontend/policy.py) on synthetic landmark frames."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edge.core.layout import L_WRIST, N_POSE, NUM_JOINTS, R_WRIST
from edge.frontend.policy import (
    FrontEndPolicy,
    PolicyError,
    StagePlan,
    StageRouter,
    StageState,
    advance,
    body_motion,
    decide,
    hands_in_play,
    hands_wanted,
    policy_for_task,
    route_recording,
    torso_size,
    wrists_in_view,
)

L_ELBOW, R_ELBOW = 13, 14


def body(left_wrist_y: float = 0.62, right_wrist_y: float = 0.62) -> np.ndarray:
    """A standing person: shoulders at y 0.3, elbows 0.45, hips 0.6 (y down)."""
    pose = np.full((N_POSE, 3), 0.5, np.float32)
    pose[[11, 12], 1] = 0.3
    pose[[L_ELBOW, R_ELBOW], 1] = 0.45
    pose[[23, 24], 1] = 0.6
    pose[L_WRIST, 1], pose[R_WRIST, 1] = left_wrist_y, right_wrist_y
    pose[[11, 13, 15, 23], 0] = 0.6
    pose[[12, 14, 16, 24], 0] = 0.4
    return pose


def test_policy_rejects_bad_settings() -> None:
    with pytest.raises(PolicyError, match=r"front-end task 'hands': use one of "
                                          r"\['full', 'action', 'gesture', 'auto'\]"):
        FrontEndPolicy(task="hands")
    with pytest.raises(PolicyError, match="front-end policy: pose_every must be >= 1, got 0"):
        FrontEndPolicy(pose_every=0)
    with pytest.raises(PolicyError, match="front-end policy: max_age must be >= 0, got -1"):
        FrontEndPolicy(max_age=-1)


@pytest.mark.parametrize("task, want", [("auto", "auto"), ("full", "full"),
                                        ("action", "action"), ("gesture", "gesture"),
                                        ("wave", "full")])
def test_policy_for_task(task: str, want: str) -> None:
    assert policy_for_task(task).task == want


def test_policy_for_task_follows_the_router_names() -> None:
    assert policy_for_task("body", body_task="body").task == "action"
    assert policy_for_task("signs", hand_task="signs").task == "gesture"
    assert policy_for_task("action", body_task="body").task == "full"


@pytest.mark.parametrize("left, right, vis, want", [
    (0.62, 0.62, 1.0, False),   # both arms hanging below the elbow and mid-torso
    (0.40, 0.62, 1.0, True),    # left wrist above its elbow
    (0.44, 0.62, 1.0, True),    # just above the elbow (0.45)
    (0.62, 0.20, 1.0, True),    # right hand raised
    (0.20, 0.20, 0.3, False),   # raised but not visible
])
def test_hands_in_play(left: float, right: float, vis: float, want: bool) -> None:
    v = np.ones(N_POSE, np.float32)
    v[[L_WRIST, R_WRIST]] = vis
    assert hands_in_play(body(left, right), v, FrontEndPolicy(task="auto")) is want


def test_hands_in_play_mid_torso_and_outside_the_image() -> None:
    pol = FrontEndPolicy(task="auto")
    pose = body(0.42, 0.62)
    pose[L_ELBOW, 1] = 0.4  # wrist below its elbow, but above mid-torso (0.45)
    assert hands_in_play(pose, None, pol)
    pose = body(0.2, 0.62)
    pose[L_WRIST, 0] = 1.1  # raised, but outside the picture
    assert not hands_in_play(pose, None, pol)
    assert not hands_in_play(None, None, pol)


def run_plans(policy: FrontEndPolicy, found: list[int], person: bool = True,
              pose: np.ndarray | None = None, motion: list[float | None] | None = None
              ) -> list[tuple[bool, bool]]:
    """(pose, hands) run per frame when the hand stage finds ``found[i]`` hands and a pose
    run measures the body's motion ``motion[i]`` (None: unknown)."""
    state, out = StageState(), []
    for i, n in enumerate(found):
        plan = decide(policy, state, pose if person else None)
        out.append((plan.pose, plan.hands))
        state = advance(state, plan, person=person, hands_found=n,
                        motion=None if motion is None else motion[i])
    return out


def test_full_and_action() -> None:
    assert run_plans(FrontEndPolicy(task="full"), [0, 1, 2]) == [(True, True)] * 3
    assert run_plans(FrontEndPolicy(task="action"), [0, 0, 0]) == [(True, False)] * 3


def test_gesture_runs_the_pose_every_third_frame_and_when_the_hands_change() -> None:
    pol = FrontEndPolicy(task="gesture", pose_every=3)
    got = run_plans(pol, [2, 2, 2, 2, 2, 2, 2])
    assert [p for p, _ in got] == [True, False, False, True, False, False, True]
    assert all(h for _, h in got)
    # a hand lost on a frame without the pose: the pose runs on the next one
    got = run_plans(pol, [2, 1, 1, 1, 1, 1])
    assert [p for p, _ in got] == [True, False, True, False, False, True]
    # no person: the pose runs on every frame
    assert [p for p, _ in run_plans(pol, [2, 2, 2], person=False)] == [True, True, True]


def test_auto_hands_follow_the_body() -> None:
    pol = FrontEndPolicy(task="auto", hand_every=4, give_up_after=3)
    hanging = run_plans(pol, [0] * 9, pose=body())
    assert [h for _, h in hanging] == [True, False, False, False, True, False, False, False,
                                       True]
    assert all(p for p, _ in hanging)
    # raised but nothing found: three tries, then the lower rate
    raised = run_plans(pol, [0] * 8, pose=body(0.2, 0.62))
    assert [h for _, h in raised] == [True, True, True, False, False, False, True, False]
    # a hand found (the periodic run) keeps the hand stage on while it is tracked
    tracked = run_plans(pol, [1, 1, 1, 0, 0], pose=body())
    assert [h for _, h in tracked] == [True, True, True, True, False]


def test_auto_carries_the_pose_while_the_body_is_still() -> None:
    pol = FrontEndPolicy(task="auto", still_every=3, still=0.02, hand_every=4)
    assert FrontEndPolicy().still == 0.01
    assert (FrontEndPolicy().still_every, FrontEndPolicy().pose_every) == (2, 3)
    # the default: every 2nd frame while still
    got = run_plans(FrontEndPolicy(task="auto"), [0] * 6, pose=body(), motion=[None] + [0.0] * 5)
    assert [p for p, _ in got] == [True, True, False, True, False, True]
    # motion unknown until a pose run measured it; then still: every 3rd frame
    got = run_plans(pol, [0] * 8, pose=body(), motion=[None] + [0.01] * 7)
    assert [p for p, _ in got] == [True, True, False, False, True, False, False, True]
    assert [h for _, h in got] == [True, False, False, False, True, False, False, False]
    # moving (>= still): every frame, and again every 3rd once it is still
    got = run_plans(pol, [0] * 7, pose=body(), motion=[None, 0.02, 0.05, 0.01, 0.0, 0.0, 0.0])
    assert [p for p, _ in got] == [True, True, True, True, False, False, True]
    # no person known: every frame, whatever the motion
    got = run_plans(pol, [0] * 4, person=False, motion=[0.0] * 4)
    assert [p for p, _ in got] == [True] * 4
    # a hand (in play) found on a frame whose pose was carried: the pose runs on the next
    got = run_plans(pol, [0, 0, 1, 1, 1, 1, 1], pose=body(0.2), motion=[None] + [0.0] * 6)
    assert got == [(True, True), (True, True), (False, True), (True, True), (False, True),
                   (False, True), (True, True)]


def test_decide_names_the_rule() -> None:
    pol = FrontEndPolicy(task="auto")
    state = StageState(pose_age=0, hands_age=0, person=True, motion=0.001)
    plan = decide(pol, state, body())
    assert plan == StagePlan(False, False, "auto: pose skipped, body still; no hand in play")
    plan = decide(pol, replace(state, motion=0.3), body(0.2))
    assert plan == StagePlan(True, True, "auto: pose body moving; hand in play", True, 2,
                             "both wrists in view")
    vis = np.ones(N_POSE, np.float32)
    vis[R_WRIST] = 0.1
    plan = decide(pol, replace(state, motion=0.3), body(0.2), vis)
    assert plan == StagePlan(True, True, "auto: pose body moving; hand in play", True, 1,
                             "one wrist in view or none")


def test_wrists_in_view() -> None:
    pol = FrontEndPolicy(task="auto")
    vis = np.ones(N_POSE, np.float32)
    assert wrists_in_view(body(), vis, pol) == 2  # hanging arms count: in view, not in play
    assert wrists_in_view(body(), None, pol) == 2
    vis[L_WRIST] = 0.4
    assert wrists_in_view(body(), vis, pol) == 1
    pose = body()
    pose[R_WRIST, 0] = 1.03  # outside the image by more than the margin (0.02)
    assert wrists_in_view(pose, vis, pol) == 0
    pose[R_WRIST, 0] = 1.01
    assert wrists_in_view(pose, vis, pol) == 1
    assert wrists_in_view(None, None, pol) == 0


def test_hands_wanted_rules() -> None:
    pol = FrontEndPolicy(task="auto", hand_every=4, give_up_after=3)
    one = np.ones(N_POSE, np.float32)
    one[R_WRIST] = 0.0
    s = StageState(pose_age=0, hands_age=0, person=True, hands_found=1)
    assert hands_wanted(FrontEndPolicy(task="full"), s, body(), one) == (2, "two hands")
    assert hands_wanted(FrontEndPolicy(task="gesture"), s, body(), one) == (2, "two hands")
    assert hands_wanted(pol, s, body(), one) == (1, "one wrist in view or none")
    assert hands_wanted(pol, s, None, None) == (2, "no body")
    assert hands_wanted(pol, replace(s, hands_found=2), body(), one) == \
        (2, "two hands tracked")
    assert hands_wanted(pol, s, body(), None) == (2, "both wrists in view")


def test_auto_looks_for_a_second_hand_only_while_it_may_be_found() -> None:
    """Both wrists in view, one hand found: two are looked for 3 times, then on every 4th
    frame (6, 10); two found (10, 11): two while both are tracked, then 3 more tries."""
    pol = FrontEndPolicy(task="auto", hand_every=4, give_up_after=3)
    state, wanted = StageState(), []
    found = [1] * 10 + [2, 2, 1, 1, 1, 1, 1]
    for n in found:
        plan = decide(pol, state, body(0.2, 0.2))
        assert plan.hands
        wanted.append(plan.max_hands)
        state = advance(state, plan, person=True, hands_found=n, motion=0.05)
    assert wanted == [2, 2, 2, 1, 1, 1, 2, 1, 1, 1, 2, 2, 2, 2, 2, 2, 1]
    assert state.pair_misses == 3


def test_torso_size_and_body_motion() -> None:
    pose = body()
    assert torso_size(pose) == pytest.approx(0.2)  # shoulders 0.2 apart, torso 0.3 long
    pose[[23, 24], 1] = 0.7  # a long torso: 0.6 x 0.4 = 0.24 > the shoulder width
    assert torso_size(pose) == pytest.approx(0.24)
    vis = np.ones(N_POSE, np.float32)
    vis[12] = 0.1
    assert torso_size(pose, vis) is None
    before, after = body(), body()
    after[:, 0] += 0.004          # the whole body 0.02 torso to the right ...
    after[L_WRIST, 1] -= 0.012    # ... and the left wrist 0.06 torso up as well
    after[0, 1] += 0.5            # the nose does not count
    ones = np.ones(N_POSE, np.float32)
    got = body_motion((before, ones), (after, ones), frames=2)
    assert got == pytest.approx(np.hypot(0.004, 0.012) / 0.2 / 2, rel=1e-5)  # float32 input
    hidden = ones.copy()
    hidden[L_WRIST] = 0.2         # not visible in one run: not counted
    assert body_motion((before, hidden), (after, ones), frames=2) == pytest.approx(0.01, rel=1e-5)
    assert body_motion((before, ones), (after, np.zeros(N_POSE, np.float32)), 1) is None


def test_advance_counts_ages_and_misses() -> None:
    s = advance(StageState(), StagePlan(True, True, "", in_play=True), person=True,
                hands_found=0)
    assert (s.pose_age, s.hands_age, s.person, s.misses) == (0, 0, True, 1)
    s = advance(s, StagePlan(True, False, ""), person=False, hands_found=2)
    assert (s.pose_age, s.hands_age, s.person, s.hands_found, s.misses) == (0, 1, False, 0, 1)


def recording(t: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    frames = rng.random((t, NUM_JOINTS, 3)).astype(np.float32)
    frames[:, :N_POSE] = body()  # a still body, arms hanging
    frames[:, :N_POSE, 0] += np.arange(t, dtype=np.float32)[:, None] * 0.01
    mask = np.ones((t, NUM_JOINTS), bool)
    return frames, mask


def test_route_recording_action_masks_the_hands() -> None:
    frames, mask = recording()
    f, m, counts = route_recording(frames, mask, FrontEndPolicy(task="action"))
    assert counts == {"pose": 12, "hands": 0, "frames": 12}
    assert not m[:, N_POSE:].any() and not f[:, N_POSE:].any()
    np.testing.assert_array_equal(f[:, :N_POSE], frames[:, :N_POSE])


def test_route_recording_gesture_carries_the_pose() -> None:
    frames, mask = recording()
    f, m, counts = route_recording(frames, mask, FrontEndPolicy(task="gesture", pose_every=3))
    assert counts == {"pose": 4, "hands": 12, "frames": 12}
    assert m.all()
    np.testing.assert_array_equal(f[:, N_POSE:], frames[:, N_POSE:])
    for i in range(12):  # pose measured on 0, 3, 6, 9 and carried in between
        np.testing.assert_array_equal(f[i, :N_POSE], frames[i - i % 3, :N_POSE])


def test_route_recording_masks_a_pose_older_than_max_age() -> None:
    frames, mask = recording()
    f, m, _ = route_recording(frames, mask,
                              FrontEndPolicy(task="gesture", pose_every=3, max_age=1))
    assert [bool(m[i, :N_POSE].any()) for i in range(4)] == [True, True, False, True]
    assert [bool(m[i, N_POSE:].all()) for i in range(4)] == [True] * 4
    assert not f[2, :N_POSE].any()


def test_route_recording_auto_carries_a_still_body() -> None:
    frames, mask = recording()
    frames[:, :N_POSE] = body()
    frames[6:, :N_POSE, 0] += np.arange(6, dtype=np.float32)[:, None] * 0.02  # moves from 6
    mask[:, N_POSE:] = False
    f, m, counts = route_recording(frames, mask, FrontEndPolicy(task="auto", hand_every=4,
                                                                still_every=3))
    # 0 (no person yet), 1 (motion unknown), 4 (every 3rd), then 7: the move (0.1 torso
    # per frame from 6 on) is seen at the first run after it began (4 -> 7: 0.033 torso per
    # frame), and from 8 on the pose runs on every frame
    ran = [i for i in range(12) if f[i, :N_POSE].tobytes() == frames[i, :N_POSE].tobytes()
           and i not in (2, 3, 5, 6)]
    assert counts == {"pose": 8, "hands": 3, "frames": 12}
    assert ran == [0, 1, 4, 7, 8, 9, 10, 11]
    for i, src in ((2, 1), (3, 1), (5, 4), (6, 4)):  # carried from the last run
        np.testing.assert_array_equal(f[i, :N_POSE], frames[src, :N_POSE])
    assert m[:, :N_POSE].all() and not m[:, N_POSE:].any()


def test_auto_moving_every_thins_the_pose_of_a_moving_body() -> None:
    pol = FrontEndPolicy(task="auto", moving_every=2, still_every=3, still=0.02)
    assert (FrontEndPolicy().moving_every, FrontEndPolicy().extrapolate) == (1, False)
    # moving: every 2nd frame; still: every 3rd; motion unknown: every frame
    got = run_plans(pol, [0] * 8, pose=body(), motion=[None, 0.05, 0.05, 0.05, 0.05, 0.0,
                                                        0.0, 0.0])
    assert [p for p, _ in got] == [True, True, False, True, False, True, False, False]
    state = StageState(pose_age=0, hands_age=0, person=True, motion=0.05)
    assert decide(pol, state, body()).reason.startswith("auto: pose skipped, body moving, "
                                                        "carried")
    with pytest.raises(PolicyError, match="front-end policy: moving_every must be >= 1, got 0"):
        FrontEndPolicy(moving_every=0)


@pytest.mark.parametrize("extrapolate", [False, True])
def test_route_recording_extrapolates_a_carried_pose(extrapolate: bool) -> None:
    frames, mask = recording()
    frames[:, :N_POSE] = body()
    # the whole body drifts right by 0.03 per frame (0.15 torso sizes: moving)
    frames[:, :N_POSE, 0] += np.arange(12, dtype=np.float32)[:, None] * 0.03
    mask[:, N_POSE:] = False
    mask[:, 5] = False  # a joint never seen: never moved, never unmasked
    mask[3, 7] = False  # seen by the run before, not by the run it is carried from
    mask[1, 8] = False  # seen by the run it is carried from, not by the run before
    pol = FrontEndPolicy(task="auto", moving_every=2, extrapolate=extrapolate)
    f, m, counts = route_recording(frames, mask, pol)
    # runs on 0 (no person known yet), 1 (motion unknown), then every 2nd frame: 3, 5, ...
    assert counts["pose"] == 7
    for i in (2, 4, 6, 8, 10):  # carried one frame from i - 1
        seen = mask[i - 1, :N_POSE]
        want = frames[i if extrapolate else i - 1, :N_POSE].copy()
        # a joint one of the two runs missed has no speed and is held: joint 8 (run 1)
        # on frame 4, joint 7 (run 3) on frame 6
        for k, held in ((4, 8), (6, 7)):
            if i == k:
                want[held] = frames[k - 1, held]
        np.testing.assert_allclose(f[i, :N_POSE][seen], want[seen], atol=1e-6)
        np.testing.assert_array_equal(m[i, :N_POSE], seen)
        assert not f[i, 5].any()
    assert not f[4, 7].any() and not m[4, 7]
    if extrapolate:  # a body that stops is overshot by one frame's move, then held
        frames2 = frames.copy()
        frames2[4:, :N_POSE, 0] = frames[3, :N_POSE, 0]
        f2, _, _ = route_recording(frames2, mask, pol)
        np.testing.assert_allclose(f2[4, 0, 0], frames2[3, 0, 0] + 0.03, atol=1e-6)
        seen = mask[5, :N_POSE]
        np.testing.assert_array_equal(f2[6, :N_POSE][seen], frames2[5, :N_POSE][seen])


@pytest.mark.parametrize("extrapolate", [False, True])
def test_carried_pose_places_the_hands_where_the_pose_is_carried(extrapolate: bool) -> None:
    router = StageRouter(FrontEndPolicy(task="auto", moving_every=2, extrapolate=extrapolate))
    poses = [body() + np.float32(0.03 * i) * np.eye(1, 3, 0, np.float32) for i in range(3)]
    for pose in poses[:2]:  # two pose runs: no person known, then motion unknown
        assert router.plan_pose()
        joints = np.zeros((NUM_JOINTS, 3), np.float32)
        joints[:N_POSE] = pose
        m = np.zeros(NUM_JOINTS, bool)
        m[:N_POSE] = True
        plan = router.plan(pose, np.ones(N_POSE, np.float32))
        router.finish(replace(plan, hands=False), joints, m, m.astype(np.float32))
    assert not router.plan_pose()  # moving, every 2nd frame: carried
    carried = router.carried_pose()
    assert carried is not None
    np.testing.assert_allclose(carried[0], poses[2] if extrapolate else poses[1], atol=1e-6)


def test_route_recording_auto_and_full() -> None:
    frames, mask = recording()
    f, m, counts = route_recording(frames, mask, FrontEndPolicy(task="full"))
    np.testing.assert_array_equal(f, frames)
    assert m.all() and counts["hands"] == 12
    # hands present in every frame: the first run finds them, tracking keeps them on
    f, m, counts = route_recording(frames, mask, FrontEndPolicy(task="auto"))
    np.testing.assert_array_equal(f, frames)
    assert counts == {"pose": 12, "hands": 12, "frames": 12}
    # no hands recorded and arms hanging: every 4th frame
    mask[:, N_POSE:] = False
    f, m, counts = route_recording(frames, mask, FrontEndPolicy(task="auto", hand_every=4))
    assert counts["hands"] == 3 and not m[:, N_POSE:].any()


def test_route_recording_auto_keeps_one_hand_when_it_looks_for_one() -> None:
    frames, mask = recording()
    frames[:, :N_POSE] = body(0.2, 0.2)
    mask[:, R_WRIST] = False  # one wrist seen: auto looks for one hand
    mask[:4, N_POSE:N_POSE + 21] = False  # the right hand alone first, then both
    f, m, counts = route_recording(frames, mask, FrontEndPolicy(task="auto"))
    assert counts["hands"] == 12
    # the hand it tracks (the right one) stays; the left one is not looked for
    assert not m[:, N_POSE:N_POSE + 21].any() and m[:, N_POSE + 21:].all()
    np.testing.assert_array_equal(f[:, N_POSE + 21:], frames[:, N_POSE + 21:])
    mask[:4, N_POSE:N_POSE + 21] = True  # both from the start: the left slot is kept
    f, m, _ = route_recording(frames, mask, FrontEndPolicy(task="auto"))
    assert m[:, N_POSE:N_POSE + 21].all() and not m[:, N_POSE + 21:].any()
    mask[:, R_WRIST] = True  # both wrists seen: both hands
    f, m, _ = route_recording(frames, mask, FrontEndPolicy(task="auto"))
    assert m[:, N_POSE:].all()


def test_pipeline_picks_the_policy_of_its_task() -> None:
    pytest.importorskip("onnxruntime")
    from edge.assets import bundled_model
    from edge.runtime.pipeline import Pipeline

    for task, want in (("auto", "auto"), ("action", "action"), ("gesture", "gesture")):
        with Pipeline.from_model(bundled_model(), task=task) as pipe:
            assert pipe.front_end_policy().task == want
            assert pipe.front_end_policy(full=True).task == "full"


def test_event_agreement_matches_begins_within_the_tolerance() -> None:
    from types import SimpleNamespace as NS

    from edge.bench.frontend import event_agreement

    def begin(t: float, label: str, task: str = "gesture") -> NS:
        return NS(kind="begin", t=t, task=task, label=label)

    ref = [begin(1.0, "pointL"), begin(3.0, "DbHit"), NS(kind="end", t=2.0, task=None,
                                                          label=None)]
    got = [begin(1.2, "pointL"), begin(3.0, "OutofB"), begin(5.0, "DbHit")]
    wins = ([NS(task="gesture", label="pointL")] * 3,
            [NS(task="gesture", label="pointL")] * 2 + [NS(task="action", label="wave")])
    a = event_agreement(ref, got, wins, tolerance_s=0.3)
    assert (a.matched, a.reference, a.variant, a.windows, a.windows_same) == (1, 2, 3, 3, 2)
    assert a.value == pytest.approx(2 * 1 / 5)
    assert event_agreement(ref, got, tolerance_s=0.1).matched == 0
    assert event_agreement([], []).value == 1.0


def test_open_front_end_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    import edge.frontend.landmarks as landmarks

    got: dict[str, object] = {}

    class Stand:
        def __init__(self, **kw: object) -> None:
            got.update(kw)

    monkeypatch.setitem(landmarks.FRONT_ENDS, "stand", f"{__name__}:Stand")
    monkeypatch.setitem(globals(), "Stand", Stand)
    landmarks.open_front_end("stand", policy="auto", model_dir="m")
    assert got == {"mode": "video", "policy": "auto", "model_dir": "m"}
    with pytest.raises(landmarks.LandmarkerError, match="unknown landmark front end 'x'"):
        landmarks.open_front_end("x")


def test_onnx_front_end_registered_without_importing_onnxruntime(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``onnx`` names the converted-model front end; opening it without its models is
    one LandmarkerError naming the convert command, and importing edge.frontend.landmarks does not
    import onnxruntime (only opening the onnx front end does)."""
    import subprocess
    import sys

    import edge.frontend.landmarks as landmarks

    assert landmarks.FRONT_ENDS["onnx"] == "edge.frontend.onnx_landmarks:OnnxLandmarker"
    code = ("import sys, edge.frontend.landmarks; "
            "print('onnxruntime' in sys.modules, 'edge.frontend.onnx_landmarks' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["False", "False"]
    monkeypatch.setenv("SKELMTL_LANDMARK_ONNX", str(tmp_path))
    with pytest.raises(landmarks.LandmarkerError) as e:
        landmarks.open_front_end("onnx", policy="auto")
    assert str(e.value) == (
        f"{tmp_path}: converted landmark models missing (pose_detector.onnx, "
        "pose_landmarks_detector.onnx, hand_landmarks_detector.onnx); create them once "
        "with 'skelmtl convert-landmarks' (docs/landmarks.md)")


MEGAMIND = Path("/usr/share/doc/opencv-doc/examples/data/Megamind.avi")  # Debian opencv-doc


def megamind_frames(path: Path, n: int) -> list[np.ndarray]:
    cv2 = pytest.importorskip("cv2")
    cap = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < n:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(np.ascontiguousarray(img[:, :, ::-1]))
    cap.release()
    return frames


def check_one_hand_tracking(path: Path) -> None:
    """``auto`` on Megamind's first 40 frames (one hand in view): the hand stage looks for one
    hand with a landmarker made for one, and finds the hand the full front end finds."""
    pytest.importorskip("mediapipe")
    from edge.frontend.landmarks import Landmarker
    from edge.frontend.model_files import ModelFileError

    frames = megamind_frames(path, 40)
    try:
        auto, full = Landmarker(policy="auto", offline=True), Landmarker(offline=True)
    except ModelFileError as e:
        pytest.skip(str(e).splitlines()[0])
    with auto, full:
        assert auto._hand1 is not None and full._hand1 is None
        off = []
        for i, img in enumerate(frames):
            a, f = auto.process(img, i / 25, i), full.process(img, i / 25, i)
            plan = auto.last_plan
            assert plan is not None
            if plan.hands and plan.max_hands == 1 and a.num_hands:
                hands = slice(N_POSE, NUM_JOINTS)
                both = a.mask[hands] & f.mask[hands]
                assert both.sum() == 21, i  # the full front end has this hand in this slot
                off.append(float(np.abs(a.pixels()[hands] - f.pixels()[hands])[both].mean()))
    # 33 such frames (measured); the full front end's palm search on every frame moves the
    # joints by up to 8 px (of 720) on the first frames, then under 2 px
    assert len(off) >= 30 and max(off) < 10.0 and float(np.median(off)) < 1.5, off


@pytest.mark.skipif(not MEGAMIND.is_file(), reason="Debian opencv-doc (Megamind.avi) not "
                                                    "installed")
def test_auto_tracks_one_hand_with_a_one_hand_landmarker() -> None:
    check_one_hand_tracking(MEGAMIND)
