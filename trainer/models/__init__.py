"""Model registry: the multi-task networks, by name.

Two families: ``stgcn_*`` (graph-temporal convolutions over the mp75 graph,
:mod:`trainer.models.net`) and ``jcd_*`` (joint distances and two-scale motion through a
temporal CNN, :mod:`trainer.models.jcd`; the project's default since it is the more
accurate at edge cost, docs/accuracy.md).

Usage::

    from trainer.models import create_model, list_models, count_flops
    model = create_model("stgcn_tiny", in_channels=10, tasks={"action": 20, "gesture": 45},
                         sharing="hard")
    out = model(x)            # {"logits_action": (N, 20), "logits_gesture": (N, 45),
                              #  "task_logits": (N, 2)}
    same = create_model(**model.model_args)   # rebuilds the identical architecture
    count_flops(model, (1, 10, 32, 75))       # FLOPs (2 x multiply-accumulates) per window

Registered backbones of a family differ in width and depth only (:data:`MODELS`,
:data:`JCD_MODELS`); the sharing mode, tasks and input width are arguments.
``docs/sharing.md`` explains the sharing modes (the ``jcd`` family shares hard only).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from trainer.models.blocks import GraphMatmul
from trainer.models.jcd import MultiTaskJCD
from trainer.models.net import SHARING, MultiTaskSTGCN


@dataclass(frozen=True)
class BackboneSpec:
    """Width/depth knob of a registered backbone.

    Attributes:
        blocks: ``(width, temporal stride)`` per ST-GCN block.
        temporal_kernel: temporal kernel size.
        partitions: ``uniform`` (K = 1) or ``spatial`` (K = 3) adjacency partitions.
        data_bn: per-(channel, joint) input batch normalisation.
        joint_embed: learnable per-joint code after the first graph convolution.
    """

    blocks: tuple[tuple[int, int], ...]
    temporal_kernel: int = 9
    partitions: str = "spatial"
    data_bn: bool = True
    joint_embed: bool = True


# Strides are early so that most blocks run on 16 or 8 frames of a 32-frame window.
MODELS: dict[str, BackboneSpec] = {
    # Edge-sized: about 56 MFLOPs per 3D window; trains on a 2-core CPU. Three temporal
    # strides early (32 -> 4 frames) because on a CPU the wide early activations, not the
    # multiply-adds, dominate training time (batch norm, ReLU, copies).
    "stgcn_tiny": BackboneSpec(blocks=((24, 2), (32, 2), (48, 2), (64, 1)),
                               temporal_kernel=5, partitions="uniform"),
    "stgcn_small": BackboneSpec(blocks=((48, 2), (48, 1), (96, 2), (96, 1), (128, 2),
                                        (128, 1)), temporal_kernel=9, partitions="spatial"),
    # ST-GCN's 10 blocks (64-64-64-64-128-128-128-256-256-256), for accuracy on a GPU.
    "stgcn_base": BackboneSpec(blocks=((64, 1), (64, 1), (64, 1), (64, 1), (128, 2), (128, 1),
                                       (128, 1), (256, 2), (256, 1), (256, 1)),
                               temporal_kernel=9, partitions="spatial"),
}



@dataclass(frozen=True)
class JCDSpec:
    """Width knob of a registered ``jcd`` network (:class:`MultiTaskJCD`).

    Attributes:
        filters: embedding width f; the trunk is 2f, 4f, 8f wide.
        head_width: hidden width of each task head.
        feature_dropout: channel dropout in the embeddings and the trunk.
        activation: ``relu`` (fuses with the convolution into one INT8 kernel) or
            ``leaky_relu`` (DD-Net's, slope 0.2), :data:`trainer.models.jcd.ACTIVATIONS`.
    """

    filters: int
    head_width: int = 128
    feature_dropout: float = 0.1
    activation: str = "relu"


JCD_MODELS: dict[str, JCDSpec] = {
    "jcd_tiny": JCDSpec(filters=16),
    "jcd_small": JCDSpec(filters=32),
    "jcd_base": JCDSpec(filters=64),
}
# What a jcd network needs to know about its input (the trainer passes these from the
# preprocessing config; they are stored in model_args like every other argument).
_JCD_INPUT_ARGS: dict[str, Any] = {"dims": 2, "joints": (), "with_mask": True,
                                   "task_joints": {}, "task_head_joints": ()}

# Sharing-specific arguments of MultiTaskSTGCN and their defaults (stored in model_args).
_SOFT_ARGS = {"stitch_init": 0.9}
_LEARNED_ARGS = {"share_cost": 0.01, "tau_start": 2.0, "tau_end": 0.2, "search_frac": 0.7,
                 "gate_noise": True}


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted([*MODELS, *JCD_MODELS])


def is_jcd(name: str) -> bool:
    """Whether ``name`` is a model of the ``jcd`` family (it takes dims/joints/with_mask)."""
    return name in JCD_MODELS


def create_model(name: str, *, in_channels: int, tasks: dict[str, int], num_joints: int = 75,
                 sharing: str = "hard", task_head: bool = True, dropout: float = 0.0,
                 **overrides: Any) -> nn.Module:
    """Build a registered network.

    Args:
        name: registry name (:func:`list_models`).
        in_channels: C' of the input windows (``PreprocessConfig.channels``).
        tasks: task name -> number of classes, in head order. One task = an STL model.
        num_joints: V (75, the mp75 graph).
        sharing: ``hard`` | ``soft`` | ``learned`` (ignored with one task: one trunk).
        task_head: add the task head (only meaningful with more than one task).
        dropout: dropout before the heads.
        **overrides: any :class:`BackboneSpec` field (``blocks``, ``temporal_kernel``,
            ``partitions``, ``data_bn``) or sharing argument (``stitch_init``;
            ``share_cost``, ``tau_start``, ``tau_end``, ``search_frac``, ``gate_noise``).

    Returns:
        The model, with ``model_args``: a JSON-serialisable dict such that
        ``create_model(**model.model_args)`` rebuilds the same architecture.

    Raises:
        KeyError: unknown model name. ValueError: bad sharing, override or task set.
    """
    if name in JCD_MODELS:
        return _create_jcd(name, in_channels=in_channels, tasks=tasks, num_joints=num_joints,
                           sharing=sharing, task_head=task_head, dropout=dropout, **overrides)
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; registered: {list_models()}")
    if sharing not in SHARING:
        raise ValueError(f"unknown sharing {sharing!r}; known: {list(SHARING)}")
    spec: dict[str, Any] = asdict(MODELS[name])
    extra: dict[str, Any] = dict(_SOFT_ARGS if sharing == "soft" else _LEARNED_ARGS if sharing == "learned"
                 else {})
    allowed = set(spec) | set(_SOFT_ARGS) | set(_LEARNED_ARGS)
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise ValueError(f"unknown model overrides {unknown}; allowed: {sorted(allowed)}")
    for k, v in overrides.items():
        if k in spec:
            spec[k] = v
        elif k in extra:
            extra[k] = v
        # a sharing argument of another mode (e.g. share_cost with hard) is irrelevant
    spec["blocks"] = [[int(w), int(s)] for w, s in spec["blocks"]]
    tasks = {str(t): int(k) for t, k in tasks.items()}
    model = MultiTaskSTGCN(tasks=tasks, in_channels=int(in_channels), sharing=sharing,
                           task_head=task_head, num_joints=int(num_joints),
                           dropout=float(dropout), **spec, **extra)
    model.model_args = {"name": name, "in_channels": int(in_channels), "tasks": tasks,
                        "num_joints": int(num_joints), "sharing": sharing,
                        "task_head": model.has_task_head, "dropout": float(dropout),
                        **spec, **extra}
    return model


def _create_jcd(name: str, *, in_channels: int, tasks: dict[str, int], num_joints: int,
                sharing: str, task_head: bool, dropout: float, **overrides: Any) -> MultiTaskJCD:
    if sharing != "hard":
        raise ValueError(f"model {name!r} shares its trunk hard only (sharing 'hard'), "
                         f"got {sharing!r}")
    spec: dict[str, Any] = {**asdict(JCD_MODELS[name]), **_JCD_INPUT_ARGS}
    unknown = sorted(set(overrides) - set(spec))
    if unknown:
        raise ValueError(f"unknown model overrides {unknown}; allowed: {sorted(spec)}")
    spec.update(overrides)
    spec["joints"] = sorted(int(j) for j in spec["joints"])
    spec["task_head_joints"] = sorted(int(j) for j in spec["task_head_joints"] or ())
    spec["task_joints"] = {str(t): sorted(int(j) for j in js)
                           for t, js in dict(spec["task_joints"] or {}).items()}
    tasks = {str(t): int(k) for t, k in tasks.items()}
    model = MultiTaskJCD(tasks=tasks, in_channels=int(in_channels), num_joints=int(num_joints),
                         task_head=task_head, dropout=float(dropout), **spec)
    model.model_args = {"name": name, "in_channels": int(in_channels), "tasks": tasks,
                        "num_joints": int(num_joints), "sharing": sharing,
                        "task_head": model.has_task_head, "dropout": float(dropout), **spec}
    return model


def count_macs(model: nn.Module, input_shape: Sequence[int],
               tasks: Sequence[str] | None = None) -> int:
    """Multiply-accumulates of one forward pass (eval mode) on a zero input.

    Counts convolutions, linear layers and graph matmuls through forward hooks;
    batch norm (folded at export), ReLU, pooling and additions are not counted.
    """
    total = 0

    def conv(m: nn.Conv2d | nn.Conv1d, _: Any, out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() * (m.in_channels // m.groups) * math.prod(m.kernel_size)

    def linear(m: nn.Linear, _: Any, out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() * m.in_features

    def matmul(m: GraphMatmul, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() * inputs[1].shape[-2]

    hooks = []
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv1d)):
            hooks.append(m.register_forward_hook(conv))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear))
        elif isinstance(m, GraphMatmul):
            hooks.append(m.register_forward_hook(matmul))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(tuple(input_shape)), tasks=tasks)
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    return total


def count_flops(model: nn.Module, input_shape: Sequence[int],
                tasks: Sequence[str] | None = None) -> int:
    """FLOPs of one forward pass in eval mode: 2 x :func:`count_macs`.

    ``input_shape`` is ``(N, C', T, V)``; divide by N for FLOPs per window.
    """
    return 2 * count_macs(model, input_shape, tasks)


def count_params(model: nn.Module) -> int:
    """Trainable parameters (for learned sharing: both candidates of every block)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["JCD_MODELS", "MODELS", "SHARING", "BackboneSpec", "JCDSpec", "MultiTaskJCD",
           "MultiTaskSTGCN", "count_flops", "count_macs", "count_params", "create_model",
           "is_jcd", "list_models"]
