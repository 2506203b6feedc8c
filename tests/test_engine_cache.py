"""The TensorRT engine cache (edge/engine/cache.py) with a fake builder: no GPU, no TensorRT.

What this proves: the key changes with every input an engine depends on (and only with
those), the first call builds and later calls reuse, failed or empty builds leave nothing
behind under the final name, concurrent starts build once, and the command builder passes
the documented arguments. What it does not prove: that ``skelmtl build-engine`` produces a
working engine on a Jetson, or that the platform detection reads a real Jetson correctly
(only the file formats are checked, against release strings as JetPack prints them).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from edge.core.metadata import ModelMeta
from edge.core.preprocess import PreprocessConfig
from edge.engine import cache as ec
from edge.engine.cache import BuildRecipe, CachedEngine, EngineCacheError, Platform
from edge.engine.header import EngineHeader, encode_engine, read_engine

ORIN = Platform(gpu="Orin sm_87 16SM | NVIDIA Jetson AGX Orin Developer Kit", l4t="36.4.0",
                tensorrt="10.3.0")
SHA = "ab" * 32


ENGINE = b"engine-bytes"


def engine_file(model: Path, precision: str = "int8", tensorrt: str = "10.3.0",
                engine: bytes = ENGINE, **build: object) -> bytes:
    """What ``skelmtl build-engine`` writes: header (for ``model``) + engine bytes."""
    meta = ModelMeta(preprocess=PreprocessConfig(window=8), tasks=("action",),
                     labels={"action": ("a", "b")}, precision=precision)
    recipe = {"min_batch": 1, "opt_batch": 1, "max_batch": 8, "workspace_mb": 1024,
              "source_sha256": ec.file_sha256(model), **build}
    return encode_engine(EngineHeader(meta=meta, precision=precision, tensorrt=tensorrt,
                                      gpu=ORIN.gpu, build=recipe), engine)


class FakeBuilder:
    """Records calls; writes a valid engine file for the model (or ``payload``, or fails)."""

    def __init__(self, payload: bytes | None = None, fail: bool = False,
                 tensorrt: str = "10.3.0") -> None:
        self.payload = payload
        self.fail = fail
        self.tensorrt = tensorrt
        self.calls: list[tuple[Path, Path, str, Path]] = []

    def __call__(self, model: Path, out: Path, precision: str, timing: Path) -> None:
        self.calls.append((model, out, precision, timing))
        if self.fail:
            out.write_bytes(b"half an engine")
            raise EngineCacheError("engine build failed (exit 1): fake")
        data = self.payload if self.payload is not None else engine_file(
            model, precision, self.tensorrt)
        if data:
            out.write_bytes(data)


def _engine_bytes(path: Path) -> bytes:
    return read_engine(path)[1]


@pytest.fixture
def model(tmp_path: Path) -> Path:
    p = tmp_path / "model.int8.onnx"
    p.write_bytes(b"not really onnx, but hashed like one")
    return p


# -------------------------------------------------------------------------- L4T file ---

@pytest.mark.parametrize("text, release", [
    ("# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64, "
     "DATE: Fri Sep 13 04:36:44 UTC 2024\n# KERNEL_VARIANT: oot\n", "36.4.0"),
    ("# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, "
     "DATE: Tue Aug  1 19:57:35 UTC 2023\n", "35.4.1"),
    ("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64", "36.4.3"),
])
def test_parse_nv_tegra_release(text: str, release: str) -> None:
    assert ec.parse_nv_tegra_release(text) == release


def test_read_l4t_release(tmp_path: Path) -> None:
    assert ec.read_l4t_release(tmp_path / "absent") == "unknown"
    bad = tmp_path / "nv_tegra_release"
    bad.write_text("Ubuntu 22.04\n")
    with pytest.raises(EngineCacheError, match=f"{bad}: cannot read an L4T release from "
                                               "'Ubuntu 22.04'"):
        ec.read_l4t_release(bad)


def test_detect_platform_from_overrides(tmp_path: Path) -> None:
    release = tmp_path / "nv_tegra_release"
    release.write_text("# R36 (release), REVISION: 4.0, GCID: 1, BOARD: generic\n")
    env = {"SKELMTL_GPU": "Orin sm_87 8SM", "SKELMTL_TENSORRT_VERSION": "10.3.0",
           "SKELMTL_L4T_RELEASE_FILE": str(release)}
    assert ec.detect_platform(env) == Platform("Orin sm_87 8SM", "36.4.0", "10.3.0")


@pytest.mark.parametrize("env, expected", [
    ({"SKELMTL_ENGINE_CACHE": "/data/engines", "SKELMTL_CACHE": "/cache"}, "/data/engines"),
    ({"SKELMTL_CACHE": "/cache"}, "/cache/engines"),  # the container: beside MediaPipe's
    ({}, str(Path.home() / ".cache" / "skelmtl" / "engines")),
])
def test_default_cache_dir(env: dict[str, str], expected: str) -> None:
    assert ec.default_cache_dir(env) == Path(expected)


# ------------------------------------------------------------------------------- key ---

def test_engine_key_reference_value() -> None:
    # A change of this format invalidates every cache in the field: make it on purpose.
    key = ec.engine_key(ORIN, SHA, "int8", BuildRecipe("int8", skelmtl="0.1.0"))
    assert key == "orin-sm-87-16sm_l4t36.4.0_trt10.3.0_int8_abababababab_480c7eb1a2"
    assert re.fullmatch(r"[a-z0-9._-]+_[0-9a-f]{10}", key)


@pytest.mark.parametrize("change", [
    {"gpu": "Orin sm_87 8SM | NVIDIA Jetson Orin NX"},
    {"gpu": "Orin sm_87 16SM | NVIDIA Jetson AGX Orin 64GB"},  # same readable part
    {"l4t": "36.4.3"},
    {"l4t": "unknown"},
    {"tensorrt": "10.3.1"},
])
def test_engine_key_changes_with_the_platform(change: dict[str, str]) -> None:
    assert ec.engine_key(replace(ORIN, **change), SHA, "int8") != ec.engine_key(ORIN, SHA,
                                                                                 "int8")


def test_engine_key_changes_with_model_and_precision() -> None:
    keys = {ec.engine_key(ORIN, sha, p) for sha in (SHA, "cd" * 32) for p in ec.PRECISIONS}
    assert len(keys) == 2 * len(ec.PRECISIONS)


@pytest.mark.parametrize("change", [
    {"min_batch": 2, "opt_batch": 2}, {"opt_batch": 4}, {"max_batch": 16},
    {"workspace_mb": 2048}, {"options": (("--matmul", "float"),)},
    {"options": (("--typing", "strong"),)}, {"skelmtl": "0.2.0"},
])
def test_engine_key_changes_with_the_build_recipe(change: dict[str, object]) -> None:
    # changed build defaults (or a new skelmtl) must not reuse the old engines
    base = BuildRecipe("int8")
    assert ec.engine_key(ORIN, SHA, "int8", replace(base, **change)) != \
        ec.engine_key(ORIN, SHA, "int8", base)
    assert ec.engine_key(ORIN, SHA, "int8") == ec.engine_key(ORIN, SHA, "int8", base)


def test_recipe_arguments_and_checks() -> None:
    r = BuildRecipe("int8", 1, 2, 4, 512, (("--matmul", "float"), ("--allow-x", "")))
    assert r.args() == ["--min-batch", "1", "--opt-batch", "2", "--max-batch", "4",
                        "--workspace-mb", "512", "--matmul", "float", "--allow-x"]
    with pytest.raises(EngineCacheError, match="need 1 <= min batch <= opt batch <= max"):
        BuildRecipe("int8", 4, 2, 8)
    with pytest.raises(EngineCacheError, match="build recipe is for fp16, not int8"):
        ec.engine_key(ORIN, SHA, "int8", BuildRecipe("fp16"))


def test_build_options_from_the_environment() -> None:
    env = {"SKELMTL_BUILD_OPTIONS": "--matmul=float --allow-precision-mismatch"}
    assert ec.build_options((), env) == (("--matmul", "float"),
                                         ("--allow-precision-mismatch", ""))
    assert ec.build_options(["--typing=strong"], env) == (("--typing", "strong"),)
    with pytest.raises(EngineCacheError, match="build option 'matmul=float': write it as"):
        ec.build_options(["matmul=float"], {})


def test_engine_key_refuses_unknown_precision() -> None:
    with pytest.raises(EngineCacheError, match="unknown precision 'int4'"):
        ec.engine_key(ORIN, SHA, "int4")


def test_key_is_a_safe_file_name_whatever_the_gpu_says() -> None:
    key = ec.engine_key(replace(ORIN, gpu="../../etc/passwd; rm -rf / | x"), SHA, "fp16")
    assert "/" not in key and " " not in key and not key.startswith(".")


# ---------------------------------------------------------------------- build, reuse ---

def test_first_call_builds_then_reuses(tmp_path: Path, model: Path) -> None:
    cache = tmp_path / "cache"
    builder = FakeBuilder()
    first = ec.ensure_engine(model, cache, "int8", platform=ORIN, builder=builder,
                             log=lambda _: None)
    key = ec.engine_key(ORIN, ec.file_sha256(model), "int8")
    assert first == CachedEngine(cache / f"{key}.engine", key, built=True)
    assert _engine_bytes(first.path) == ENGINE
    (m, out, precision, timing), = builder.calls
    assert (m, precision) == (model, "int8")
    assert out.parent == cache and out.name.startswith(f"{key}.partial-")
    assert timing == (cache / "timing" /
                      "orin-sm-87-16sm-nvidia-jetson-agx-orin-developer_trt10.3.0.timing")
    assert not list(cache.glob("*.partial-*"))
    sidecar = json.loads((cache / f"{key}.json").read_text())
    assert {k: sidecar[k] for k in ("gpu", "l4t", "tensorrt", "precision", "engine")} == {
        "gpu": ORIN.gpu, "l4t": "36.4.0", "tensorrt": "10.3.0", "precision": "int8",
        "engine": f"{key}.engine"}
    assert sidecar["model_sha256"] == ec.file_sha256(model)

    logs: list[str] = []
    second = ec.ensure_engine(model, cache, "int8", platform=ORIN, builder=builder,
                              log=logs.append)
    assert second == CachedEngine(first.path, key, built=False)
    assert len(builder.calls) == 1
    assert logs == [f"reusing {first.path}"]
    # the cache folder is owner-only: engines are native code
    assert (cache.stat().st_mode & 0o777, (cache / "timing").stat().st_mode & 0o777) == \
        (0o700, 0o700)
    assert first.path.stat().st_mode & 0o077 == 0


def test_new_model_or_platform_builds_beside_the_old_engine(tmp_path: Path,
                                                            model: Path) -> None:
    cache = tmp_path / "cache"
    builder = FakeBuilder()
    a = ec.ensure_engine(model, cache, platform=ORIN, builder=builder, log=lambda _: None)
    b = ec.ensure_engine(model, cache, platform=replace(ORIN, tensorrt="10.3.1"),
                         builder=FakeBuilder(tensorrt="10.3.1"), log=lambda _: None)
    model.write_bytes(b"the next release's model")
    c = ec.ensure_engine(model, cache, platform=ORIN, builder=builder, log=lambda _: None)
    assert (a.built, b.built, c.built) == (True, True, True)
    assert len({a.path, b.path, c.path}) == 3 and all(p.path.is_file() for p in (a, b, c))


def test_failed_build_leaves_nothing_under_the_final_name(tmp_path: Path,
                                                          model: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(EngineCacheError, match="engine build failed"):
        ec.ensure_engine(model, cache, platform=ORIN, builder=FakeBuilder(fail=True),
                         log=lambda _: None)
    assert not list(cache.glob("*.engine"))
    # The next start tries again (and succeeds).
    again = ec.ensure_engine(model, cache, platform=ORIN, builder=FakeBuilder(),
                             log=lambda _: None)
    assert again.built and _engine_bytes(again.path) == ENGINE


def test_empty_build_output_is_an_error(tmp_path: Path, model: Path) -> None:
    with pytest.raises(EngineCacheError, match="reported success but wrote no engine"):
        ec.ensure_engine(model, tmp_path, platform=ORIN, builder=FakeBuilder(payload=b""),
                         log=lambda _: None)
    assert not list(tmp_path.glob("*.engine"))


def test_stale_partial_and_empty_engine_are_replaced(tmp_path: Path, model: Path) -> None:
    key = ec.engine_key(ORIN, ec.file_sha256(model), "int8")
    (tmp_path / f"{key}.partial-99999.engine").write_bytes(b"crashed mid-build")
    (tmp_path / f"{key}.engine").write_bytes(b"")  # not usable: rebuilt
    got = ec.ensure_engine(model, tmp_path, platform=ORIN, builder=FakeBuilder(),
                           log=lambda _: None)
    assert got.built and _engine_bytes(got.path) == ENGINE
    assert sorted(p.name for p in tmp_path.glob("*.engine")) == [f"{key}.engine"]


@pytest.mark.parametrize("damage, reason", [
    (lambda p, m: p.write_bytes(p.read_bytes()[:-3]), "truncated or appended file"),
    (lambda p, m: p.write_bytes(p.read_bytes()[:-1] + b"X"), "do not match the header's SHA-256"),
    (lambda p, m: p.write_bytes(b"\x00" * 4096), "not a skelmtl engine file"),
    (lambda p, m: p.write_bytes(engine_file(m, tensorrt="10.3.0.1")),
     "built by TensorRT 10.3.0.1, this is 10.3.0"),
    (lambda p, m: p.write_bytes(engine_file(m, max_batch=16)),
     "built with max_batch 16, the recipe says 8"),
    (lambda p, m: p.write_bytes(engine_file(m, source_sha256="ff" * 32)),
     "built from another model"),
])
def test_corrupt_truncated_or_foreign_engine_is_rebuilt(tmp_path: Path, model: Path,
                                                        damage: object, reason: str) -> None:
    """One bad file under the key must not fail every restart (issue 14, item 4)."""
    cache = tmp_path / "cache"
    builder = FakeBuilder()
    first = ec.ensure_engine(model, cache, platform=ORIN, builder=builder, log=lambda _: None)
    damage(first.path, model)  # type: ignore[operator]
    logs: list[str] = []
    again = ec.ensure_engine(model, cache, platform=ORIN, builder=builder, log=logs.append)
    assert again.built and again.path == first.path and len(builder.calls) == 2
    assert _engine_bytes(again.path) == ENGINE
    assert any(ln.startswith("not reusing the cached engine: ") and reason in ln
               and ln.endswith("; rebuilding it") for ln in logs), logs


def test_builder_output_that_is_not_an_engine_is_refused(tmp_path: Path, model: Path) -> None:
    with pytest.raises(EngineCacheError, match="wrote an engine that cannot be used: .*not a "
                                               "skelmtl engine file"):
        ec.ensure_engine(model, tmp_path, platform=ORIN, builder=FakeBuilder(payload=b"junk"),
                         log=lambda _: None)
    assert not list(tmp_path.glob("*.engine"))


def test_writable_engine_is_refused_not_loaded(tmp_path: Path, model: Path) -> None:
    first = ec.ensure_engine(model, tmp_path / "c", platform=ORIN, builder=FakeBuilder(),
                             log=lambda _: None)
    first.path.chmod(0o666)
    with pytest.raises(EngineCacheError, match=r"writable by group or others \(mode 0666\); "
                                               "an engine is native code"):
        ec.ensure_engine(model, tmp_path / "c", platform=ORIN, builder=FakeBuilder(),
                         log=lambda _: None)


@pytest.mark.skipif(os.getuid() != 0, reason="only root can give a file to another user")
def test_foreign_engine_and_folder_are_refused(tmp_path: Path, model: Path) -> None:
    first = ec.ensure_engine(model, tmp_path / "c", platform=ORIN, builder=FakeBuilder(),
                             log=lambda _: None)
    os.chown(first.path, 4321, 4321)
    with pytest.raises(EngineCacheError, match="engine file is owned by uid 4321, not by this "
                                               "user"):
        ec.ensure_engine(model, tmp_path / "c", platform=ORIN, builder=FakeBuilder(),
                         log=lambda _: None)
    os.chown(tmp_path / "c", 4321, 4321)
    with pytest.raises(EngineCacheError, match="engine cache folder is owned by uid 4321"):
        ec.ensure_engine(model, tmp_path / "c", platform=ORIN, builder=FakeBuilder(),
                         log=lambda _: None)


def test_loose_cache_folder_of_ours_is_tightened(tmp_path: Path, model: Path) -> None:
    cache = tmp_path / "c"
    cache.mkdir(mode=0o777)
    cache.chmod(0o777)
    logs: list[str] = []
    ec.ensure_engine(model, cache, platform=ORIN, builder=FakeBuilder(), log=logs.append)
    assert cache.stat().st_mode & 0o777 == 0o700
    assert f"{cache}: tightened to owner-only (was 0777): engines are native code" in logs


def test_missing_model(tmp_path: Path) -> None:
    with pytest.raises(EngineCacheError, match="model.onnx: model file not found"):
        ec.ensure_engine(tmp_path / "model.onnx", tmp_path, platform=ORIN,
                         builder=FakeBuilder())


@pytest.mark.skipif(os.getuid() == 0, reason="root writes anywhere")
def test_unwritable_cache(tmp_path: Path, model: Path) -> None:
    cache = tmp_path / "ro"
    cache.mkdir()
    cache.chmod(0o500)
    try:
        with pytest.raises(EngineCacheError, match="not writable by uid"):
            ec.ensure_engine(model, cache, platform=ORIN, builder=FakeBuilder())
    finally:
        cache.chmod(0o700)


@pytest.mark.skipif(os.getuid() == 0, reason="root writes anywhere")
def test_read_only_cache_still_serves_a_valid_engine(tmp_path: Path, model: Path) -> None:
    cache = tmp_path / "ro"
    first = ec.ensure_engine(model, cache, platform=ORIN, builder=FakeBuilder(),
                             log=lambda _: None)
    cache.chmod(0o500)
    try:
        logs: list[str] = []
        again = ec.ensure_engine(model, cache, platform=ORIN, builder=FakeBuilder(),
                                 log=logs.append)
        assert (again.path, again.built) == (first.path, False)
        assert logs == [f"reusing {first.path} (read-only cache)"]
    finally:
        cache.chmod(0o700)


def test_cache_path_that_cannot_be_created(tmp_path: Path, model: Path) -> None:
    (tmp_path / "file").write_text("a file where the cache folder should be")
    with pytest.raises(EngineCacheError, match="cannot create the engine cache"):
        ec.ensure_engine(model, tmp_path / "file" / "cache", platform=ORIN,
                         builder=FakeBuilder())


def test_concurrent_starts_build_once(tmp_path: Path, model: Path) -> None:
    """Two containers starting together: the second waits on the lock, then reuses."""
    started, go = threading.Event(), threading.Event()
    builder = FakeBuilder()

    def slow_builder(m: Path, out: Path, p: str, t: Path) -> None:
        started.set()
        assert go.wait(10)
        builder(m, out, p, t)

    results: dict[str, CachedEngine] = {}

    def start(name: str, b: ec.Builder) -> None:
        results[name] = ec.ensure_engine(model, tmp_path, platform=ORIN, builder=b,
                                         log=lambda _: None)

    first = threading.Thread(target=start, args=("first", slow_builder))
    first.start()
    assert started.wait(10)
    second = threading.Thread(target=start, args=("second", builder))
    second.start()
    go.set()
    first.join(10)
    second.join(10)
    assert (results["first"].built, results["second"].built) == (True, False)
    assert len(builder.calls) == 1


# ------------------------------------------------------------------- command builder ---

FAKE_BUILD_ENGINE = """
import json, pathlib, sys
args = sys.argv[1:]
if args == ["--help"]:
    print({help!r})
    sys.exit(0)
