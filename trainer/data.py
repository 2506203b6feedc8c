"""Composite training sets: clip stores -> augmented, preprocessed tensors.

A :class:`Composite` joins several clip stores (e.g. an action set and a gesture set) into
one indexable set with one label space per task. :class:`ClipDataset` augments raw mp75
frames (before preprocessing, so augmentation respects the skeleton) and then calls THE
preprocessing function, :func:`edge.core.preprocess.preprocess` (with each clip's ``fps``, so a
model with a frame rate builds every window at it). :class:`CompositeSampler`
draws a configurable mix of sources per epoch and shards it across DDP ranks.

Items: ``x (C', T, V) float32``, ``task index``, ``label index`` (within the task).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from edge.core.clipstore import ClipStore, StoreError
from edge.core.layout import LEFT_HAND0, MP75, N_HAND, N_POSE, RIGHT_HAND0
from edge.core.preprocess import PreprocessConfig, clip_rate, preprocess
from trainer.config import AugmentConfig, ConfigError, DataConfig
from trainer.losses import NO_LABEL

_MIRROR = np.asarray(MP75.mirror)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipRef:
    """Where a clip of the composite lives and what it is labelled."""

    source: int
    index: int
    task: int
    label: int
    split: str
    subject: str


class Composite:
    """Several clip stores as one labelled collection.

    Attributes:
        stores: the opened stores, in config order.
        tasks: task names (sorted), restricted to ``tasks`` when given.
        labels: label names per task (sorted union over the stores, with prefixes).
        refs: one :class:`ClipRef` per usable clip.
    """

    def __init__(self, cfg: DataConfig, tasks: Sequence[str] = ()) -> None:
        if not cfg.sources:
            raise StoreError("the config lists no data sources (data.sources)")
        self.cfg = cfg
        self.stores = [ClipStore(s.store) for s in cfg.sources]
        self._fps = [np.asarray(s.column("fps"), np.float64) for s in self.stores]
        self._warned = False  # the windows' time scales, said once
        dims = {s.dims for s in self.stores}
        self.dims = min(dims)
        per_clip: list[list[tuple[str, str]]] = []
        for src, store in zip(cfg.sources, self.stores):
            names = store.task_of()
            labs = store.labels()
            per_clip.append([(src.task or t, src.label_prefix + lab) for t, lab in zip(names, labs)])
        all_tasks = sorted({t for clips in per_clip for t, _ in clips})
        if tasks:
            missing = [t for t in tasks if t not in all_tasks]
            if missing:
                raise StoreError(f"tasks {missing} are in none of the stores (they have {all_tasks})")
            all_tasks = sorted(tasks)
        self.tasks: tuple[str, ...] = tuple(all_tasks)
        self.labels: dict[str, tuple[str, ...]] = {
            t: tuple(sorted({lab for clips in per_clip for tt, lab in clips if tt == t}))
            for t in self.tasks}
        self.refs: list[ClipRef] = []
        for si, (store, clips) in enumerate(zip(self.stores, per_clip)):
            splits, subjects = store.column("split"), store.column("subject")
            for ci, (t, lab) in enumerate(clips):
                if t not in self.tasks:
                    continue
                ti = self.tasks.index(t)
                self.refs.append(ClipRef(si, ci, ti, self.labels[t].index(lab), splits[ci],
                                         subjects[ci]))

    def fingerprint(self) -> str:
        """SHA-256 over the stores' metadata and array sizes: which data trained a model."""
        h = hashlib.sha256()
        for s in self.stores:
            h.update((s.path / "meta.json").read_bytes())
            h.update(str(s.frames.shape).encode())
        h.update(json.dumps([dict(store=s.store, weight=s.weight, task=s.task,
                                  prefix=s.label_prefix) for s in self.cfg.sources]).encode())
        return h.hexdigest()[:16]

    def splits(self, seed: int) -> dict[str, list[int]]:
        """Indices into ``refs`` for ``train``, ``val`` and ``test``.

        Validation comes from a store's own ``val`` split when it has one, otherwise it is
        carved from the train split: ``val_fraction`` of each (source, task, label) group,
        chosen by ``seed``. Test clips are never touched for training or selection.
        """
        cfg = self.cfg
        rng = np.random.default_rng(seed)
        out: dict[str, list[int]] = {"train": [], "val": [], "test": []}
        has_val = {si for si, s in enumerate(self.stores) if "val" in s.column("split")}
        groups: dict[tuple[int, int, int], list[int]] = {}
        for i, r in enumerate(self.refs):
            if r.split == cfg.test_split:
                out["test"].append(i)
            elif r.split == "val" and r.source in has_val:
                out["val"].append(i)
            elif r.split == cfg.train_split:
                if r.source in has_val:
                    out["train"].append(i)
                else:
                    groups.setdefault((r.source, r.task, r.label), []).append(i)
        for key in sorted(groups):
            idx = np.asarray(groups[key])
            rng.shuffle(idx)
            n_val = int(round(len(idx) * cfg.val_fraction)) if len(idx) > 2 else 0
            out["val"].extend(idx[:n_val].tolist())
            out["train"].extend(idx[n_val:].tolist())
        for k in out:
            out[k].sort()
        return out

    def joints_by_task(self, indices: Sequence[int], min_share: float = 0.01
                       ) -> dict[str, tuple[int, ...]]:
        """Per task, the mp75 joints present in at least ``min_share`` of the frames of the
        clips ``indices`` (what a model trained on them has seen)."""
        seen: dict[int, np.ndarray] = {}
        frames: dict[int, int] = {}
        for i in indices:
            r = self.refs[i]
            m = np.asarray(self.stores[r.source][r.index].mask)
            seen[r.task] = seen.get(r.task, 0) + m.sum(0)
            frames[r.task] = frames.get(r.task, 0) + len(m)
        return {self.tasks[t]: tuple(int(j) for j in np.flatnonzero(seen[t] >= min_share * frames[t]))
                for t in sorted(seen)}

    def clip(self, i: int) -> tuple[np.ndarray, np.ndarray, ClipRef]:
        r = self.refs[i]
        c = self.stores[r.source][r.index]
        return np.asarray(c.frames[..., : self.dims]), np.asarray(c.mask), r

    def fps(self, i: int) -> float:
        """Clip ``i``'s frame rate as its store records it (0: unknown)."""
        r = self.refs[i]
        return float(self._fps[r.source][r.index])

    def check_rates(self, indices: Sequence[int], pre: PreprocessConfig) -> None:
        """Refuse clips a model with a rate cannot place in time; say how long the windows
        of a model without one are.

        Raises:
            StoreError: ``pre.fps`` is set and clips of ``indices`` have no fps (0), naming
                the store and how many.
        """
        if pre.fps is None:
            lengths = [s.lengths() for s in self.stores]
            secs = [lengths[self.refs[i].source][self.refs[i].index] / f
                    for i in indices if (f := self.fps(i)) > 0]
            if secs and max(secs) > 1.5 * min(secs) and not self._warned:
                self._warned = True
                log.warning("clips last %.1f-%.1f s and each is stretched to %d frames "
                            "(no preprocess.fps): windows of different time scales; set "
                            "preprocess.fps to build every window at one frame rate",
                            min(secs), max(secs), pre.window)
            return
        unknown: dict[int, int] = {}
        for i in indices:
            if not self.fps(i) > 0:
                unknown[self.refs[i].source] = unknown.get(self.refs[i].source, 0) + 1
        for si, n in sorted(unknown.items()):
            raise StoreError(f"{self.stores[si].path}: {n} clip(s) have no frame rate (fps 0) "
                             f"but preprocess.fps is {pre.fps:g}: give the store its fps "
                             f"(write_store(..., fps=...)) or remove preprocess.fps")


