"""Experiment runner: stores by path, where the table goes, its counts, its records (a
fresh clone rebuilds the table from them and trains nothing), and run claims."""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from trainer.config import ConfigError
from trainer.experiment import (
    CLAIM,
    TAKEOVER,
    _take_over,
    claim_run,
    ensure_stores,
    load_experiment,
    main,
    release_run,
    run_experiment,
)

from .synth import make_store

ROOT = Path(__file__).resolve().parents[1]


def _dead_pid() -> int:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(dead.stdout)


def test_claim_is_exclusive_while_its_worker_lives(tmp_path: Path) -> None:
    run = tmp_path / "comp" / "hard-mean" / "seed0"
    claim = claim_run(run)
    assert claim is not None
    host, pid, _nonce = (run / CLAIM).read_text().split()
    assert (host, int(pid)) == (os.uname().nodename, os.getpid())
    assert claim_run(run) is None  # held by a live process (this one)
    release_run(run, claim)
    assert not (run / CLAIM).exists()
    assert claim_run(run) is not None


def test_stale_claim_of_a_dead_worker_is_taken_over(tmp_path: Path) -> None:
    run = tmp_path / "r"
    run.mkdir()
    (run / CLAIM).write_text(f"{os.uname().nodename} {_dead_pid()}")
    claim = claim_run(run)
    assert claim is not None and (run / CLAIM).read_text() == claim
    release_run(run, claim)
    assert sorted(p.name for p in run.iterdir()) == []


def test_claim_from_another_host_is_respected_and_garbage_is_stale(tmp_path: Path) -> None:
    other, junk = tmp_path / "other", tmp_path / "junk"
    other.mkdir()
    junk.mkdir()
    (other / CLAIM).write_text("some-other-host 1")
    (junk / CLAIM).write_text("")
    assert claim_run(other) is None
    assert claim_run(junk) is not None


def test_two_takers_of_one_stale_claim_exactly_one_wins(tmp_path: Path) -> None:
    # Both workers read the same stale claim before either acts: the interleaving that
    # let read-unlink-create give the run to both.
    run = tmp_path / "r"
    run.mkdir()
    stale = f"{os.uname().nodename} {_dead_pid()} x"
    (run / CLAIM).write_text(stale)
    wins = [_take_over(run, stale, "host 1 a"), _take_over(run, stale, "host 2 b")]
    assert wins == [True, False]
    assert (run / CLAIM).read_text() == "host 1 a"
    # After the winner released it and someone claimed anew, a late taker of the old
    # stale claim must not replace the new claim.
    release_run(run, "host 1 a")
    assert not list(run.glob(TAKEOVER + "*"))
    (run / CLAIM).write_text("host 3 c")
    assert _take_over(run, stale, "host 4 d") is False
    assert (run / CLAIM).read_text() == "host 3 c"


def test_a_taker_that_died_midway_does_not_block_the_run(tmp_path: Path) -> None:
    import hashlib

    run = tmp_path / "r"
    run.mkdir()
    host = os.uname().nodename
    stale = f"{host} {_dead_pid()} x"
    (run / CLAIM).write_text(stale)
    # A worker created the takeover marker of this claim, then was killed.
    marker = run / (TAKEOVER + hashlib.sha1(stale.encode()).hexdigest()[:16])
    marker.write_text(f"{host} {_dead_pid()} y")
    assert _take_over(run, stale, "host 1 a") is True
    assert (run / CLAIM).read_text() == "host 1 a"
    assert _take_over(run, stale, "host 2 b") is False  # the second level is taken too
    # A marker of a live taker is respected.
    (run / CLAIM).write_text(stale)
    for m in run.glob(TAKEOVER + "*"):
        m.unlink()
    marker.write_text(f"{host} {os.getpid()} z")
    assert _take_over(run, stale, "host 3 c") is False


def _racer(run: str, barrier: multiprocessing.synchronize.Barrier, q: multiprocessing.Queue
           ) -> None:
    barrier.wait()
    q.put(claim_run(Path(run)) is not None)


