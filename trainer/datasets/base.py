"""Shared pieces of the dataset readers: options, the skip log, errors, split helpers.

Every reader is a generator ``read(src, opts, log) -> Iterator[Clip]`` that maps its
source layout into mp75 through :mod:`edge.core.layout` adapters (masking what the source
lacks, never inventing joints; 2D sources keep 2 coordinates). Readers import numpy only:
``skelmtl data`` must work without torch.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator  # typing's: ReadFn below is evaluated, on 3.8 too

import numpy as np

from edge.core.clipstore import Clip
from edge.core.errors import SkelmtlError
from edge.core.npyfile import check_array_sizes as edge_check_array_sizes


class DatasetError(SkelmtlError, ValueError):
    """A dataset file or folder that cannot be read; the message names it and the problem."""


@dataclass(frozen=True)
class ReadOptions:
    """Options every reader receives.

    Attributes:
        task: task name to store (None = the reader's default, e.g. ``"action"``).
        split_protocol: one of the reader's ``protocols`` (None = its first, the default),
            or ``list:FILE`` for any reader: the splits a list file gives
            (:func:`read_split_list`).
        seed: seed of hash-based splits (datasets without an official split).
        test_fraction: share of each class put in ``test`` by hash-based splits (of the
            subjects or sequences for the ``subject`` and ``sequence`` protocols).
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


LIST_PREFIX = "list:"
SPLIT_NAMES = ("train", "val", "test")


def protocol_of(spec: ReaderSpec, opts: ReadOptions) -> str:
    """The split protocol to use, checked against the reader's list (``list:FILE`` always)."""
    p = spec.protocols[0] if opts.split_protocol is None else str(opts.split_protocol)
    if p.startswith(LIST_PREFIX):
        if not p[len(LIST_PREFIX):]:
            raise DatasetError("split protocol 'list:' needs a file: list:FILE")
        return p
    if p not in spec.protocols:
        raise DatasetError(f"format {spec.name!r} has no split protocol {p!r}; "
                           f"choose from {list(spec.protocols) + ['list:FILE']}")
    return p


def read_split_list(path: str | Path) -> dict[str, str]:
    """A split list file: id -> ``train`` | ``val`` | ``test``.

    One entry a line, ``ID SPLIT`` (whitespace or a comma between), ``#`` starts a comment.
    An ID is a clip id (``<class>/<sequence>`` for folder readers), a sequence name (the
    clip id's last part) or a subject id; ``* SPLIT`` sets the split of clips the list
    does not name (without it, an unnamed clip is an error).

    Raises:
        DatasetError: unreadable file, a malformed line, an unknown split, an ID listed
            twice with different splits (each names the file and line).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: cannot read the split list ({e})") from None
    out: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].replace(",", " ").strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            raise DatasetError(f"{path}:{n}: expected 'ID SPLIT', got {raw.strip()!r}")
        key, split = parts[0], parts[1].lower()
        if split not in SPLIT_NAMES:
            raise DatasetError(f"{path}:{n}: unknown split {parts[1]!r}; use one of "
                               f"{list(SPLIT_NAMES)}")
        if out.get(key, split) != split:
            raise DatasetError(f"{path}:{n}: {key!r} listed as {out[key]!r} and {split!r}")
        out[key] = split
    if not out:
        raise DatasetError(f"{path}: the split list names no clips")
    return out


def apply_split_list(clips: Iterable[Clip], path: str | Path, log: ReadLog) -> Iterator[Clip]:
    """Clips with the split :func:`read_split_list` gives them (by clip id, sequence name,
    then subject); raises DatasetError naming the list and the first clip it misses."""
    import dataclasses

    table = read_split_list(path)
    used: set[str] = set()
    default = table.get("*")
    for c in clips:
        for key in (c.clip_id, c.clip_id.rsplit("/", 1)[-1], c.subject):
            if key and key in table:
                used.add(key)
                yield dataclasses.replace(c, split=table[key])
                break
        else:
            if default is None:
                raise DatasetError(f"{path}: names neither clip {c.clip_id!r}, its sequence "
                                   f"nor its subject {c.subject!r} (add it, or a '* SPLIT' "
                                   "line for the rest)")
            yield dataclasses.replace(c, split=default)
    unused = sorted(set(table) - used - {"*"})
    log.notes.append(f"split: list {path}" + (f"; {len(unused)} entries matched no clip "
                                              f"(e.g. {unused[:3]})" if unused else ""))


def group_split(ids: Iterable[str], seed: int, test_fraction: float) -> dict[str, str]:
    """Whole groups (subjects, sequences) to ``train`` / ``test``: id -> split.

    Ids are ordered by ``sha1(f"{seed}:{id}")`` and the first ``round(test_fraction * n)``
    go to test; with two or more ids and a fraction above zero, at least one goes to each
    side, so neither split is empty.
    """
    order = sorted(set(ids), key=lambda k: hashlib.sha1(f"{seed}:{k}".encode()).hexdigest())
    n_test = int(round(test_fraction * len(order)))
    if len(order) >= 2 and test_fraction > 0:
        n_test = min(max(n_test, 1), len(order) - 1)
    return {k: "test" if i < n_test else "train" for i, k in enumerate(order)}


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


def require_real(path: Path | str, what: str, a: np.ndarray, kinds: str = "biuf"
                 ) -> np.ndarray:
    """``a`` unchanged when its dtype is real numbers; DatasetError naming the file otherwise.

    numpy converts text ("0.5") to numbers and drops imaginary parts with only a warning:
    both would turn a broken file into plausible coordinates.
    """
    if a.dtype.kind not in kinds:
        raise DatasetError(f"{path}: {what} must hold real numbers, got dtype {a.dtype}")
    return a


def check_array_sizes(path: Path) -> None:
    """Each array's header in an ``.npy`` or ``.npz`` file must match the bytes it has.

    Read before ``np.load``, which allocates what a header claims before reading: a crafted
    shape of 10^12 would take the machine's memory. Anything unreadable is left to the
    loader, which names the problem. The check lives in :mod:`edge.core.npyfile`, which the
    runtime's recordings use too.

    Raises:
        DatasetError: naming the file (and the array) whose header promises more.
    """
    edge_check_array_sizes(path, DatasetError)


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
