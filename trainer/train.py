"""Usage: skelmtl train --config configs/bundled.yaml [--resume | --overwrite] [--set optim.epochs=5]

Trains one model (multi-task, or single-task when the config names one task) on a
composite of clip stores. On CPU, on CUDA with mixed precision, and across processes with
``torchrun --nproc-per-node N -m trainer.train --config ...`` (DistributedDataParallel;
gloo on CPU, NCCL on CUDA).

Writes to the run folder: ``last.pt`` (every epoch, for resuming), ``best.pt`` (best
validation accuracy averaged over tasks; the last epoch for a run without validation
clips, ``data.val_fraction: 0``), ``history.jsonl`` (one line per epoch),
``config.yaml`` (the resolved config) and TensorBoard scalars under ``tb/``. A folder that
already holds a run is continued with ``--resume`` or started over with ``--overwrite``;
without either, training refuses it rather than replace a checkpoint.

A run stops at ``optim.epochs`` or earlier, when the validation score has not improved for
``optim.patience`` epochs; a run that ends while still improving says so in the log and
in its last history line (``still_improving``).

``preprocess.joints`` left empty is filled in from the training clips: the mp75 joints
that any task's data has (closed under the mirror map when mirroring is on). The model
then sees exactly those joints at run time too (edge.core.preprocess masks the rest).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import sys
import time
import typing
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch.utils.data import DataLoader

from edge import __version__
from edge.core.layout import MP75
from edge.core.metadata import ModelMeta
from trainer.checkpoint import read_checkpoint, save_checkpoint
from trainer.config import ConfigError, TrainConfig, load_config
from trainer.data import Augmenter, ClipDataset, Composite, CompositeSampler, collate

logger = logging.getLogger(__name__)
RUN_FILES = ("last.pt", "best.pt", "history.jsonl")


@dataclass
class Env:
    """Where this process runs: device and DDP rank."""

    device: torch.device
    rank: int = 0
    world: int = 1
    amp: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


@dataclass
class RunResult:
    """What :func:`train` returns. ``best_val`` is None for a run without validation clips
    (``best`` is then its last epoch; with ``optim.ema_epochs``, that epoch's averaged
    weights, as for every ``best.pt``, where ``last.pt`` keeps the raw ones)."""

    out_dir: Path
    best: Path
    best_val: float | None
    epochs_run: int
    history: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup_env(cfg: TrainConfig) -> Env:
    """Pick the device and join the process group when launched by torchrun."""
    want = cfg.device
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if want == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device: cuda, but this torch ({torch.__version__}) sees no CUDA "
                              "GPU; use device: auto or cpu")
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    return Env(device=device, rank=rank, world=world, amp=cfg.amp and device.type == "cuda")


def build_model(cfg: TrainConfig, tasks: tuple[str, ...], labels: dict[str, tuple[str, ...]],
                task_joints: dict[str, tuple[int, ...]] | None = None) -> torch.nn.Module:
    from trainer.models import create_model, is_jcd

    m = cfg.model
    extra: dict[str, Any] = {}
    if is_jcd(m.name):  # the jcd family reads the joint stream and mask itself
        pre = cfg.preprocess
        if pre.streams[0] != "joint":
            raise ConfigError(f"model {m.name!r} needs the 'joint' stream in preprocess.streams")
        extra = {"dims": pre.dims, "with_mask": pre.with_mask, "joints": list(pre.joints)}
        if task_joints and len(tasks) > 1:
            extra["task_joints"] = {t: list(task_joints[t]) for t in tasks if t in task_joints}
            # The task head sees only what every task's data has, so it tells the tasks
            # apart by movement, not by which joints a dataset happened to fill.
            common = set.intersection(*(set(task_joints.get(t, pre.joints)) for t in tasks))
            if m.task_head and len(common) >= 2:
                extra["task_head_joints"] = sorted(common)
            elif m.task_head:
                logger.warning("the tasks' data share %d joints: the task head sees all %d",
                               len(common), len(pre.joints))
    try:
        return create_model(m.name, in_channels=cfg.preprocess.channels,
                            tasks={t: len(labels[t]) for t in tasks}, sharing=m.sharing,
                            task_head=m.task_head and len(tasks) > 1, dropout=m.dropout,
                            **extra, **m.overrides)
    except (KeyError, ValueError) as e:
        raise ConfigError(f"model: {e}") from None


def data_joints(cfg: TrainConfig, comp: Composite, indices: list[int]
                ) -> tuple[tuple[int, ...], dict[str, tuple[int, ...]]]:
    """The joints the model will use and those each task's data has.

    Returns:
        ``preprocess.joints`` if set, else every joint of the layout's ``core`` that any
        task's training clips have; and per task its own joints (within the first).
        Both are closed under the mirror map when mirroring is on.
    """
    per_task = {}
    core = set(MP75.core or range(MP75.num_joints))
    for t, js in comp.joints_by_task(indices).items():
        s = set(js) & core
        if cfg.augment.mirror > 0:
            s |= {MP75.mirror[j] for j in s}
        per_task[t] = s
    joints = set(cfg.preprocess.joints) or {j for s in per_task.values() for j in s}
    return tuple(sorted(joints)), {t: tuple(sorted(s & joints)) for t, s in per_task.items()}


def still_improving(history: list[dict[str, Any]], patience: int) -> bool:
    """Whether the best score came in the last ``max(1, patience // 4)`` epochs (or the
    last tenth of a run without a stopping rule): the run had not reached its plateau."""
    if not history or history[-1]["score"] is None:  # nothing validated: no plateau to see
        return False
    tail = max(1, patience // 4) if patience else max(1, len(history) // 10)
    return best_epoch(history) >= len(history) - tail


def _rank(row: dict[str, Any]) -> tuple[float, float]:
    """How an epoch ranks: validation accuracy, then the lower validation loss (the
    accuracy of a few dozen clips ties often; the loss tells the better-fitted apart).
    A run without validation clips (``score`` None) ranks its epochs by their order, so
    its best checkpoint is its last epoch."""
    if row["score"] is None:
        return (float(row["epoch"]), 0.0)
    return (row["score"], -row.get("val_loss", 0.0))


def best_epoch(history: list[dict[str, Any]]) -> int:
    """Index of the best epoch (the first of equals)."""
    ranks = [_rank(h) for h in history]
    return ranks.index(max(ranks))


class _Ema:
    """An exponential moving average of a model's floating-point state (weights and
    batch-norm statistics); integer state (batch counters) is copied.

    The decay ramps up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates (as
    TensorFlow's ExponentialMovingAverage does with ``num_updates``): without the ramp a
    20-epoch average still held mostly the first epochs' weights when the stopping rule
    ended 3 of 5 MSR folds, at chance, after 41 epochs."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        import copy

        self.module, self.decay, self.updates = copy.deepcopy(model), float(decay), 0
        self.module.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        new = model.state_dict()
        for k, v in self.module.state_dict().items():
            if v.is_floating_point():
                v.lerp_(new[k].detach(), 1.0 - d)
            else:
                v.copy_(new[k])

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])


