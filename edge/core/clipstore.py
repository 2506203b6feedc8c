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
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from typing import Sequence as TypingSequence  # a base class below: evaluated, on 3.8 too

import numpy as np

from edge.core.atomic import pid_alive
from edge.core.errors import SkelmtlError
from edge.core.layout import MP75, NUM_JOINTS

STORE_FORMAT = 1
# Coordinates beyond this are no landmark: MediaPipe's are image-normalised, datasets' in
# metres or pixels. The runtime masks such joints (edge.runtime.pipeline); a store refuses them, so
# that training never sees what inference would not.
MAX_ABS_COORD = 1e4

logger = logging.getLogger(__name__)


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
        source: source layout name (see :data:`edge.core.layout.SOURCE_LAYOUTS`).
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
    if not isinstance(f, np.ndarray) or not isinstance(m, np.ndarray):
        raise StoreError(f"{pre}frames and mask must be numpy arrays, got "
                         f"{type(f).__name__} and {type(m).__name__}")
    # Text would be parsed and complex numbers cut to their real part, both silently.
    if f.dtype.kind not in "biuf":
        raise StoreError(f"{pre}frames must hold real numbers, got dtype {f.dtype}")
    if m.dtype.kind not in "biu":
        raise StoreError(f"{pre}mask must be bool, got dtype {m.dtype}")
    if f.ndim != 3 or f.shape[1] != NUM_JOINTS or f.shape[2] not in (2, 3):
        raise StoreError(f"{pre}frames must be (T, {NUM_JOINTS}, 2|3), got {f.shape}")
    if f.shape[0] == 0:
        raise StoreError(f"{pre}clip has no frames")
    if m.shape != f.shape[:2]:
        raise StoreError(f"{pre}mask shape {m.shape} does not match frames {f.shape[:2]}")
    present = f[m.astype(bool)]
    if not np.isfinite(present).all():
        raise StoreError(f"{pre}non-finite coordinates at present joints")
    if present.size and float(np.abs(present).max()) > MAX_ABS_COORD:
        raise StoreError(f"{pre}a present joint has a coordinate of "
                         f"{float(np.abs(present).max()):.3g}, beyond +-{MAX_ABS_COORD:g} (not "
                         f"a landmark; mask it)")
    if not clip.label or not clip.task:
        raise StoreError(f"{pre}clip needs a label and a task")
    if not isinstance(clip.label, str) or not isinstance(clip.task, str):
        raise StoreError(f"{pre}label and task must be text, got {clip.label!r} and "
                         f"{clip.task!r}")


