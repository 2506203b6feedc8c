"""Experiment runner: run claims let several workers share one runs folder."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from trainer.experiment import CLAIM, claim_run


def test_claim_is_exclusive_while_its_worker_lives(tmp_path: Path) -> None:
    run = tmp_path / "comp" / "hard-mean" / "seed0"
    assert claim_run(run)
    assert (run / CLAIM).read_text() == f"{os.uname().nodename} {os.getpid()}"
    assert not claim_run(run)  # held by a live process (this one)


def test_stale_claim_of_a_dead_worker_is_taken_over(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    run = tmp_path / "r"
    run.mkdir()
    (run / CLAIM).write_text(f"{os.uname().nodename} {int(dead.stdout)}")
    assert claim_run(run)
    assert (run / CLAIM).read_text().endswith(f" {os.getpid()}")


def test_claim_from_another_host_is_respected_and_garbage_is_stale(tmp_path: Path) -> None:
    other, junk = tmp_path / "other", tmp_path / "junk"
    other.mkdir()
    junk.mkdir()
    (other / CLAIM).write_text("some-other-host 1")
    (junk / CLAIM).write_text("")
    assert not claim_run(other)
    assert claim_run(junk)
