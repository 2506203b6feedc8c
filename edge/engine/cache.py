"""TensorRT engine cache: build the engine once per platform and model, reuse it afterwards.

Usage: python -m edge.engine.cache ensure [--cache DIR] [--model model.int8.onnx] [--precision int8]

A TensorRT engine is only valid for the GPU, the TensorRT version and (on a Jetson) the
L4T/JetPack release it was built with, so the Jetson container builds it on first start
from the shipped Q/DQ model and keeps it in a mounted volume. The cache key is made from:

* the GPU: CUDA device name, compute capability and SM count (pycuda), or ``nvidia-smi``,
  plus the board model from the device tree when it is readable;
* the L4T release from ``/etc/nv_tegra_release`` (``36.4.0``; ``unknown`` when absent; the
  container should see the host's file: ``-v /etc/nv_tegra_release:/etc/nv_tegra_release:ro``);
* the TensorRT version (``tensorrt.__version__``);
* the precision and the SHA-256 of the model file (a new package version ships a new model);
* the build recipe (:class:`BuildRecipe`): batch profile, workspace, the build-engine
  options that change what is built, and this package's version, so that changed build
  defaults never silently reuse an engine built with the old ones.

A cached engine is reused only when it still reads back: its header and SHA-256 verify
(:func:`edge.engine.header.read_engine`), it was built by this TensorRT version (build
number included), in this precision, with this recipe and from this model. A corrupt,
truncated or foreign file under the key is removed and rebuilt, so one bad file never
makes every restart fail.

Trust: an engine file is native code (TensorRT's "Security Considerations": deserializing
an untrusted engine is running untrusted code). The cache folder is created owner-only
(0700), and an engine that is group- or world-writable, or owned by another user, is
refused with a message rather than loaded or silently replaced
(:func:`edge.engine.header.check_engine_trust`). Whoever can write the cache volume as
this user can still replace the engine: that is the boundary (see docs/jetson.md).

Layout of the cache folder (:func:`default_cache_dir`; ``/cache/engines`` in the container,
whose volume ``/cache`` also keeps the MediaPipe model files of :mod:`edge.frontend.model_files`)::

    engines/<key>.engine          the engine, placed atomically (temp name, fsync, rename)
    engines/<key>.json            what the key was made from (for people reading the cache)
    engines/<key>.lock            held while building, so two containers build it once
    engines/timing/<gpu>_trt<v>.timing   TensorRT timing cache shared by rebuilds

Environment overrides (tests, or hosts where detection is impossible): ``SKELMTL_GPU``,
``SKELMTL_TENSORRT_VERSION``, ``SKELMTL_L4T_RELEASE_FILE``; defaults for the command line:
``SKELMTL_ENGINE_CACHE`` (or ``SKELMTL_CACHE``), ``SKELMTL_MODEL``, ``SKELMTL_PRECISION``,
``SKELMTL_BUILD_CMD``.

The build itself is ``skelmtl build-engine`` (``calibration.engine``), run as a subprocess so
that ``edge`` never imports ``calibration``; any builder with the same arguments can stand in.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable  # typing's: an alias below is evaluated, on 3.8 too

from edge import __version__
from edge.core.atomic import sha256_file
from edge.core.errors import SkelmtlError
from edge.engine.header import (
    EngineHeaderError,
    check_engine_trust,
    read_engine,
    tensorrt_version_parts,
)

ENGINE_SUFFIX = ".engine"
PRECISIONS = ("int8", "fp16", "fp32")
DEFAULT_PRECISION = "int8"
NV_TEGRA_RELEASE = Path("/etc/nv_tegra_release")
SHIPPED_MODEL = "assets/model/model.int8.onnx"  # inside the installed ``edge`` package
# `skelmtl build-engine` (calibration.engine) run by this interpreter: edge never imports
# calibration, and the container's PATH is not needed to find it.
DEFAULT_BUILD_CMD = (sys.executable, "-m", "skelmtl.cli", "build-engine")
TIMING_CACHE_OPTION = "--timing-cache"
# Progress goes to this logger; the command shows it (main), a library caller chooses.
LOG = logging.getLogger(__name__)

# (model, output engine, precision, timing cache) -> None; raises on failure.
Builder = Callable[[Path, Path, str, Path], None]


class EngineCacheError(SkelmtlError):
    """The engine cannot be found, built or placed; the message names the file and cause."""


@dataclass(frozen=True)
class Platform:
    """What a TensorRT engine is specific to.

    Attributes:
        gpu: e.g. ``"Orin sm_87 16SM | NVIDIA Jetson AGX Orin Developer Kit"``.
        l4t: L4T release, e.g. ``"36.4.0"`` (JetPack 6.1), or ``"unknown"``.
        tensorrt: TensorRT version, e.g. ``"10.3.0"``.
    """

    gpu: str
    l4t: str
    tensorrt: str


@dataclass(frozen=True)
class BuildRecipe:
    """How an engine is built, beyond the platform and the model: part of the cache key.

    Attributes:
        precision: ``int8``, ``fp16`` or ``fp32``.
        min_batch, opt_batch, max_batch: the optimisation profile of the batch axis.
        workspace_mb: the builder's workspace limit.
        options: further ``skelmtl build-engine`` options, as ``(option, value)`` pairs
            (``("--weights", "qdq")``, ``("--typing", "strong")``, ...).
        skelmtl: the package version whose build-engine (and its defaults) built it.
    """

    precision: str = DEFAULT_PRECISION
    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 8
    workspace_mb: int = 1024
    options: tuple[tuple[str, str], ...] = ()
    skelmtl: str = __version__

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise EngineCacheError(f"unknown precision {self.precision!r}; use one of "
                                   f"{PRECISIONS}")
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise EngineCacheError(f"need 1 <= min batch <= opt batch <= max batch, got "
                                   f"{self.min_batch}, {self.opt_batch}, {self.max_batch}")

    def args(self) -> list[str]:
        """The ``skelmtl build-engine`` arguments that reproduce this recipe (precision
        excluded: the builder is given it separately)."""
        out = ["--min-batch", str(self.min_batch), "--opt-batch", str(self.opt_batch),
               "--max-batch", str(self.max_batch), "--workspace-mb", str(self.workspace_mb)]
        for opt, value in self.options:
            out += [opt] if value == "" else [opt, value]
        return out


@dataclass(frozen=True)
class CachedEngine:
    """Result of :func:`ensure_engine`: the engine's path, its key, and whether it was built now."""

    path: Path
    key: str
    built: bool


