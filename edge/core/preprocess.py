"""The one preprocessing function: mp75 frames + mask -> model input.

Trainer, calibration and the runtime all call :func:`preprocess`; its behaviour is
versioned by :data:`PREPROCESS_VERSION`, which every artefact records and the runtime
checks. Change the numbers this function produces -> bump the version.

Steps, in order:
    1. keep the first ``dims`` coordinates; non-finite joints become masked;
    2. centre: the mean shoulder midpoint over the frames where both shoulders are present;
       hand-only clips (no body in any frame) use the mean wrist of the present hand(s);
    3. scale: divide by the body's size (``scale``: ``torso``, the median over frames of
       the larger of the shoulder width and 0.6 x the shoulder-to-hip distance where the hips
       are seen; or ``shoulders``, the median shoulder width, version 1's only choice) or
       by the median palm size, wrist to middle-finger MCP (hand-only clips), so clips from
       metres, millimetres, pixels and normalised image coordinates meet on one scale.
       ``torso`` exists because a person seen from the side has almost no shoulder width:
       on JHMDB 5% of clips had a shoulder width under a ninth of their joints' spread, and
       ``shoulders`` blew them up several times over;
    4. resample in time to ``window`` frames (linear between two observed frames, the
       observed one where only one is, masked where neither is);
    5. streams: ``joint`` (positions), ``motion`` (next frame minus this one), ``bone``
       (joint minus its parent in the layout's tree), and optionally the presence mask as
       one more channel. Masked joints are exactly zero in every stream.

A model with a frame rate (``fps``, version 3) builds its window in time, not by stretching:
after step 1 the clip is resampled from its own rate to the model's (:func:`resample_rate`:
frame ``k`` at ``t0 + k / fps``, linear between the two source frames around it, the
source frame itself where a sample falls on one, the observed one where only one of the
two is, masked where neither is), then fitted to the window: a longer clip keeps its
middle ``window`` frames, a shorter one is centred between masked frames, so a 1 s action
stays 1 s long instead of being stretched over the window. Steps 2-3 then measure the
window, not the whole clip (as the streaming runtime sees it), and step 4 is skipped.
The streaming runtime resamples frame by frame (:class:`edge.runtime.stream.RateConverter`,
through :func:`interpolate`): the same numbers for the same times.

Before step 1, a model that names its ``joints`` (version 2) has every other joint masked,
so that centre, scale and every stream come from the joints it was trained on: a model
trained on JHMDB's 13 body joints sees those 13 from MediaPipe's 75 too, not hands and
feet it never saw ("train as you deploy").

Versions: 1 had neither ``joints`` nor ``scale``; 2 added both; 3 added ``fps``. A version-1
config is read as ``joints = ()`` (all joints) and ``scale = "shoulders"``, which computes
exactly what version 1 computed. A config without ``fps`` is recorded as version 2 (the
lowest version that computes it), so artefacts without a rate stay readable by packages
that know only versions 1-2, and their metadata is byte for byte what it was.

Shapes:
    frames ``(T, V, C)``, mask ``(T, V)`` -> ``(C', window, V)`` float32, with
    ``C' = dims * len(streams) + with_mask``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from edge.core.layout import (
    HAND_MIDDLE_MCP,
    HAND_WRIST,
    LEFT_HAND0,
    MP75,
    RIGHT_HAND0,
    Layout,
)

PREPROCESS_VERSION = 3
# Versions whose configs this package still computes exactly (see the module docstring).
READABLE_VERSIONS = (1, 2, 3)
STREAMS = ("joint", "motion", "bone")
SCALES = ("torso", "shoulders")
# A torso is about 1.8 shoulder widths long (JHMDB, frontal views); 0.6 x its length stands
# in for the shoulder width when the person turns sideways.
_TORSO_TO_WIDTH = 0.6
_EPS = 1e-6


@dataclass(frozen=True)
class PreprocessConfig:
    """What the model input looks like; stored in every artefact.

    Attributes:
        window: frames per model input (T).
        dims: coordinates used, 2 (x, y) or 3 (x, y, z). 3D data can feed a 2D model.
        streams: subset of ``("joint", "motion", "bone")``, in that order.
        with_mask: append the presence mask as one more channel.
        layout: the skeleton layout id.
        joints: the layout joints the model uses, sorted (empty = all); the others are
            masked before anything else happens. Recorded from the training data.
        scale: how a body's size is measured (``torso`` | ``shoulders``; see step 3).
        fps: the model's frame rate: clips are resampled to it and windows cover
            ``window / fps`` seconds (version 3). None: every clip is stretched to
            ``window`` frames whatever its length and rate (versions 1-2).
    """

    window: int = 32
    dims: int = 2
    streams: tuple[str, ...] = ("joint", "motion", "bone")
    with_mask: bool = True
    layout: str = "mp75"
    joints: tuple[int, ...] = ()
    scale: str = "torso"
    fps: float | None = None

    def __post_init__(self) -> None:
        if self.window < 2:
            raise ValueError(f"window must be >= 2, got {self.window}")
        if self.dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {self.dims}")
        bad = [s for s in self.streams if s not in STREAMS]
        if bad or not self.streams or len(set(self.streams)) != len(self.streams):
            raise ValueError(f"streams must be distinct names from {STREAMS}, got {self.streams}")
        # Canonical order, so that two configs naming the same streams are equal.
        object.__setattr__(self, "streams", tuple(s for s in STREAMS if s in self.streams))
        if self.layout != MP75.name:
            raise ValueError(f"unsupported layout {self.layout!r}; this version knows 'mp75'")
        joints = tuple(sorted({int(j) for j in self.joints}))
        if joints and (joints[0] < 0 or joints[-1] >= MP75.num_joints or len(joints) < 2):
            raise ValueError(f"joints must be at least 2 distinct indices in "
                             f"[0, {MP75.num_joints}), got {list(self.joints)}")
        object.__setattr__(self, "joints", joints)
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {list(SCALES)}, got {self.scale!r}")
        if self.fps is not None:
            if isinstance(self.fps, bool) or not isinstance(self.fps, (int, float)) \
                    or not math.isfinite(self.fps) or self.fps <= 0:
                raise ValueError(f"fps must be a number > 0 (or absent), got {self.fps!r}")
            object.__setattr__(self, "fps", float(self.fps))

    @property
    def version(self) -> int:
        """The lowest preprocessing version that computes this config (what artefacts record)."""
        return 3 if self.fps is not None else 2

    @property
    def channels(self) -> int:
        """C', the number of input channels."""
        return self.dims * len(self.streams) + int(self.with_mask)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["streams"] = list(self.streams)
        d["joints"] = list(self.joints)
        if self.fps is None:
            del d["fps"]  # a version-2 config, written exactly as version 2 wrote it
        d["version"] = self.version
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PreprocessConfig:
        """Inverse of :meth:`to_dict`; refuses a version this package cannot compute."""
        d = dict(d)
        version = d.pop("version", PREPROCESS_VERSION)
        if version not in READABLE_VERSIONS:
            raise ValueError(f"preprocessing version {version} does not match this "
                             f"package's versions {list(READABLE_VERSIONS)}")
        if version == 1:
            if {"joints", "scale"} & set(d):
                raise ValueError("preprocessing version 1 has no 'joints' or 'scale'")
            d["scale"] = "shoulders"  # what version 1 computed
        if version in (1, 2) and "fps" in d:
            raise ValueError(f"preprocessing version {version} has no 'fps' (version 3 has)")
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown preprocessing keys {sorted(unknown)}")
        if "streams" in d:
            d["streams"] = tuple(d["streams"])
        if "joints" in d:
            d["joints"] = tuple(d["joints"])
        return cls(**d)


