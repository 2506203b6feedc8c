"""Readers for MediaPipe landmark data: MP_Data folders, holistic npz arrays, recordings.

Formats:
    mp_folder: ``<root>/<class>/<sequence>/<frame>.npy``, one flattened holistic vector
        per frame (258, 1662 or 225 values; see :data:`edge.core.layout.HOLISTIC_SIZES`). The
        common "MP_Data" recipe; ``volleyball_referee/data`` uses it. A root holding a
        single ``data/`` folder is entered automatically.
    asl16: one ``.npz`` with ``X (N, T, D)`` holistic vectors (asl16: D = 158, 2D pixels),
        ``y (N,)`` class names and ``split (N,)`` (Train/Valid/Test -> train/val/test).
    recording: a folder tree of the runtime's ``*.landmarks.npz`` recordings
        (:mod:`edge.core.recording`); the label is the name of each file's parent folder, so
        ``<root>/<label>/<anything>.landmarks.npz`` becomes a store.

Splits for sets without an official one ("hash" protocol): per class, sequences are
ordered by ``sha1("<seed>:<class>/<sequence>")`` and the first 20 % (``--test-fraction``)
go to ``test``, the rest to ``train``: deterministic, stratified, independent of the file
system's order, and changed only by ``--seed``. The trainer carves its validation split
out of ``train``.

``mp_folder`` also splits whole recordings, so that no person or session is in both:
``sequence`` keeps every class's sequence of one name (``<class>/7`` for all classes) on
one side, the names ordered by ``sha1("<seed>:<name>")``; ``subject`` does the same by the
subject, the part of the sequence name before its first ``_`` or ``-`` (``alice_03`` ->
``alice``). The subject so named is stored with each clip whatever the protocol. ``list:FILE`` (every reader) takes the
splits from a list file (:func:`trainer.datasets.base.read_split_list`).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edge.core.clipstore import Clip
from edge.core.layout import HOLISTIC_SIZES, holistic_to_mp75
from edge.core.recording import SUFFIX, RecordingError, load_recording
from trainer.datasets.base import (
    DatasetError,
    ReadLog,
    ReadOptions,
    check_array_sizes,
    group_split,
    hash_split,
    natural_key,
    require_dir,
    require_real,
)

HOLISTIC = "mediapipe_holistic"


# ------------------------------------------------------------------------------ mp_folder
def _has_sequences(root: Path) -> bool:
    return any(True for _ in root.glob("*/*/*.npy"))


def mp_root(src: Path) -> Path:
    """The folder that holds ``<class>/<sequence>/<frame>.npy`` (``src`` or ``src/data``)."""
    require_dir(src, "MediaPipe MP_Data folder")
    if _has_sequences(src):
        return src
    if (src / "data").is_dir() and _has_sequences(src / "data"):
        return src / "data"
    raise DatasetError(f"{src}: no <class>/<sequence>/<frame>.npy files found "
                       "(expected a MediaPipe MP_Data-style folder)")


def detect_mp_folder(src: Path) -> bool:
    return src.is_dir() and (_has_sequences(src) or (src / "data").is_dir()
                             and _has_sequences(src / "data"))


def load_frame_vector(path: Path) -> np.ndarray:
    """One frame's flattened holistic vector, checked; raises DatasetError naming the file."""
    check_array_sizes(path)
    try:
        v = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise DatasetError(f"{path}: unreadable or truncated .npy ({e})") from None
    if v.ndim != 1 or v.shape[0] not in HOLISTIC_SIZES:
        raise DatasetError(f"{path}: frame vector has shape {v.shape}; expected one of "
                           f"{sorted(HOLISTIC_SIZES)} values")
    return require_real(path, "the frame vector", v)


def read_sequence_folder(seq: Path) -> np.ndarray:
    """``(T, D)`` vectors of one sequence folder, frames in numeric order."""
    files = sorted(seq.glob("*.npy"), key=lambda p: natural_key(p.stem))
    vecs = [load_frame_vector(f) for f in files]
    lengths = {v.shape[0] for v in vecs}
    if len(lengths) > 1:
        raise DatasetError(f"{seq}: frames of different lengths {sorted(lengths)} in one "
                           "sequence")
    x = np.stack(vecs).astype(np.float32)
    if not np.isfinite(x).all():
        bad = files[int(np.flatnonzero(~np.isfinite(x).all(1))[0])]
        raise DatasetError(f"{bad}: NaN or infinite values")
    return x