_TEGRA_RE = re.compile(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*([0-9.]+)")


def parse_nv_tegra_release(text: str) -> str:
    """``"# R36 (release), REVISION: 4.0, GCID: ..."`` -> ``"36.4.0"``.

    Raises:
        EngineCacheError: the text is not in that format.
    """
    m = _TEGRA_RE.search(text)
    if not m:
        first = text.strip().splitlines()[0] if text.strip() else "(empty)"
        raise EngineCacheError(f"cannot read an L4T release from {first!r}")
    return f"{m.group(1)}.{m.group(2)}"


def read_l4t_release(path: Path = NV_TEGRA_RELEASE) -> str:
    """The L4T release from ``path``, or ``"unknown"`` when the file does not exist.

    Raises:
        EngineCacheError: the file exists but is not in the expected format.
    """
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "unknown"
    except OSError as e:
        raise EngineCacheError(f"{path}: cannot read: {e.strerror}") from None
    try:
        return parse_nv_tegra_release(text)
    except EngineCacheError as e:
        raise EngineCacheError(f"{path}: {e}") from None


def detect_gpu() -> str:
    """Describe GPU 0: CUDA name, compute capability, SM count, and the board model.

    Raises:
        EngineCacheError: neither pycuda nor nvidia-smi can see a GPU.
    """
    gpu = _gpu_from_pycuda() or _gpu_from_nvidia_smi()
    if not gpu:
        raise EngineCacheError(
            "cannot identify the GPU (pycuda and nvidia-smi found none); run the container "
            "with --runtime nvidia, or set SKELMTL_GPU")
    board = _board_model()
    return f"{gpu} | {board}" if board else gpu


def _gpu_from_pycuda() -> str | None:
    try:
        import pycuda.driver as cuda  # lazy: pycuda comes from the 'jetson' extra
        cuda.init()
        dev = cuda.Device(0)
        major, minor = dev.compute_capability()
        sms = dev.get_attribute(cuda.device_attribute.MULTIPROCESSOR_COUNT)
        return f"{dev.name()} sm_{major}{minor} {sms}SM"
    except Exception:  # any failure just means "try the next source"
        return None


def _gpu_from_nvidia_smi() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    first = out.strip().splitlines()[0] if out.strip() else ""
    if not first:
        return None
    name, _, cap = (s.strip() for s in first.partition(","))
    return f"{name} sm_{cap.replace('.', '')}" if cap else name


def _board_model() -> str:
    # Docker masks /sys/firmware by default, so this is often unreadable in a container.
    for p in (Path("/proc/device-tree/model"), Path("/sys/firmware/devicetree/base/model")):
        try:
            return p.read_bytes().rstrip(b"\x00").decode(errors="replace").strip()
        except OSError:
            continue
    return ""


def detect_tensorrt_version() -> str:
    """``tensorrt.__version__``.

    Raises:
        EngineCacheError: the TensorRT Python bindings are not importable.
    """
    try:
        import tensorrt  # lazy: from JetPack (python3-libnvinfer)
    except ImportError:
        raise EngineCacheError(
            "TensorRT's Python bindings are not importable; on a Jetson they come from "
            "JetPack (apt install python3-libnvinfer), or set SKELMTL_TENSORRT_VERSION"
        ) from None
    return str(tensorrt.__version__)


def detect_platform(env: Mapping[str, str] | None = None) -> Platform:
    """This machine's :class:`Platform`, with ``SKELMTL_*`` overrides from ``env``.

    Raises:
        EngineCacheError: the GPU or TensorRT cannot be identified.
    """
    env = os.environ if env is None else env
    release_file = Path(env.get("SKELMTL_L4T_RELEASE_FILE", str(NV_TEGRA_RELEASE)))
    return Platform(gpu=env.get("SKELMTL_GPU") or detect_gpu(),
                    l4t=read_l4t_release(release_file),
                    tensorrt=env.get("SKELMTL_TENSORRT_VERSION") or detect_tensorrt_version())


file_sha256 = sha256_file  # the model's identity in the cache key


def _slug(text: str, limit: int) -> str:
    s = re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.")
    return s[:limit].rstrip("-.") or "x"


def engine_key(platform: Platform, model_sha256: str, precision: str,
               recipe: BuildRecipe | None = None) -> str:
    """A file-name-safe key, readable at the front and exact at the end.

    The readable part (GPU, L4T, TensorRT, precision, model hash prefix) is for people
    listing the cache; the trailing digest covers every field in full, the build recipe
    included (batch profile, workspace, build options, package version), so two
    platforms whose names slug alike, or two recipes, still get different keys.

    Raises:
        EngineCacheError: unknown precision, or a recipe of another precision.
    """
    if precision not in PRECISIONS:
        raise EngineCacheError(f"unknown precision {precision!r}; use one of {PRECISIONS}")
    recipe = recipe or BuildRecipe(precision)
    if recipe.precision != precision:
        raise EngineCacheError(f"build recipe is for {recipe.precision}, not {precision}")
    fields = {**asdict(platform), "model_sha256": model_sha256, "precision": precision,
              "recipe": asdict(recipe)}
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:10]
    gpu = _slug(platform.gpu.split("|")[0], 32)
    return (f"{gpu}_l4t{_slug(platform.l4t, 16)}_trt{_slug(platform.tensorrt, 16)}_"
            f"{precision}_{model_sha256[:12]}_{digest}")


