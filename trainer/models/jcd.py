"""Distance-and-motion networks (the ``jcd_*`` family): small, fast, and accurate on the
sparse skeletons our datasets fill.

Why this family exists (docs/accuracy.md has the evidence): the ST-GCN family convolves
over the 75-joint mp75 graph while JHMDB, MSR Action3D and F-PHAB fill 13 to 21 of its
joints, and it sees positions relative to the shoulders only. A network that reads the
pairwise distances between the joints a task really has (translation and rotation
invariant) and their motion at two time scales, then convolves over time only, learns
from a few hundred clips what the graph network does not; the recipe is the one DD-Net
(Yang et al. 2019, arXiv:1907.09658) describes, written here for the mp75 input contract
and for several task heads on one trunk.

Input: the preprocessed window ``x (N, C', T, V)`` of :func:`edge.core.preprocess.preprocess`,
whose first ``dims`` channels are the ``joint`` stream and, with ``with_mask``, whose last
channel is the presence mask. Everything below is computed inside the graph from those
channels, so ONNX Runtime, TensorRT and PyTorch see the same features; the ops are
Gather, Sub, Mul, ReduceSum, Sqrt, Pad, Conv, MaxPool, Gemm (TensorRT 8.5's parser takes
all of them).

Features, for the ``joints`` J the model uses (recorded from the training data):
    * ``jcd`` ``(N, J(J-1)/2, T)``: Euclidean distance of every joint pair, zero where
      either joint is missing;
    * ``slow`` ``(N, J*D, T)``: ``x[t+1] - x[t]`` (zero where either frame misses it,
      zero-padded at the end);
    * ``fast`` ``(N, J*D, T/2)``: ``x[t+2] - x[t]`` every second frame.
Each is embedded by 1-D convolutions over time (kernel 1, 3, 1), the three are joined at
T/2 frames and a temporal trunk (two stages that halve time, one that does not) ends in a
global max pool. Every task has its own two-layer head; the task head reads the pooled
trunk. Only hard sharing exists for this family: its trunk is small enough that a second
one is the single-task baseline.

Each task sees the joints its own training data had (``task_joints``): a model that
learned actions from JHMDB's 13 body joints and gestures from MediaPipe's 75 runs the
shared trunk once on the 13 for the action head and once on all 75 for the gesture head
and the task head, so at run time, where MediaPipe fills all 75, the action head still
gets the input it was trained on. Tasks with the same joints share one pass.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edge.core.metadata import TASK_OUTPUT, logits_name


class ViewBatchNorm(nn.Module):
    """One BatchNorm1d per view, the one named by ``view`` (set by the model before each
    pass). The views of one network differ in kind (13 body joints for actions, 59 joints
    with hands for gestures): one set of statistics for both normalised the action view by
    the gesture view's numbers (its single-task twin validated 0.91, the shared one 0.84).
    The convolution weights stay shared; at export each view's statistics fold into its
    own pass."""

    def __init__(self, channels: int, views: int) -> None:
        super().__init__()
        self.bns = nn.ModuleList(nn.BatchNorm1d(channels) for _ in range(views))
        self.view = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bn: nn.Module = self.bns[self.view]
        out: torch.Tensor = bn(x)
        return out


ACTIVATIONS = ("relu", "leaky_relu")


def _act(name: str) -> nn.Module:
    """The network's nonlinearity: ReLU by default, because Conv+ReLU fuses into one INT8
    kernel in ONNX Runtime and TensorRT; DD-Net's LeakyReLU (slope 0.2) on request."""
    return nn.ReLU(inplace=True) if name == "relu" else nn.LeakyReLU(0.2, inplace=True)