def test_concurrent_workers_on_one_stale_claim(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    for trial in range(5):
        run = tmp_path / f"r{trial}"
        run.mkdir()
        (run / CLAIM).write_text(f"{os.uname().nodename} {_dead_pid()}")
        barrier, q = ctx.Barrier(4), ctx.Queue()
        procs = [ctx.Process(target=_racer, args=(str(run), barrier, q)) for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        wins = [q.get(timeout=10) for _ in procs]
        assert sum(wins) == 1, (trial, wins)


# ------------------------------------------------------------------- stores and the table
def _experiment(tmp_path: Path, stores: dict, **extra: object) -> Path:
    cfg = {"name": "mine", "runs": str(tmp_path / "runs"), "seeds": [0], "stores": stores,
           "composites": {"c": {"sources": [{"store": "s"}]}},
           "sharing": ["hard"], "weighting": ["mean"], "stl": True,
           "base": {"threads": 1, "preprocess": {"window": 8, "dims": 3},
                    "model": {"name": "stgcn_tiny",
                              "overrides": {"blocks": [[8, 1]]}},
                    "optim": {"epochs": 1, "batch_size": 8, "warmup_epochs": 0}}}
    cfg.update(extra)
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_results_default_to_the_runs_folder(tmp_path: Path) -> None:
    exp = load_experiment(_experiment(tmp_path, {"s": {"path": "x"}}))
    assert exp.results == str(tmp_path / "runs" / "results.md")
    named = load_experiment(_experiment(tmp_path, {"s": "x"}, results="out/table.md"))
    assert named.results == "out/table.md" and named.stores["s"].path == "x"


def test_python_api_store_is_used_as_is_and_the_table_counts_every_training(
        tmp_path: Path) -> None:
    store = make_store(tmp_path / "api.store", n_per_class=4, t=10)
    before = (store / "meta.json").read_text()
    cfg = _experiment(tmp_path, {"s": {"path": str(store)}})
    table = run_experiment(cfg)
    assert table == tmp_path / "runs" / "results.md"
    assert not (tmp_path / "runs" / "stores").exists()  # nothing converted
    assert (store / "meta.json").read_text() == before
    text = table.read_text()
    # STL trains one network per task (action, gesture) plus one MTL network: 3 runs.
    assert "Finished runs: 3 of 3 planned (1 seeds x (2 STL + 1 MTL) trainings" in text
    # One record per run, beside the runs when the config names no records folder.
    recs = sorted((tmp_path / "runs").glob("c/*/seed0.json"))
    assert [p.relative_to(tmp_path / "runs").as_posix() for p in recs] == [
        "c/hard-mean/seed0.json", "c/stl-action/seed0.json", "c/stl-gesture/seed0.json"]
    rows = [r for p in recs for r in json.loads(p.read_text())]
    assert sorted((r["variant"], r["task"]) for r in rows) == [
        ("hard-mean", "action"), ("hard-mean", "gesture"), ("stl", "action"),
        ("stl", "gesture")]
    assert f"Per-run rows: `{tmp_path / 'runs'}/<composite>/<variant>/seed<n>.json`" in text
    # The claims are gone once the runs are done.
    assert not list((tmp_path / "runs").rglob(CLAIM))
    # --table-only rewrites the same table from the finished runs, converting nothing.
    table.unlink()
    assert main(argparse.Namespace(config=str(cfg), table_only=True, seeds=None, only=None,
                                   progress=False)) == 0
    assert table.read_text() == text


def test_a_fresh_clone_rebuilds_the_table_from_the_records_and_trains_nothing(
        tmp_path: Path) -> None:
    """Records in their own folder are all a clone has: runs/ (checkpoints, logs, the
    table's default place) is gone, and neither the table nor a rerun may miss it."""
    store = make_store(tmp_path / "api.store", n_per_class=4, t=10)
    records = tmp_path / "records"
    cfg = _experiment(tmp_path, {"s": {"path": str(store)}}, records=str(records),
                      results=str(tmp_path / "table.md"))
    table = run_experiment(cfg)
    text = table.read_text()
    stamp = {p.relative_to(records).as_posix(): p.stat().st_mtime_ns
             for p in records.rglob("*.json")}
    assert sorted(stamp) == ["c/hard-mean/seed0.json", "c/stl-action/seed0.json",
                             "c/stl-gesture/seed0.json"]
    assert not list((tmp_path / "runs").rglob("result.json"))  # records only in records/
    shutil.rmtree(tmp_path / "runs")
    table.unlink()
    assert main(argparse.Namespace(config=str(cfg), table_only=True, seeds=None, only=None,
                                   progress=False)) == 0
    assert table.read_text() == text
    assert run_experiment(cfg) == table  # every run has a record: nothing trains
    assert not list((tmp_path / "runs").rglob("*.pt"))
    assert {p.relative_to(records).as_posix(): p.stat().st_mtime_ns
            for p in records.rglob("*.json")} == stamp
    assert table.read_text() == text


def test_stl_baselines_keep_only_their_own_mirror_label_pairs(tmp_path: Path) -> None:
    """A composite's pointL/pointR pair is a gesture pair: the action baseline trains
    without it (the trainer refuses pairs of no task), the gesture baseline and the
    multi-task run keep it."""
    from trainer.experiment import Run, run_config

    from .synth import GESTURES

    store = make_store(tmp_path / "api.store", n_per_class=2, t=8)
    pair = [GESTURES[0], GESTURES[1]]
    cfg = _experiment(tmp_path, {"s": {"path": str(store)}},
                      composites={"c": {"sources": [{"store": "s"}],
                                        "overrides": {"augment.mirror_labels": [pair]}}})
    exp = load_experiment(cfg)
    stores = {"s": store}
    got = {key: run_config(exp, Run("c", *args), stores).augment.mirror_labels
           for key, args in {"action": ("stl", 0, "action"), "gesture": ("stl", 0, "gesture"),
                             "mtl": ("hard-mean", 0)}.items()}
    assert got["action"] == () and [list(p) for p in got["gesture"]] == [pair]
    assert [list(p) for p in got["mtl"]] == [pair]


def test_src_that_is_a_store_is_not_converted(tmp_path: Path) -> None:
    store = make_store(tmp_path / "api.store", n_per_class=2, t=8)
    exp = load_experiment(_experiment(tmp_path, {"s": {"src": str(store)}}))
    assert ensure_stores(exp, tmp_path / "runs" / "stores") == {"s": store}
    assert not (tmp_path / "runs" / "stores").exists()


def test_bad_stores_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"store 's': give exactly one of 'path'"):
        load_experiment(_experiment(tmp_path, {"s": {"path": "a", "src": "b"}}))
    with pytest.raises(ConfigError, match=r"store 's': unknown keys \['formt'\]"):
        load_experiment(_experiment(tmp_path, {"s": {"src": "b", "formt": "x"}}))
    exp = load_experiment(_experiment(tmp_path, {"s": {"path": str(tmp_path)}}))
    with pytest.raises(ConfigError, match=r"is not a clip store"):
        ensure_stores(exp, tmp_path / "runs" / "stores")
    (tmp_path / "empty").mkdir()
    cfg = _experiment(tmp_path, {"s": {"src": str(tmp_path / "empty"), "format": "mp_folder"}})
    p = subprocess.run([sys.executable, "-m", "skelmtl.cli", "experiment", str(cfg)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr and "CalledProcessError" not in p.stderr
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith(f"skelmtl experiment: error: {cfg}: store 's': cannot convert "
                           f"{tmp_path / 'empty'}: ")
    assert "no <class>/<sequence>/<frame>.npy files found" in last
    bad_opt = _experiment(tmp_path, {"s": {"src": str(tmp_path / "empty"),
                                           "options": ["--no-such-flag"]}})
    exp = load_experiment(bad_opt)
    with pytest.raises(ConfigError, match=r"cannot convert .*unrecognized arguments: "
                                          r"--no-such-flag"):
        ensure_stores(exp, tmp_path / "runs" / "stores", bad_opt)