pathlib.Path({log!r}).write_text(json.dumps(args))
out = pathlib.Path(args[args.index("-o") + 1])
out.write_bytes(pathlib.Path({payload!r}).read_bytes())
sys.exit({rc})
"""


def _fake_cmd(tmp_path: Path, help_text: str, rc: int = 0,
              payload: bytes = b"ENGINE") -> tuple[list[str], Path]:
    log = tmp_path / "argv.json"
    script = tmp_path / "fake_build_engine.py"
    (tmp_path / "payload").write_bytes(payload)
    script.write_text(FAKE_BUILD_ENGINE.format(help=help_text, log=str(log), rc=rc,
                                               payload=str(tmp_path / "payload")))
    return [sys.executable, str(script)], log


@pytest.mark.parametrize("help_text, with_timing", [
    ("usage: skelmtl build-engine MODEL [--precision P] -o OUT [--timing-cache FILE]", True),
    ("usage: skelmtl build-engine MODEL [--precision P] -o OUT [--timing-cache-size N]", False),
    ("usage: skelmtl build-engine MODEL [--precision P] -o OUT", False),
])
def test_command_builder_arguments(tmp_path: Path, help_text: str, with_timing: bool) -> None:
    cmd, log = _fake_cmd(tmp_path, help_text)
    out, timing = tmp_path / "m.engine", tmp_path / "t.timing"
    ec.command_builder(cmd)(Path("model.int8.onnx"), out, "fp16", timing)
    expected = ["model.int8.onnx", "--precision", "fp16", "-o", str(out)]
    if with_timing:
        expected += ["--timing-cache", str(timing)]
    assert json.loads(log.read_text()) == expected
    assert out.read_bytes() == b"ENGINE"


def test_command_builder_failure_names_the_command(tmp_path: Path) -> None:
    cmd, _ = _fake_cmd(tmp_path, "usage", rc=3)
    with pytest.raises(EngineCacheError, match=r"engine build failed \(exit 3\): .*fake_build"):
        ec.command_builder(cmd)(Path("m.onnx"), tmp_path / "o.engine", "int8",
                                tmp_path / "t")


def test_command_builder_missing_program(tmp_path: Path) -> None:
    with pytest.raises(EngineCacheError, match="cannot run /nonexistent/build-engine"):
        ec.command_builder(["/nonexistent/build-engine"])(Path("m.onnx"), tmp_path / "o",
                                                          "int8", tmp_path / "t")


def test_default_build_command_is_skelmtl_build_engine_of_this_interpreter() -> None:
    assert ec.DEFAULT_BUILD_CMD == (sys.executable, "-m", "skelmtl.cli", "build-engine")


def test_edge_engine_cache_does_not_import_calibration_or_tensorrt() -> None:
    code = ("import sys, edge.engine.cache; "
            "bad = [m for m in ('calibration', 'tensorrt', 'pycuda', 'torch') "
            "if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------------- command line ---

def test_cli_ensure_prints_only_the_path(tmp_path: Path, model: Path,
                                         monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    cmd, argv_log = _fake_cmd(tmp_path, "usage", payload=engine_file(model))
    monkeypatch.setenv("SKELMTL_GPU", "Orin sm_87 8SM")
    monkeypatch.setenv("SKELMTL_TENSORRT_VERSION", "10.3.0")
    monkeypatch.setenv("SKELMTL_L4T_RELEASE_FILE", str(tmp_path / "absent"))
    argv = ["ensure", "--model", str(model), "--cache", str(tmp_path / "c"),
            "--build-cmd", " ".join(cmd)]
    assert ec._cli(argv) == 0
    out = capsys.readouterr().out.splitlines()
    key = ec.engine_key(Platform("Orin sm_87 8SM", "unknown", "10.3.0"),
                        ec.file_sha256(model), "int8")
    assert out == [str(tmp_path / "c" / f"{key}.engine")]
    # the recipe travels to the builder
    assert json.loads(argv_log.read_text())[5:13] == [
        "--min-batch", "1", "--opt-batch", "1", "--max-batch", "8", "--workspace-mb", "1024"]
    assert ec._cli(["key", "--model", str(model)]) == 0
    assert capsys.readouterr().out.strip() == key
    assert ec._cli(["key", "--model", str(model), "--max-batch", "16"]) == 0
    assert capsys.readouterr().out.strip() != key


def test_cli_reports_errors_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SKELMTL_GPU", "x")
    monkeypatch.setenv("SKELMTL_TENSORRT_VERSION", "10.3.0")
    assert ec._cli(["ensure", "--model", str(tmp_path / "none.onnx")]) == 2
    err = capsys.readouterr().err
    assert err == f"skelmtl engine cache: error: {tmp_path / 'none.onnx'}: model file not found\n"


def test_shipped_model_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ec, "SHIPPED_MODEL", "assets/model/absent.onnx")
    with pytest.raises(EngineCacheError, match="absent.onnx: the shipped model is missing"):
        ec.shipped_model()


def test_no_gpu_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ec, "_gpu_from_pycuda", lambda: None)
    monkeypatch.setattr(ec, "_gpu_from_nvidia_smi", lambda: None)
    with pytest.raises(EngineCacheError, match="--runtime nvidia, or set SKELMTL_GPU"):
        ec.detect_gpu()


# ------------------------------------- with the real builder and a TensorRT stand-in ---

def test_cache_around_the_real_build_engine(tmp_path: Path) -> None:
    """The cache driving calibration.engine.build_engine (in process, against the recording
    TensorRT 10.3 stand-in of tests/fake_tensorrt): the engine lands under the key with the
    header the runtime reads, the timing cache is written where the key says, and a second
    start reuses the engine without touching TensorRT."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from calibration.engine import build_engine
    from calibration.quantize import quantize_onnx, quantizer_missing
    from edge.engine.header import read_engine
    from tests.fake_tensorrt import make_tensorrt
    from tests.fake_tensorrt.onnx_models import qdq_model, save, tiny_meta, tiny_model, windows

    meta = tiny_meta()
    fp32 = save(tiny_model(meta), tmp_path / "model.onnx")
    int8 = tmp_path / "model.int8.onnx"
    if quantizer_missing():  # a Jetson, make test-oldest: the same layout, written here
        save(qdq_model(tiny_model(meta), windows(meta, 16), quantize_heads=False)[0], int8)
    else:
        quantize_onnx(fp32, int8, windows(meta, 16), method="minmax", log=lambda _: None)
    platform = Platform(gpu="Orin sm_87 8SM", l4t="36.4.0", tensorrt="10.3.0")
    trt = make_tensorrt("10.3.0")

    def builder(model: Path, out: Path, precision: str, timing: Path) -> None:
        build_engine(model, out, precision, timing_cache=timing, trt=trt, gpu=platform.gpu,
                     log=lambda _: None)

    cache = tmp_path / "engines"
    first = ec.ensure_engine(int8, cache, "int8", platform=platform, builder=builder,
                             log=lambda _: None)
    header, engine = read_engine(first.path)
    assert (header.precision, header.tensorrt, header.gpu) == ("int8", "10.3.0",
                                                               platform.gpu)
    assert engine and first.built
    assert ec.timing_cache_path(cache, platform).read_bytes().startswith(b"FAKETC")
    n_calls = len(trt.calls)
    again = ec.ensure_engine(int8, cache, "int8", platform=platform, builder=builder,
                             log=lambda _: None)
    assert (again.path, again.built, len(trt.calls)) == (first.path, False, n_calls)


def test_real_build_engine_command_takes_the_timing_cache() -> None:
    pytest.importorskip("onnx")
    assert ec._lists_option(ec.DEFAULT_BUILD_CMD, ec.TIMING_CACHE_OPTION)
