"""Shared pieces of the dataset readers: options, the skip log, errors, split helpers.

Every reader is a generator ``read(src, opts, log) -> Iterator[Clip]`` that maps its
source layout into mp75 through :mod:`edge.layout` adapters (masking what the source
lacks, never inventing joints; 2D sources keep 2 coordinates). Readers import numpy only:
``skelmtl data`` must work without torch.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from edge.clipstore import Clip
from edge.errors import SkelmtlError


class DatasetError(SkelmtlError, ValueError):
    """A dataset file or folder that cannot be read; the message names it and the problem."""


@dataclass(frozen=True)
class ReadOptions:
    """Options every reader receives.

    Attributes:
        task: task name to store (None = the reader's default, e.g. ``"action"``).
        split_protocol: one of the reader's ``protocols`` (None = its first, the default).
        seed: seed of hash-based splits (datasets without an official split).
        test_fraction: share of each class put in ``test`` by hash-based splits.
        classes: label granularity where a dataset has two (SHREC'17 / DHG: ``"14"`` or
            ``"28"``); None = the reader's default.
    """

    task: str | None = None
    split_protocol: str | None = None
    seed: int = 0
    test_fraction: float = 0.2
    classes: str | None = None


@dataclass
class ReadLog:
    """What a reader skipped or decided; printed by ``skelmtl data convert``.

    Attributes:
        skipped: (file, reason) of each input left out (e.g. an empty file).
        notes: protocol decisions worth recording in the store's provenance.
    """

    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def skip(self, path: Path | str, reason: str) -> None:
        self.skipped.append((str(path), reason))


ReadFn = Callable[[Path, ReadOptions, ReadLog], Iterator[Clip]]


@dataclass(frozen=True)
class ReaderSpec:
    """A registered dataset format.

    Attributes:
        name: the ``--format`` name.
        read: the reader generator.
        task: default task name of its clips.
        source: source layout name(s) its clips carry.
        protocols: accepted ``--split-protocol`` values; the first is the default.
        description: one line for ``skelmtl data list-formats``.
        detect: cheap test whether a path looks like this format (for autodetection).
        classes: accepted ``--classes`` values (first = default), empty when not applicable.
    """

    name: str
    read: ReadFn
    task: str
    source: str
    protocols: tuple[str, ...]
    description: str
    detect: Callable[[Path], bool]
    classes: tuple[str, ...] = ()


def protocol_of(spec: ReaderSpec, opts: ReadOptions) -> str:
    """The split protocol to use, checked against the reader's list."""
    p = spec.protocols[0] if opts.split_protocol is None else str(opts.split_protocol)
    if p not in spec.protocols:
        raise DatasetError(f"format {spec.name!r} has no split protocol {p!r}; "
                           f"choose from {list(spec.protocols)}")
    return p


def hash_split(groups: dict[str, list[str]], seed: int, test_fraction: float) -> dict[str, str]:
    """Deterministic stratified split of named members: member -> ``"train"``/``"test"``.

    Within each group (one class), members are ordered by ``sha1(f"{seed}:{member}")``
    and the first ``round(test_fraction * n)`` go to test. The result depends only on
    the member names and the seed (not on file-system order), and every class gets the
    same share of test clips.
    """
    out: dict[str, str] = {}
    for members in groups.values():
        order = sorted(members, key=lambda k: hashlib.sha1(f"{seed}:{k}".encode()).hexdigest())
        n_test = int(round(test_fraction * len(order)))
        for i, m in enumerate(order):
            out[m] = "test" if i < n_test else "train"
    return out


def natural_key(s: str) -> tuple[object, ...]:
    """Sort key that orders ``"2" < "10"`` (frame and sequence numbers)."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s))


def require_dir(src: Path, what: str) -> Path:
    if not src.exists():
        raise DatasetError(f"{src}: no such folder ({what})")
    if not src.is_dir():
        raise DatasetError(f"{src}: not a folder ({what})")
    return src


def detector(find_root: Callable[[Path], Path]) -> Callable[[Path], bool]:
    """Format autodetection from a reader's root finder: does ``find_root(src)`` succeed?"""
    def detect(src: Path) -> bool:
        try:
            find_root(src)
            return True
        except DatasetError:
            return False
    return detect
