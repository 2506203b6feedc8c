"""trainer.records: one JSON record per run in its own folder, sorted reads, an older
run folder's result.json adopted unchanged, and a dropped run forgotten in both places."""

from __future__ import annotations

import json
from pathlib import Path

from trainer.records import Records


def test_records_are_written_read_and_globbed_by_key(tmp_path: Path) -> None:
    rec = Records(tmp_path / "records", tmp_path / "runs")
    assert rec.read("a/v0/seed0") is None and not rec.has("a/v0/seed0")
    for seed in (10, 2, 1):
        rec.write(f"a/v0/seed{seed}", {"seed": seed})
    rec.write("b/v0/seed0", [{"seed": 0}])
    assert (tmp_path / "records" / "a" / "v0" / "seed2.json").read_text() == \
        json.dumps({"seed": 2}, indent=1)
    assert rec.has("a/v0/seed2") and rec.read("b/v0/seed0") == [{"seed": 0}]
    # Sorted by key, as the run folders were: seed1, seed10, seed2.
    assert [r["seed"] for r in rec.glob("a/v*/seed*")] == [1, 10, 2]
    assert not (tmp_path / "runs").exists()  # nothing is written beside the runs


def test_an_older_result_json_is_adopted_unchanged_and_drop_forgets_both(
        tmp_path: Path) -> None:
    rec = Records(tmp_path / "records", tmp_path / "runs")
    legacy = tmp_path / "runs" / "c" / "hard-mean" / "seed0" / "result.json"
    legacy.parent.mkdir(parents=True)
    legacy.write_text('[{"task": "action",\n "top1": 0.5}]')
    other = tmp_path / "runs" / "c" / "stl-action" / "seed0" / "result.json"
    other.parent.mkdir(parents=True)
    other.write_text('[{"task": "action", "top1": 0.25}]')
    assert rec.glob("*/*/seed*") == [[{"task": "action", "top1": 0.5}],
                                     [{"task": "action", "top1": 0.25}]]
    assert rec.path("c/hard-mean/seed0").read_text() == legacy.read_text()  # byte for byte
    assert legacy.is_file()  # the run folder is left as it was
    rec.drop("c/hard-mean/seed0")
    assert not legacy.exists() and not rec.path("c/hard-mean/seed0").exists()
    assert not rec.has("c/hard-mean/seed0") and rec.has("c/stl-action/seed0")


def test_records_beside_the_runs_never_mistake_a_run_folder_for_a_record(
        tmp_path: Path) -> None:
    """The default (no records folder named): ``<runs>/<key>.json`` beside ``<runs>/<key>/``."""
    rec = Records(tmp_path, tmp_path)
    (tmp_path / "d" / "v0" / "seed0").mkdir(parents=True)  # a run in progress
    assert rec.glob("d/v*/seed*") == [] and not rec.has("d/v0/seed0")
    rec.write("d/v0/seed0", {"top1": 1.0})
    assert rec.glob("d/v*/seed*") == [{"top1": 1.0}]
