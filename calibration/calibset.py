"""Calibration and evaluation windows drawn from real clips, through the runtime's preprocessing.

Calibration must see what the deployed model sees, so every clip goes through
:func:`edge.core.preprocess.preprocess` with the model's own :class:`PreprocessConfig` (read
from its metadata) and the clip's frame rate (a model with a rate resamples each clip to
it; a clip without one is refused), exactly as the runtime and the trainer do.

The calibration set is stratified: clips of the chosen split are grouped by (task,
class) and drawn round-robin over the groups, so a class with many clips cannot crowd out
a rare one and both heads' activations are covered.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from edge.core.clipstore import ClipStore, StoreError
from edge.core.metadata import ModelMeta
from edge.core.preprocess import clip_rate, preprocess


@dataclass(frozen=True)
class WindowSet:
    """Preprocessed windows with where they came from.

    Attributes:
        x: ``(N, C', T, V)`` float32 model inputs.
        task: ``(N,)`` task name of each window.
        label: ``(N,)`` class name of each window (within its task).
        clip_id: ``(N,)`` ``"<store>:<clip_id>"``.
    """

    x: np.ndarray
    task: tuple[str, ...]
    label: tuple[str, ...]
    clip_id: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def counts(self) -> dict[str, dict[str, int]]:
        """task -> class -> number of windows."""
        out: dict[str, dict[str, int]] = {}
        for t, lab in zip(self.task, self.label):
            out.setdefault(t, {}).setdefault(lab, 0)
            out[t][lab] += 1
        return out


def _open(stores: Sequence[str | os.PathLike[str]], meta: ModelMeta) -> list[ClipStore]:
    if not stores:
        raise StoreError("no clip store given (--data STORE)")
    opened = []
    for s in stores:
        store = ClipStore(s)
        if store.dims < meta.preprocess.dims:
            raise StoreError(f"{store.path}: holds {store.dims}D clips but the model needs "
                             f"{meta.preprocess.dims}D joints (calibration data of the wrong "
                             "layout)")
        opened.append(store)
    return opened


def _candidates(stores: list[ClipStore], meta: ModelMeta, split: str
                ) -> dict[tuple[str, str], list[tuple[int, int]]]:
    """(task, class) -> [(store index, clip index)] for the model's tasks in ``split``."""
    groups: dict[tuple[str, str], list[tuple[int, int]]] = {}
    seen_tasks: set[str] = set()
    for si, store in enumerate(stores):
        tasks, labels, splits = store.task_of(), store.labels(), store.column("split")
        seen_tasks.update(tasks)
        for ci, (t, lab, sp) in enumerate(zip(tasks, labels, splits)):
            if t in meta.tasks and sp == split:
                groups.setdefault((t, lab), []).append((si, ci))
    if not groups:
        names = [str(s.path) for s in stores]
        if not seen_tasks & set(meta.tasks):
            raise StoreError(f"{names}: the stores hold tasks {sorted(seen_tasks)}, the model "
                             f"has {list(meta.tasks)}")
        raise StoreError(f"{names}: no clips of the model's tasks in split {split!r}")
    # A store whose task names match but whose classes are none of the model's is another
    # dataset under the same task name: its activations say nothing about this model's.
    for task in sorted({t for t, _ in groups}):
        have = sorted({lab for t, lab in groups if t == task})
        if not set(have) & set(meta.labels[task]):
            names = [str(s.path) for s in stores]
            raise StoreError(f"{names}: task {task!r} holds the classes {have[:8]}"
                             f"{'...' if len(have) > 8 else ''}, none of the model's "
                             f"{list(meta.labels[task])[:8]}: these clips are not this "
                             "model's data")
    return groups


def _windows(stores: list[ClipStore], picks: list[tuple[int, int]], meta: ModelMeta
             ) -> WindowSet:
    cfg = meta.preprocess
    xs, tasks, labels, ids = [], [], [], []
    for si, ci in picks:
        clip = stores[si][ci]
        frames = np.asarray(clip.frames)[..., : cfg.dims]
        try:
            xs.append(preprocess(frames, np.asarray(clip.mask), cfg, clip_rate(clip.fps, cfg)))
        except ValueError as e:
            raise StoreError(f"{stores[si].path}: clip {clip.clip_id!r}: {e}") from None
        tasks.append(clip.task)
        labels.append(clip.label)
        ids.append(f"{stores[si].path.name}:{clip.clip_id}")
    x = np.stack(xs).astype(np.float32) if xs else np.zeros(
        (0, cfg.channels, cfg.window, 75), np.float32)
    return WindowSet(x, tuple(tasks), tuple(labels), tuple(ids))


def draw_calibration_set(stores: Sequence[str | os.PathLike[str]], meta: ModelMeta, *,
                         size: int = 512, split: str = "train", seed: int = 0) -> WindowSet:
    """A stratified calibration set of at most ``size`` windows.

    Args:
        stores: clip store paths.
        meta: the model's metadata (preprocessing, tasks).
        size: windows wanted; all the split's clips when it has fewer.
        split: which split to draw from (never the test split for calibration).
        seed: the draw's seed (same seed, same set).

    Raises:
        StoreError: no stores, a store with fewer dimensions than the model needs, no
            clips of the model's tasks in ``split``, or a task whose classes are none of
            the model's.
    """
    if size < 1:
        raise StoreError(f"calibration size must be >= 1, got {size}")
    opened = _open(stores, meta)
    groups = _candidates(opened, meta, split)
    rng = np.random.default_rng(seed)
    queues = {k: list(rng.permutation(len(v))) for k, v in sorted(groups.items())}
    picks: list[tuple[int, int]] = []
    while len(picks) < size and any(queues.values()):
        for k in sorted(queues):
            if queues[k] and len(picks) < size:
                picks.append(groups[k][int(queues[k].pop())])
    return _windows(opened, picks, meta)


def load_split(stores: Sequence[str | os.PathLike[str]], meta: ModelMeta, *,
               split: str = "test", limit: int | None = None) -> WindowSet:
    """Every clip of ``split`` (of the model's tasks), preprocessed, in store order."""
    opened = _open(stores, meta)
    groups = _candidates(opened, meta, split)
    picks = sorted(p for v in groups.values() for p in v)
    if limit is not None:
        picks = picks[:limit]
    return _windows(opened, picks, meta)


def batches(x: np.ndarray, batch: int) -> Iterator[np.ndarray]:
    """``x`` in consecutive batches of at most ``batch`` rows."""
    for i in range(0, len(x), batch):
        yield x[i: i + batch]


__all__ = ["WindowSet", "draw_calibration_set", "load_split", "batches"]
