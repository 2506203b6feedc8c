"""Multi-task losses: per-task masked cross-entropy and task loss weighting.

Weightings (``create_weighting(name, task_names)``), each an ``nn.Module`` with
``forward(losses) -> total``, ``update_epoch(epoch_losses)``, ``weights()`` and a state
dict that resumes exactly:

- ``mean``: ``sum_k L_k / K`` (equal weights). Dividing by K keeps the total on the scale
  of one task's loss, so a learning rate tuned for STL fits MTL too.
- ``dwa``: Dynamic Weight Average (Liu, Johns & Davison, CVPR 2019, eq. 6):
  ``w_k(t) = K exp(r_k(t-1) / T) / sum_i exp(r_i(t-1) / T)``, ``r_k(t-1) = L_k(t-1) /
  L_k(t-2)``, ``T = 2``, with ``L_k`` the average training loss of task k over an epoch
  and ``w_k = 1`` for the first two epochs. Total: ``sum_k w_k L_k / K`` (the weights sum
  to K; dividing by K keeps ``mean``'s scale, as ``mean`` is DWA with all weights 1).
- ``uncertainty``: homoscedastic uncertainty weighting (Kendall, Gal & Cipolla, CVPR
  2018) in the form used for classification by the paper's eq. 10 approximation and
  most reimplementations: ``sum_k exp(-s_k) L_k + s_k`` with a learnable ``s_k = log
  sigma_k^2`` per task, initialised at 0 (weight 1). We use this form rather than the
  ``1 / (2 sigma^2)`` regression form because every head here is a softmax classifier;
  the ``+ s_k`` term keeps sigma from growing without bound. Its parameters must be given
  to the optimiser (``trainer.train`` does).

Tasks missing from the ``losses`` dict (e.g. no sample of that task in a batch) are skipped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from edge.core.metadata import TASK_OUTPUT, logits_name
from trainer.config import WEIGHTINGS  # one list of choices, checked when a config loads


class Weighting(nn.Module):
    """Base class: combine per-task losses into one scalar.

    Args:
        task_names: the tasks, in head order.
    """

    def __init__(self, task_names: Sequence[str]) -> None:
        super().__init__()
        if not task_names:
            raise ValueError("a loss weighting needs at least one task")
        self.task_names = tuple(task_names)

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        w = self._weight_tensors()
        terms = [w[k] * losses[k] for k in self.task_names if k in losses]
        return _sum(terms, losses) / len(self.task_names)

    def _weight_tensors(self) -> dict[str, torch.Tensor | float]:
        return {k: 1.0 for k in self.task_names}

    def update_epoch(self, epoch_losses: dict[str, float]) -> None:
        """Called once per epoch with each task's average training loss."""

    def weights(self) -> dict[str, float]:
        """The current weight of each task's loss (for logs)."""
        return {k: float(v) for k, v in self._weight_tensors().items()}


class MeanWeighting(Weighting):
    """``sum_k L_k / K``."""


class DWAWeighting(Weighting):
    """Dynamic Weight Average (Liu et al. 2019); see the module docstring.

    The last two epochs' average losses live in buffers (``history``, ``(2, K)``, NaN =
    not seen yet), so the weights resume exactly from a state dict. A task absent from
    an epoch's losses keeps its previous ratio input (its history is not shifted).

    Args:
        temperature: T (2 in the paper).
    """

    history: torch.Tensor
    w: torch.Tensor

    def __init__(self, task_names: Sequence[str], temperature: float = 2.0) -> None:
        super().__init__(task_names)
        self.temperature = float(temperature)
        # history[0] = L(t-2), history[1] = L(t-1); NaN until seen.
        self.register_buffer("history", torch.full((2, len(self.task_names)), math.nan,
                                                   dtype=torch.float64))
        self.register_buffer("w", torch.ones(len(self.task_names), dtype=torch.float64))

    def update_epoch(self, epoch_losses: dict[str, float]) -> None:
        for i, k in enumerate(self.task_names):
            if k in epoch_losses:
                self.history[0, i] = self.history[1, i]
                self.history[1, i] = float(epoch_losses[k])
        prev, last = self.history[0], self.history[1]
        if bool(torch.isnan(prev).any() | torch.isnan(last).any()):
            self.w.fill_(1.0)  # fewer than two epochs of every task: equal weights
            return
        r = last / prev.clamp_min(1e-12)
        self.w.copy_(len(self.task_names) * torch.softmax(r / self.temperature, 0))

    def _weight_tensors(self) -> dict[str, torch.Tensor | float]:
        return {k: float(self.w[i]) for i, k in enumerate(self.task_names)}


class UncertaintyWeighting(Weighting):
    """Kendall et al. 2018: ``sum_k exp(-s_k) L_k + s_k`` with learnable ``s_k = log sigma^2``.

    Unlike ``mean`` and ``dwa`` the sum is not divided by K: the ``s_k`` regulariser and
    the weights are per task, as in the paper.
    """

    def __init__(self, task_names: Sequence[str]) -> None:
        super().__init__(task_names)
        self.log_var = nn.Parameter(torch.zeros(len(self.task_names)))

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        terms = [torch.exp(-self.log_var[i]) * losses[k] + self.log_var[i]
                 for i, k in enumerate(self.task_names) if k in losses]
        return _sum(terms, losses)

    def _weight_tensors(self) -> dict[str, torch.Tensor | float]:
        w = torch.exp(-self.log_var.detach())
        return {k: float(w[i]) for i, k in enumerate(self.task_names)}