def body_sizes(x: np.ndarray, m: np.ndarray, layout: Layout, how: str = "torso"
               ) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame body size of step 3 (before the median over frames).

    Args:
        x: ``(T, V, C)`` joints (the size uses every coordinate given).
        m: ``(T, V)`` presence.
        layout: whose ``center`` (shoulders) and ``hips`` joints measure the body.
        how: ``torso`` | ``shoulders`` (:data:`SCALES`).

    Returns:
        ``(size (T,), body (T,) bool)``: the size, meaningful where ``body`` (both
        shoulders present) is true.
    """
    ls, rs = layout.center
    body = m[:, ls] & m[:, rs]
    size = np.linalg.norm(x[:, ls] - x[:, rs], axis=-1)
    if how == "torso":
        lh, rh = layout.hips
        hips = body & m[:, lh] & m[:, rh]
        mid = 0.5 * (x[:, ls] + x[:, rs])
        torso = np.linalg.norm(mid - 0.5 * (x[:, lh] + x[:, rh]), axis=-1)
        size = np.where(hips, np.maximum(size, _TORSO_TO_WIDTH * torso), size)
    return size, body


def _centre_scale(x: np.ndarray, m: np.ndarray, layout: Layout, how: str = "torso"
                  ) -> tuple[np.ndarray, float]:
    """Centre ``(C,)`` and scale for a clip ``x (T, V, C)`` with mask ``m (T, V)``."""
    size, body = body_sizes(x, m, layout, how)
    if body.any():
        ls, rs = layout.center
        centre = (0.5 * (x[:, ls] + x[:, rs]))[body].mean(axis=0)
        return centre, float(np.median(size[body]))
    wrists, palms = [], []
    for h0 in (LEFT_HAND0, RIGHT_HAND0):
        ok = m[:, h0 + HAND_WRIST] & m[:, h0 + HAND_MIDDLE_MCP]
        if ok.any():
            wrists.append(x[ok, h0 + HAND_WRIST])
            palms.append(np.linalg.norm(x[ok, h0 + HAND_MIDDLE_MCP] - x[ok, h0 + HAND_WRIST],
                                        axis=-1))
    if wrists:
        return np.concatenate(wrists).mean(axis=0), float(np.median(np.concatenate(palms)))
    if m.any():  # Neither shoulders nor a whole palm: centre on what there is.
        return x[m].mean(axis=0), 1.0
    return np.zeros(x.shape[-1], dtype=np.float32), 1.0


def _resample(x: np.ndarray, m: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    t = x.shape[0]
    if t == window:
        return x, m
    if t == 1:
        return np.repeat(x, window, axis=0), np.repeat(m, window, axis=0)
    s = np.linspace(0.0, t - 1, window)
    i0 = np.floor(s).astype(np.int64)
    i1 = np.minimum(i0 + 1, t - 1)
    w = (s - i0).astype(np.float32)[:, None, None]
    m0, m1 = m[i0], m[i1]
    both = (m0 & m1)[..., None]
    lin = (1.0 - w) * x[i0] + w * x[i1]
    only0 = (m0 & ~m1)[..., None]
    y = np.where(both, lin, np.where(only0, x[i0], x[i1]))
    mm = m0 | m1
    return np.where(mm[..., None], y, 0.0).astype(np.float32), mm


def interpolate(x0: np.ndarray, m0: np.ndarray, x1: np.ndarray, m1: np.ndarray,
                w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Samples ``w`` of the way from frames ``0`` to ``1``, the mask rule of step 4.

    Shapes: ``x0, x1 (..., V, C)`` float32, ``m0, m1 (..., V)`` bool, ``w (...)`` float64
    in [0, 1]. ``w == 0`` is frame 0 itself and ``w == 1`` frame 1 itself (value and mask),
    so a sample that falls on a source frame does not depend on its neighbour; otherwise
    linear where both joints are observed, the observed one where only one is, masked
    where neither is. :func:`resample_rate` and the streaming
    :class:`edge.runtime.stream.RateConverter` both call this, so they give the same numbers.
    """
    w = np.asarray(w, np.float64)
    wf = w.astype(np.float32)[..., None, None]
    both = (m0 & m1)[..., None]
    only0 = (m0 & ~m1)[..., None]
    y = np.where(both, (1.0 - wf) * x0 + wf * x1, np.where(only0, x0, x1))
    mm = m0 | m1
    at0, at1 = (w == 0.0)[..., None], (w == 1.0)[..., None]
    mm = np.where(at0, m0, np.where(at1, m1, mm))
    y = np.where(at0[..., None], x0, np.where(at1[..., None], x1, y))
    return np.where(mm[..., None], y, 0.0).astype(np.float32), mm


