"""A pickle-free store of many variable-length mp75 clips, readable memory-mapped.

On disk, a store is a directory:

    meta.json        format version, layout, dims, tasks -> label names, clip strings
    frames.npy       (total_frames, 75, C) float32, all clips end to end
    mask.npy         (total_frames, 75) bool
    offsets.npy      (N + 1,) int64; clip i is frames[offsets[i]:offsets[i + 1]]
    label.npy        (N,) int32, index into the clip's task's label list
    task.npy         (N,) int16, index into meta["tasks"]

``frames.npy`` and ``mask.npy`` are opened with ``mmap_mode="r"``, so a store larger than
RAM trains without loading it whole. Writing goes to a temporary directory beside the
destination that is renamed into place at the end: an interrupted conversion leaves no
half-written store.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from edge.errors import SkelmtlError
from edge.layout import MP75, NUM_JOINTS

STORE_FORMAT = 1


class StoreError(SkelmtlError, ValueError):
    """A clip store that cannot be read or written; the message names the path."""


@dataclass(frozen=True)
class Clip:
    """One labelled clip in the mp75 layout.

    Attributes:
        frames: ``(T, 75, C)`` float32, zeros where masked.
        mask: ``(T, 75)`` bool presence.
        label: class name within ``task``.
        task: task name, e.g. ``"action"`` or ``"gesture"``.
        subject: performer id ("" when unknown).
        split: ``"train"``, ``"test"``, ``"val"``, ... ("" when the dataset has none).
        source: source layout name (see :data:`edge.layout.SOURCE_LAYOUTS`).
        clip_id: unique name within the store, e.g. the relative source path.
        dataset: dataset name.
        fps: frame rate when known, else 0.
    """

    frames: np.ndarray
    mask: np.ndarray
    label: str
    task: str
    subject: str = ""
    split: str = ""
    source: str = ""
    clip_id: str = ""
    dataset: str = ""
    fps: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def dims(self) -> int:
        return int(self.frames.shape[-1])

    def __len__(self) -> int:
        return int(self.frames.shape[0])


def validate_clip(clip: Clip, where: str = "") -> None:
    """Raise ``StoreError`` (prefixed with ``where``) unless the clip is well formed."""
    pre = f"{where}: " if where else ""
    f, m = clip.frames, clip.mask
    if f.ndim != 3 or f.shape[1] != NUM_JOINTS or f.shape[2] not in (2, 3):
        raise StoreError(f"{pre}frames must be (T, {NUM_JOINTS}, 2|3), got {f.shape}")
    if f.shape[0] == 0:
        raise StoreError(f"{pre}clip has no frames")
    if m.shape != f.shape[:2]:
        raise StoreError(f"{pre}mask shape {m.shape} does not match frames {f.shape[:2]}")
    if not np.isfinite(f[m]).all():
        raise StoreError(f"{pre}non-finite coordinates at present joints")
    if not clip.label or not clip.task:
        raise StoreError(f"{pre}clip needs a label and a task")


def _atomic_dir(dst: Path, overwrite: bool) -> Path:
    if dst.exists() and not overwrite:
        raise StoreError(f"{dst}: already exists (pass overwrite=True / --overwrite)")
    dst.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{dst.name}.tmp-", dir=dst.parent))


def _commit_dir(tmp: Path, dst: Path) -> None:
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        os.replace(dst, old)
    # mkdtemp makes 0700 directories; a store is meant to be shared like any output.
    os.chmod(tmp, 0o755)
    os.replace(tmp, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_store(clips: Iterable[Clip], dst: str | os.PathLike[str], *,
                overwrite: bool = False, info: dict[str, Any] | None = None) -> Path:
    """Write clips to a new store at ``dst``, atomically.

    Frames are streamed to disk clip by clip, so the input need not fit in memory.

    Args:
        clips: the clips; all must share the coordinate count C.
        dst: destination directory.
        overwrite: replace an existing store (only once the new one is complete).
        info: free-form provenance (source path, reader, protocol) kept in meta.json.

    Returns:
        The destination path.

    Raises:
        StoreError: on a malformed clip (naming it), mixed dims, or an existing ``dst``.
    """
    dst = Path(dst)
    tmp = _atomic_dir(dst, overwrite)
    try:
        fr = open(tmp / "frames.raw", "wb")
        mk = open(tmp / "mask.raw", "wb")
        offsets = [0]
        tasks: dict[str, list[str]] = {}
        labels: list[tuple[str, str]] = []
        strings: dict[str, list[Any]] = {k: [] for k in
                                         ("clip_id", "subject", "split", "source", "dataset", "fps")}
        dims = None
        with fr, mk:
            for i, clip in enumerate(clips):
                validate_clip(clip, clip.clip_id or f"clip {i}")
                if dims is None:
                    dims = clip.dims
                elif clip.dims != dims:
                    raise StoreError(f"{clip.clip_id}: {clip.dims}D clip in a {dims}D store")
                fr.write(np.ascontiguousarray(clip.frames, dtype=np.float32).tobytes())
                mk.write(np.ascontiguousarray(clip.mask, dtype=bool).tobytes())
                offsets.append(offsets[-1] + len(clip))
                tasks.setdefault(clip.task, [])
                labels.append((clip.task, clip.label))
                for k in strings:
                    strings[k].append(getattr(clip, k))
        if dims is None:
            raise StoreError(f"{dst}: no clips to write")
        # Labels sorted per task, so that the label index does not depend on reading order.
        for task in tasks:
            tasks[task] = sorted({lab for t, lab in labels if t == task})
        task_names = sorted(tasks)
        total = offsets[-1]
        _raw_to_npy(tmp / "frames.raw", tmp / "frames.npy", np.float32, (total, NUM_JOINTS, dims))
        _raw_to_npy(tmp / "mask.raw", tmp / "mask.npy", np.bool_, (total, NUM_JOINTS))
        np.save(tmp / "offsets.npy", np.asarray(offsets, dtype=np.int64))
        np.save(tmp / "task.npy", np.asarray([task_names.index(t) for t, _ in labels], np.int16))
        np.save(tmp / "label.npy", np.asarray([tasks[t].index(lab) for t, lab in labels],
                                              np.int32))
        meta = {"format": STORE_FORMAT, "layout": MP75.name, "dims": dims,
                "tasks": {t: tasks[t] for t in task_names}, "num_clips": len(labels),
                "num_frames": total, "info": info or {}, "clips": strings}
        (tmp / "meta.json").write_text(json.dumps(meta))
        _commit_dir(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dst


def _raw_to_npy(raw: Path, npy: Path, dtype: Any, shape: tuple[int, ...]) -> None:
    """Prepend an .npy header to raw bytes without loading them (streams in chunks)."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
              "shape": shape}
    with open(npy, "wb") as out:
        np.lib.format.write_array_header_1_0(out, header)
        with open(raw, "rb") as src:
            shutil.copyfileobj(src, out, length=16 << 20)
    raw.unlink()