def _sum(terms: list[torch.Tensor], losses: dict[str, torch.Tensor]) -> torch.Tensor:
    if not terms:  # no task in this batch: a zero that still backpropagates
        ref = next(iter(losses.values()), None)
        return ref.sum() * 0.0 if ref is not None else torch.zeros(())
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


def create_weighting(name: str, task_names: Sequence[str], **kwargs: Any) -> Weighting:
    """The loss weighting ``name`` (``mean`` | ``dwa`` | ``uncertainty``) over ``task_names``."""
    classes: dict[str, type[Weighting]] = {"mean": MeanWeighting, "dwa": DWAWeighting,
                                           "uncertainty": UncertaintyWeighting}
    if name not in classes:
        raise ValueError(f"unknown loss weighting {name!r}; known: {list(WEIGHTINGS)}")
    return classes[name](task_names, **kwargs)


NO_LABEL = -1  # a sample whose class no head learns (its task still trains the task head)


def masked_task_losses(outputs: dict[str, torch.Tensor], task_index: torch.Tensor,
                       labels: torch.Tensor, task_names: Sequence[str],
                       label_smoothing: float = 0.0) -> dict[str, torch.Tensor]:
    """Cross-entropy of each task's head over the samples of that task only.

    Args:
        outputs: the model's outputs (``logits_<task>`` ``(N, K_task)``, optionally
            ``task_logits`` ``(N, n_tasks)``).
        task_index: ``(N,)`` int64, the task of each sample (index into ``task_names``).
        labels: ``(N,)`` int64, the class of each sample within its own task; a negative
            label (:data:`NO_LABEL`) trains the task head only (``augment.splice_task_only``).
        task_names: the tasks, in head order.
        label_smoothing: passed to ``F.cross_entropy``.

    Returns:
        ``{task: mean CE over that task's samples}`` for every task (a zero that keeps the
        graph, so backward works, when the batch has none of its samples), plus ``task``:
        CE of ``task_logits`` against ``task_index`` when the model has a task head.
    """
    out: dict[str, torch.Tensor] = {}
    for i, name in enumerate(task_names):
        logits = outputs[logits_name(name)]
        sel = (task_index == i) & (labels >= 0)
        # Masking by multiplication (not by indexing with a data-dependent count) keeps one
        # code path for every batch composition; the mean is over this task's samples.
        ce = F.cross_entropy(logits, torch.where(sel, labels, torch.zeros_like(labels)),
                             reduction="none", label_smoothing=label_smoothing)
        out[name] = (ce * sel).sum() / sel.sum().clamp_min(1)
    if TASK_OUTPUT in outputs:
        out["task"] = F.cross_entropy(outputs[TASK_OUTPUT], task_index,
                                      label_smoothing=label_smoothing)
    return out


def distillation_losses(outputs: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor],
                        task_index: torch.Tensor, labels: torch.Tensor,
                        task_names: Sequence[str], temperature: float) -> dict[str, torch.Tensor]:
    """Per task, the student's KL divergence from the teachers' softened probabilities.

    Hinton et al.'s distillation term, ``T^2 * KL(p_teacher || softmax(z / T))``, averaged
    over the same samples :func:`masked_task_losses` averages its cross-entropy over (so the
    trainer's per-step scaling applies to both alike); ``T^2`` keeps its gradient on the
    scale of the cross-entropy's as ``T`` changes.

    Args:
        outputs: the student's outputs (``logits_<task>`` ``(N, K_task)``).
        teacher: per task the teachers' probabilities at ``temperature``, ``(N, K_task)``;
            tasks without teachers are left out of the result.
        task_index: ``(N,)`` int64, the task of each sample.
        labels: ``(N,)`` int64; a negative label (:data:`NO_LABEL`) is left out, as there.
        task_names: the tasks, in head order.
        temperature: the softmax temperature the teacher's probabilities were taken at.

    Returns:
        ``{task: mean distillation term over that task's samples}`` for the taught tasks.
    """
    out: dict[str, torch.Tensor] = {}
    for i, name in enumerate(task_names):
        if name not in teacher:
            continue
        p = teacher[name]
        logq = F.log_softmax(outputs[logits_name(name)] / temperature, dim=1)
        # xlogy: a teacher probability of exactly 0 contributes 0, not NaN.
        kl = (torch.special.xlogy(p, p) - p * logq).sum(1)
        sel = (task_index == i) & (labels >= 0)
        # where, not a product: a sample of another task must not bring in its NaN or inf.
        kl = torch.where(sel, kl, torch.zeros_like(kl))
        out[name] = temperature ** 2 * kl.sum() / sel.sum().clamp_min(1)
    return out