def rate_grid(t0: float, t_end: float, fps: float) -> np.ndarray:
    """Sample times ``t0 + k / fps`` for ``k = 0, 1, ...`` up to ``t_end`` (float64).

    Computed element by element as ``t0 + k / fps``, as the streaming converter does.
    """
    n = int(math.floor((t_end - t0) * fps)) + 2
    g = t0 + np.arange(n, dtype=np.float64) / fps
    return g[g <= t_end]


def resample_rate(x: np.ndarray, m: np.ndarray, times: np.ndarray, fps: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """A clip at frame times ``times`` resampled to ``fps``, from its first frame on.

    Args:
        x: ``(T, V, C)`` float32, zero where masked; m: ``(T, V)`` bool; times: ``(T,)``
            seconds, increasing; fps: the target rate.

    Returns:
        ``(x', m')`` with ``T' = len(rate_grid(times[0], times[-1], fps))`` frames.
    """
    times = np.asarray(times, np.float64)
    g = rate_grid(float(times[0]), float(times[-1]), fps)
    a = np.searchsorted(times, g, side="right") - 1  # times[a] <= g < times[a + 1]
    b = np.minimum(a + 1, len(times) - 1)
    span = times[b] - times[a]
    w = np.where(span > 0, (g - times[a]) / np.where(span > 0, span, 1.0), 0.0)
    return interpolate(x[a], m[a], x[b], m[b], w)


def fit_window(x: np.ndarray, m: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """The middle ``window`` frames of a longer clip; a shorter one centred between masked
    (zero) frames. Shapes as :func:`resample_rate`'s output."""
    t = x.shape[0]
    if t >= window:
        a = (t - window) // 2
        return x[a: a + window], m[a: a + window]
    a = (window - t) // 2
    y = np.zeros((window, *x.shape[1:]), np.float32)
    mm = np.zeros((window, m.shape[1]), bool)
    y[a: a + t], mm[a: a + t] = x, m
    return y, mm


def clip_rate(fps: float | None, cfg: PreprocessConfig) -> float | None:
    """The source rate to pass to :func:`preprocess` for a stored clip of rate ``fps``.

    Raises:
        ValueError: the model has a rate and the clip's is unknown (0): resampling would
            have to guess.
    """
    if cfg.fps is None:
        return None
    if fps is None or not fps > 0:
        raise ValueError(f"the clip's frame rate is unknown (fps {fps}) but the model works "
                         f"at {cfg.fps:g} fps; give the store its fps")
    return float(fps)


def preprocess(frames: np.ndarray, mask: np.ndarray, cfg: PreprocessConfig,
               fps: float | None = None) -> np.ndarray:
    """Turn one clip into the model input.

    Args:
        frames: ``(T, V, C)`` mp75 coordinates, C >= ``cfg.dims``; T >= 1.
        mask: ``(T, V)`` bool presence.
        cfg: the model's preprocessing config.
        fps: the frames' rate, for a model with a rate (``cfg.fps``): the clip is
            resampled from it. None: the frames are at the model's rate already (what the
            streaming runtime passes). Ignored when ``cfg.fps`` is None.

    Returns:
        ``(C', cfg.window, V)`` float32.

    Raises:
        ValueError: on shapes that do not fit the layout or config.
    """
    frames = np.asarray(frames)
    mask = np.asarray(mask, dtype=bool)
    layout = MP75
    v = layout.num_joints
    if frames.ndim != 3 or frames.shape[1] != v or frames.shape[0] < 1:
        raise ValueError(f"frames must be (T>=1, {v}, C), got {frames.shape}")
    if frames.shape[2] < cfg.dims:
        raise ValueError(f"the model needs {cfg.dims}D joints, the frames have "
                         f"{frames.shape[2]} coordinates")
    if mask.shape != frames.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match frames {frames.shape[:2]}")
    x = frames[..., : cfg.dims].astype(np.float32)
    m = mask & np.isfinite(x).all(-1)
    if cfg.joints:
        keep = np.zeros(v, dtype=bool)
        keep[list(cfg.joints)] = True
        m = m & keep
    x = np.where(m[..., None], x, 0.0)
    if cfg.fps is not None:
        if fps is not None and fps != cfg.fps:
            if not (math.isfinite(fps) and fps > 0):
                raise ValueError(f"the frames' rate must be a number > 0, got {fps}")
            x, m = resample_rate(x, m, np.arange(len(x), dtype=np.float64) / fps, cfg.fps)
        x, m = fit_window(x, m, cfg.window)

    centre, scale = _centre_scale(x, m, layout, cfg.scale)
    if not np.isfinite(scale) or scale < _EPS:
        scale = 1.0
    x = np.where(m[..., None], (x - centre) / scale, 0.0).astype(np.float32)
    if cfg.fps is None:
        x, m = _resample(x, m, cfg.window)

    out = []
    mf = m[..., None]
    if "joint" in cfg.streams:
        out.append(x)
    if "motion" in cfg.streams:
        mot = np.zeros_like(x)
        mot[:-1] = x[1:] - x[:-1]
        ok = np.zeros_like(mf)
        ok[:-1] = mf[1:] & mf[:-1]
        out.append(np.where(ok, mot, 0.0))
    if "bone" in cfg.streams:
        par = np.asarray(layout.parents)
        out.append(np.where(mf & m[:, par][..., None], x - x[:, par], 0.0))
    y = np.concatenate(out, axis=-1)  # (T, V, C')
    if cfg.with_mask:
        y = np.concatenate([y, mf.astype(np.float32)], axis=-1)
    return np.ascontiguousarray(y.transpose(2, 0, 1), dtype=np.float32)
