"""Graph-temporal building blocks: graph convolution with a learnable adjacency correction,
temporal convolution, residual ST-GCN block, and input normalisation.

Every block is written with operations that export to plain ONNX and quantize well:
``MatMul`` for the graph step (never einsum), ``Conv`` followed directly by
``BatchNormalization`` (so exporters and ONNX Runtime fold the BN into the conv), ``Add``
for residuals, ``Relu``. No data-dependent control flow.

Shapes: ``(N, C, T, V)`` = batch, channels, frames, joints.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


def bn2d(channels: int) -> nn.BatchNorm2d:
    """BatchNorm whose running statistics are a plain average (``momentum=None``).

    The model resets them at every epoch start (``on_epoch_start``), so the statistics used
    in eval mode are the average over the last epoch's batches: an approximation of
    "precise BN" (Wu & Johnson 2021) that, unlike an exponential average with momentum
    0.1, is not biased towards the initial (0, 1) after a few dozen steps.
    """
    return nn.BatchNorm2d(channels, momentum=None)


class GraphMatmul(nn.Module):
    """``x @ a`` as a module, so that :func:`trainer.models.count_flops` can see it.

    Shapes: x ``(..., V)``, a ``(..., V, V')`` (broadcast) -> ``(..., V')``.
    """

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return torch.matmul(x, a)


class GraphConv(nn.Module):
    """Spatial graph convolution over K adjacency partitions.

    ``y = BN(W [x @ (A_1 + B_1), ..., x @ (A_K + B_K)])``: the joints are aggregated first
    (on the input width, the cheaper side when the block widens), the K partitions are
    stacked on the channel axis, and one 1x1 convolution mixes them. ``A`` is the fixed
    normalised skeleton adjacency, ``B`` a learnable correction initialised at zero
    (2s-AGCN's data-driven graph, Shi et al. 2019), which lets the network link joints the
    skeleton does not (e.g. the two hands). The BN directly follows the convolution, so it
    folds at export; at inference ``A + B`` is a constant.

    Shapes: ``(N, C_in, T, V)`` -> ``(N, C_out, T, V)``.
    """

    A: torch.Tensor

    def __init__(self, in_channels: int, out_channels: int, adjacency: np.ndarray,
                 joint_embed: bool = False) -> None:
        super().__init__()
        k = int(adjacency.shape[0])
        self.partitions = k
        self.register_buffer("A", torch.as_tensor(adjacency, dtype=torch.float32).clone())
        self.B = nn.Parameter(torch.zeros(adjacency.shape, dtype=torch.float32))
        self.mm = GraphMatmul()
        self.conv = nn.Conv2d(k * in_channels, out_channels, 1, bias=False)
        self.bn = bn2d(out_channels)
        # Graph convolutions share weights over joints and the network pools over them, so
        # joint identity (index vs pinky finger) otherwise enters only through the input
        # BN and the adjacency correction. A learnable per-(channel, joint) code added
        # after the first graph convolution gives every joint an identity (as SGN's joint
        # embedding, Zhang et al. 2020); random init makes joints distinguishable from the
        # first step. Exports as one Add.
        self.embed = (nn.Parameter(torch.randn(1, out_channels, 1, adjacency.shape[-1]) * 0.5)
                      if joint_embed else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.A + self.B
        # One MatMul per partition, stacked on channels: plain MatMul + Concat in ONNX (a
        # broadcast 5-D matmul would need a reshape with a dynamic batch: Shape ops).
        y = self.mm(x, a[0]) if self.partitions == 1 else \
            torch.cat([self.mm(x, a[k]) for k in range(self.partitions)], 1)
        y = self.bn(self.conv(y))
        return y + self.embed if self.embed is not None else y


class STBlock(nn.Module):
    """ST-GCN block: graph conv, BN, ReLU, temporal conv, BN, residual add, ReLU.

    Args:
        in_channels / out_channels: widths.
        stride: temporal stride of the temporal convolution (1 or 2).
        adjacency: ``(K, V, V)`` from :func:`trainer.models.graph.partitioned_adjacency`.
        kernel: temporal kernel size (odd).
        residual: add the input (identity, or a strided 1x1 conv + BN when the shape
            changes). The first block of a network has none, as in ST-GCN.

    Shapes: ``(N, C_in, T, V)`` -> ``(N, C_out, ceil(T / stride), V)``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, adjacency: np.ndarray,
                 kernel: int = 9, residual: bool = True, joint_embed: bool = False) -> None:
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError(f"temporal kernel must be odd, got {kernel}")
        self.gcn = GraphConv(in_channels, out_channels, adjacency, joint_embed)
        self.tcn = nn.Conv2d(out_channels, out_channels, (kernel, 1), (stride, 1),
                             ((kernel - 1) // 2, 0), bias=False)
        self.bn = bn2d(out_channels)
        # The identity residual is a flag, not nn.Identity (which exports an Identity node).
        self.res: nn.Module | None = None
        self.identity_res = residual and in_channels == out_channels and stride == 1
        if residual and not self.identity_res:
            self.res = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, (stride, 1), bias=False),
                bn2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.tcn(F.relu(self.gcn(x))))
        if self.identity_res:
            y = y + x
        elif self.res is not None:
            y = y + self.res(x)
        return F.relu(y)


class DataNorm(nn.Module):
    """Input batch normalisation per (channel, joint), as ST-GCN's ``data_bn``.

    Coordinates, motion, bones and the mask have very different scales per joint (a
    fingertip moves less than a wrist); this learns one scale and shift per (C, V).
    Training uses a ``BatchNorm1d`` over ``C*V`` channels (statistics over batch and
    time). In eval mode it is the equivalent constant affine map ``x * scale + shift``
    with ``(1, C, 1, V)`` constants: one Mul and one Add in ONNX, no reshapes or
    transposes (which a dynamic batch would turn into Shape/Reshape chains).

    Shapes: ``(N, C, T, V)`` -> same.
    """

    def __init__(self, channels: int, num_joints: int) -> None:
        super().__init__()
        self.channels, self.num_joints = channels, num_joints
        self.bn = nn.BatchNorm1d(channels * num_joints, momentum=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            y = self.bn(x.transpose(2, 3).flatten(1, 2))  # (N, C*V, T)
            return y.unflatten(1, (self.channels, self.num_joints)).transpose(2, 3)
        bn = self.bn
        assert bn.running_var is not None and bn.running_mean is not None
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        shift = bn.bias - bn.running_mean * scale
        shape = (1, self.channels, 1, self.num_joints)
        return x * scale.reshape(shape) + shift.reshape(shape)


def global_pool(x: torch.Tensor) -> torch.Tensor:
    """``(N, C, T, V)`` -> ``(N, C)``; exports as GlobalAveragePool + Flatten."""
    return F.adaptive_avg_pool2d(x, 1).flatten(1)