def default_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$SKELMTL_ENGINE_CACHE``, else ``$SKELMTL_CACHE/engines``, else
    ``~/.cache/skelmtl/engines``.

    ``SKELMTL_CACHE`` is the folder the MediaPipe model files are cached in
    (:mod:`edge.frontend.model_files`); engines go in a subfolder so one volume holds both.
    """
    env = os.environ if env is None else env
    if env.get("SKELMTL_ENGINE_CACHE"):
        return Path(env["SKELMTL_ENGINE_CACHE"]).expanduser()
    if env.get("SKELMTL_CACHE"):
        return Path(env["SKELMTL_CACHE"]).expanduser() / "engines"
    return Path.home() / ".cache" / "skelmtl" / "engines"


def timing_cache_path(cache_dir: Path, platform: Platform) -> Path:
    """Where the TensorRT timing cache for this GPU and TensorRT version lives."""
    name = f"{_slug(platform.gpu, 48)}_trt{_slug(platform.tensorrt, 16)}.timing"
    return cache_dir / "timing" / name


def shipped_model() -> Path:
    """The Q/DQ INT8 model shipped inside the installed package.

    Raises:
        EngineCacheError: the package was installed without it.
    """
    path = Path(__file__).resolve().parent / SHIPPED_MODEL
    if not path.is_file():
        raise EngineCacheError(f"{path}: the shipped model is missing from this install; "
                               "pass --model (or set SKELMTL_MODEL)")
    return path


def command_builder(cmd: Sequence[str] = DEFAULT_BUILD_CMD,
                    recipe: BuildRecipe | None = None) -> Builder:
    """A builder that runs ``CMD MODEL --precision P -o OUT [RECIPE] [--timing-cache T]``.

    ``RECIPE`` is :meth:`BuildRecipe.args` when a recipe is given (the batch profile,
    workspace and build options the cache key was made with).

    ``--timing-cache`` is passed only when ``CMD --help`` lists it, so the cache works with
    a build command that has no timing cache (it then just rebuilds slower). The command's
    output goes to this process's stderr (the container log): the engine builder logs its
    progress and parser errors there, and this process's stdout carries only the engine path.
    """
    def build(model: Path, out: Path, precision: str, timing_cache: Path) -> None:
        argv = [*cmd, str(model), "--precision", precision, "-o", str(out)]
        if recipe is not None:
            argv += recipe.args()
        if _lists_option(cmd, TIMING_CACHE_OPTION):
            argv += [TIMING_CACHE_OPTION, str(timing_cache)]
        try:
            rc = subprocess.run(argv, stdout=_stderr_fd()).returncode
        except OSError as e:
            raise EngineCacheError(f"cannot run {shlex.join(argv)}: {e.strerror}") from None
        if rc != 0:
            raise EngineCacheError(f"engine build failed (exit {rc}): {shlex.join(argv)}")
    return build


def _lists_option(cmd: Sequence[str], option: str) -> bool:
    try:
        out = subprocess.run([*cmd, "--help"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])",
                                             out.stdout) is not None


def _stderr_fd() -> int | None:
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # replaced stderr (e.g. under pytest)
        return None


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_json_atomic(path: Path, data: dict[str, object]) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def secure_cache_dir(cache_dir: Path, log: Callable[[str], None] = LOG.info) -> None:
    """Create ``cache_dir`` (and ``timing/``) owner-only, or check an existing one.

    A folder of this user that is group- or world-writable is tightened to 0700 (and
    said so); a folder owned by another user is refused, since its owner could replace
    any engine in it.

    Raises:
        EngineCacheError: the folder cannot be created, is someone else's, or is not
            writable by this user.
    """
    try:
        cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        (cache_dir / "timing").mkdir(exist_ok=True, mode=0o700)
    except OSError as e:
        raise EngineCacheError(f"{cache_dir}: cannot create the engine cache: {e.strerror}; "
                               "mount a volume writable by the container user") from None
    if os.name == "posix":
        import stat

        me = os.getuid()
        for d in (cache_dir, cache_dir / "timing"):
            st = d.stat()
            if st.st_uid not in (me, 0) or (st.st_uid == 0 and me != 0
                                            and st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)):
                raise EngineCacheError(
                    f"{d}: the engine cache folder is owned by uid {st.st_uid}, not by this "
                    f"user (uid {me}), who could replace the engines in it (native code); "
                    "use a folder of this user (chown it, or mount a fresh volume)")
            if st.st_uid == me and stat.S_IMODE(st.st_mode) & 0o077:
                os.chmod(d, 0o700)
                log(f"{d}: tightened to owner-only (was "
                    f"{stat.S_IMODE(st.st_mode):04o}): engines are native code")
    if not os.access(cache_dir, os.W_OK):
        raise EngineCacheError(f"{cache_dir}: the engine cache is not writable by uid "
                               f"{os.getuid()}; mount a volume writable by that user")


def engine_problem(path: Path, platform: Platform, recipe: BuildRecipe,
                   model_sha256: str) -> str | None:
    """Why the engine at ``path`` must not be reused, or None when it may.

    Reads the whole file: the header, the engine's size and SHA-256, the TensorRT
    version (every component, build number included), the precision, the batch
    profile and workspace of the recipe, and the source model's hash.
    """
    try:
        header, _ = read_engine(path)
    except EngineHeaderError as e:
        return str(e)
    except OSError as e:
        return f"{path}: cannot read: {e.strerror}"
    if tensorrt_version_parts(header.tensorrt) != tensorrt_version_parts(platform.tensorrt):
        return f"{path}: built by TensorRT {header.tensorrt}, this is {platform.tensorrt}"
    if header.precision != recipe.precision:
        return f"{path}: a {header.precision} engine, {recipe.precision} was asked for"
    b = header.build
    want = {"min_batch": recipe.min_batch, "opt_batch": recipe.opt_batch,
            "max_batch": recipe.max_batch, "workspace_mb": recipe.workspace_mb}
    for k, v in want.items():
        if k in b and b[k] != v:
            return f"{path}: built with {k} {b[k]}, the recipe says {v}"
    src = b.get("source_sha256")
    if src and src != model_sha256:
        return f"{path}: built from another model (sha256 {str(src)[:12]}...)"
    return None


def ensure_engine(model: Path, cache_dir: Path, precision: str = DEFAULT_PRECISION,
                  platform: Platform | None = None, builder: Builder | None = None,
                  log: Callable[[str], None] = LOG.info,
                  recipe: BuildRecipe | None = None) -> CachedEngine:
    """Return the cached engine for ``model`` on this platform, building it if absent.

    An engine under the key is reused only if :func:`engine_problem` finds nothing
    wrong with it; otherwise it is removed and rebuilt (and the reason logged). One that
    is group/world-writable or owned by another user is refused
    (:func:`edge.engine.header.check_engine_trust`). The build writes to a temporary
    name in the cache folder, which is checked the same way, fsynced and renamed into
    place only when it is a valid engine, so a power cut or a crash mid-build never
    leaves a half engine under the final name. A file lock per key makes concurrent
    starts build once; partial files left by a crashed build are removed under that lock.

    Args:
        model: the ONNX model (Q/DQ for INT8).
        cache_dir: the mounted cache folder (created owner-only if missing).
        precision: ``int8``, ``fp16`` or ``fp32``.
        platform: defaults to :func:`detect_platform`.
        builder: defaults to :func:`command_builder` (``skelmtl build-engine``) with
            ``recipe``; a custom builder must build what ``recipe`` says.
        log: where progress lines go (default: this module's logger at INFO).
        recipe: the build recipe (default: build-engine's defaults for ``precision``).

    Raises:
        EngineCacheError: missing model, unwritable or foreign cache, an untrusted
            engine file, a failed build or one that wrote no valid engine.
    """
    model = Path(model)
    cache_dir = Path(cache_dir)
    if not model.is_file():
        raise EngineCacheError(f"{model}: model file not found")
    recipe = recipe or BuildRecipe(precision)
    platform = platform or detect_platform()
    model_sha = file_sha256(model)
    key = engine_key(platform, model_sha, precision, recipe)
    final = cache_dir / f"{key}{ENGINE_SUFFIX}"
    if final.is_file() and not os.access(cache_dir, os.W_OK):
        # a read-only cache (a provisioned volume) can still serve a valid engine
        _trusted(final)
        if engine_problem(final, platform, recipe, model_sha) is None:
            log(f"reusing {final} (read-only cache)")
            return CachedEngine(final, key, built=False)
    secure_cache_dir(cache_dir, log)
    import fcntl  # POSIX only; the engine cache runs on Linux (Jetson)

    def reusable() -> bool:
        if not final.exists():
            return False
        _trusted(final)
        why = engine_problem(final, platform, recipe, model_sha)
        if why is None:
            return True
        log(f"not reusing the cached engine: {why}; rebuilding it")
        final.unlink(missing_ok=True)
        return False

    with open(cache_dir / f"{key}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if reusable():
                log(f"reusing {final}")
                return CachedEngine(final, key, built=False)
            for stale in cache_dir.glob(f"{key}.partial-*{ENGINE_SUFFIX}"):
                stale.unlink(missing_ok=True)
            tmp = cache_dir / f"{key}.partial-{os.getpid()}{ENGINE_SUFFIX}"
            log(f"building {final.name} from {model} ({precision}); this takes minutes "
                "on a Jetson, once")
            try:
                (builder or command_builder(DEFAULT_BUILD_CMD, recipe))(
                    model, tmp, precision, timing_cache_path(cache_dir, platform))
                if not _usable(tmp):
                    raise EngineCacheError(f"the engine builder reported success but wrote "
                                           f"no engine at {tmp}")
                why = engine_problem(tmp, platform, recipe, model_sha)
                if why is not None:
                    raise EngineCacheError(f"the engine builder wrote an engine that cannot "
                                           f"be used: {why}")
                os.chmod(tmp, 0o600)
                with open(tmp, "rb+") as f:
                    os.fsync(f.fileno())
                os.replace(tmp, final)
                _fsync_dir(cache_dir)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            _write_json_atomic(cache_dir / f"{key}.json", {
                **asdict(platform), "precision": precision, "model": str(model),
                "model_sha256": model_sha, "engine": final.name,
                "recipe": asdict(recipe),
                "built_utc": datetime.now(timezone.utc).isoformat(timespec="seconds")})
            log(f"built {final}")
            return CachedEngine(final, key, built=True)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _trusted(path: Path) -> None:
    try:
        check_engine_trust(path)
    except EngineHeaderError as e:
        raise EngineCacheError(str(e)) from None


def _usable(path: Path) -> bool:
    try:
        return path.is_file() and path.stat().st_size > 0
    except OSError:
        return False


# --- command line (python -m edge.engine.cache; could be registered as `skelmtl engine`) ---

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the engine cache command."""
    parser.add_argument("action", choices=("ensure", "key", "platform"),
                        help="ensure: print the engine path, building it if needed; "
                             "key: print the cache key; platform: print what was detected")
    parser.add_argument("--model", type=Path, default=os.environ.get("SKELMTL_MODEL"),
                        help="ONNX model (default: the shipped model.int8.onnx)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="engine cache folder (default: $SKELMTL_ENGINE_CACHE, else "
                             "$SKELMTL_CACHE/engines, else ~/.cache/skelmtl/engines)")
    parser.add_argument("--precision", choices=PRECISIONS,
                        default=os.environ.get("SKELMTL_PRECISION", DEFAULT_PRECISION))
    parser.add_argument("--build-cmd", default=os.environ.get("SKELMTL_BUILD_CMD"),
                        help="engine build command, given MODEL --precision P -o OUT and "
                             "the recipe's options (default: 'skelmtl build-engine')")
    recipe = parser.add_argument_group("build recipe (part of the cache key)")
    recipe.add_argument("--min-batch", type=int, default=1)
    recipe.add_argument("--opt-batch", type=int, default=1)
    recipe.add_argument("--max-batch", type=int, default=8)
    recipe.add_argument("--workspace-mb", type=int, default=1024)
    recipe.add_argument("--build-option", action="append", default=[], metavar="OPT=VALUE",
                        help="a further build-engine option, e.g. "
                             "--build-option=--matmul=float (repeatable; default from "
                             "$SKELMTL_BUILD_OPTIONS, space-separated)")


def recipe_from_args(args: argparse.Namespace,
                     env: Mapping[str, str] | None = None) -> BuildRecipe:
    """The :class:`BuildRecipe` of the command line (and ``SKELMTL_BUILD_OPTIONS``).

    Raises:
        EngineCacheError: an option not written ``--name=value`` or ``--flag``.
    """
    return BuildRecipe(args.precision, args.min_batch, args.opt_batch, args.max_batch,
                       args.workspace_mb, build_options(args.build_option, env))


def build_options(items: Sequence[str] = (), env: Mapping[str, str] | None = None
                  ) -> tuple[tuple[str, str], ...]:
    """``--name=value`` / ``--flag`` items (default: ``$SKELMTL_BUILD_OPTIONS``, split like
    a shell) as the recipe's ``(option, value)`` pairs.

    Raises:
        EngineCacheError: an item not written ``--name=value`` or ``--flag``.
    """
    env = os.environ if env is None else env
    items = list(items) or shlex.split(env.get("SKELMTL_BUILD_OPTIONS", ""))
    options = []
    for item in items:
        name, _, value = item.partition("=")
        if not name.startswith("--") or len(name) < 3:
            raise EngineCacheError(f"build option {item!r}: write it as --name=value or --flag")
        options.append((name, value))
    return tuple(options)


def main(args: argparse.Namespace) -> int:
    """Run one action; the engine path or key goes to stdout, progress to stderr."""
    if LOG.level == logging.NOTSET:  # the command shows its progress (a caller's level wins)
        LOG.setLevel(logging.INFO)
    platform = detect_platform()
    if args.action == "platform":
        print(json.dumps(asdict(platform), indent=2))
        return 0
    model = Path(args.model) if args.model else shipped_model()
    recipe = recipe_from_args(args)
    if args.action == "key":
        print(engine_key(platform, file_sha256(model), args.precision, recipe))
        return 0
    cmd = shlex.split(args.build_cmd) if args.build_cmd else list(DEFAULT_BUILD_CMD)
    result = ensure_engine(model, args.cache or default_cache_dir(), args.precision,
                           platform=platform, builder=command_builder(cmd, recipe),
                           recipe=recipe)
    print(result.path)
    return 0


def _cli(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.engine.cache",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    add_arguments(parser)
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:  # run as a program (the container's entrypoint)
        logging.basicConfig(level=logging.WARNING, format="skelmtl engine cache: %(message)s")
    try:
        return main(args)
    except SkelmtlError as e:
        print(f"skelmtl engine cache: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(_cli())
