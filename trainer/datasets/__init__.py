"""Readers from published skeleton formats into the clip store (numpy only, no torch).

Each reader maps its source layout into mp75 with the adapters of :mod:`edge.core.layout`,
masking what the source lacks, and builds the dataset's standard split protocol in.

Usage:
    from trainer.datasets import READERS, read_dataset
    clips = read_dataset("../shared/data/msr_action3d", "msr_action3d")

or on the command line: ``skelmtl data convert SRC DST --format msr_action3d``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

from edge.core.clipstore import Clip
from trainer.datasets.base import (
    LIST_PREFIX,
    DatasetError,
    ReaderSpec,
    ReadLog,
    ReadOptions,
    apply_split_list,
    group_split,
    hash_split,
    protocol_of,
)
from trainer.datasets.body import (
    detect_jhmdb,
    detect_msr,
    detect_ntu,
    read_jhmdb,
    read_msr,
    read_ntu,
)
from trainer.datasets.hands import detect_dhg, detect_fphab, read_dhg, read_fphab, read_shrec
from trainer.datasets.mediapipe import (
    detect_asl16,
    detect_mp_folder,
    detect_recording,
    read_asl16,
    read_mp_folder,
    read_recordings,
)

__all__ = ["READERS", "DatasetError", "ReadLog", "ReadOptions", "ReaderSpec", "detect_format",
           "hash_split", "read_dataset"]


def _spec(*args: object, **kw: object) -> ReaderSpec:
    return ReaderSpec(*args, **kw)  # type: ignore[arg-type]


def _loso(n: int) -> tuple[str, ...]:
    return tuple(f"loso:{s}" for s in range(1, n + 1))


READERS: dict[str, ReaderSpec] = {s.name: s for s in (
    _spec("mp_folder", read_mp_folder, "gesture", "mediapipe_holistic",
          ("hash", "sequence", "subject"),
          "MediaPipe MP_Data folders <class>/<sequence>/<frame>.npy (258/1662/225 values); "
          "hash-stratified 80/20 split, or by whole sequence name or subject "
          "(<subject>_<n> folders)", detect_mp_folder),
    _spec("asl16", read_asl16, "gesture", "mediapipe_holistic_2d", ("official",),
          "npz with X (N,T,D) holistic vectors, y, split Train/Valid/Test (asl16)",
          detect_asl16),
    _spec("fphab", read_fphab, "gesture", "fphab_hand21", ("cross_subject", "subject"),
          "F-PHAB Hand_pose_annotation_v1/Subject_<s>/<action>/<n>/skeleton.txt; "
          "Subject_1-4 train, 5-6 test", detect_fphab),
    _spec("msr_action3d", read_msr, "action", "kinect_v1_msr", ("cross_subject", "subject"),
          "MSR Action3D a<A>_s<S>_e<E>_skeleton3D.txt; subjects 1,3,5,7,9 train",
          detect_msr),
    _spec("jhmdb", read_jhmdb, "action", "jhmdb15", ("1", "2", "3"),
          "JHMDB jhmdb_split{1,2,3}_{train,test}.npz (2D puppet joints); official split k",
          detect_jhmdb),
    _spec("ntu", read_ntu, "action", "kinect_v2_ntu", ("xsub", "xview", "xsub120", "xset120", "subject"),
          "NTU RGB+D / NTU-120 .skeleton files; main (most moving) body", detect_ntu),
    _spec("shrec", read_shrec, "gesture", "dhg22", ("official", *_loso(28), "subject"),
          "SHREC'17 gesture_<g>/finger_<f>/subject_<s>/essai_<e>/skeletons_world.txt; "
          "train/test_gestures.txt lists", detect_dhg, ("14", "28")),
    _spec("dhg", read_dhg, "gesture", "dhg22", (*_loso(20), "subject"),
          "DHG-14/28 (same tree as SHREC'17); leave-one-subject-out fold loso:<s>",
          detect_dhg, ("14", "28")),
    _spec("recording", read_recordings, "gesture", "mp75", ("hash", "subject"),
          "folders of the runtime's *.landmarks.npz recordings, label = parent folder",
          detect_recording),
)}

# Readers whose clips carry subject ids but which do not split by them themselves: their
# "subject" protocol is applied by read_dataset over the subjects the reader yields.
_SUBJECT_BY_WRAPPER = frozenset({"fphab", "msr_action3d", "ntu", "shrec", "dhg", "recording"})

# Autodetection order: the most specific signatures first (dhg before shrec: a plain
# tree without SHREC's train/test lists is DHG's).
_DETECT_ORDER = ("fphab", "msr_action3d", "jhmdb", "ntu", "asl16", "recording", "dhg",
                 "mp_folder")


def detect_format(src: str | os.PathLike[str]) -> str:
    """The format name whose files ``src`` holds; raises DatasetError when none fits."""
    p = Path(src)
    if not p.exists():
        raise DatasetError(f"{p}: no such file or folder")
    for name in _DETECT_ORDER:
        if READERS[name].detect(p):
            if name == "dhg" and (p / "train_gestures.txt").is_file():
                return "shrec"
            return name
    raise DatasetError(f"{p}: cannot tell the dataset format; pass --format (one of "
                       f"{', '.join(READERS)}), or, for a layout no reader knows, build the "
                       "store in Python: map each sequence to mp75 (edge.core.layout.SourceLayout"
                       ".to_mp75) and write Clip objects with edge.core.clipstore.write_store "
                       "(docs/tutorial.md, 'A layout we have no reader for')")


def resolve_options(spec: ReaderSpec, opts: ReadOptions) -> ReadOptions:
    """Fill in the reader's defaults and check the options it does not accept."""
    protocol = protocol_of(spec, opts)
    classes = opts.classes
    if classes is not None and str(classes) not in spec.classes:
        raise DatasetError(f"format {spec.name!r} takes no --classes {classes}"
                           + (f"; choose from {list(spec.classes)}" if spec.classes else ""))
    if classes is None and spec.classes:
        classes = spec.classes[0]
    if not 0.0 <= opts.test_fraction < 1.0:
        raise DatasetError(f"test fraction {opts.test_fraction} outside [0, 1)")
    return dataclasses.replace(opts, split_protocol=protocol, task=opts.task or spec.task,
                               classes=None if classes is None else str(classes))


