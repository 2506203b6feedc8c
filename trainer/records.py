"""The records of finished runs: one small JSON file per run, in a folder git tracks.

A runner (``skelmtl accuracy``, ``skelmtl experiment``, ``python -m trainer.tuning``)
trains in its ``runs`` folder, which git ignores: checkpoints, logs, exports, fold stores
and claims are working files there. What its table is made of, the row of each finished
run, is the run's *record*, ``<records>/<key>.json`` (``records/accuracy/jhmdb/v0/seed0.json``
for the run ``runs/accuracy/jhmdb/v0/seed0``). The runners skip a run that has a record and
build their tables from the records alone, so a fresh clone, whose ``runs/`` is empty,
rebuilds the same tables and trains nothing that is already recorded.

Records are written atomically (:func:`edge.core.atomic.atomic_write`). A ``result.json``
that an older skelmtl left in the run folder (``<runs>/<key>/result.json``, where records
used to live) is adopted: copied, unchanged, into its record the first time a runner looks
for it, so runs finished before the move are neither lost nor trained again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.core.atomic import atomic_write

LEGACY = "result.json"


@dataclass(frozen=True)
class Records:
    """The records of one runner's runs.

    Attributes:
        root: the tracked folder of the records (``records/accuracy``).
        runs: the ignored folder of the runs (``runs/accuracy``), searched for the
            ``result.json`` files of older versions.
    """

    root: Path
    runs: Path

    def path(self, key: str) -> Path:
        """Where the record of run ``key`` (``jhmdb/v0/seed0``) lives."""
        return self.root / f"{key}.json"

    def _adopt(self, key: str) -> Path | None:
        """The record's path if it exists, after adopting an older ``result.json``."""
        path = self.path(key)
        if path.is_file():
            return path
        legacy = self.runs / key / LEGACY
        try:
            text = legacy.read_text()
        except FileNotFoundError:
            return None
        atomic_write(path, text)
        return path

    def has(self, key: str) -> bool:
        """Whether run ``key`` is finished (has a record)."""
        return self._adopt(key) is not None

    def read(self, key: str) -> Any:
        """The record of run ``key``, or None when it has none."""
        path = self._adopt(key)
        return None if path is None else json.loads(path.read_text())

    def write(self, key: str, value: Any) -> Path:
        """Write the record of run ``key`` (atomically, as indented JSON)."""
        path = self.path(key)
        atomic_write(path, json.dumps(value, indent=1))
        return path

    def drop(self, key: str) -> None:
        """Forget run ``key`` (its recipe changed): its record and any older result.json.
        The old numbers stay in git's history of the record."""
        self.path(key).unlink(missing_ok=True)
        (self.runs / key / LEGACY).unlink(missing_ok=True)

    def run_key(self, checkpoint: Path) -> str | None:
        """The key of the run whose folder holds ``checkpoint`` (``runs/<key>/best.pt``),
        or None when it lies outside the runs folder; the run need not exist."""
        try:
            return checkpoint.parent.resolve().relative_to(self.runs.resolve()).as_posix()
        except ValueError:
            return None

    def glob(self, pattern: str) -> list[Any]:
        """The records whose keys match ``pattern`` (``jhmdb/v*/seed*``), sorted by key,
        after adopting the older ``result.json`` files that match it."""
        if self.runs.is_dir():
            for legacy in self.runs.glob(f"{pattern}/{LEGACY}"):
                self._adopt(legacy.parent.relative_to(self.runs).as_posix())
        return [json.loads(p.read_text()) for p in sorted(self.root.glob(f"{pattern}.json"))]
