"""skelmtl accuracy: a whole table on a synthetic store with a stand-in peer, resume,
the table rebuilt from the tracked records alone (a fresh clone), claims that only one
worker wins, and config errors that name the file."""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from trainer.accuracy import (
    CLAIM,
    claim,
    load_accuracy_config,
    release,
    run_accuracy,
    write_table,
)
from trainer.config import ConfigError

from .synth import make_store

# A peer that writes what ddnet.py writes, from its arguments (no training).
PEER = """
import argparse, json, os
p = argparse.ArgumentParser()
for a in ("--dataset", "--filters", "--seed", "--threads", "--out", "--split"):
    p.add_argument(a)
a = p.parse_args()
os.makedirs(a.out, exist_ok=True)
json.dump({"config": {"seed": int(a.seed), "split": int(a.split or 1)}, "test_top1": 0.5 + int(a.seed) / 10,
           "params": 1000, "mflops_per_clip": 2.5, "epochs_run": 3, "train_s": 1.0},
          open(os.path.join(a.out, "result.json"), "w"))
"""


def _config(tmp: Path, store: Path, peer: Path | None) -> Path:
    base = {"threads": 1, "preprocess": {"window": 16, "dims": 3, "streams": ["joint"]},
            "model": {"name": "jcd_tiny"}, "tasks": ["action"],
            "augment": {"mirror": 0.0, "rotate_deg": 0, "scale": 0, "crop": 1.0},
            "optim": {"epochs": 2, "batch_size": 16}, "data": {"val_fraction": 0.2}}
    cfg = {"name": "synthetic", "runs": str(tmp / "runs"), "records": str(tmp / "records"),
           "results": str(tmp / "acc.md"),
           "report": str(tmp / "acc.json"), "base": base,
           "calibrate": {"method": "minmax", "size": 16},
           "datasets": {"synth": {"title": "Synthetic", "seeds": [0, 1],
                                  "variants": [{"store": str(store),
                                                "peer": ["--dataset", "synth"]}]}}}
    if peer is not None:
        cfg["peer"] = {"script": str(peer), "filters": [8], "threads": 1}
    path = tmp / "acc.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_table_with_peer_resumes_without_retraining(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    store = make_store(tmp_path / "store")
    peer = tmp_path / "peer.py"
    peer.write_text(PEER)
    path = _config(tmp_path, store, peer)
    md = run_accuracy(path)
    rep = json.loads((tmp_path / "acc.json").read_text())
    row = rep["datasets"]["synth"]
    assert [r["seed"] for r in row["ours"]] == [0, 1]
    for r in row["ours"]:
        assert 0.0 <= r["top1"] <= 1.0 and 0.0 <= r["top1_int8"] <= 1.0
        assert r["n_test"] == 9 and r["params"] > 0 and r["mflops"] > 0 and r["epochs"] == 2
    assert [p["test_top1"] for p in row["peer"]["f8"]] == [0.5, 0.6]
    text = md.read_text()
    assert "| Synthetic |" in text and "55.0 ± 7.1 (n=2)" in text  # the peer column
    assert "Runs finished / planned: synth 2/2" in text
    assert f"skelmtl accuracy {path}" in text
    # One record per run, in the records folder, none in the runs folder.
    records = tmp_path / "records"
    assert sorted(p.relative_to(records).as_posix() for p in records.rglob("*.json")) == [
        "peer/f8/synth/v0/seed0.json", "peer/f8/synth/v0/seed1.json",
        "synth/v0/seed0.json", "synth/v0/seed1.json"]
    assert json.loads((records / "synth/v0/seed1.json").read_text()) == row["ours"][1]
    assert not [p for p in (tmp_path / "runs").rglob("result.json") if "peer" not in p.parts]
    # A second call finds every record and trains nothing.
    stamp = {p: p.stat().st_mtime_ns for p in records.rglob("*.json")}
    run_accuracy(path)
    assert {p: p.stat().st_mtime_ns for p in records.rglob("*.json")} == stamp
    assert not list((tmp_path / "runs").rglob(CLAIM))
    # A changed recipe trains our runs again (never the peer's), with the new recipe.
    cfg = yaml.safe_load(path.read_text())
    cfg["datasets"]["synth"]["overrides"] = {"optim.epochs": 3}
    path.write_text(yaml.safe_dump(cfg))
    run_accuracy(path)
    rep = json.loads((tmp_path / "acc.json").read_text())["datasets"]["synth"]
    assert [r["epochs"] for r in rep["ours"]] == [3, 3]
    assert [p.stat().st_mtime_ns for p in sorted((records / "peer").rglob("*.json"))] \
        == [t for p, t in sorted(stamp.items()) if "peer" in p.parts]


