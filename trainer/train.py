"""Usage: skelmtl train --config configs/tiny_mtl_3d.yaml [--resume] [--set optim.epochs=5]

Trains one model (multi-task, or single-task when the config names one task) on a
composite of clip stores. On CPU, on CUDA with mixed precision, and across processes with
``torchrun --nproc-per-node N -m trainer.train --config ...`` (DistributedDataParallel;
gloo on CPU, NCCL on CUDA).

Writes to the run folder: ``last.pt`` (every epoch, for resuming), ``best.pt`` (best
validation accuracy averaged over tasks), ``history.jsonl`` (one line per epoch),
``config.yaml`` (the resolved config) and TensorBoard scalars under ``tb/``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
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
from edge.metadata import ModelMeta
from trainer.checkpoint import read_checkpoint, save_checkpoint
from trainer.config import ConfigError, TrainConfig, load_config
from trainer.data import Augmenter, ClipDataset, Composite, CompositeSampler, collate


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
    """What :func:`train` returns."""

    out_dir: Path
    best: Path
    best_val: float
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


def build_model(cfg: TrainConfig, tasks: tuple[str, ...], labels: dict[str, tuple[str, ...]]
                ) -> torch.nn.Module:
    from trainer.models import create_model

    m = cfg.model
    return create_model(m.name, in_channels=cfg.preprocess.channels,
                        tasks={t: len(labels[t]) for t in tasks}, sharing=m.sharing,
                        task_head=m.task_head and len(tasks) > 1, dropout=m.dropout,
                        **m.overrides)


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


def train(cfg: TrainConfig, *, resume: bool = False, progress: bool = True,
          log: Callable[[str], None] = print) -> RunResult:
    """Train one model as ``cfg`` says; returns where the best checkpoint is.

    With ``resume``, continues from ``<out>/last.pt`` when it exists (the optimiser,
    scheduler, loss weighting and epoch counter included); a finished run is not redone.
    """
    from trainer.losses import create_weighting, masked_task_losses

    t0 = time.perf_counter()
    env = setup_env(cfg)
    seed_everything(cfg.seed)
    out = cfg.out_dir
    comp = Composite(cfg.data, cfg.tasks)
    tasks, labels = comp.tasks, comp.labels
    split = comp.splits(cfg.seed)
    if not split["train"]:
        raise ConfigError(f"no training clips (split {cfg.data.train_split!r}) in the sources")
    augment = Augmenter(cfg.augment, labels, tasks)
    train_ds = ClipDataset(comp, split["train"], cfg.preprocess, augment, seed=cfg.seed)
    val_ds = ClipDataset(comp, split["val"], cfg.preprocess)
    sampler = CompositeSampler(comp, split["train"], [s.weight for s in cfg.data.sources],
                               cfg.data.epoch_size, cfg.seed, env.rank, env.world)
    accum = cfg.optim.accumulate
    per_rank = cfg.optim.batch_size // env.world
    if per_rank < accum or cfg.optim.batch_size % env.world:
        raise ConfigError(f"optim.batch_size {cfg.optim.batch_size} must split evenly over "
                          f"{env.world} processes and {accum} accumulation steps")
    loader = DataLoader(train_ds, batch_size=per_rank, sampler=sampler, collate_fn=collate,
                        drop_last=True)

    model = build_model(cfg, tasks, labels).to(env.device)
    weighting = create_weighting(cfg.loss.weighting, list(tasks)).to(env.device)
    net: torch.nn.Module = model
    if env.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[env.device.index] if env.device.type == "cuda" else None,
            find_unused_parameters=True)
    params = list(model.parameters()) + list(weighting.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    steps = max(1, len(loader))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg, steps))
    scaler = torch.amp.GradScaler("cuda", enabled=env.amp)

    meta = ModelMeta(preprocess=cfg.preprocess, tasks=tasks, labels=labels, stride=cfg.stride,
                     has_task_head=bool(getattr(model, "model_args", {}).get("task_head")),
                     producer={"skelmtl": __version__, "torch": str(torch.__version__),
                               "data_fingerprint": comp.fingerprint(), "run": cfg.name})
    start, best_val, history = 0, -1.0, []
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
        model.load_state_dict(blob["state_dict"])
        opt.load_state_dict(ex["optimizer"])
        sched.load_state_dict(ex["scheduler"])
        weighting.load_state_dict(ex["weighting"])
        start, best_val, history = ex["epoch"] + 1, ex["best_val"], ex["history"]
        if env.main:
            log(f"resuming {out} at epoch {start}/{cfg.optim.epochs}")
    if env.main:
        out.mkdir(parents=True, exist_ok=True)
        if start == 0:  # a fresh run in a used folder starts a fresh history
            (out / "history.jsonl").unlink(missing_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        log(f"{cfg.name}: tasks {list(tasks)}, {len(split['train'])} train / "
            f"{len(split['val'])} val clips, {sum(p.numel() for p in model.parameters())} "
            f"parameters, device {env.device}, world {env.world}")
    writer = _tensorboard(out / "tb") if env.main else None

    for epoch in range(start, cfg.optim.epochs):
        model.train()
        getattr(model, "on_epoch_start", lambda e, n: None)(epoch, cfg.optim.epochs)
        sampler.set_epoch(epoch)
        train_ds.set_epoch(epoch)
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        bar = _bar(loader, progress and env.main, f"epoch {epoch + 1}/{cfg.optim.epochs}")
        for x, t, lab in bar:
            x, t, lab = x.to(env.device), t.to(env.device), lab.to(env.device)
            opt.zero_grad(set_to_none=True)
            # Per-task sample counts over the whole optimiser step (all ranks, all
            # micro-batches): each task's loss is its mean over those samples, so one
            # DDP step over N ranks equals one step with N accumulated micro-batches.
            n_step = torch.stack([(t == i).sum() for i in range(len(tasks))]).double()
            if env.world > 1:
                dist.all_reduce(n_step)
            shards = env.world * accum
            for r in range(accum):
                xs, ts, ls = x[r::accum], t[r::accum], lab[r::accum]
                # Only the last micro-batch's backward all-reduces across DDP ranks (the flag
                # is read when the forward runs, so the forward is what no_sync wraps).
                sync = nullcontext() if env.world == 1 or r == accum - 1 else net.no_sync()
                with sync, torch.autocast(env.device.type, enabled=env.amp):
                    outputs = net(xs)
                outputs = {k: v.float() for k, v in outputs.items()}
                losses = masked_task_losses(outputs, ts, ls, list(tasks),
                                            label_smoothing=cfg.loss.label_smoothing)
                n_micro = [int((ts == i).sum()) for i in range(len(tasks))]
                scaled = {k: losses[k] * (n_micro[i] * shards / max(float(n_step[i]), 1.0))
                          for i, k in enumerate(tasks)}
                total = weighting(scaled)
                if "task" in losses and meta.has_task_head:
                    task_scale = len(ts) * shards / max(float(n_step.sum()), 1.0)
                    total = total + cfg.loss.task_head_weight * losses["task"] * task_scale
                total = total + model.regularization()  # type: ignore[operator]
                scaler.scale(total / accum).backward()
                for i, k in enumerate(tasks):
                    if n_micro[i]:
                        sums[k] = sums.get(k, 0.0) + float(losses[k].detach()) * n_micro[i]
                        counts[k] = counts.get(k, 0) + n_micro[i]
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip)
            scaler.step(opt)
            scaler.update()
            sched.step()
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{float(total):.3f}")
        if env.world > 1:
            sums, counts = _all_sum(sums, counts, tasks)
        epoch_losses = {k: sums[k] / counts[k] for k in sums if counts[k]}
        weighting.update_epoch(epoch_losses)
        val = accuracy_per_task(predict(model, val_ds, tasks, env.device), tasks) if len(val_ds) else {}
        score = float(np.mean([val[k] for k in tasks if k in val])) if val else -float(epoch)
        row = {"epoch": epoch, "loss": epoch_losses, "val": val, "score": score,
               "weights": weighting.weights(), "lr": sched.get_last_lr()[0]}
        history.append(row)
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
            extra = {"epoch": epoch, "best_val": max(best_val, score), "history": history,
                     "data_fingerprint": comp.fingerprint(), "val": val}
            if score > best_val:
                best_val = score
                save_checkpoint(out / "best.pt", model, meta, cfg.to_dict(), **extra)
            save_checkpoint(last, model, meta, cfg.to_dict(), optimizer=opt.state_dict(),
                            scheduler=sched.state_dict(), weighting=weighting.state_dict(),
                            **extra)
            if not progress:
                log(f"epoch {epoch + 1}/{cfg.optim.epochs} loss "
                    + " ".join(f"{k}={v:.3f}" for k, v in epoch_losses.items())
                    + " val " + " ".join(f"{k}={v:.3f}" for k, v in val.items()))
        if env.world > 1:
            dist.barrier()
    if writer is not None:
        writer.close()
    if env.main and not (out / "best.pt").exists() and last.exists():
        raise ConfigError(f"{out}: run finished without a best checkpoint")
    return RunResult(out_dir=out, best=out / "best.pt", best_val=best_val,
                     epochs_run=cfg.optim.epochs - start, history=history,
                     wall_s=time.perf_counter() - t0)


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
    # be written out again (as in edge/extract.py).
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


def main(args: argparse.Namespace) -> int:
    overrides = parse_overrides(args.set)
    if args.out:
        overrides["out"] = args.out
    cfg = load_config(args.config, **overrides)
    res = train(cfg, resume=args.resume, progress=not args.no_progress)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"best validation accuracy {res.best_val:.4f}; checkpoint {res.best}")
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":  # torchrun --nproc-per-node 2 -m trainer.train --config ...
    from edge.cli import main as cli_main

    sys.exit(cli_main(["train", *sys.argv[1:]]))
