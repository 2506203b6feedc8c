"""The multi-task graph-temporal network with hard, soft (cross-stitch) or learned sharing.

See ``docs/sharing.md`` for the three sharing modes and why learned sharing works the way
it does. Shapes: input ``(N, C', T, V)``; outputs ``logits_<task>`` ``(N, K_task)`` and
``task_logits`` ``(N, n_tasks)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from edge.core.metadata import TASK_OUTPUT, logits_name
from trainer.config import SHARING_MODES
from trainer.models.blocks import DataNorm, STBlock, global_pool
from trainer.models.graph import partitioned_adjacency

SHARING = SHARING_MODES  # one list of choices, checked when a config loads


class MultiTaskSTGCN(nn.Module):
    """ST-GCN backbone(s) with one linear head per task and an optional task head.

    Args:
        tasks: task name -> number of classes, in head order.
        in_channels: C' of the input (``PreprocessConfig.channels``).
        blocks: ``(width, temporal stride)`` per ST-GCN block.
        sharing: ``hard`` (one trunk), ``soft`` (one trunk per task, cross-stitch units
            between blocks), ``learned`` (per block and task, a gate chooses between a
            shared block and a task-specific one; annealed to a hard choice).
        task_head: add the head predicting which task an input belongs to (only with more
            than one task).
        num_joints: V; must match the mp75 graph.
        temporal_kernel: temporal kernel size of every block.
        partitions: ``uniform`` (K = 1) or ``spatial`` (K = 3) adjacency partitions.
        data_bn: per-(channel, joint) input batch normalisation.
        joint_embed: learnable per-joint code added after the first graph convolution.
        dropout: dropout before the heads.
        stitch_init: diagonal of the cross-stitch matrices at initialisation (soft).
        share_cost: learned sharing: weight of the penalty on the mean probability of
            choosing task-specific blocks (a compute/parameter cost; 0 disables it).
        tau_start / tau_end: learned sharing: gate temperature, annealed geometrically
            over the search epochs.
        search_frac: learned sharing: share of the epochs spent searching; after it the
            decisions are frozen and the chosen network is fine-tuned.
        gate_noise: learned sharing: add logistic (binary Gumbel) noise to the gate
            logits while searching.
    """

    decided: torch.Tensor
    trunk: nn.ModuleList
    trunks: nn.ModuleList
    specific: nn.ModuleList

    def __init__(self, *, tasks: dict[str, int], in_channels: int,
                 blocks: Sequence[Sequence[int]], sharing: str = "hard",
                 task_head: bool = True, num_joints: int = 75, temporal_kernel: int = 9,
                 partitions: str = "spatial", data_bn: bool = True, joint_embed: bool = True,
                 dropout: float = 0.0,
                 stitch_init: float = 0.9, share_cost: float = 0.01, tau_start: float = 2.0,
                 tau_end: float = 0.2, search_frac: float = 0.7, gate_noise: bool = True) -> None:
        super().__init__()
        if not tasks:
            raise ValueError("a model needs at least one task")
        bad = {t: k for t, k in tasks.items() if int(k) < 1}
        if bad:
            raise ValueError(f"every task needs at least one class, got {bad}")
        if sharing not in SHARING:
            raise ValueError(f"unknown sharing {sharing!r}; known: {list(SHARING)}")
        if num_joints != 75:
            raise ValueError(f"the graph is mp75 (75 joints); got num_joints={num_joints}")
        if not blocks:
            raise ValueError("a model needs at least one block")
        self.task_names: tuple[str, ...] = tuple(tasks)
        self.num_classes: tuple[int, ...] = tuple(int(k) for k in tasks.values())
        self.sharing = sharing
        n = len(self.task_names)
        self.has_task_head = bool(task_head) and n > 1
        self.share_cost = float(share_cost)
        self.tau_start, self.tau_end = float(tau_start), float(tau_end)
        self.search_frac, self.gate_noise = float(search_frac), bool(gate_noise)
        self.tau = self.tau_start
        self._hard_phase = False  # learned: decisions frozen (after the search epochs)
        self._decision_cache: list[list[bool]] | None = None
        adjacency = partitioned_adjacency(partitions)

        self.data_bn = DataNorm(in_channels, num_joints) if data_bn else None

        def trunk() -> nn.ModuleList:
            out, c = nn.ModuleList(), in_channels
            for i, (width, stride) in enumerate(blocks):
                out.append(STBlock(c, int(width), int(stride), adjacency, temporal_kernel,
                                   residual=i > 0, joint_embed=joint_embed and i == 0))
                c = int(width)
            return out

        n_blocks, width = len(blocks), int(blocks[-1][0])
        self.n_blocks = n_blocks
        # With one task, soft and learned sharing have nothing to share: one trunk.
        self._mode = sharing if n > 1 else "hard"
        if self._mode == "hard":
            self.trunk = trunk()
        elif self._mode == "soft":
            self.trunks = nn.ModuleList(trunk() for _ in range(n))
            off = (1.0 - stitch_init) / (n - 1)
            init = torch.full((n, n), off) + torch.eye(n) * (stitch_init - off)
            # stitch[l, k, j]: weight of trunk j's block-l output in trunk k's block-(l+1) input.
            self.stitch = nn.Parameter(init.repeat(max(n_blocks - 1, 0), 1, 1))
        else:
            self.trunk = trunk()  # the shared candidate of each block
            self.specific = nn.ModuleList(trunk() for _ in range(n))  # per task
            # gate[l, k] > 0: task k uses the shared block l. Starts undecided (p = 0.5).
            self.gate = nn.Parameter(torch.zeros(n_blocks, n))
            # Frozen decisions (1 shared, 0 specific, -1 not frozen yet), kept in the
            # state dict so that a resumed run and an exported model agree.
            self.register_buffer("decided", torch.full((n_blocks, n), -1.0))
            self.register_load_state_dict_post_hook(lambda m, _: m._refresh_decisions())

        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleList(nn.Linear(width, k) for k in self.num_classes)
        head_in = width if self._mode == "hard" else width * n
        self.task_head = nn.Linear(head_in, n) if self.has_task_head else None
        self.model_args: dict[str, Any] = {}  # filled in by create_model

    # ----------------------------------------------------------------------------- API
    def regularization(self) -> torch.Tensor:
        """Extra loss term: the learned-sharing cost while searching, else 0."""
        if self._mode != "learned" or self._hard_phase or self.share_cost == 0:
            return next(self.parameters()).new_zeros(())
        return self.share_cost * (1.0 - torch.sigmoid(self.gate)).mean()

    def on_epoch_start(self, epoch: int, n_epochs: int) -> None:
        """Reset the batch-norm statistics (see ``blocks.bn2d``); learned sharing: anneal
        the gate temperature, freeze the choice after the search epochs."""
        for m in self.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()
        if self._mode != "learned":
            return
        search = max(1, round(self.search_frac * n_epochs))
        if epoch < search:
            self._hard_phase = False
            frac = epoch / max(1, search - 1)
            self.tau = self.tau_start * (self.tau_end / self.tau_start) ** frac
            return
        self._hard_phase = True
        if bool((self.decided < 0).any()):
            with torch.no_grad():
                self.decided.copy_((self.gate > 0).float())
        self._refresh_decisions()

    def share_probabilities(self) -> dict[str, list[float]]:
        """Learned sharing: per task, the probability of using the shared block, per block."""
        if self._mode != "learned":
            p = 1.0 if self._mode == "hard" else float("nan")
            return {t: [p] * self.n_blocks for t in self.task_names}
        probs = torch.sigmoid(self.gate.detach()).cpu()
        return {t: [float(v) for v in probs[:, k]] for k, t in enumerate(self.task_names)}

    def sharing_decisions(self) -> dict[str, list[str]]:
        """Per task, per block: ``shared`` or ``specific`` (``stitched`` for soft sharing).

        For learned sharing this is what eval mode and the exported graph compute: the
        frozen decision after the search, or the gate's sign before it.
        """
        if self._mode == "soft":
            return {t: ["stitched"] * self.n_blocks for t in self.task_names}
        if self._mode == "hard":
            return {t: ["shared"] * self.n_blocks for t in self.task_names}
        d = self._decisions()
        return {t: ["shared" if d[b][k] else "specific" for b in range(self.n_blocks)]
                for k, t in enumerate(self.task_names)}

    def subset(self, tasks: Sequence[str]) -> TaskSubset:
        """A module computing only ``tasks`` (see :meth:`forward`), e.g. to export one
        graph per task: ``torch.onnx.export(model.subset(["gesture"]), (x,), ...)``."""
        self._requested(tasks)  # fail now on unknown names
        return TaskSubset(self, tasks)

    def train(self, mode: bool = True) -> MultiTaskSTGCN:
        super().train(mode)
        if self._mode == "learned":
            self._refresh_decisions()
        return self

    # ------------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, tasks: Sequence[str] | None = None
                ) -> dict[str, torch.Tensor]:
        """Logits of the requested heads.

        Args:
            x: ``(N, C', T, V)`` preprocessed windows.
            tasks: None = every task head and the task head; otherwise the task names
                whose heads to compute, plus ``"task_logits"`` to include the task head.
                Only what those heads need is computed.

        Returns:
            ``logits_<task>`` ``(N, K_task)`` in task order, then ``task_logits``
            ``(N, n_tasks)`` when requested and present.
        """
        want, want_task = self._requested(tasks)
        h = self.data_bn(x) if self.data_bn is not None else x
        if self._mode == "hard":
            for block in self.trunk:
                h = block(h)
            pooled = self.dropout(global_pool(h))
            feats = {k: pooled for k in want}
            task_in = pooled if want_task else None
        else:
            need = sorted(set(want) | (set(range(len(self.task_names))) if want_task else set()))
            maps = self._soft(h, need) if self._mode == "soft" else self._learned(h, need)
            pooled_by_id: dict[int, torch.Tensor] = {}
            feats = {}
            for k in need:  # tasks whose streams coincide (learned) pool once
                key = id(maps[k])
                if key not in pooled_by_id:
                    pooled_by_id[key] = self.dropout(global_pool(maps[k]))
                feats[k] = pooled_by_id[key]
            task_in = torch.cat([feats[k] for k in range(len(self.task_names))], 1) \
                if want_task else None
        out = {logits_name(self.task_names[k]): self.heads[k](feats[k]) for k in want}
        if task_in is not None and self.task_head is not None:
            out[TASK_OUTPUT] = self.task_head(task_in)
        return out

    def _requested(self, tasks: Sequence[str] | None) -> tuple[list[int], bool]:
        return requested_heads(self.task_names, self.task_head is not None, tasks)

    def _soft(self, h: torch.Tensor, need: list[int]) -> dict[int, torch.Tensor]:
        """Cross-stitch trunks. Each trunk's input to block l+1 mixes every trunk's block-l
        output, so all trunks run up to the last block; the last block runs only for
        ``need``."""
        n = len(self.task_names)
        hs = [h] * n
        outs: dict[int, torch.Tensor] = {}
        for b in range(self.n_blocks):
            last = b == self.n_blocks - 1
            outs = {k: _block(self.trunks, k, b)(hs[k]) for k in (need if last else range(n))}
            if not last:
                a = self.stitch[b]
                hs = [_weighted_sum([a[k, j] for j in range(n)], [outs[j] for j in range(n)])
                      for k in range(n)]
        return outs

    def _learned(self, h: torch.Tensor, need: list[int]) -> dict[int, torch.Tensor]:
        """Per block and task: shared block, task-specific block, or (while searching) a
        gate-weighted mix of both. Streams that are the same tensor share computation."""
        hs = {k: h for k in need}
        searching = self.training and not self._hard_phase
        if searching:
            logits: torch.Tensor = self.gate
            if self.gate_noise:
                u = torch.rand_like(logits).clamp(1e-6, 1 - 1e-6)
                logits = logits + torch.log(u) - torch.log1p(-u)
            p = torch.sigmoid(logits / self.tau)
        else:
            dec = self._decisions()
        for b in range(self.n_blocks):
            shared: dict[int, torch.Tensor] = {}

            def run_shared(t: torch.Tensor, b: int = b, cache: dict = shared) -> torch.Tensor:
                if id(t) not in cache:
                    cache[id(t)] = self.trunk[b](t)
                return cache[id(t)]

            new = {}
            for k in need:
                if searching:
                    new[k] = p[b, k] * run_shared(hs[k]) \
                        + (1 - p[b, k]) * _block(self.specific, k, b)(hs[k])
                elif dec[b][k]:
                    new[k] = run_shared(hs[k])
                else:
                    new[k] = _block(self.specific, k, b)(hs[k])
            hs = new
        return hs

    def _decisions(self) -> list[list[bool]]:
        """``[block][task]`` True = shared, as Python bools (cached: no tensor reads in the
        traced forward)."""
        if self._decision_cache is None:
            self._refresh_decisions()
        assert self._decision_cache is not None
        return self._decision_cache

    def _refresh_decisions(self) -> None:
        if self._mode != "learned":
            return
        with torch.no_grad():
            d = torch.where(self.decided >= 0, self.decided > 0.5, self.gate > 0)
        self._decision_cache = [[bool(v) for v in row] for row in d.cpu().tolist()]


def requested_heads(task_names: Sequence[str], has_task_head: bool,
                    tasks: Sequence[str] | str | None) -> tuple[list[int], bool]:
    """Which heads a ``forward(x, tasks)`` call wants: task indices, and the task head.

    Raises:
        KeyError: a name that is neither a task nor ``task_logits``, or ``task_logits``
            from a model without a task head.
    """
    if tasks is None:
        return list(range(len(task_names))), has_task_head
    if isinstance(tasks, str):
        tasks = [tasks]
    unknown = [t for t in tasks if t not in task_names and t != TASK_OUTPUT]
    if unknown:
        raise KeyError(f"unknown tasks {unknown}; this model has {list(task_names)}"
                       + (f" and {TASK_OUTPUT!r}" if has_task_head else ""))
    if TASK_OUTPUT in tasks and not has_task_head:
        raise KeyError(f"this model has no task head ({TASK_OUTPUT!r})")
    return [k for k, t in enumerate(task_names) if t in tasks], TASK_OUTPUT in tasks


class TaskSubset(nn.Module):
    """``model(x, tasks=tasks)`` as a module with a tensor-only forward (for export).

    Shares the wrapped model's parameters; its outputs are the requested heads only.
    """

    def __init__(self, model: MultiTaskSTGCN, tasks: Sequence[str]) -> None:
        super().__init__()
        self.model = model
        self.tasks = list(tasks)
        # A new module starts in training mode; exporters restore the wrapper's mode
        # afterwards, which would otherwise switch the wrapped model to training.
        self.training = model.training

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = self.model(x, tasks=self.tasks)
        return out


def _block(trunks: nn.ModuleList, k: int, b: int) -> nn.Module:
    """Block ``b`` of trunk ``k``."""
    trunk = trunks[k]
    assert isinstance(trunk, nn.ModuleList)
    return trunk[b]


def _weighted_sum(weights: list[torch.Tensor], xs: list[torch.Tensor]) -> torch.Tensor:
    y = weights[0] * xs[0]
    for w, x in zip(weights[1:], xs[1:]):
        y = y + w * x
    return y


def temperature_schedule(tau_start: float, tau_end: float, search: int) -> list[float]:
    """The gate temperatures of the search epochs (for docs and tests)."""
    return [tau_start * (tau_end / tau_start) ** (e / max(1, search - 1)) for e in range(search)]


__all__ = ["SHARING", "MultiTaskSTGCN", "TaskSubset", "temperature_schedule"]
