"""The task router: fixed tasks, the task head (smoothed), the hand-motion rule, on synthetic
and real (volleyball referee, MSR Action3D) skeletons."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.core.layout import get_source_layout
from edge.runtime.router import Router, RouterError, hand_motion_rule, motion_stats
from tests.runtime_models import synthetic_frames, tiny_meta, volleyball_sequence


def test_fixed_task_and_single_task() -> None:
    f, m = synthetic_frames(16)
    r = Router(tiny_meta(), "gesture")
    assert r.mode == "fixed" and r.tasks_needed == ("gesture",)
    d = r.before_inference(f, m)
    assert d is not None and (d.task, d.reason) == ("gesture", "fixed")
    single = Router(tiny_meta(("action",)), "auto")
    d = single.before_inference(f, m)
    assert d is not None and (d.task, d.reason) == ("action", "single_task")


def test_unknown_task_is_refused_with_the_model_tasks() -> None:
    with pytest.raises(RouterError, match=r"'dance' is not in this model; it has \['action', "
                                          r"'gesture'\]"):
        Router(tiny_meta(), "dance")


def test_task_head_smoothed_over_windows() -> None:
    r = Router(tiny_meta(), "auto", task_alpha=0.5)
    assert r.mode == "task_head" and r.tasks_needed == ("action", "gesture")
    assert r.before_inference(*synthetic_frames(16)) is None
    d1 = r.from_task_head(np.array([2.0, 0.0]))
    assert d1.task == "action" and d1.task_probs is not None
    assert d1.task_probs["action"] == pytest.approx(1 / (1 + np.exp(-2.0)))
    # One window voting gesture (p=0.73) does not flip an EMA at 0.88 for action.
    d2 = r.from_task_head(np.array([0.0, 1.0]))
    assert d2.task == "action"
    assert d2.task_probs is not None and d2.task_probs["gesture"] == pytest.approx(
        0.5 * (1 / (1 + np.exp(-1.0))) + 0.5 * (1 / (1 + np.exp(2.0))))
    d3 = r.from_task_head(np.array([0.0, 3.0]))
    assert d3.task == "gesture"
    with pytest.raises(RouterError, match="task_logits has 3 values for 2 tasks"):
        r.from_task_head(np.zeros(3))


@pytest.mark.parametrize("kw,task,reason", [
    ({"hands": False}, "action", "rule:few_hands"),
    ({"body": False, "hand_speed": 0.01}, "gesture", "rule:hands_only"),
    ({"hand_speed": 0.05}, "gesture", "rule:hands_move"),
    ({"body_speed": 0.01}, "action", "rule:body_moves"),
    ({"hand_speed": 0.0}, "action", "rule:body_moves"),  # standing still: jitter only
])
def test_hand_motion_rule_on_synthetic_people(kw: dict[str, object], task: str,
                                              reason: str) -> None:
    f, m = synthetic_frames(32, **kw)  # type: ignore[arg-type]
    r = Router(tiny_meta(has_task_head=False), "auto")
    assert r.mode == "rule"
    d = r.before_inference(f, m)
    assert d is not None and (d.task, d.reason) == (task, reason)


def test_motion_stats_values() -> None:
    f = np.zeros((3, 75, 2), np.float32)
    m = np.ones((3, 75), bool)
    f[:, 33:, 0] = np.array([0.0, 1.0, 3.0])[:, None]  # hands move 1 then 2
    f[:, (11, 12, 23, 24, 25, 26, 27, 28), 1] = np.array([0.0, 0.5, 0.5])[:, None]
    m[0, 33:] = False
    s = motion_stats(f, m)
    assert s.hand_fraction == pytest.approx(2 / 3) and s.body_fraction == 1.0
    assert s.hand_energy == pytest.approx(2.0)  # only the pair (1, 2) has hands in both
    assert s.body_energy == pytest.approx(0.25)
    assert hand_motion_rule(s, "g", "a") == ("g", "rule:hands_move")


def test_rule_needs_both_tasks() -> None:
    meta = tiny_meta(has_task_head=False).with_(
        tasks=("action", "gesture"), labels={"action": ("a",), "gesture": ("g",)})
    with pytest.raises(RouterError, match="needs tasks 'hands' and 'action'"):
        Router(meta, "auto", hand_task="hands")


def test_rule_on_real_volleyball_signals(shared_data: Path) -> None:
    """Referee signals (arm and hand motion, trunk still) go to the gesture task.

    Measured over all 50 sequences per class (motion_ratio 1.2): Substi 49/50, pointR 48/50,
    DbHit 41/50, pointL 38/50, OutofB 30/50 (docs/runtime.md). Asserted on the clearest
    classes only.
    """
    r = Router(tiny_meta(has_task_head=False), "auto")
    for label, need in (("Substi", 9), ("pointR", 8)):
        got = []
        for seq in range(1, 11):
            d = r.before_inference(*volleyball_sequence(shared_data, label, seq))
            assert d is not None
            got.append(d.task)
        assert got.count("gesture") >= need, (label, got)


def test_rule_on_real_msr_actions_without_hands(shared_data: Path) -> None:
    """Kinect skeletons carry no hands: the rule sends them to the action task."""
    folder = shared_data / "msr_action3d" / "real_world_coordinates"
    files = sorted(folder.glob("a01_s01_e0*_skeleton3D.txt"))[:2]
    if not files:
        pytest.skip("no MSR Action3D files")
    r = Router(tiny_meta(has_task_head=False), "auto")
    layout = get_source_layout("kinect_v1_msr")
    for path in files:
        raw = np.loadtxt(path).reshape(-1, 20, 4)[:, :, :3]
        frames, mask = layout.to_mp75(raw)
        d = r.before_inference(frames[:32], mask[:32])
        assert d is not None and (d.task, d.reason) == ("action", "rule:few_hands")