def is_store(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder this package wrote as a clip store.

    Recognised by its ``meta.json``: a JSON object whose ``format`` is
    :data:`STORE_FORMAT` and whose ``layout`` is mp75. Anything else (a user's folder, a
    file, an unreadable meta.json) is not one, so ``--overwrite`` leaves it alone.
    """
    meta = Path(path) / "meta.json"
    try:
        d = json.loads(meta.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return False
    return isinstance(d, dict) and d.get("format") == STORE_FORMAT and d.get("layout") == MP75.name


def _resolved(p: str | os.PathLike[str]) -> Path:
    try:
        return Path(p).expanduser().resolve()
    except (OSError, RuntimeError):  # a symlink loop: compare the path as given
        return Path(os.path.abspath(p))


def check_destination(dst: str | os.PathLike[str], overwrite: bool,
                      inputs: Iterable[str | os.PathLike[str]] = (), *,
                      flag: str = "--overwrite",
                      error: type[SkelmtlError] = StoreError) -> None:
    """Refuse a store destination that would lose something the user has.

    Called before any work starts (a conversion can take an hour) and again by
    :func:`write_store` just before it replaces anything.

    Args:
        dst: the store folder to write.
        overwrite: whether the caller asked to replace an existing store.
        inputs: the files and folders the store is made from; ``dst`` may be neither one
            of them nor a folder above one (replacing it would delete the input).
        flag: how the caller spells "overwrite" in messages.
        error: the exception class to raise (the caller's own, e.g. ``ExtractError``).

    Raises:
        StoreError (or ``error``): ``dst`` is or contains an input; exists and ``overwrite`` is off; or
            exists and is not a clip store (``--overwrite`` only replaces what this package
            wrote).
    """
    dst = Path(dst)
    rd = _resolved(dst)
    for inp in inputs:
        ri = _resolved(inp)
        if ri == rd or rd in ri.parents:
            what = "is" if ri == rd else "contains"
            raise error(f"{dst}: the output {what} the input {inp}; choose an output "
                             f"outside the input")
    if not (dst.exists() or dst.is_symlink()):
        # Before the work, not after it: the nearest existing folder must take a new one.
        anc = dst.parent
        while not anc.exists() and anc != anc.parent:
            anc = anc.parent
        if anc.exists() and not anc.is_dir():
            raise error(f"{dst}: {anc} is a file, not a folder")
        if anc.exists() and not os.access(anc, os.W_OK | os.X_OK):
            raise error(f"{dst}: folder {anc} is not writable")
        return
    if not overwrite:
        raise error(f"{dst}: already exists (pass {flag} to replace it)")
    if dst.is_symlink() or not dst.is_dir():
        raise error(f"{dst}: not a clip store ({flag} only replaces a clip store "
                         f"written by skelmtl)")
    if not is_store(dst):
        raise error(f"{dst}: not a clip store (no meta.json of store format "
                         f"{STORE_FORMAT}); {flag} only replaces a clip store written by "
                         f"skelmtl")


_TMP_TAG = ".tmp-"
_OLD_TAG = ".old-"


def _owner_pid(name: str, tag: str) -> int | None:
    """The writer's pid in ``.<store>.tmp-<pid>-<random>`` / ``.<store>.old-<pid>``."""
    head = name.rsplit(tag, 1)[1].split("-", 1)[0]
    return int(head) if head.isdigit() else None


def clean_stale(dst: str | os.PathLike[str]) -> list[Path]:
    """Remove what a killed writer of ``dst`` left beside it; restore a store it had moved.

    A writer builds ``.<store>.tmp-<pid>-*`` and, when it replaces a store, parks the old
    one as ``.<store>.old-<pid>`` for a moment. Once that pid is no longer running, its
    temporary folder is garbage; a parked old store goes back into place when nothing
    took its place (the writer was killed between the two renames), else it is garbage.

    Returns:
        The paths removed.
    """
    dst = Path(dst)
    removed: list[Path] = []
    try:
        siblings = list(dst.parent.iterdir()) if dst.parent.is_dir() else []
    except OSError:
        return removed
    for p in siblings:
        for tag in (_TMP_TAG, _OLD_TAG):
            if not p.name.startswith(f".{dst.name}{tag}") or p.is_symlink() or not p.is_dir():
                continue
            pid = _owner_pid(p.name, tag)
            if pid is None or pid_alive(pid):
                continue  # not ours to judge: another naming, or a writer still at work
            if tag == _OLD_TAG and not dst.exists() and is_store(p):
                os.replace(p, dst)
                logger.warning("%s: restored the store a killed writer had moved to %s",
                               dst, p.name)
                continue
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
            logger.info("%s: removed %s, left by a killed writer (pid %d)", dst, p.name, pid)
    return removed


def _atomic_dir(dst: Path, overwrite: bool, inputs: Iterable[str | os.PathLike[str]]) -> Path:
    check_destination(dst, overwrite, inputs)
    dst.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(dst)
    # The pid in the name lets the next writer tell a dead run's folder from a live one's.
    return Path(tempfile.mkdtemp(prefix=f".{dst.name}{_TMP_TAG}{os.getpid()}-",
                                 dir=dst.parent))


def _commit_dir(tmp: Path, dst: Path, overwrite: bool,
                inputs: Iterable[str | os.PathLike[str]]) -> None:
    # Checked again: the destination may have appeared (or changed) during a long write.
    check_destination(dst, overwrite, inputs)
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}{_OLD_TAG}{os.getpid()}")
        os.replace(dst, old)
    # mkdtemp makes 0700 directories; a store is meant to be shared like any output.
    os.chmod(tmp, 0o755)
    os.replace(tmp, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _os_error(dst: Path, e: OSError) -> StoreError:
    """A one-line StoreError for an OSError met while writing ``dst`` (full disk, ...)."""
    import errno

    if e.errno == errno.ENOSPC:
        why = "no space left on device"
    elif e.errno == errno.EDQUOT:
        why = "disk quota exceeded"
    else:
        why = e.strerror or str(e) or type(e).__name__
    name = str(e.filename) if e.filename else ""
    beside, failed = _resolved(dst.parent), _resolved(name) if name else None
    if failed is not None and failed != beside and beside not in failed.parents:
        # Not one of the store's files: the clips' source failed while being read.
        return StoreError(f"{name}: cannot read: {why}")
    return StoreError(f"{dst}: cannot write the store: {why}")


def write_store(clips: Iterable[Clip], dst: str | os.PathLike[str], *,
                overwrite: bool = False, info: dict[str, Any] | None = None,
                inputs: Iterable[str | os.PathLike[str]] = ()) -> Path:
    """Write clips to a new store at ``dst``, atomically.

    Frames are streamed to disk clip by clip, so the input need not fit in memory.

    Args:
        clips: the clips; all must share the coordinate count C.
        dst: destination directory.
        overwrite: replace an existing clip store (only once the new one is complete);
            anything else at ``dst`` is refused (see :func:`check_destination`).
        info: free-form provenance (source path, reader, protocol) kept in meta.json.
        inputs: the paths the clips come from; ``dst`` may not be or contain one.

    Returns:
        The destination path.

    Raises:
        StoreError: on a malformed clip (naming it), mixed dims, a ``dst`` that may not be
            replaced, or a write that failed (full disk, no permission).
    """
    dst = Path(dst)
    inputs = list(inputs)
    try:
        tmp = _atomic_dir(dst, overwrite, inputs)
    except OSError as e:
        raise _os_error(dst, e) from None
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
        _commit_dir(tmp, dst, overwrite, inputs)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _os_error(dst, e) from None
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


_STRING_COLUMNS = ("clip_id", "subject", "split", "source", "dataset", "fps")


def _read_meta(meta_path: Path) -> dict[str, Any]:
    """``meta.json`` of a store, checked key by key; StoreError naming the file otherwise."""
    try:
        raw = meta_path.read_bytes()
    except OSError as e:
        raise StoreError(f"{meta_path}: cannot read ({e.strerror or e})") from None
    try:
        meta = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise StoreError(f"{meta_path}: not UTF-8 text") from None
    except (ValueError, RecursionError) as e:
        raise StoreError(f"{meta_path}: corrupt JSON ({e})") from None
    if not isinstance(meta, dict):
        raise StoreError(f"{meta_path}: expected a JSON object, got {type(meta).__name__}")
    if meta.get("format") != STORE_FORMAT:
        raise StoreError(f"{meta_path.parent}: store format {meta.get('format')!r}, this "
                         f"package reads {STORE_FORMAT}")
    if meta.get("layout") != MP75.name:
        raise StoreError(f"{meta_path.parent}: layout {meta.get('layout')!r}, expected 'mp75'")
    missing = [k for k in ("dims", "tasks", "num_clips", "clips") if k not in meta]
    if missing:
        raise StoreError(f"{meta_path}: missing key(s) {missing}")
    n = meta["num_clips"]
    if type(n) is not int or n < 0:
        raise StoreError(f"{meta_path}: num_clips must be a non-negative integer, got {n!r}")
    if type(meta["dims"]) is not int or meta["dims"] not in (2, 3):
        raise StoreError(f"{meta_path}: dims must be 2 or 3, got {meta['dims']!r}")
    tasks = meta["tasks"]
    if (not isinstance(tasks, dict) or not tasks
            or not all(isinstance(v, list) and v and all(isinstance(x, str) and x for x in v)
                       and len(set(v)) == len(v) for v in tasks.values())):
        raise StoreError(f"{meta_path}: tasks must map each task to a non-empty list of "
                         f"distinct label names")
    clips = meta["clips"]
    if not isinstance(clips, dict):
        raise StoreError(f"{meta_path}: clips must be an object of per-clip lists")
    for k in _STRING_COLUMNS:
        col = clips.get(k)
        if not isinstance(col, list) or len(col) != n:
            raise StoreError(f"{meta_path}: clips.{k} must be a list of {n} entries")
        if k == "fps":
            bad = [i for i, v in enumerate(col) if isinstance(v, bool)
                   or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0]
            kind = "a finite number >= 0"
        else:
            bad = [i for i, v in enumerate(col) if not isinstance(v, str)]
            kind = "text"
        if bad:
            raise StoreError(f"{meta_path}: clips.{k}[{bad[0]}] = {col[bad[0]]!r} is not "
                             f"{kind}")
    if not isinstance(meta.get("info", {}), dict):
        raise StoreError(f"{meta_path}: info must be an object")
    return meta


def _load_array(store: Path, name: str, mode: Literal["r"] | None) -> np.ndarray:
    """One ``.npy`` file of a store, never a pickle; StoreError naming it otherwise."""
    import zipfile

    path = store / name
    _check_npy_size(path, store, name)
    try:
        a = np.load(path, mmap_mode=mode, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise StoreError(f"{store}: unreadable array {name} ({e})") from None
    if not isinstance(a, np.ndarray):  # np.load reads a zip (.npz) too
        raise StoreError(f"{store}: unreadable array {name} (not a .npy file)")
    return a


def _check_npy_size(path: Path, store: Path, name: str) -> None:
    """The bytes an ``.npy`` header promises must be in the file, checked before loading.

    Otherwise a crafted header (a shape of 10^12) makes ``np.load`` allocate it first.
    Files that are not ``.npy`` are left to ``np.load``, which names the problem.
    """
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read(f)
            start = f.tell()
        size = path.stat().st_size
    except (OSError, ValueError, EOFError):
        return
    if dtype.hasobject:
        return  # refused by np.load(allow_pickle=False)
    want = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if size - start != want:
        raise StoreError(f"{store}: {name} holds {size - start} bytes of data, its header "
                         f"promises {want} ({dtype} {tuple(shape)}; truncated or corrupt)")


def _check_arrays(path: Path, meta: dict[str, Any], frames: np.ndarray, masks: np.ndarray,
                  offsets: np.ndarray, label_idx: np.ndarray, task_idx: np.ndarray) -> None:
    """Shapes, dtypes and index ranges of a store's arrays against its meta.json."""
    n = int(meta["num_clips"])
    dims = int(meta["dims"])
    if frames.ndim != 3 or frames.shape[1:] != (NUM_JOINTS, dims) or frames.dtype.kind != "f":
        raise StoreError(f"{path}: frames.npy must be float (T, {NUM_JOINTS}, {dims}), got "
                         f"{frames.dtype} {frames.shape}")
    if masks.shape != frames.shape[:2] or masks.dtype != np.bool_:
        raise StoreError(f"{path}: mask.npy must be bool {frames.shape[:2]}, got "
                         f"{masks.dtype} {masks.shape}")
    for name, a in (("offsets", offsets), ("label", label_idx), ("task", task_idx)):
        if a.ndim != 1 or a.dtype.kind not in "iu":
            raise StoreError(f"{path}: {name}.npy must be a 1-D integer array, got "
                             f"{a.dtype} {a.shape}")
    if (len(offsets) != n + 1 or int(offsets[-1]) != len(frames)
            or len(label_idx) != n or len(task_idx) != n):
        raise StoreError(f"{path}: arrays disagree with meta.json (truncated store?)")
    if int(offsets[0]) != 0 or (np.diff(offsets) <= 0).any():
        raise StoreError(f"{path}: offsets.npy must start at 0 and increase (every clip "
                         f"has frames)")
    if n == 0:
        return
    n_tasks = len(meta["tasks"])
    if int(task_idx.min()) < 0 or int(task_idx.max()) >= n_tasks:
        raise StoreError(f"{path}: task.npy has indices outside 0..{n_tasks - 1}")
    sizes = np.asarray([len(v) for v in meta["tasks"].values()])
    bad = np.flatnonzero((label_idx < 0) | (label_idx >= sizes[task_idx.astype(np.int64)]))
    if len(bad):
        i = int(bad[0])
        raise StoreError(f"{path}: label.npy index {int(label_idx[i])} of clip {i} is "
                         f"outside its task's {int(sizes[int(task_idx[i])])} labels")


class ClipStore(TypingSequence[Clip]):
    """Read access to a store written by :func:`write_store`.

    Indexing returns a :class:`Clip` whose arrays are views into the memory map (copy them
    before writing). ``len(store)`` is the number of clips.
    """

    def __init__(self, path: str | os.PathLike[str], *, mmap: bool = True) -> None:
        self.path = Path(path)
        meta_path = self.path / "meta.json"
        if not meta_path.is_file():
            raise StoreError(f"{self.path}: not a clip store (no meta.json)")
        self.meta: dict[str, Any] = _read_meta(meta_path)
        mode: Literal["r"] | None = "r" if mmap else None
        self.frames = _load_array(self.path, "frames.npy", mode)
        self.masks = _load_array(self.path, "mask.npy", mode)
        self.offsets = _load_array(self.path, "offsets.npy", None)
        self.label_idx = _load_array(self.path, "label.npy", None)
        self.task_idx = _load_array(self.path, "task.npy", None)
        _check_arrays(self.path, self.meta, self.frames, self.masks, self.offsets,
                      self.label_idx, self.task_idx)
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