def read_mp_folder(src: Path, opts: ReadOptions, log: ReadLog) -> Iterator[Clip]:
    root = mp_root(src)
    task = opts.task or "gesture"
    seqs: dict[str, list[Path]] = {}
    for cdir in sorted(p for p in root.iterdir() if p.is_dir()):
        found = sorted((p for p in cdir.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name))
        for s in found:
            if not any(True for _ in s.glob("*.npy")):
                log.skip(s, "no .npy frames")
        found = [s for s in found if any(True for _ in s.glob("*.npy"))]
        if found:
            seqs[cdir.name] = found
    if not seqs:
        raise DatasetError(f"{root}: no sequences with .npy frames")
    protocol = opts.split_protocol or "hash"
    # The subject prefix of <subject>_<n> folder names, where there is one: the store
    # records it and list files can name it; the "subject" protocol requires it.
    subject = {f"{c}/{s.name}": _subject_of(s, required=protocol == "subject")
               for c, ss in seqs.items() for s in ss}
    if protocol in ("sequence", "subject"):
        key = {cid: subject[cid] if protocol == "subject" else cid.split("/", 1)[1]
               for cid in subject}
        by_key = group_split(key.values(), opts.seed, opts.test_fraction)
        split = {cid: by_key[k] for cid, k in key.items()}
        log.notes.append(f"split {protocol}: whole {protocol}s, sha1('{opts.seed}:<{protocol}>')"
                         f" order, first {opts.test_fraction:g} -> test; test: "
                         f"{sorted(k for k, v in by_key.items() if v == 'test')[:20]}")
    else:  # "hash", or "list:FILE" (read_dataset replaces these splits)
        split = hash_split({c: [f"{c}/{s.name}" for s in ss] for c, ss in seqs.items()},
                           opts.seed, opts.test_fraction)
        log.notes.append(f"split: per class, sha1('{opts.seed}:<class>/<sequence>') order, "
                         f"first {opts.test_fraction:g} -> test")
    for cls, ss in seqs.items():
        for s in ss:
            frames, mask = holistic_to_mp75(read_sequence_folder(s))
            cid = f"{cls}/{s.name}"
            yield Clip(frames=frames, mask=mask, label=cls, task=task, split=split[cid],
                       subject=subject[cid], source=HOLISTIC, clip_id=cid,
                       dataset=root.parent.name if root.name == "data" else root.name)


def _subject_of(seq: Path, required: bool) -> str:
    """The subject in a sequence folder's name: the part before its first ``_`` or ``-``
    ("" when there is none, or DatasetError when ``required``)."""
    head = seq.name.replace("-", "_").split("_", 1)
    if len(head) < 2 or not head[0]:
        if not required:
            return ""
        raise DatasetError(f"{seq}: the sequence name has no '<subject>_' or '<subject>-' "
                           "prefix for split protocol 'subject'; name the folders so, or "
                           "give the splits in a file: --split-protocol list:FILE")
    return head[0]


# ---------------------------------------------------------------------------------- asl16
_SPLITS = {"train": "train", "valid": "val", "val": "val", "validation": "val", "test": "test"}


def _npz_path(src: Path) -> Path:
    if src.is_dir():
        cands = sorted(src.glob("*.npz"))
        if len(cands) != 1:
            raise DatasetError(f"{src}: expected exactly one .npz file, found {len(cands)}")
        return cands[0]
    if not src.exists():
        raise DatasetError(f"{src}: no such file or folder")
    return src


def detect_asl16(src: Path) -> bool:
    try:
        p = _npz_path(src)
        with np.load(p, allow_pickle=False) as z:
            return {"X", "y", "split"} <= set(z.files)
    except (DatasetError, OSError, ValueError, zipfile.BadZipFile):
        return False


def read_asl16(src: Path, opts: ReadOptions, log: ReadLog) -> Iterator[Clip]:
    path = _npz_path(src)
    check_array_sizes(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = {"X", "y", "split"} - set(z.files)
            if missing:
                raise DatasetError(f"{path}: missing arrays {sorted(missing)} "
                                   "(expected X, y, split)")
            x, y, sp = z["X"], z["y"], z["split"]
    except DatasetError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DatasetError(f"{path}: unreadable or truncated .npz ({e})") from None
    if x.ndim != 3 or x.shape[2] not in HOLISTIC_SIZES:
        raise DatasetError(f"{path}: X has shape {x.shape}; expected (N, T, D) with D in "
                           f"{sorted(HOLISTIC_SIZES)}")
    require_real(path, "X", x)
    if len(y) != len(x) or len(sp) != len(x):
        raise DatasetError(f"{path}: X has {len(x)} rows but y {len(y)} and split {len(sp)}")
    task = opts.task or "gesture"
    name = path.stem.split("_")[0]
    for i in range(len(x)):
        s = str(sp[i]).lower()
        if s not in _SPLITS:
            raise DatasetError(f"{path}: row {i}: unknown split {sp[i]!r}")
        if not np.isfinite(x[i]).all():
            raise DatasetError(f"{path}: row {i}: NaN or infinite values")
        frames, mask = holistic_to_mp75(x[i])
        yield Clip(frames=frames, mask=mask, label=str(y[i]), task=task, split=_SPLITS[s],
                   source=HOLISTIC + ("_2d" if frames.shape[-1] == 2 else ""),
                   clip_id=f"{i:04d}", dataset=name)


# ------------------------------------------------------------------------------ recording
def detect_recording(src: Path) -> bool:
    return src.is_dir() and any(True for _ in src.rglob(f"*{SUFFIX}"))


def read_recordings(src: Path, opts: ReadOptions, log: ReadLog) -> Iterator[Clip]:
    require_dir(src, "folder of *.landmarks.npz recordings")
    files = sorted(src.rglob(f"*{SUFFIX}"))
    if not files:
        raise DatasetError(f"{src}: no *{SUFFIX} recordings below this folder")
    groups: dict[str, list[str]] = {}
    for f in files:
        groups.setdefault(f.parent.name, []).append(f.relative_to(src).as_posix())
    split = hash_split(groups, opts.seed, opts.test_fraction)
    for f in files:
        try:
            rec = load_recording(f)  # checks headers and dtypes before loading
        except RecordingError as e:
            raise DatasetError(str(e)) from None
        if len(rec) == 0:
            log.skip(f, "no frames")
            continue
        rel = f.relative_to(src).as_posix()
        fps = float(rec.meta.get("fps") or 0.0)
        yield Clip(frames=rec.frames, mask=rec.mask, label=f.parent.name,
                   task=opts.task or str(rec.meta.get("task") or "gesture"),
                   subject=str(rec.meta.get("subject", "")), split=split[rel],
                   source="mp75", clip_id=rel, dataset=src.name, fps=fps)