def test_a_fresh_clone_rebuilds_the_table_from_the_records_and_trains_nothing(
        tmp_path: Path) -> None:
    """The records are all a clone has: runs/ (checkpoints, exports, the peer's files) and
    the clip store are gone, and the table, the report and a rerun must not miss them."""
    pytest.importorskip("onnxruntime")
    store = make_store(tmp_path / "store", n_per_class=6)
    peer = tmp_path / "peer.py"
    peer.write_text(PEER)
    path = _config(tmp_path, store, peer)
    md = run_accuracy(path)
    table, report = md.read_text(), (tmp_path / "acc.json").read_text()
    records = tmp_path / "records"
    stamp = {p: p.stat().st_mtime_ns for p in records.rglob("*.json")}
    assert len(stamp) == 4
    shutil.rmtree(tmp_path / "runs")
    shutil.rmtree(store)  # nor has it the data: a recorded run needs none
    md.unlink()
    write_table(load_accuracy_config(path), path)  # --table-only
    assert md.read_text() == table and (tmp_path / "acc.json").read_text() == report
    run_accuracy(path)  # every run has a record: nothing trains, no run folder appears
    assert not (tmp_path / "runs").exists()
    assert {p: p.stat().st_mtime_ns for p in records.rglob("*.json")} == stamp
    assert md.read_text() == table


def test_an_older_result_json_in_the_run_folder_is_adopted_not_retrained(
        tmp_path: Path) -> None:
    """A run an older skelmtl finished has ``runs/<key>/result.json`` and no record: the
    table shows it and a rerun copies it, unchanged, into the records."""
    store = make_store(tmp_path / "store", n_per_class=2)
    path = _config(tmp_path, store, None)
    old = {"dataset": "synth", "variant": 0, "seed": 0, "top1": 0.75, "top1_int8": 0.5,
           "params": 10, "mflops": 1.0, "epochs": 7}
    for seed in (0, 1):
        legacy = tmp_path / "runs" / "synth" / "v0" / f"seed{seed}" / "result.json"
        legacy.parent.mkdir(parents=True)
        legacy.write_text(json.dumps(dict(old, seed=seed), indent=1))
    md = run_accuracy(path)
    assert "| Synthetic | 75.0 ± 0.0 (n=2) | 50.0 ± 0.0 (n=2) | 10 | 1.00 | 7 |" in md.read_text()
    for seed in (0, 1):
        rec = tmp_path / "records" / "synth" / "v0" / f"seed{seed}.json"
        assert rec.read_text() == json.dumps(dict(old, seed=seed), indent=1)
    assert not list((tmp_path / "runs").rglob("*.pt"))


def test_missing_peer_script_skips_the_peer_column(tmp_path: Path) -> None:
    store = make_store(tmp_path / "store")
    path = _config(tmp_path, store, tmp_path / "no_peer.py")
    cfg = load_accuracy_config(path)
    assert cfg.peer["script"].endswith("no_peer.py")


@pytest.mark.parametrize(("change", "message"), [
    (lambda c: c.update(surprise=1), r"acc.yaml: unknown keys \['surprise'\]"),
    (lambda c: c.pop("runs"), "acc.yaml: missing key 'runs'"),
    (lambda c: c["datasets"]["synth"].pop("variants"), "datasets.synth: expected a mapping with 'variants'"),
    (lambda c: c["base"].update(optim={"epohcs": 1}), r"synthetic: base.optim: unknown keys \['epohcs'\]"),
])
def test_bad_configs_name_the_file(tmp_path: Path, change: object, message: str) -> None:
    path = _config(tmp_path, tmp_path / "store", None)
    cfg = yaml.safe_load(path.read_text())
    change(cfg)  # type: ignore[operator]
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match=message):
        load_accuracy_config(path)


def _take_over(args: tuple[str, object]) -> bool:
    out, barrier = args
    barrier.wait()  # type: ignore[attr-defined]
    return claim(Path(out)) is not None  # the winner keeps its descriptor (and lock) open


def test_stale_claim_is_taken_over_by_exactly_one_worker(tmp_path: Path) -> None:
    """A claim file left by a dead worker; four workers try at once; one wins, each time;
    a live holder keeps it."""
    ctx = mp.get_context("fork" if sys.platform != "win32" else "spawn")
    for trial in range(5):
        out = tmp_path / f"run{trial}"
        out.mkdir()
        dead = ctx.Process(target=lambda: None)
        dead.start()
        dead.join()
        (out / CLAIM).write_text(f"{os.uname().nodename} {dead.pid}")
        with ctx.Manager() as m:
            barrier = m.Barrier(4)
            with ctx.Pool(4) as pool:
                won = pool.map(_take_over, [(str(out), barrier)] * 4)
        assert sum(won) == 1, won
    held = claim(tmp_path / "held")
    assert held is not None
    with ctx.Manager() as m, ctx.Pool(1) as pool:
        assert pool.map(_take_over, [(str(tmp_path / "held"), m.Barrier(1))]) == [False]
    release(tmp_path / "held", held)
    assert not (tmp_path / "held" / CLAIM).exists()


