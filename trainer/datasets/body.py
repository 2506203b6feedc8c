"""Readers for body-action datasets: MSR Action3D, JHMDB (2D), NTU RGB+D.

MSR Action3D (``msr_action3d``): ``[real_world_coordinates/]a<AA>_s<SS>_e<EE>_skeleton3D.txt``,
    20 lines per frame ``x y z confidence`` (Kinect v1; joint order
    :data:`edge.core.layout.KINECT_V1_MSR`, established from the data). The confidence column
    is a continuous tracker score, not a presence flag, and is not used. An all-zero
    frame means "no skeleton": leading and trailing ones are dropped, interior ones are
    masked. A file with no non-zero frame (one in the published set) is skipped and
    counted. Split ``cross_subject``: subjects 1, 3, 5, 7, 9 train, 2, 4, 6, 8, 10 test,
    all 20 classes together. Task ``action``.

JHMDB (``jhmdb``): ``jhmdb_split{1,2,3}_{train,test}.npz`` with ``frames (F, 15, 2)``,
    ``offsets (N + 1,)`` and ``label (N,)`` (the puppet ground truth, 2D, normalised).
    ``--split-protocol 1|2|3`` picks the official split (default 1). Task ``action``.

NTU RGB+D (``ntu``): ``S<sss>C<ccc>P<ppp>R<rrr>A<aaa>.skeleton`` text files as published:
    frame count; per frame a body count; per body one line of 10 values (bodyID,
    clippedEdges, handLeftConfidence, handLeftState, handRightConfidence, handRightState,
    isRestricted, leanX, leanY, trackingState), the joint count (25), then 25 lines of 12
    values (x y z depthX depthY colorX colorY orientationW..Z trackingState). Joints with
    trackingState 0 (not tracked) are masked; inferred ones are kept. When several bodies
    appear, the clip keeps ONE: the body with the most motion (sum over joints of the
    variance of x, y, z over its frames; ties -> the body seen in more frames), since the
    mp75 layout holds one person; frames where it is absent are masked, and leading and
    trailing frames without it are dropped. Labels are the action codes ``A001``..
    ``A120``. Splits: ``xsub`` (NTU-60 cross-subject), ``xview`` (cameras 2, 3 train),
    ``xsub120`` (NTU-120 cross-subject), ``xset120`` (even setup numbers train). Task
    ``action``.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edge.core.clipstore import Clip
from edge.core.layout import JHMDB15, KINECT_V1_MSR, KINECT_V2_NTU
from trainer.datasets.base import (
    DatasetError,
    ReadLog,
    ReadOptions,
    check_array_sizes,
    detector,
    require_dir,
    require_real,
)
from trainer.datasets.text import read_rows

# ---------------------------------------------------------------------------- MSR Action3D
MSR_ACTIONS: tuple[str, ...] = (
    "high arm wave", "horizontal arm wave", "hammer", "hand catch", "forward punch",
    "high throw", "draw x", "draw tick", "draw circle", "hand clap", "two hand wave",
    "side-boxing", "bend", "forward kick", "side kick", "jogging", "tennis swing",
    "tennis serve", "golf swing", "pick up & throw",
)  # fmt: skip
MSR_TRAIN_SUBJECTS = frozenset({1, 3, 5, 7, 9})
MSR_FPS = 15.0
_MSR_RE = re.compile(r"a(\d+)_s(\d+)_e(\d+)_skeleton3D\.txt$")


def msr_root(src: Path) -> Path:
    require_dir(src, "MSR Action3D skeleton folder")
    for root in (src, src / "real_world_coordinates"):
        if root.is_dir() and any(True for _ in root.glob("a*_s*_e*_skeleton3D.txt")):
            return root
    raise DatasetError(f"{src}: no a<action>_s<subject>_e<rep>_skeleton3D.txt files found")


detect_msr = detector(msr_root)


def read_msr_file(path: Path) -> np.ndarray:
    """``(T, 20, 4)`` rows of one skeleton3D.txt; raises DatasetError when truncated."""
    a = read_rows(path, 4)
    if len(a) % 20:
        raise DatasetError(f"{path}: {len(a)} lines is not a whole number of 20-joint "
                           f"frames (truncated? last frame has {len(a) % 20} joints)")
    return a.reshape(-1, 20, 4)


def _trim_empty(present: np.ndarray) -> slice:
    idx = np.flatnonzero(present)
    return slice(int(idx[0]), int(idx[-1]) + 1) if len(idx) else slice(0, 0)


def read_msr(src: Path, opts: ReadOptions, log: ReadLog) -> Iterator[Clip]:
    root = msr_root(src)
    task = opts.task or "action"
    log.notes.append("split cross_subject: subjects 1,3,5,7,9 train; 2,4,6,8,10 test")
    for f in sorted(root.glob("a*_s*_e*_skeleton3D.txt")):
        m = _MSR_RE.search(f.name)
        if m is None:
            continue
        a, s, _ = (int(v) for v in m.groups())
        if not 1 <= a <= len(MSR_ACTIONS):
            raise DatasetError(f"{f}: action {a} outside 1..{len(MSR_ACTIONS)}")
        x = read_msr_file(f)
        joint_ok = np.abs(x[..., :3]).sum(-1) > 0
        keep = _trim_empty(joint_ok.any(1))
        x, joint_ok = x[keep], joint_ok[keep]
        if len(x) == 0:
            log.skip(f, "no skeleton in any frame (empty or all zeros)")
            continue
        frames, mask = KINECT_V1_MSR.to_mp75(x, joint_ok)
        yield Clip(frames=frames, mask=mask, label=MSR_ACTIONS[a - 1], task=task,
                   subject=str(s), split="train" if s in MSR_TRAIN_SUBJECTS else "test",
                   source=KINECT_V1_MSR.name, clip_id=f.name.removesuffix("_skeleton3D.txt"),
                   dataset="msr_action3d", fps=MSR_FPS)


# ---------------------------------------------------------------------------------- JHMDB
JHMDB_FPS = 30.0


def detect_jhmdb(src: Path) -> bool:
    return src.is_dir() and any(True for _ in src.glob("jhmdb_split*_train.npz"))


def _read_jhmdb_npz(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DatasetError(f"{path}: no such file (JHMDB split file)")
    check_array_sizes(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = {"frames", "offsets", "label"} - set(z.files)
            if missing:
                raise DatasetError(f"{path}: missing arrays {sorted(missing)}")
            fr, off, lab = z["frames"], z["offsets"], z["label"]
    except DatasetError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DatasetError(f"{path}: unreadable or truncated .npz ({e})") from None
    if fr.ndim != 3 or fr.shape[1:] != (15, 2):
        raise DatasetError(f"{path}: frames has shape {fr.shape}; expected (F, 15, 2)")
    require_real(path, "frames", fr)
    require_real(path, "offsets", off, kinds="iu")
    if (off.ndim != 1 or len(off) != len(lab) + 1 or off[0] != 0 or off[-1] != len(fr)
            or (np.diff(off) < 0).any()):
        raise DatasetError(f"{path}: offsets do not partition the {len(fr)} frames into "
                           f"{len(lab)} sequences")
    return fr, off, lab


def read_jhmdb(src: Path, opts: ReadOptions, log: ReadLog) -> Iterator[Clip]:
    require_dir(src, "JHMDB npz folder")
    k = opts.split_protocol or "1"
    task = opts.task or "action"
    for part in ("train", "test"):
        path = src / f"jhmdb_split{k}_{part}.npz"
        fr, off, lab = _read_jhmdb_npz(path)
        for i in range(len(lab)):
            x = fr[off[i]: off[i + 1]]
            if len(x) == 0:
                log.skip(f"{path}[{i}]", "sequence with no frames")
                continue
            if not np.isfinite(x).all():
                raise DatasetError(f"{path}: sequence {i}: NaN or infinite values")
            frames, mask = JHMDB15.to_mp75(x)
            yield Clip(frames=frames, mask=mask, label=str(lab[i]), task=task, split=part,
                       source=JHMDB15.name, clip_id=f"split{k}/{part}/{i:04d}",
                       dataset="jhmdb", fps=JHMDB_FPS)


# ------------------------------------------------------------------------------------ NTU
NTU_FPS = 30.0
NTU_XSUB_TRAIN = frozenset({1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34,
                            35, 38})
NTU120_XSUB_TRAIN = NTU_XSUB_TRAIN | frozenset({
    45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85,
    86, 89, 91, 92, 93, 94, 95, 97, 98, 100, 103})
NTU_XVIEW_TRAIN_CAMERAS = frozenset({2, 3})
_NTU_RE = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})\.skeleton$")


def detect_ntu(src: Path) -> bool:
    return src.is_dir() and any(True for _ in src.rglob("*.skeleton"))


def parse_ntu_skeleton(path: Path) -> tuple[int, dict[str, tuple[list[int], list[np.ndarray]]]]:
    """Parse one ``.skeleton`` file.

    Returns:
        (frame count, body id -> (frame indices, per-frame ``(25, 12)`` joint rows)).

    Raises:
        DatasetError: naming the file and line of the first problem.
    """
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: unreadable ({e})") from None
    pos = 0

    def take(n_vals: int | None, what: str) -> list[str]:
        nonlocal pos
        while pos < len(lines) and not lines[pos].strip():
            pos += 1
        if pos >= len(lines):
            raise DatasetError(f"{path}: file ends at line {pos} while reading {what} "
                               "(truncated?)")
        parts = lines[pos].split()
        pos += 1
        if n_vals is not None and len(parts) != n_vals:
            raise DatasetError(f"{path}: line {pos}: {len(parts)} values for {what}, "
                               f"expected {n_vals}")
        return parts

    def integer(what: str) -> int:
        parts = take(1, what)
        try:
            return int(parts[0])
        except ValueError:
            raise DatasetError(f"{path}: line {pos}: {what} {parts[0]!r} is not an integer") from None

    n_frames = integer("the frame count")
    bodies: dict[str, tuple[list[int], list[np.ndarray]]] = {}
    for t in range(n_frames):
        for _ in range(integer(f"the body count of frame {t}")):
            body_id = take(10, "a body info line")[0]
            nj = integer("the joint count")
            if nj != 25:
                raise DatasetError(f"{path}: line {pos}: joint count {nj}, expected 25")
            rows = []
            for j in range(nj):
                parts = take(12, f"joint {j}")
                try:
                    rows.append([float(v) for v in parts])
                except ValueError:
                    raise DatasetError(f"{path}: line {pos}: not a number") from None
            arr = np.asarray(rows, dtype=np.float64)
            if not np.isfinite(arr).all():
                raise DatasetError(f"{path}: line {pos}: NaN or infinite value")
            fi, ja = bodies.setdefault(body_id, ([], []))
            fi.append(t)
            ja.append(arr)
    return n_frames, bodies


def main_body(bodies: dict[str, tuple[list[int], list[np.ndarray]]]) -> str:
    """The body id with the most motion (sum of per-joint xyz variance over its frames)."""
    def score(bid: str) -> tuple[float, int]:
        fi, ja = bodies[bid]
        xyz = np.stack(ja)[:, :, :3]
        return float(xyz.var(axis=0).sum()), len(fi)
    return max(sorted(bodies), key=score)


def ntu_split(protocol: str, setup: int, camera: int, subject: int) -> str:
    if protocol == "xsub":
        train = subject in NTU_XSUB_TRAIN
    elif protocol == "xview":
        train = camera in NTU_XVIEW_TRAIN_CAMERAS
    elif protocol == "xsub120":
        train = subject in NTU120_XSUB_TRAIN
    elif protocol == "xset120":
        train = setup % 2 == 0
    else:
        raise DatasetError(f"unknown NTU protocol {protocol!r}")
    return "train" if train else "test"


def read_ntu(src: Path, opts: ReadOptions, log: ReadLog) -> Iterator[Clip]:
    require_dir(src, "NTU RGB+D .skeleton folder")
    files = sorted(src.rglob("*.skeleton"))
    if not files:
        raise DatasetError(f"{src}: no .skeleton files below this folder")
    protocol = opts.split_protocol or "xsub"
    task = opts.task or "action"
    for f in files:
        m = _NTU_RE.search(f.name)
        if m is None:
            log.skip(f, "name is not SsssCcccPpppRrrrAaaa.skeleton")
            continue
        setup, cam, subj, _rep, act = (int(v) for v in m.groups())
        n_frames, bodies = parse_ntu_skeleton(f)
        if not bodies:
            log.skip(f, "no body in any frame")
            continue
        bid = main_body(bodies)
        fi, ja = bodies[bid]
        x = np.zeros((n_frames, 25, 3), dtype=np.float64)
        ok = np.zeros((n_frames, 25), dtype=bool)
        rows = np.stack(ja)
        x[fi] = rows[:, :, :3]
        ok[fi] = rows[:, :, 11] > 0
        keep = _trim_empty(np.asarray(ok.any(1)))
        if keep.stop == 0:
            log.skip(f, "no tracked joint in any frame")
            continue
        frames, mask = KINECT_V2_NTU.to_mp75(x[keep], ok[keep])
        if len(bodies) > 1:
            log.notes.append(f"{f.name}: {len(bodies)} bodies, kept the most moving ({bid})")
        yield Clip(frames=frames, mask=mask, label=f"A{act:03d}", task=task,
                   subject=f"P{subj:03d}", split=ntu_split(protocol, setup, cam, subj),
                   source=KINECT_V2_NTU.name, clip_id=f.stem, dataset="ntu_rgbd",
                   fps=NTU_FPS)