class ClipStore(Sequence[Clip]):
    """Read access to a store written by :func:`write_store`.

    Indexing returns a :class:`Clip` whose arrays are views into the memory map (copy them
    before writing). ``len(store)`` is the number of clips.
    """

    def __init__(self, path: str | os.PathLike[str], *, mmap: bool = True) -> None:
        self.path = Path(path)
        meta_path = self.path / "meta.json"
        if not meta_path.is_file():
            raise StoreError(f"{self.path}: not a clip store (no meta.json)")
        try:
            self.meta: dict[str, Any] = json.loads(meta_path.read_text())
        except json.JSONDecodeError as e:
            raise StoreError(f"{meta_path}: corrupt JSON ({e})") from None
        if self.meta.get("format") != STORE_FORMAT:
            raise StoreError(f"{self.path}: store format {self.meta.get('format')}, this "
                             f"package reads {STORE_FORMAT}")
        if self.meta.get("layout") != MP75.name:
            raise StoreError(f"{self.path}: layout {self.meta.get('layout')!r}, expected 'mp75'")
        mode: Literal["r"] | None = "r" if mmap else None
        try:
            self.frames = np.load(self.path / "frames.npy", mmap_mode=mode)
            self.masks = np.load(self.path / "mask.npy", mmap_mode=mode)
            self.offsets = np.load(self.path / "offsets.npy")
            self.label_idx = np.load(self.path / "label.npy")
            self.task_idx = np.load(self.path / "task.npy")
        except (OSError, ValueError) as e:
            raise StoreError(f"{self.path}: unreadable array ({e})") from None
        n = int(self.meta["num_clips"])
        if (len(self.offsets) != n + 1 or int(self.offsets[-1]) != len(self.frames)
                or len(self.masks) != len(self.frames) or len(self.label_idx) != n):
            raise StoreError(f"{self.path}: arrays disagree with meta.json (truncated store?)")
        self.tasks: dict[str, list[str]] = self.meta["tasks"]
        self.task_names: list[str] = list(self.tasks)
        self._strings: dict[str, list[Any]] = self.meta["clips"]

    @property
    def dims(self) -> int:
        return int(self.meta["dims"])

    def __len__(self) -> int:
        return len(self.label_idx)

    def __getitem__(self, i: int) -> Clip:  # type: ignore[override]
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i = i % len(self)
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        task = self.task_names[int(self.task_idx[i])]
        s = self._strings
        return Clip(frames=self.frames[a:b], mask=self.masks[a:b],
                    label=self.tasks[task][int(self.label_idx[i])], task=task,
                    subject=s["subject"][i], split=s["split"][i], source=s["source"][i],
                    clip_id=s["clip_id"][i], dataset=s["dataset"][i], fps=s["fps"][i])

    def __iter__(self) -> Iterator[Clip]:
        for i in range(len(self)):
            yield self[i]

    def column(self, name: str) -> list[Any]:
        """Per-clip strings: ``clip_id``, ``subject``, ``split``, ``source``, ``dataset``."""
        return list(self._strings[name])

    def labels(self) -> list[str]:
        """Per-clip label names."""
        return [self.tasks[self.task_names[int(t)]][int(lab)]
                for t, lab in zip(self.task_idx, self.label_idx)]

    def task_of(self) -> list[str]:
        """Per-clip task names."""
        return [self.task_names[int(t)] for t in self.task_idx]

    def indices(self, split: str | None = None, task: str | None = None) -> np.ndarray:
        """Indices of the clips in ``split`` and/or ``task``."""
        keep = np.ones(len(self), dtype=bool)
        if split is not None:
            keep &= np.asarray([s == split for s in self._strings["split"]], dtype=bool)
        if task is not None:
            if task not in self.tasks:
                raise StoreError(f"{self.path}: no task {task!r}; has {self.task_names}")
            keep &= self.task_idx == self.task_names.index(task)
        return np.flatnonzero(keep)

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)