def test_distilled_rows_wait_for_their_teachers_and_follow_them(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("onnxruntime")
    store = make_store(tmp_path / "store", n_per_class=6)
    path = _config(tmp_path, store, None)
    cfg = yaml.safe_load(path.read_text())
    runs = tmp_path / "runs"
    teachers = [str(runs / "synth/v0/seed0/best.pt"), str(runs / "synth/v0/seed1")]
    # Listed first, run last: a student's teachers are the other rows' runs.
    cfg["datasets"] = {"kd": {"title": "Distilled", "seeds": [0], "variants": [{"store": str(store)}],
                              "overrides": {"loss.distill_from": teachers}},
                       **cfg["datasets"]}
    path.write_text(yaml.safe_dump(cfg))
    records = tmp_path / "records"
    with caplog.at_level("WARNING", logger="trainer.accuracy"):
        run_accuracy(path, only=["kd"])
    assert (f"kd/v0/seed0: teachers not ready: {teachers[0]} (not trained yet), "
            f"{teachers[1]}/best.pt (not trained yet); run the command again") in caplog.text
    assert not records.exists() and not list(runs.rglob(CLAIM))
    # A teacher's best.pt appears after its first epoch: without its record it is not ready.
    Path(teachers[0]).parent.mkdir(parents=True)
    Path(teachers[0]).write_bytes(b"half-trained")
    caplog.clear()
    with caplog.at_level("WARNING", logger="trainer.accuracy"):
        run_accuracy(path, only=["kd"])
    assert f"{teachers[0]} (not trained yet)" in caplog.text and not records.exists()
    Path(teachers[0]).unlink()
    run_accuracy(path, peer=False)
    digests = {t: hashlib.sha256(Path(t).read_bytes()).hexdigest()
               for t in (teachers[0], teachers[1] + "/best.pt")}
    rec = json.loads((records / "kd/v0/seed0.json").read_text())
    assert rec["teachers"] == digests
    assert "| Distilled |" in (tmp_path / "acc.md").read_text()
    # A retrained teacher retrains its student in the same pass (students run last).
    cfg["datasets"]["synth"]["overrides"] = {"optim.epochs": 3}
    path.write_text(yaml.safe_dump(cfg))
    run_accuracy(path, peer=False)
    rec = json.loads((records / "kd/v0/seed0.json").read_text())
    assert rec["teachers"] != digests
    assert rec["teachers"] == {t: hashlib.sha256(Path(t).read_bytes()).hexdigest()
                               for t in digests}
    stamp = (records / "kd/v0/seed0.json").stat().st_mtime_ns
    run_accuracy(path, peer=False)  # nothing changed: nothing trains
    assert (records / "kd/v0/seed0.json").stat().st_mtime_ns == stamp
    # A student interrupted before it finished resumes (no record: nothing to compare).
    (records / "kd/v0/seed0.json").unlink()
    caplog.clear()
    with caplog.at_level("INFO", logger="trainer.train"):
        run_accuracy(path, peer=False)
    assert "resuming" in caplog.text and "training it again" not in caplog.text
    # ... but not once a teacher changed meanwhile: the folder's teachers.json says so.
    (records / "kd/v0/seed0.json").unlink()
    stamp_file = runs / "kd/v0/seed0/teachers.json"
    stamp_file.write_text(json.dumps({teachers[0]: "0" * 64}))
    caplog.clear()
    with caplog.at_level("INFO", logger="trainer.train"):
        run_accuracy(path, peer=False)
    assert "resuming" not in caplog.text
    assert json.loads(stamp_file.read_text()) == \
        json.loads((records / "kd/v0/seed0.json").read_text())["teachers"]
    # A teacher no run of the table makes is refused when the config loads.
    cfg["datasets"]["kd"]["overrides"]["loss.distill_from"] = [str(tmp_path / "elsewhere.pt")]
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match=f"^{path}: datasets.kd: teacher {tmp_path}/elsewhere.pt "
                                          "is no file and not the checkpoint of a run of this "
                                          "table$"):
        load_accuracy_config(path)
    cfg["datasets"]["kd"]["overrides"]["loss.distill_from"] = [str(runs / "kd/v0/seed0")]
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="is a distilled run's .its own or another student's."):
        load_accuracy_config(path)