class _Plateau:
    """Halve the learning rate after ``patience`` epochs without a lower training loss,
    never below ``min_lr`` (DD-Net's recipe; it reads the training loss, which is smooth,
    where the validation score of a few dozen clips is not)."""

    def __init__(self, opt: torch.optim.Optimizer, patience: int, min_lr: float,
                 factor: float = 0.5) -> None:
        self.opt, self.patience, self.min_lr, self.factor = opt, patience, min_lr, factor
        self.best, self.bad = float("inf"), 0

    def step_epoch(self, loss: float) -> None:
        if loss < self.best * (1 - 1e-4):
            self.best, self.bad = loss, 0
            return
        self.bad += 1
        if self.bad > self.patience:
            for g in self.opt.param_groups:
                g["lr"] = max(self.min_lr, g["lr"] * self.factor)
            self.bad = 0

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.opt.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad": self.bad,
                "lr": [g["lr"] for g in self.opt.param_groups]}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.best, self.bad = d["best"], d["bad"]
        for g, lr in zip(self.opt.param_groups, d["lr"]):
            g["lr"] = lr


class _Cosine:
    """Per-step warm-up + cosine (:func:`lr_lambda`) behind the same interface."""

    def __init__(self, opt: torch.optim.Optimizer, cfg: TrainConfig, steps: int) -> None:
        self.sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg, steps))

    def step(self) -> None:
        self.sched.step()

    def step_epoch(self, loss: float) -> None:
        return None

    def get_last_lr(self) -> list[float]:
        return [float(v) for v in self.sched.get_last_lr()]

    def state_dict(self) -> dict[str, Any]:
        return dict(self.sched.state_dict())

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.sched.load_state_dict(d)


