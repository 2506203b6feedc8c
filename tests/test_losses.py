"""Loss weighting and masked task losses against numbers worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.losses import create_weighting, masked_task_losses

TASKS = ["a", "b"]


def _l(a: float, b: float, grad: bool = False) -> dict[str, torch.Tensor]:
    return {"a": torch.tensor(a, requires_grad=grad), "b": torch.tensor(b, requires_grad=grad)}


def test_mean() -> None:
    w = create_weighting("mean", TASKS)
    assert float(w(_l(1.2, 0.4))) == pytest.approx(0.8)  # (1.2 + 0.4) / 2
    assert float(w({"a": torch.tensor(1.2)})) == pytest.approx(0.6)  # b skipped: 1.2 / 2
    w.update_epoch({"a": 1.0, "b": 2.0})
    assert w.weights() == {"a": 1.0, "b": 1.0}
    assert list(w.parameters()) == []


def test_dwa_by_hand() -> None:
    """Epoch losses a: 1.0, 0.5, 0.4; b: 2.0, 1.8, 1.2; T = 2.

    Epochs 0 and 1 use weight 1. Epoch 2: r = (0.5/1.0, 1.8/2.0) = (0.5, 0.9);
    exp(r/2) = (1.2840254, 1.5683122); w = 2 exp(r/2) / sum = (0.9003320, 1.0996680).
    Epoch 3: r = (0.4/0.5, 1.2/1.8) = (0.8, 0.6667); w = (1.0333210, 0.9666790).
    """
    w = create_weighting("dwa", TASKS)
    assert w.weights() == {"a": 1.0, "b": 1.0}
    w.update_epoch({"a": 1.0, "b": 2.0})
    assert w.weights() == {"a": 1.0, "b": 1.0}  # still only one epoch of history
    w.update_epoch({"a": 0.5, "b": 1.8})
    assert w.weights() == pytest.approx({"a": 0.9003320, "b": 1.0996680}, abs=1e-6)
    # total = (w_a L_a + w_b L_b) / K = (0.9003320 * 2 + 1.0996680 * 1) / 2
    assert float(w(_l(2.0, 1.0))) == pytest.approx(1.4501660, abs=1e-6)
    # state dict round trip: a fresh DWA resumes with the same weights and history
    again = create_weighting("dwa", TASKS)
    again.load_state_dict(w.state_dict())
    assert again.weights() == pytest.approx(w.weights())
    for m in (w, again):
        m.update_epoch({"a": 0.4, "b": 1.2})
        assert m.weights() == pytest.approx({"a": 1.0333210, "b": 0.9666790}, abs=1e-6)


def test_dwa_task_missing_from_an_epoch() -> None:
    w = create_weighting("dwa", TASKS)
    w.update_epoch({"a": 1.0, "b": 2.0})
    w.update_epoch({"a": 0.5})  # no b samples this epoch: b's history does not shift
    assert w.weights() == {"a": 1.0, "b": 1.0}  # b has one epoch only
    w.update_epoch({"b": 1.8})  # now b has (2.0, 1.8): same ratios as test_dwa_by_hand
    assert w.weights() == pytest.approx({"a": 0.9003320, "b": 1.0996680}, abs=1e-6)


def test_uncertainty_by_hand() -> None:
    """s = (0, log 2), L = (1, 3): exp(0)*1 + 0 + 0.5*3 + log 2 = 3.1931472.

    d/ds_k = 1 - exp(-s_k) L_k: (1 - 1, 1 - 1.5) = (0, -0.5).
    """
    w = create_weighting("uncertainty", TASKS)
    assert w.weights() == {"a": 1.0, "b": 1.0}
    assert w(_l(1.0, 3.0)).item() == pytest.approx(4.0)  # s = 0: plain sum
    with torch.no_grad():
        w.log_var.copy_(torch.tensor([0.0, math.log(2.0)]))
    losses = _l(1.0, 3.0, grad=True)
    total = w(losses)
    assert total.item() == pytest.approx(3.1931472, abs=1e-6)
    total.backward()
    assert w.log_var.grad.tolist() == pytest.approx([0.0, -0.5], abs=1e-6)
    assert float(losses["b"].grad) == pytest.approx(0.5)  # exp(-log 2)
    assert w.weights() == pytest.approx({"a": 1.0, "b": 0.5})
    assert w({"b": torch.tensor(3.0)}).item() == pytest.approx(1.5 + math.log(2.0))
    again = create_weighting("uncertainty", TASKS)
    again.load_state_dict(w.state_dict())
    assert again.weights() == pytest.approx(w.weights())


def test_unknown_weighting() -> None:
    with pytest.raises(ValueError, match="unknown loss weighting 'gradnorm'"):
        create_weighting("gradnorm", TASKS)


def _outputs() -> dict[str, torch.Tensor]:
    return {
        "logits_a": torch.tensor([[0.0, 1.0], [5.0, 5.0], [2.0, 0.0]], requires_grad=True),
        "logits_b": torch.tensor([[9.0, 9.0, 9.0], [0.0, 0.0, math.log(2.0)],
                                  [9.0, 9.0, 9.0]], requires_grad=True),
        "logits_c": torch.zeros(3, 4, requires_grad=True),
        "task_logits": torch.tensor([[3.0, 0.0, 0.0], [0.0, 0.0, -1e9], [0.0, 3.0, 0.0]]),
    }


def test_masked_task_losses_by_hand() -> None:
    """Samples: (task a, class 1), (task b, class 2), (task a, class 0); task c has none.

    a: mean of log(1 + e^-1) = 0.3132617 and log(1 + e^-2) = 0.1269280 -> 0.2200948.
    b: softmax(0, 0, log 2)[2] = 0.5 -> log 2 = 0.6931472.
    c: no sample -> 0, with a gradient graph. Task head: see below.
    """
    out = _outputs()
    task = torch.tensor([0, 1, 0])
    label = torch.tensor([1, 2, 0])
    losses = masked_task_losses(out, task, label, ["a", "b", "c"])
    assert set(losses) == {"a", "b", "c", "task"}
    assert losses["a"].item() == pytest.approx(0.2200948, abs=1e-6)
    assert losses["b"].item() == pytest.approx(math.log(2.0), abs=1e-6)
    assert losses["c"].item() == 0.0
    # task head: sample 0 [3, 0, 0] -> log(1 + 2e^-3) = 0.0949229; sample 1 [0, 0, -inf]
    # -> log 2 = 0.6931472; sample 2 [0, 3, 0], class 0 -> log(2 + e^3) = 3.0949229.
    assert losses["task"].item() == pytest.approx(
        (0.0949229 + 0.6931472 + 3.0949229) / 3, abs=1e-6)
    sum(losses.values()).backward()
    # The other tasks' samples contribute no gradient to a head.
    assert out["logits_a"].grad[1].abs().sum() == 0
    assert out["logits_b"].grad[[0, 2]].abs().sum() == 0
    assert out["logits_c"].grad is not None and out["logits_c"].grad.abs().sum() == 0


def test_masked_task_losses_label_smoothing_and_no_task_head() -> None:
    """b with smoothing 0.1: 0.9 log 2 + 0.1 (log 4 + log 4 + log 2) / 3 = 0.7393570."""
    out = {k: v for k, v in _outputs().items() if k != "task_logits"}
    losses = masked_task_losses(out, torch.tensor([0, 1, 0]), torch.tensor([1, 2, 0]),
                                ["a", "b", "c"], label_smoothing=0.1)
    assert "task" not in losses
    assert losses["b"].item() == pytest.approx(0.7393570, abs=1e-6)


def test_labels_of_other_tasks_may_exceed_a_head() -> None:
    """A gesture label 7 must not index the 2-class action head."""
    out = {"logits_a": torch.zeros(2, 2), "logits_b": torch.zeros(2, 8)}
    losses = masked_task_losses(out, torch.tensor([0, 1]), torch.tensor([1, 7]), ["a", "b"])
    assert losses["a"].item() == pytest.approx(math.log(2))
    assert losses["b"].item() == pytest.approx(math.log(8))