class Augmenter:
    """Skeleton-aware augmentation on raw mp75 frames ``(T, V, C)``.

    Args:
        cfg: probabilities and ranges.
        labels: per task, the label names (for the mirror remap).
    """

    def __init__(self, cfg: AugmentConfig, labels: dict[str, tuple[str, ...]],
                 tasks: Sequence[str]) -> None:
        self.cfg = cfg
        known = {lab for t in tasks for lab in labels[t]}
        unknown = sorted({lab for pair in cfg.mirror_labels for lab in pair} - known)
        if unknown:
            raise ConfigError(f"augment.mirror_labels names labels that are in no task: "
                              f"{unknown}; the labels are {sorted(known)}")
        # Per task, label index -> mirrored label index.
        self.remap: list[np.ndarray] = []
        for t in tasks:
            names = labels[t]
            m = np.arange(len(names))
            for a, b in cfg.mirror_labels:
                if a in names and b in names:
                    m[names.index(a)], m[names.index(b)] = names.index(b), names.index(a)
            self.remap.append(m)

    def __call__(self, x: np.ndarray, mask: np.ndarray, task: int, label: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
        cfg = self.cfg
        x = np.array(x, dtype=np.float32)
        mask = np.array(mask, dtype=bool)
        t = x.shape[0]
        if cfg.crop < 1.0 and t > 4:
            keep = max(2, int(round(t * rng.uniform(cfg.crop, 1.0))))
            a = int(rng.integers(0, t - keep + 1))
            x, mask = x[a: a + keep], mask[a: a + keep]
        if rng.random() < cfg.mirror:
            x = x[:, _MIRROR]
            mask = mask[:, _MIRROR]
            x[..., 0] = -x[..., 0]
            label = int(self.remap[task][label]) if label >= 0 else label
        # Drawn only when enabled, so that runs without it repeat as before.
        if cfg.hold > 0 and len(x) > 1 and rng.random() < cfg.hold:
            x, mask = hold_body(x, mask, rng)
        valid = mask.any(0)
        centre = x[:, valid].reshape(-1, x.shape[-1]).mean(0) if valid.any() else 0.0
        y = x - centre
        if cfg.rotate_deg > 0:
            th = np.deg2rad(rng.uniform(-cfg.rotate_deg, cfg.rotate_deg))
            c, s = np.cos(th), np.sin(th)
            if x.shape[-1] == 3:  # about the vertical (y) axis
                y[..., 0], y[..., 2] = c * y[..., 0] + s * y[..., 2], -s * y[..., 0] + c * y[..., 2]
            else:  # in the image plane
                y[..., 0], y[..., 1] = c * y[..., 0] - s * y[..., 1], s * y[..., 0] + c * y[..., 1]
        if cfg.scale > 0:
            y *= np.asarray(rng.uniform(1 - cfg.scale, 1 + cfg.scale, size=x.shape[-1]),
                            np.float32)
        if cfg.noise > 0:
            spread = float(np.std(y[mask])) if mask.any() else 1.0
            y += rng.normal(0, cfg.noise * spread, size=y.shape).astype(np.float32)
        x = np.where(mask[..., None], y + centre, 0.0).astype(np.float32)
        u = rng.random()
        if u < cfg.drop_hands:
            mask[:, LEFT_HAND0: RIGHT_HAND0 + N_HAND] = False
        elif u < cfg.drop_hands + cfg.drop_hand:
            h0 = LEFT_HAND0 if rng.random() < 0.5 else RIGHT_HAND0
            mask[:, h0: h0 + N_HAND] = False
        return x, mask, label


class ClipDataset(Dataset[tuple[torch.Tensor, int, int]]):
    """The composite's clips ``indices`` as model inputs.

    Augmentation draws from a generator seeded by (seed, epoch, item), so a run repeats
    exactly and does not depend on DataLoader worker scheduling.
    """

    def __init__(self, comp: Composite, indices: Sequence[int], pre: PreprocessConfig,
                 augment: Augmenter | None = None, seed: int = 0) -> None:
        self.comp, self.indices, self.pre = comp, list(indices), pre
        self.augment, self.seed, self.epoch = augment, seed, 0
        if pre.dims > comp.dims:
            raise StoreError(f"the model wants {pre.dims}D joints but a store holds "
                             f"{comp.dims}D clips")
        comp.check_rates(self.indices, pre)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, int, int]:
        i = self.indices[k]
        x, m, r = self.comp.clip(i)
        label = r.label
        fps = clip_rate(self.comp.fps(i), self.pre)
        if self.augment is not None:
            rng = np.random.default_rng((self.seed, self.epoch, i))
            if fps is not None:  # a window at a random place, not always the middle one
                x, m = random_window(x, m, fps, self.pre, rng)
            # Drawn only when enabled, so that runs without it repeat as before.
            if self.augment.cfg.splice > 0 and len(self.indices) > 1 \
                    and rng.random() < self.augment.cfg.splice:
                j = self.indices[(k + int(rng.integers(1, len(self.indices)))) % len(self.indices)]
                ox, om, _ = self.comp.clip(j)
                x, m = splice(x, m, ox, om, rng)
                if self.augment.cfg.splice_task_only:
                    label = NO_LABEL
            x, m, label = self.augment(x, m, r.task, label, rng)
        return torch.from_numpy(preprocess(x, m, self.pre, fps)), r.task, label