def check_run_folder(out: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to start a fresh run over another run's files unless told to.

    Raises:
        ConfigError: ``out`` holds a run and neither ``resume`` nor ``overwrite`` was given,
            or ``out`` is a file.
    """
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: the run folder is a file")
    used = [n for n in RUN_FILES if (out / n).exists()]
    if used and not (resume or overwrite):
        raise ConfigError(f"{out}: already holds a run ({', '.join(used)}); pass --resume "
                          f"to continue it or --overwrite to start over, or choose --out")


def lr_lambda(cfg: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """Linear warm-up, then cosine decay to 1% of the base rate, per optimiser step."""
    warm = cfg.optim.warmup_epochs * steps_per_epoch
    total = max(1, cfg.optim.epochs * steps_per_epoch)

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        p = (step - warm) / max(1, total - warm)
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, p)))
    return f


def validation_loss(res: dict[str, np.ndarray], tasks: tuple[str, ...]) -> float:
    """Mean over tasks of the cross-entropy of each clip's own head (from :func:`predict`)."""
    losses = []
    for ti, name in enumerate(tasks):
        sel = res["task"] == ti
        if sel.any():
            z = res[f"logits_{name}"][sel].astype(np.float64)
            z = z - z.max(1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(1, keepdims=True))
            losses.append(float(-logp[np.arange(len(z)), res["label"][sel]].mean()))
    return float(np.mean(losses)) if losses else 0.0


@torch.no_grad()
def predict(model: torch.nn.Module, dataset: ClipDataset, tasks: tuple[str, ...],
            device: torch.device, batch_size: int = 128) -> dict[str, np.ndarray]:
    """Run ``model`` over ``dataset`` (no augmentation).

    Returns:
        ``task`` (N,) task index, ``label`` (N,), ``pred`` (N,) argmax of the sample's own
        task head, ``logits_<task>`` (N, K) per task, ``task_logits`` when present.
    """
    was_training = model.training
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    outs: dict[str, list[np.ndarray]] = {}
    t_all, l_all = [], []
    for x, t, lab in loader:
        y = model(x.to(device))
        for k, v in y.items():
            outs.setdefault(k, []).append(v.float().cpu().numpy())
        t_all.append(t.numpy())
        l_all.append(lab.numpy())
    model.train(was_training)
    res = {k: np.concatenate(v) for k, v in outs.items()}
    res["task"] = np.concatenate(t_all) if t_all else np.zeros(0, np.int64)
    res["label"] = np.concatenate(l_all) if l_all else np.zeros(0, np.int64)
    pred = np.full(len(res["task"]), -1)
    for ti, name in enumerate(tasks):
        sel = res["task"] == ti
        if sel.any():
            pred[sel] = res[f"logits_{name}"][sel].argmax(1)
    res["pred"] = pred
    return res


def accuracy_per_task(res: dict[str, np.ndarray], tasks: tuple[str, ...]) -> dict[str, float]:
    acc = {}
    for ti, name in enumerate(tasks):
        sel = res["task"] == ti
        if sel.any():
            acc[name] = float((res["pred"][sel] == res["label"][sel]).mean())
    if "task_logits" in res and len(res["task"]):
        acc["task_head"] = float((res["task_logits"].argmax(1) == res["task"]).mean())
    return acc


def step_counts(task_index: torch.Tensor, labels: torch.Tensor, n_tasks: int) -> torch.Tensor:
    """The denominators of one step's losses: per task its labelled samples, then every
    sample (the task head learns from all of them, labelled or not:
    ``augment.splice_task_only``). ``(n_tasks + 1,)`` float64.
    """
    labelled = labels >= 0
    return torch.stack([((task_index == i) & labelled).sum() for i in range(n_tasks)]
                       + [task_index.new_tensor(len(task_index))]).double()


def train(cfg: TrainConfig, *, resume: bool = False, overwrite: bool = False,
          progress: bool = True, log: Callable[[str], None] = logger.info) -> RunResult:
    """Train one model as ``cfg`` says; returns where the best checkpoint is.

    With ``resume``, continues from ``<out>/last.pt`` when it exists (the optimiser,
    scheduler, loss weighting and epoch counter included); a finished run is not redone.
    With ``overwrite``, a folder holding another run is started over (its files are
    replaced as the new run writes them). Without either, such a folder is refused.

    Raises:
        ConfigError: bad config, unusable data, a used run folder, or a run that could
            not take a single optimiser step.
    """
    from trainer.losses import create_weighting, distillation_losses, masked_task_losses

    t0 = time.perf_counter()
    env = setup_env(cfg)
    seed_everything(cfg.seed)
    out = cfg.out_dir
    check_run_folder(out, resume=resume, overwrite=overwrite)
    comp = Composite(cfg.data, cfg.tasks)
    tasks, labels = comp.tasks, comp.labels
    split = comp.splits(cfg.seed)
    if not split["train"]:
        raise ConfigError(f"no training clips (split {cfg.data.train_split!r}) in the sources")
    joints, task_joints = data_joints(cfg, comp, split["train"])
    if joints != cfg.preprocess.joints:
        cfg = cfg.replace(**{"preprocess.joints": list(joints)})
    augment = Augmenter(cfg.augment, labels, tasks)
    train_ds = ClipDataset(comp, split["train"], cfg.preprocess, augment, seed=cfg.seed)
    val_ds = ClipDataset(comp, split["val"], cfg.preprocess)
    sampler = CompositeSampler(comp, split["train"], [s.weight for s in cfg.data.sources],
                               cfg.data.epoch_size, cfg.seed, env.rank, env.world,
                               cfg.data.sampling)
    accum = cfg.optim.accumulate
    per_rank = cfg.optim.batch_size // env.world
    if per_rank < accum or cfg.optim.batch_size % env.world:
        raise ConfigError(f"optim.batch_size {cfg.optim.batch_size} must split evenly over "
                          f"{env.world} processes and {accum} accumulation steps")
    # A batch larger than the epoch would drop every sample (drop_last) and train nothing;
    # shrink it to the epoch rather than write an untrained best.pt.
    per_rank = min(per_rank, len(sampler))
    if per_rank < 2:
        raise ConfigError(f"{len(split['train'])} training clip(s) per process: too few for "
                          f"one optimiser step with batch normalisation (need at least 2)")
    loader = DataLoader(train_ds, batch_size=per_rank, sampler=sampler, collate_fn=collate,
                        drop_last=drop_last_batch(cfg.data.sampling, len(sampler), per_rank))
    if not len(val_ds) and cfg.optim.patience and env.main:
        # A warning, not an error: a small store's classes of 2 clips or fewer carve none
        # at any val_fraction, and such runs trained before (keeping their first epoch).
        logger.warning("%s: no validation clips (data.val_fraction %g carved none and there "
                       "is no val split): the stopping rule (optim.patience %d) has nothing "
                       "to watch, so the run trains all %d epochs and keeps the last", out,
                       cfg.data.val_fraction, cfg.optim.patience, cfg.optim.epochs)

    model = build_model(cfg, tasks, labels, task_joints).to(env.device)
    weighting = create_weighting(cfg.loss.weighting, list(tasks)).to(env.device)
    teachers = None
    if cfg.loss.distill_from:
        from trainer.distill import Teachers

        # Loading draws from the global generator (the models' initialisation): forked, so
        # a distilled run and the plain run at its seed see the same dropout and batches.
        with torch.random.fork_rng(devices=[]):
            teachers = Teachers(cfg.loss.distill_from, cfg.preprocess, dict(labels),
                                env.device)
    net: torch.nn.Module = model
    if env.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[env.device.index] if env.device.type == "cuda" else None,
            find_unused_parameters=True)
    params = list(model.parameters()) + list(weighting.parameters())
    opt_cls = torch.optim.AdamW if cfg.optim.optimizer == "adamw" else torch.optim.Adam
    opt = opt_cls(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    steps = max(1, len(loader))
    sched: _Plateau | _Cosine = (_Plateau(opt, cfg.optim.lr_patience, cfg.optim.min_lr)
                                 if cfg.optim.schedule == "plateau" else _Cosine(opt, cfg, steps))
    scaler = torch.amp.GradScaler("cuda", enabled=env.amp)
    # With optim.ema_epochs the averaged weights are what is validated and saved as
    # best.pt (on MSR Action3D they scored as the plain ones: docs/tuning/msr.md).
    ema = _Ema(model, 1.0 - 1.0 / max(1.0, cfg.optim.ema_epochs * steps)) \
        if cfg.optim.ema_epochs > 0 else None

    meta = ModelMeta(preprocess=cfg.preprocess, tasks=tasks, labels=labels, stride=cfg.stride,
                     has_task_head=bool(getattr(model, "model_args", {}).get("task_head")),
                     producer={"skelmtl": __version__, "torch": str(torch.__version__),
                               "data_fingerprint": comp.fingerprint(), "run": cfg.name})
    start, best_val, history = 0, (-1.0 if len(val_ds) else None), []
    last = out / "last.pt"
    if resume and last.is_file():
        blob = read_checkpoint(last)
        ex = blob["extra"]
        # Check what the checkpoint was trained on before loading its weights: a label
        # set of another size would otherwise surface as a tensor-shape traceback.
        old_labels = {t: tuple(v) for t, v in blob.get("meta", {}).get("labels", {}).items()}
        if old_labels and old_labels != dict(labels):
            diff = {t: (old_labels.get(t), labels.get(t)) for t in set(old_labels) | set(labels)
                    if old_labels.get(t) != labels.get(t)}
            raise ConfigError(f"{last}: the checkpoint's labels do not match the data's: "
                              + "; ".join(f"{t}: checkpoint {a} vs data {b}"
                                          for t, (a, b) in sorted(diff.items())))
        if ex.get("data_fingerprint") != comp.fingerprint():
            raise ConfigError(f"{last}: trained on other data (fingerprint "
                              f"{ex.get('data_fingerprint')} != {comp.fingerprint()})")
        # The fingerprint does not cover the carve: a run that switches between validated
        # and unvalidated epochs would mix best-by-score with best-by-order.
        if bool(ex.get("val")) != bool(len(val_ds)):
            was, now = ("with", "without") if ex.get("val") else ("without", "with")
            raise ConfigError(f"{last}: trained {was} validation clips and resumed {now} "
                              f"them (data.val_fraction or the stores' val split changed); "
                              f"start over with --overwrite")
        model.load_state_dict(blob["state_dict"])
        opt.load_state_dict(ex["optimizer"])
        sched.load_state_dict(ex["scheduler"])
        weighting.load_state_dict(ex["weighting"])
        if ema is not None and "ema" in ex:
            ema.load_state_dict(ex["ema"])
        # Dropout draws from the global generators: without their state a resumed run
        # would not repeat the uninterrupted one.
        if "rng" in ex:
            torch.set_rng_state(ex["rng"]["cpu"])
            if env.device.type == "cuda" and ex["rng"].get("cuda") is not None:
                torch.cuda.set_rng_state(ex["rng"]["cuda"], env.device)
        start, best_val, history = ex["epoch"] + 1, ex["best_val"], ex["history"]
        if env.main:
            log(f"resuming {out} at epoch {start}/{cfg.optim.epochs}")
    if env.main:
        out.mkdir(parents=True, exist_ok=True)
        if start == 0:  # --overwrite (checked above): the new run's history starts empty
            (out / "history.jsonl").unlink(missing_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        log(f"{cfg.name}: tasks {list(tasks)}, {len(split['train'])} train / "
            f"{len(split['val'])} val clips, {len(joints)} joints, "
            f"{sum(p.numel() for p in model.parameters())} parameters, device {env.device}, "
            f"world {env.world}, mixed precision {'on' if env.amp else 'off'}"
            + (f", distilled from {len(teachers.models)} teacher(s) (weight "
               f"{cfg.loss.distill_weight}, temperature {cfg.loss.distill_temperature})"
               if teachers is not None else ""))
    writer = _tensorboard(out / "tb") if env.main else None
    stopped = _patience_exhausted(history, cfg.optim.patience)
    n_steps = 0

    for epoch in range(start, cfg.optim.epochs):
        if stopped:
            break
        model.train()
        getattr(model, "on_epoch_start", lambda e, n: None)(epoch, cfg.optim.epochs)
        sampler.set_epoch(epoch)
        train_ds.set_epoch(epoch)
        sums: dict[str, float] = {}
        kd_sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        bar = _bar(loader, progress and env.main, f"epoch {epoch + 1}/{cfg.optim.epochs}")
        for x, t, lab in bar:
            x, t, lab = x.to(env.device), t.to(env.device), lab.to(env.device)
            opt.zero_grad(set_to_none=True)
            # Per-task sample counts over the whole optimiser step (all ranks, all
            # micro-batches): each task's loss is its mean over those samples, so one
            # DDP step over N ranks equals one step with N accumulated micro-batches.
            n_step = step_counts(t, lab, len(tasks))
            if env.world > 1:
                dist.all_reduce(n_step)
            shards = env.world * accum
            for r in range(accum):
                xs, ts, ls = x[r::accum], t[r::accum], lab[r::accum]
                # Only the last micro-batch's backward all-reduces across DDP ranks (the flag
                # is read when the forward runs, so the forward is what no_sync wraps).
                sync = nullcontext() if env.world == 1 or r == accum - 1 else \
                    typing.cast(torch.nn.parallel.DistributedDataParallel, net).no_sync()
                with sync, torch.autocast(env.device.type, enabled=env.amp):
                    outputs = net(xs)
                outputs = {k: v.float() for k, v in outputs.items()}
                losses = masked_task_losses(outputs, ts, ls, list(tasks),
                                            label_smoothing=cfg.loss.label_smoothing)
                kd: dict[str, torch.Tensor] = {}
                temp, w = cfg.loss.distill_temperature, cfg.loss.distill_weight
                if teachers is not None:
                    # fp32 teachers: no gradient flows through them, and an fp16 overflow
                    # would turn their probabilities into NaN.
                    soft = teachers.probabilities(xs, temp)
                    kd = distillation_losses(outputs, soft, ts, ls, list(tasks), temp)
                # What is optimised mixes in the distillation term; what is logged and what
                # the plateau schedule watches stays the labels' cross-entropy, so that
                # distilling does not change when the learning rate drops (the distillation
                # term keeps falling slowly and would hold the rate at its start).
                mixed = {k: (1 - w) * v + w * kd[k] if k in kd else v for k, v in losses.items()}
                n_micro = [int(c) for c in step_counts(ts, ls, len(tasks)).tolist()[:-1]]
                scaled = {k: mixed[k] * (n_micro[i] * shards / max(float(n_step[i]), 1.0))
                          for i, k in enumerate(tasks)}
                total = weighting(scaled)
                if "task" in losses and meta.has_task_head:
                    task_scale = len(ts) * shards / max(float(n_step[-1]), 1.0)
                    total = total + cfg.loss.task_head_weight * losses["task"] * task_scale
                total = total + model.regularization()  # type: ignore[operator]
                scaler.scale(total / accum).backward()
                for i, k in enumerate(tasks):
                    if n_micro[i]:
                        sums[k] = sums.get(k, 0.0) + float(losses[k].detach()) * n_micro[i]
                        counts[k] = counts.get(k, 0) + n_micro[i]
                        if k in kd:
                            kd_sums[k] = kd_sums.get(k, 0.0) + float(kd[k].detach()) * n_micro[i]
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip)
            scaler.step(opt)
            scaler.update()
            if ema is not None:
                ema.update(model)
            n_steps += 1
            if isinstance(sched, _Cosine):
                sched.step()
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{float(total.detach()):.3f}")
        if env.world > 1:
            if teachers is not None:
                kd_sums, _ = _all_sum(kd_sums, counts, tasks)
            sums, counts = _all_sum(sums, counts, tasks)
        epoch_losses = {k: sums[k] / counts[k] for k in sums if counts[k]}
        # (after the all-reduce every task has a sum; only the taught ones have a term)
        taught = {t for ts_ in teachers.tasks for t in ts_} if teachers is not None else set()
        epoch_kd = {k: kd_sums[k] / counts[k] for k in kd_sums if counts.get(k) and k in taught}
        if not n_steps:
            raise ConfigError(f"{out}: epoch {epoch + 1} took no optimiser step "
                              f"({len(split['train'])} training clips, batch {per_rank})")
        weighting.update_epoch(epoch_losses)
        sched.step_epoch(float(np.mean(list(epoch_losses.values()))) if epoch_losses else 0.0)
        judged = ema.module if ema is not None else model
        pred = predict(judged, val_ds, tasks, env.device) if len(val_ds) else None
        val = accuracy_per_task(pred, tasks) if pred is not None else {}
        score = float(np.mean([val[k] for k in tasks if k in val])) if val else None
        row: dict[str, Any] = {"epoch": epoch, "loss": epoch_losses, "val": val, "score": score,
                               "val_loss": validation_loss(pred, tasks) if pred is not None
                               else 0.0,
                               "weights": weighting.weights(), "lr": sched.get_last_lr()[0]}
        if epoch_kd:
            row["distill"] = epoch_kd
        is_best = not history or _rank(row) > _rank(history[best_epoch(history)])
        history.append(row)
        stopped = _patience_exhausted(history, cfg.optim.patience)
        if epoch + 1 == cfg.optim.epochs and not stopped \
                and still_improving(history, cfg.optim.patience):
            row["still_improving"] = True
            if env.main:
                logger.warning("%s: the last epochs were still improving the validation score "
                               "(best at epoch %d of %d); raise optim.epochs to reach the "
                               "plateau", out, best_epoch(history) + 1,
                               len(history))
        if stopped:
            row["stopped"] = f"no better validation score for {cfg.optim.patience} epochs"
        if env.main:
            if writer is not None:
                for k, v in epoch_losses.items():
                    writer.add_scalar(f"loss/{k}", v, epoch)
                for k, v in val.items():
                    writer.add_scalar(f"val_acc/{k}", v, epoch)
                for k, v in weighting.weights().items():
                    writer.add_scalar(f"weight/{k}", v, epoch)
            with open(out / "history.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
            extra: dict[str, Any] = {
                "epoch": epoch, "best_val": None if score is None or best_val is None
                else max(best_val, score), "history": history,
                "data_fingerprint": comp.fingerprint(), "val": val}
            if is_best:
                best_val = score
                save_checkpoint(out / "best.pt", judged, meta, cfg.to_dict(), **extra)
            if ema is not None:
                extra["ema"] = ema.state_dict()
            extra["rng"] = {"cpu": torch.get_rng_state(),
                            "cuda": torch.cuda.get_rng_state(env.device)
                            if env.device.type == "cuda" else None}
            save_checkpoint(last, model, meta, cfg.to_dict(), optimizer=opt.state_dict(),
                            scheduler=sched.state_dict(), weighting=weighting.state_dict(),
                            **extra)
            if not progress:
                log(f"epoch {epoch + 1}/{cfg.optim.epochs} loss "
                    + " ".join(f"{k}={v:.3f}" for k, v in epoch_losses.items())
                    + (" val " + " ".join(f"{k}={v:.3f}" for k, v in val.items()) if val
                       else ""))
        if env.world > 1:
            dist.barrier()
    if writer is not None:
        writer.close()
    if env.main and not (out / "best.pt").exists() and last.exists():
        raise ConfigError(f"{out}: run finished without a best checkpoint")
    if env.main and stopped and history:
        log(f"stopped at epoch {len(history)}: no better validation score for "
            f"{cfg.optim.patience} epochs (best {best_val:.4f})")
    return RunResult(out_dir=out, best=out / "best.pt", best_val=best_val,
                     epochs_run=len(history) - start, history=history,
                     wall_s=time.perf_counter() - t0)


def drop_last_batch(sampling: str, clips: int, batch: int) -> bool:
    """Whether an epoch of ``clips`` drops its last partial batch: always with ``weighted``
    sampling (as before ``pass`` existed); with ``pass`` only when that batch would hold a
    single clip, on which batch normalisation cannot train."""
    return sampling == "weighted" or clips % batch == 1


def _patience_exhausted(history: list[dict[str, Any]], patience: int) -> bool:
    """The stopping rule: ``patience`` epochs since the best validation score."""
    if not patience or not history:
        return False
    return len(history) - 1 - best_epoch(history) >= patience


def _all_sum(sums: dict[str, float], counts: dict[str, int], tasks: tuple[str, ...]
             ) -> tuple[dict[str, float], dict[str, int]]:
    """Sum per-task loss sums and counts over DDP ranks."""
    v = torch.tensor([[sums.get(k, 0.0), counts.get(k, 0)] for k in tasks], dtype=torch.float64)
    dist.all_reduce(v)
    return ({k: float(v[i, 0]) for i, k in enumerate(tasks)},
            {k: int(v[i, 1]) for i, k in enumerate(tasks)})


def _bar(it: Any, show: bool, desc: str) -> Any:
    if not show:
        return it
    from tqdm import tqdm

    # disable=None: off when stderr is not a terminal (logs, CI), where every redraw would
    # be written out again (as in edge/frontend/extract.py).
    return tqdm(it, desc=desc, leave=False, dynamic_ncols=True, disable=None)


def _tensorboard(path: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(path))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="YAML training config")
    p.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    p.add_argument("--overwrite", action="store_true",
                   help="start over in a folder that already holds a run")
    p.add_argument("--out", help="output folder (default runs/<name>)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="override config keys, e.g. optim.epochs=5 model.sharing=soft")
    p.add_argument("--no-progress", action="store_true", help="log epochs instead of a bar")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        out[key] = yaml.safe_load(value)
    return out


def apply_overrides(cfg: TrainConfig, overrides: dict[str, Any], path: str) -> TrainConfig:
    """``cfg`` with ``--set`` changes, one at a time, so that an error names its flag.

    Raises:
        ConfigError: ``--set KEY=VALUE: <file>...: <problem>`` for an unknown key or a
            value the config refuses.
    """
    for key, value in overrides.items():
        flag = f"--set {key}={value!r}"
        try:
            cfg = cfg.replace(**{key: value})
        except ConfigError as e:
            raise ConfigError(f"{flag}: {str(e).replace('<replace>', path)}") from None
        except (KeyError, TypeError):
            raise ConfigError(f"{flag}: {path} has no key {key!r}") from None
    return cfg


def main(args: argparse.Namespace) -> int:
    overrides = parse_overrides(args.set)
    if args.resume and args.overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
    logger.setLevel(logging.INFO)  # the command shows its progress lines
    cfg = apply_overrides(load_config(args.config), overrides, str(args.config))
    if args.out:
        cfg = cfg.replace(out=args.out)
    res = train(cfg, resume=args.resume, overwrite=args.overwrite,
                progress=not args.no_progress, log=logger.info)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"best validation accuracy {res.best_val:.4f}; checkpoint {res.best}"
              if res.best_val is not None else
              f"no validation clips: the last epoch is the checkpoint {res.best}")
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":  # torchrun --nproc-per-node 2 -m trainer.train --config ...
    from edge.commands.runner import run_main

    sys.exit(run_main("train", sys.modules[__name__]))