def read_dataset(src: str | os.PathLike[str], format: str | None = None,
                 opts: ReadOptions | None = None, log: ReadLog | None = None
                 ) -> Iterator[Clip]:
    """Clips of the dataset at ``src`` in mp75 (lazily, one at a time).

    Args:
        src: the dataset folder (or file for ``asl16``).
        format: a key of :data:`READERS`; None = autodetect.
        opts: task, split protocol, seed...; None = the reader's defaults.
        log: receives skipped files and protocol notes.

    Raises:
        DatasetError: unknown format or option, missing folder, corrupt file (named).
    """
    src = Path(src)
    name = format or detect_format(src)
    if name not in READERS:
        raise DatasetError(f"unknown format {name!r}; known: {', '.join(READERS)}")
    spec = READERS[name]
    opts = resolve_options(spec, opts or ReadOptions())
    log = log if log is not None else ReadLog()
    protocol = opts.split_protocol or spec.protocols[0]
    if protocol.startswith(LIST_PREFIX):
        # The reader runs with its default protocol; the list then decides every split.
        inner = dataclasses.replace(opts, split_protocol=spec.protocols[0])
        return apply_split_list(spec.read(src, inner, log), protocol[len(LIST_PREFIX):], log)
    if protocol == "subject" and name in _SUBJECT_BY_WRAPPER:
        return _split_by_subject(spec, src, opts, log)
    return spec.read(src, opts, log)


def _split_by_subject(spec: ReaderSpec, src: Path, opts: ReadOptions, log: ReadLog
                      ) -> Iterator[Clip]:
    """The reader's clips with whole subjects in train or test (:func:`group_split`).

    Reads the dataset twice: once for the subject ids (frames are dropped at once, so
    memory stays flat), once for the clips.
    """
    inner = dataclasses.replace(opts, split_protocol=spec.protocols[0])
    subjects = []
    for c in spec.read(src, inner, ReadLog()):
        if not c.subject:
            raise DatasetError(f"{src}: clip {c.clip_id!r} has no subject id; split by "
                               "another protocol or give the splits in a list file "
                               "(--split-protocol list:FILE)")
        subjects.append(c.subject)
    split = group_split(subjects, opts.seed, opts.test_fraction)
    log.notes.append(f"split subject: whole subjects, sha1('{opts.seed}:<subject>') order, "
                     f"first {opts.test_fraction:g} -> test; test: "
                     f"{sorted(k for k, v in split.items() if v == 'test')[:20]}")
    for c in spec.read(src, inner, log):
        yield dataclasses.replace(c, split=split[c.subject])
