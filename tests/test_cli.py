"""The ``skelmtl`` command line on top: -v/-q and the standard logging module, and
``python -m`` of a command module running it the way ``skelmtl COMMAND`` does."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from edge.commands.runner import configure_logging
from skelmtl.cli import COMMANDS, main, split_verbosity

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("argv, verbosity, rest", [
    (["data", "info", "-v"], 0, ["data", "info", "-v"]),  # after the command: the command's
    (["-v", "run", "--quiet"], 1, ["run", "--quiet"]),
    (["-vv", "train"], 2, ["train"]),
    (["-q", "-q", "bench"], -2, ["bench"]),
    (["--verbose", "-q", "demo"], 0, ["demo"]),
    (["--quiet", "--help"], -1, ["--help"]),
    ([], 0, []),
])
def test_split_verbosity(argv: list[str], verbosity: int, rest: list[str]) -> None:
    assert split_verbosity(argv) == (verbosity, rest)


# A library logger (INFO hidden by default) and a command's progress logger (set to INFO).
_PROGRAM = """
import logging, sys, types
from edge.commands.runner import run_command
def main(args):
    logging.getLogger("progress").setLevel(logging.INFO)
    logging.getLogger("progress").info("epoch 1")
    lib = logging.getLogger("edge.lib")
    lib.debug("detail"); lib.info("made"); lib.warning("warned"); lib.error("failed")
    print("result")
    return 0
m = types.ModuleType("fake")
m.add_arguments = lambda p: None
m.main = main
sys.exit(run_command("fake", m, [], verbosity=int(sys.argv[1])))
"""


@pytest.mark.parametrize("verbosity, shown", [
    (-2, ["failed"]),
    (-1, ["warned", "failed"]),
    (0, ["epoch 1", "warned", "failed"]),
    (1, ["epoch 1", "made", "warned", "failed"]),
    (2, ["epoch 1", "detail", "made", "warned", "failed"]),
])
def test_verbosity_sets_what_reaches_stderr(verbosity: int, shown: list[str]) -> None:
    p = subprocess.run([sys.executable, "-c", _PROGRAM, str(verbosity)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "result\n"  # a command's output is printed whatever the verbosity
    assert p.stderr.splitlines() == [f"skelmtl fake: {m}" for m in shown]


def test_configure_logging_leaves_a_configured_program_alone() -> None:
    mine = logging.getLogger("test_cli.configured")
    mine.addHandler(logging.NullHandler())
    mine.setLevel(logging.ERROR)
    assert configure_logging("x", 2, root=mine) is False
    assert mine.level == logging.ERROR and len(mine.handlers) == 1
    fresh = logging.getLogger("test_cli.fresh")
    assert configure_logging("x", 1, root=fresh) is True
    assert fresh.level == logging.INFO and fresh.handlers[0].level == logging.INFO
    fresh.removeHandler(fresh.handlers[0])


def test_verbosity_flags_reach_the_command_from_the_console_script() -> None:
    p = subprocess.run([sys.executable, "-m", "skelmtl", "-q", "data", "list-formats"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("mp_folder ")
    assert p.stderr == ""


def test_help_lists_the_flags_and_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:  # argparse's --help
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "-v, --verbose" in out and "-q, --quiet" in out
    assert all(f"  {name} " in out for name in COMMANDS)


def test_python_m_of_a_command_module_is_the_command(tmp_path: Path) -> None:
    """``python -m edge.commands.run`` runs like ``skelmtl run``: same errors, same status."""
    args = ["--model", str(tmp_path / "nothing"), "--source", str(tmp_path / "none.mp4")]
    a = subprocess.run([sys.executable, "-m", "edge.commands.run", *args],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    b = subprocess.run([sys.executable, "-m", "skelmtl", "run", *args],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert (a.returncode, a.stderr) == (b.returncode, b.stderr)
    assert a.returncode == 2 and a.stderr.startswith("skelmtl run: error: ")
    assert len(a.stderr.splitlines()) == 1
    assert "Traceback" not in a.stderr


@pytest.mark.parametrize("command", ["train", "accuracy", "export"])
def test_a_trainer_command_on_an_older_python_is_one_line(
        command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "version_info", (3, 8, 18, "final", 0))
    monkeypatch.setattr(sys, "version", "3.8.18 (default)")
    assert main([command, "info", "x"]) == 2
    assert capsys.readouterr().err == (f"skelmtl {command}: needs Python 3.10 or newer "
                                       "(training needs torch); this is Python 3.8.18\n")


def test_the_torch_command_list_covers_every_trainer_command_but_data() -> None:
    from skelmtl.cli import COMMANDS, TORCH_COMMANDS

    trainer = {n for n, (mod, _) in COMMANDS.items() if mod.startswith("trainer.")}
    # `skelmtl data` reads datasets with numpy only: it runs on JetPack 5's Python 3.8
    # (make test-py38 runs its tests there)
    assert trainer - TORCH_COMMANDS == {"data"} and TORCH_COMMANDS <= trainer