def _conv(cin: int, cout: int, k: int, views: int = 1, act: str = "relu") -> nn.Sequential:
    """Conv1d ('same' padding) + BatchNorm (one per view) + the activation."""
    bn = nn.BatchNorm1d(cout) if views == 1 else ViewBatchNorm(cout, views)
    return nn.Sequential(nn.Conv1d(cin, cout, k, padding=k // 2, bias=False), bn, _act(act))


def _embed(cin: int, f: int, drop: float, views: int, act: str = "relu") -> nn.Sequential:
    """Per-frame embedding ``(N, cin, T) -> (N, f, T)``: kernels 1, 3, 1."""
    return nn.Sequential(_conv(cin, 2 * f, 1, views, act), nn.Dropout1d(drop),
                         _conv(2 * f, f, 3, views, act), nn.Dropout1d(drop),
                         _conv(f, f, 1, views, act), nn.Dropout1d(drop))


def _embed_cols(emb: nn.Sequential, x: torch.Tensor, cols: torch.Tensor | None
                ) -> torch.Tensor:
    """``emb(x)`` where ``x`` holds only the input channels ``cols`` of the first
    convolution (None: all of them)."""
    if cols is None:
        out: torch.Tensor = emb(x)
        return out
    first = typing.cast(nn.Sequential, emb[0])
    conv = typing.cast(nn.Conv1d, first[0])
    h = F.conv1d(x, conv.weight.index_select(1, cols), None, conv.stride, conv.padding)
    for layer in list(first)[1:]:
        h = layer(h)
    for layer in list(emb)[1:]:
        h = layer(h)
    return h


class MultiTaskJCD(nn.Module):
    """Joint-distance + two-scale-motion temporal CNN with one head per task.

    Args:
        tasks: task name -> number of classes, in head order.
        in_channels: C' of the input windows.
        dims: D, the coordinates of the joint stream (its first ``dims`` channels).
        joints: the mp75 joints used (sorted; empty = all ``num_joints``).
        with_mask: whether the last input channel is the presence mask.
        num_joints: V of the input.
        filters: f, the embedding width; the trunk is 2f, 4f, 8f wide.
        head_width: width of the two hidden layers of each task head.
        task_head: add the task head (more than one task only).
        dropout: dropout of the head's hidden layers.
        feature_dropout: channel dropout inside the embeddings and the trunk.
        task_joints: per task, the joints (a subset of ``joints``) its head sees; a task
            not named sees all ``joints``.
        activation: ``relu`` or ``leaky_relu`` (:data:`ACTIVATIONS`).
        task_head_joints: the joints the task head sees (a subset of ``joints``; None =
            all). The trainer passes the joints every task's data has: a task head that
            saw all 59 joints learned "13 joints filled = action" from JHMDB's puppet,
            which no MediaPipe frame at run time ever shows.
    """

    def __init__(self, *, tasks: dict[str, int], in_channels: int, dims: int,
                 joints: Sequence[int] = (), with_mask: bool = True, num_joints: int = 75,
                 filters: int = 32, head_width: int = 128, task_head: bool = True,
                 dropout: float = 0.5, feature_dropout: float = 0.1,
                 task_joints: dict[str, Sequence[int]] | None = None,
                 task_head_joints: Sequence[int] | None = None,
                 activation: str = "relu") -> None:
        super().__init__()
        if not tasks:
            raise ValueError("a model needs at least one task")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {list(ACTIVATIONS)}, got {activation!r}")
        joints = sorted(int(j) for j in joints) or list(range(num_joints))
        if len(set(joints)) != len(joints) or joints[0] < 0 or joints[-1] >= num_joints \
                or len(joints) < 2:
            raise ValueError(f"joints must be >= 2 distinct indices in [0, {num_joints})")
        if dims < 1 or in_channels < dims + int(with_mask):
            raise ValueError(f"in_channels {in_channels} cannot hold {dims} joint channels"
                             + (" and the mask" if with_mask else ""))
        self.task_names = tuple(tasks)
        self.dims, self.with_mask = int(dims), bool(with_mask)
        # Views: one 0/1 weight per used joint for each distinct joint set; view 0 is all.
        views: list[tuple[int, ...]] = [tuple(joints)]
        self.task_view: list[int] = []
        for t in self.task_names:
            sub = tuple(sorted(int(j) for j in (task_joints or {}).get(t, joints)))
            if not set(sub) <= set(joints) or len(sub) < 2:
                raise ValueError(f"task_joints[{t!r}] must be >= 2 of the model's joints")
            if sub not in views:
                views.append(sub)
            self.task_view.append(views.index(sub))
        sub = tuple(sorted(int(j) for j in (task_head_joints or joints)))
        if not set(sub) <= set(joints) or len(sub) < 2:
            raise ValueError("task_head_joints must be >= 2 of the model's joints")
        if sub not in views:
            views.append(sub)
        self.task_head_view = views.index(sub)
        unknown = set(task_joints or {}) - set(self.task_names)
        if unknown:
            raise ValueError(f"task_joints names unknown tasks {sorted(unknown)}")
        j = len(joints)
        iu = torch.triu_indices(j, j, 1, device="cpu")  # plain lists below, also on "meta"
        pairs = {(int(a), int(b)): k for k, (a, b) in enumerate(zip(iu[0], iu[1]))}
        # Per view, constant index tensors (exported as Gather initializers): its joints in
        # the layout, the upper triangle of its own J_v x J_v distances, and which columns
        # of the embeddings' first weights its pairs and joint coordinates are. A view
        # computes only its own joints and multiplies only those columns: identical in
        # float to masking the others, and the INT8 weight scales then come from the
        # columns it uses (with all 59 joints' columns the 13-joint action view was
        # quantized into noise: 77% -> 42%).
        self._view_buffers: list[tuple[str, str, str, str]] = []
        for vi, view in enumerate(views):
            pos_in = [joints.index(jj) for jj in view]
            jv = len(view)
            iv = torch.triu_indices(jv, jv, 1, device="cpu")
            names = (f"view{vi}_joints", f"view{vi}_pairs", f"view{vi}_pair_cols",
                     f"view{vi}_coord_cols")
            self.register_buffer(names[0], torch.tensor(view, dtype=torch.long), persistent=False)
            self.register_buffer(names[1], iv[0] * jv + iv[1], persistent=False)
            self.register_buffer(names[2], torch.tensor(
                [pairs[(pos_in[a], pos_in[b])] for a, b in zip(iv[0].tolist(), iv[1].tolist())],
                dtype=torch.long), persistent=False)
            self.register_buffer(names[3], torch.tensor(
                [d * j + p for d in range(self.dims) for p in pos_in], dtype=torch.long),
                persistent=False)
            self._view_buffers.append(names)
        f, fd = int(filters), float(feature_dropout)
        nv = len(views)
        a = activation
        self.emb_jcd = _embed(int(iu.shape[1]), f, fd, nv, a)
        self.emb_slow = _embed(j * self.dims, f, fd, nv, a)
        self.emb_fast = _embed(j * self.dims, f, fd, nv, a)
        self.trunk = nn.Sequential(
            _conv(3 * f, 2 * f, 3, nv, a), _conv(2 * f, 2 * f, 3, nv, a), nn.MaxPool1d(2),
            nn.Dropout1d(fd),
            _conv(2 * f, 4 * f, 3, nv, a), _conv(4 * f, 4 * f, 3, nv, a), nn.MaxPool1d(2),
            nn.Dropout1d(fd),
            _conv(4 * f, 8 * f, 3, nv, a), _conv(8 * f, 8 * f, 3, nv, a), nn.Dropout1d(fd))
        self._view_bns = [m for m in self.modules() if isinstance(m, ViewBatchNorm)]
        width = 8 * f

        def head(k: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Linear(width, head_width), nn.BatchNorm1d(head_width), _act(a),
                nn.Dropout(dropout),
                nn.Linear(head_width, head_width), nn.BatchNorm1d(head_width),
                _act(a), nn.Dropout(dropout),
                nn.Linear(head_width, int(k)))
        self.heads = nn.ModuleList(head(k) for k in tasks.values())
        self.task_head = nn.Linear(width, len(tasks)) if task_head and len(tasks) > 1 else None
        self.has_task_head = self.task_head is not None
        self.model_args: dict[str, Any] = {}  # filled in by create_model

    # The trainer's hooks (the ST-GCN family uses them for learned sharing).
    def regularization(self) -> torch.Tensor:
        return torch.zeros((), device=self._buffer(0, 0).device)

    def _buffer(self, view: int, which: int) -> torch.Tensor:
        out: torch.Tensor = getattr(self, self._view_buffers[view][which])
        return out

    def on_epoch_start(self, epoch: int, n_epochs: int) -> None:
        return None

    def features(self, x: torch.Tensor, view: int = 0
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x (N, C', T, V)`` -> jcd ``(N, P_v, T)``, slow ``(N, J_v*D, T)``, fast
        ``(N, J_v*D, T/2)`` over the J_v joints of ``view`` (see ``task_joints``)."""
        n, _, t, _ = x.shape
        idx = self._buffer(view, 0)
        pos = x[:, : self.dims].index_select(3, idx)                      # (N, D, T, J)
        if self.with_mask:
            m = x[:, -1:].index_select(3, idx)                             # (N, 1, T, J)
        else:
            m = torch.ones_like(pos[:, :1])
        # All J x J differences by broadcasting, then one gather of the upper triangle:
        # an order of magnitude faster on a CPU than gathering both ends of every pair
        # (75 joints: 2,775 pairs), and no MatMul of activations for the quantizer to touch.
        # One coordinate at a time keeps every tensor contiguous in the joints (a trailing
        # axis of 2 or 3 made the elementwise kernels several times slower). The squares
        # are summed with a ReduceSum and floored with a Max, not with Add nodes: the INT8
        # quantizer quantizes Add (for residual networks), and quantized sums of squares
        # lost the small distances (the bundled model's action top-1 fell from 77 to 43%).
        sq = torch.stack([(pos[:, d].unsqueeze(3) - pos[:, d].unsqueeze(2)) ** 2
                          for d in range(self.dims)]).sum(0)              # (N, T, J, J)
        mj = m.squeeze(1)                                                  # (N, T, J)
        both = mj.unsqueeze(3) * mj.unsqueeze(2)                           # (N, T, J, J)
        # The floor keeps the gradient of sqrt finite where two joints coincide or are
        # masked (their distance is then multiplied by zero).
        dist = torch.sqrt(torch.clamp(sq, min=1e-6)) * both
        jcd = dist.reshape(n, t, -1).index_select(2, self._buffer(view, 1))  # (N, T, P)
        jcd = jcd.transpose(1, 2)                                          # (N, P, T)
        flat = pos.permute(0, 1, 3, 2).reshape(n, -1, t)                   # (N, D*J, T)
        mflat = m.permute(0, 1, 3, 2).reshape(n, -1, t).repeat(1, self.dims, 1)
        slow = (flat[:, :, 1:] - flat[:, :, :-1]) * (mflat[:, :, 1:] * mflat[:, :, :-1])
        slow = F.pad(slow, (0, 1))
        # Even frames by a reshape, not a step-2 slice: onnxslim folded the strided
        # slices of the exported graph wrongly (ONNX Runtime then differed by 13%).
        even = flat.reshape(n, flat.shape[1], t // 2, 2)[..., 0]           # (N, J*D, T/2)
        meven = mflat.reshape(n, flat.shape[1], t // 2, 2)[..., 0]
        fast = (even[:, :, 1:] - even[:, :, :-1]) * (meven[:, :, 1:] * meven[:, :, :-1])
        fast = F.pad(fast, (0, 1))
        return jcd, slow, fast

    def forward(self, x: torch.Tensor, tasks: Sequence[str] | None = None
                ) -> dict[str, torch.Tensor]:
        """Logits of the requested heads (see ``MultiTaskSTGCN.forward``).

        Args:
            x: ``(N, C', T, V)`` preprocessed windows, T even and >= 4.
            tasks: None = every head and the task head; else task names, plus
                ``"task_logits"`` for the task head.

        Returns:
            ``logits_<task>`` ``(N, K_task)`` in task order, then ``task_logits``
            ``(N, n_tasks)`` when requested and present.
        """
        want, want_task = self._requested(tasks)
        if not torch.jit.is_tracing() and (x.shape[2] % 2 or x.shape[2] < 4):
            raise ValueError(f"{type(self).__name__} needs an even window of >= 4 frames, "
                             f"got {x.shape[2]}")
        need = sorted({self.task_view[k] for k in want}
                      | ({self.task_head_view} if want_task else set()))
        # One trunk pass per view, each with its own batch-norm statistics
        # (ViewBatchNorm); the convolution weights are shared.
        pooled = {}
        for v in need:
            for bn in self._view_bns:
                bn.view = v
            pooled[v] = self._trunk(*self.features(x, v), view=v)
        out = {logits_name(self.task_names[k]): self.heads[k](pooled[self.task_view[k]])
               for k in want}
        if want_task and self.task_head is not None:
            out[TASK_OUTPUT] = self.task_head(pooled[self.task_head_view])
        return out

    def _trunk(self, jcd: torch.Tensor, slow: torch.Tensor, fast: torch.Tensor,
               view: int = 0) -> torch.Tensor:
        """The shared trunk on :meth:`features`' output: ``-> (N, 8f)``."""
        pc, cc = (None, None) if view == 0 else (self._buffer(view, 2), self._buffer(view, 3))
        h = torch.cat([F.max_pool1d(_embed_cols(self.emb_jcd, jcd, pc), 2),
                       F.max_pool1d(_embed_cols(self.emb_slow, slow, cc), 2),
                       _embed_cols(self.emb_fast, fast, cc)], dim=1)       # (N, 3f, T/2)
        return self.trunk(h).amax(dim=2)

    def _requested(self, tasks: Sequence[str] | None) -> tuple[list[int], bool]:
        from trainer.models.net import requested_heads

        return requested_heads(self.task_names, self.task_head is not None, tasks)

    def subset(self, tasks: Sequence[str]) -> nn.Module:
        """A module computing only ``tasks`` (for one graph per task at export)."""
        from trainer.models.net import TaskSubset

        self._requested(tasks)
        return TaskSubset(self, tasks)  # type: ignore[arg-type]