def hold_body(x: np.ndarray, mask: np.ndarray, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``(T, V, C)`` whose pose slots are, on about a third of the frames (each drawn
    with chance 1/2, never the first, never two in a row), those of the frame before: a pose
    carried one frame. ``auto`` carries a still body on every 2nd frame; this is sparser."""
    t = len(x)
    held = rng.random(t) < 0.5
    held[0] = False
    for i in range(1, t):  # never two in a row: a carried pose is at most 1 frame old
        held[i] = held[i] and not held[i - 1]
    src = np.arange(t) - held
    x, mask = x.copy(), mask.copy()
    x[:, :N_POSE], mask[:, :N_POSE] = x[src, :N_POSE], mask[src, :N_POSE]
    return x, mask


def splice(x: np.ndarray, m: np.ndarray, other: np.ndarray, other_mask: np.ndarray,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Clip ``x`` ``(T, V, C)`` (and its mask ``(T, V)``) with its first or last ``k`` frames
    replaced by the adjacent end of ``other``, ``1 <= k <= T // 2``: the clip as a stream
    window sees it when ``other`` came just before (or comes just after) it. The length
    stays ``T`` and at least half the frames stay the clip's own."""
    t = len(x)
    if t < 2 or len(other) < 1:
        return x, m
    k = min(int(rng.integers(1, t // 2 + 1)), len(other))
    if rng.random() < 0.5:  # the other clip came before: its last k frames, then ours
        return (np.concatenate([other[-k:], x[k:]]), np.concatenate([other_mask[-k:], m[k:]]))
    return np.concatenate([x[:-k], other[:k]]), np.concatenate([m[:-k], other_mask[:k]])


def random_window(x: np.ndarray, m: np.ndarray, fps: float, pre: PreprocessConfig,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The source frames of one model window (``pre.window`` frames at ``pre.fps``) at a
    random place of a clip at ``fps``; a clip no longer than that, whole."""
    assert pre.fps is not None
    span = math.ceil((pre.window - 1) * fps / pre.fps) + 1
    if len(x) <= span:
        return x, m
    a = int(rng.integers(0, len(x) - span + 1))
    return x[a: a + span], m[a: a + span]


class CompositeSampler(Sampler[int]):
    """Draws the positions of one epoch (``data.sampling``).

    ``weighted``: ``epoch_size`` positions drawn with replacement; each source gets a
    share of the epoch proportional to its ``weight``, and within a source clips are
    drawn uniformly. ``pass``: every position once, in a random order. The draw depends
    only on (seed, epoch), and rank ``r`` of ``world`` takes every ``world``-th position,
    so DDP ranks see disjoint parts of the same epoch (``pass`` leaves out at most
    ``world - 1`` positions an epoch so that every rank gets as many).
    """

    def __init__(self, comp: Composite, positions: Sequence[int], weights: Sequence[float],
                 epoch_size: int, seed: int = 0, rank: int = 0, world: int = 1,
                 sampling: str = "weighted") -> None:
        self.positions = np.asarray(positions)
        self.sampling = sampling
        src = np.asarray([comp.refs[i].source for i in positions])
        w = np.asarray(weights, dtype=np.float64)[src]
        counts = np.bincount(src, minlength=len(weights)).astype(np.float64)
        p = w / counts[src]
        self.p = p / p.sum()
        self.epoch_size = epoch_size or len(positions)
        self.epoch_size -= self.epoch_size % world
        self.seed, self.rank, self.world, self.epoch = seed, rank, world, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.epoch_size // self.world

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng((self.seed, self.epoch, 7919))
        k = np.arange(len(self.positions))
        if self.sampling == "pass":
            draw = rng.permutation(k)[: self.epoch_size]
        else:
            draw = rng.choice(k, size=self.epoch_size, replace=True, p=self.p)
        yield from (int(d) for d in draw[self.rank:: self.world])


def collate(batch: list[tuple[torch.Tensor, int, int]]) -> tuple[torch.Tensor, torch.Tensor,
                                                                 torch.Tensor]:
    xs, ts, ls = zip(*batch)
    return torch.stack(xs), torch.as_tensor(ts), torch.as_tensor(ls)
