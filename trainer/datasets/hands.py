"""Readers for hand-only datasets: F-PHAB and SHREC'17 / DHG-14/28.

F-PHAB (``fphab``): ``[Hand_pose_annotation_v1/]Subject_<s>/<action>/<n>/skeleton.txt``,
    one line per frame: frame index, then 21 joints x (x, y, z) in millimetres, camera
    space (y down, z away: mp75's axes). Joint order from the F-PHAB documentation
    (:data:`edge.core.layout.FPHAB`), checked on the data by bone lengths in
    tests/test_datasets.py. The subject's right hand, so the clips fill the right-hand
    slot only. Empty files (three in the published set) are skipped and counted. Split
    ``cross_subject``: Subject_1..4 train, Subject_5..6 test (the official 1:1 split file
    is not part of the published annotations).

SHREC'17 / DHG-14/28 (``shrec``, ``dhg``):
    ``gesture_<g>/finger_<f>/subject_<s>/essai_<e>/skeletons_world.txt``, one line per
    frame with 22 joints x (x, y, z) in metres (:data:`edge.core.layout.DHG22`; the palm is
    dropped, the hand goes to the right slot because the side is not recorded). Labels:
    ``--classes 14`` (gesture name) or ``28`` (gesture name + finger mode). Splits:
    ``loso:<s>`` puts subject ``s`` in test and the others in train (one fold of the
    leave-one-subject-out protocol); ``official`` (SHREC'17 only) reads the
    ``train_gestures.txt`` / ``test_gestures.txt`` lists at the root (lines ``g f s e
    label14 label28 size``); sequences in neither list are skipped and counted.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edge.core.clipstore import Clip
from edge.core.layout import DHG22, FPHAB
from trainer.datasets.base import (
    DatasetError,
    ReadLog,
    ReadOptions,
    detector,
    natural_key,
    require_dir,
)
from trainer.datasets.text import read_rows

# ---------------------------------------------------------------------------------- F-PHAB
FPHAB_TRAIN_SUBJECTS = frozenset({1, 2, 3, 4})
FPHAB_FPS = 30.0
_FPHAB_RE = re.compile(r"Subject_(\d+)/([^/]+)/([^/]+)/skeleton\.txt$")


def fphab_root(src: Path) -> Path:
    require_dir(src, "F-PHAB Hand_pose_annotation_v1 folder")
    for root in (src, src / "Hand_pose_annotation_v1"):
        if root.is_dir() and any(True for _ in root.glob("Subject_*/*/*/skeleton.txt")):
            return root
    raise DatasetError(f"{src}: no Subject_<s>/<action>/<n>/skeleton.txt files found "
                       "(expected F-PHAB's Hand_pose_annotation_v1 folder)")


detect_fphab = detector(fphab_root)


def read_fphab_file(path: Path) -> np.ndarray:
    """``(T, 21, 3)`` millimetres of one skeleton.txt (frame-index column dropped)."""
    a = read_rows(path, 64)
    return a[:, 1:].reshape(len(a), 21, 3)


def read_fphab(src: Path, opts: ReadOptions, log: ReadLog) -> Iterator[Clip]:
    root = fphab_root(src)
    files = sorted(root.glob("Subject_*/*/*/skeleton.txt"),
                   key=lambda p: natural_key(p.relative_to(root).as_posix()))
    task = opts.task or "gesture"
    log.notes.append("split cross_subject: Subject_1..4 train, Subject_5..6 test")
    for f in files:
        rel = f.relative_to(root).as_posix()
        m = _FPHAB_RE.search(rel)
        if m is None:
            continue
        x = read_fphab_file(f)
        if len(x) == 0:
            log.skip(f, "empty file")
            continue
        subject = int(m.group(1))
        frames, mask = FPHAB.to_mp75(x)
        yield Clip(frames=frames, mask=mask, label=m.group(2), task=task,
                   subject=str(subject),
                   split="train" if subject in FPHAB_TRAIN_SUBJECTS else "test",
                   source=FPHAB.name, clip_id=rel.removesuffix("/skeleton.txt"),
                   dataset="fphab", fps=FPHAB_FPS)


# ------------------------------------------------------------------------------ SHREC/DHG
SHREC_GESTURES: tuple[str, ...] = (
    "grab", "tap", "expand", "pinch", "rotation_cw", "rotation_ccw", "swipe_right",
    "swipe_left", "swipe_up", "swipe_down", "swipe_x", "swipe_plus", "swipe_v", "shake",
)  # fmt: skip
FINGER_MODES = {1: "one_finger", 2: "whole_hand"}
DHG_FPS = 30.0
_DHG_RE = re.compile(r"gesture_(\d+)/finger_(\d+)/subject_(\d+)/essai_(\d+)/skeletons_world\.txt$")
_DHG_GLOB = "gesture_*/finger_*/subject_*/essai_*/skeletons_world.txt"


def dhg_root(src: Path) -> Path:
    require_dir(src, "SHREC'17 / DHG folder")
    cands = [src] + sorted(p for p in src.iterdir() if p.is_dir())
    for root in cands:
        if any(True for _ in root.glob(_DHG_GLOB)):
            return root
    raise DatasetError(f"{src}: no gesture_<g>/finger_<f>/subject_<s>/essai_<e>/"
                       "skeletons_world.txt files found")


detect_dhg = detector(dhg_root)


def dhg_label(g: int, f: int, classes: str) -> str:
    if not 1 <= g <= len(SHREC_GESTURES) or f not in FINGER_MODES:
        raise ValueError(f"gesture {g} / finger {f} outside 1..14 / 1..2")
    name = SHREC_GESTURES[g - 1]
    return name if classes == "14" else f"{name}.{FINGER_MODES[f]}"


def _shrec_lists(root: Path) -> dict[tuple[int, int, int, int], str]:
    out: dict[tuple[int, int, int, int], str] = {}
    for split, name in (("train", "train_gestures.txt"), ("test", "test_gestures.txt")):
        p = root / name
        if not p.is_file():
            raise DatasetError(f"{p}: missing (the 'official' SHREC'17 protocol needs "
                               "train_gestures.txt and test_gestures.txt at the root)")
        a = read_rows(p, 7).astype(np.int64)
        for g, f, s, e, *_ in a.tolist():
            out[(g, f, s, e)] = split
    return out


def read_shrec(src: Path, opts: ReadOptions, log: ReadLog) -> Iterator[Clip]:
    return _read_dhg(src, opts, log, "shrec17")


def read_dhg(src: Path, opts: ReadOptions, log: ReadLog) -> Iterator[Clip]:
    return _read_dhg(src, opts, log, "dhg")


def _read_dhg(src: Path, opts: ReadOptions, log: ReadLog, dataset: str) -> Iterator[Clip]:
    protocol = opts.split_protocol or "loso:1"
    classes = opts.classes or "14"
    root = dhg_root(src)
    files = sorted(root.glob(_DHG_GLOB), key=lambda p: natural_key(p.relative_to(root).as_posix()))
    lists = _shrec_lists(root) if protocol == "official" else {}
    test_subject = int(protocol.split(":")[1]) if protocol.startswith("loso:") else -1
    task = opts.task or "gesture"
    for f in files:
        rel = f.relative_to(root).as_posix()
        m = _DHG_RE.search(rel)
        if m is None:
            continue
        g, fi, s, e = (int(v) for v in m.groups())
        try:
            label = dhg_label(g, fi, classes)
        except ValueError as err:
            raise DatasetError(f"{f}: {err}") from None
        if protocol == "official":
            if (g, fi, s, e) not in lists:
                log.skip(f, "in neither train_gestures.txt nor test_gestures.txt")
                continue
            split = lists[(g, fi, s, e)]
        else:
            split = "test" if s == test_subject else "train"
        a = read_rows(f, 66)
        if len(a) == 0:
            log.skip(f, "empty file")
            continue
        frames, mask = DHG22.to_mp75(a.reshape(len(a), 22, 3))
        yield Clip(frames=frames, mask=mask, label=label, task=task, subject=str(s),
                   split=split, source=DHG22.name,
                   clip_id=rel.removesuffix("/skeletons_world.txt"), dataset=dataset,
                   fps=DHG_FPS)
