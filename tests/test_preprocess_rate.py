"""The model's frame rate (preprocessing version 3): resampling, windows, train == deploy.

A model with ``preprocess.fps`` builds its windows at that rate: training, evaluation and
calibration resample each clip from its store's fps in :func:`edge.core.preprocess.preprocess`,
the streaming runtime resamples the live stream frame by frame
(:class:`edge.runtime.stream.RateConverter`); both must give the very same numbers. Configs without
a rate (every artefact made before) must compute what they always computed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from edge.backends.base import Backend
from edge.core.clipstore import Clip, StoreError, write_store
from edge.core.metadata import META_KEY, MetadataError, ModelMeta
from edge.core.preprocess import (
    PREPROCESS_VERSION,
    PreprocessConfig,
    clip_rate,
    fit_window,
    interpolate,
    preprocess,
    rate_grid,
    resample_rate,
)
from edge.runtime.pipeline import Pipeline
from edge.runtime.stream import RateConverter, StreamConfig, batch_inputs

REPO = Path(__file__).resolve().parents[1]
LABELS = ("wave", "clap", "point")


def _clip(n: int, seed: int, holes: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 75, 3)`` float32 frames with a drifting body, ``(n, 75)`` mask with holes
    (NaN where masked, as a careless source would send)."""
    rng = np.random.default_rng(seed)
    f = (rng.standard_normal((n, 75, 3)) * 0.1
         + np.linspace(0, 1, 75)[None, :, None]).astype(np.float32)
    f += np.cumsum(rng.standard_normal((n, 1, 3)) * 0.01, axis=0).astype(np.float32)
    m = rng.random((n, 75)) > holes
    m[:, 11:13] = True  # shoulders, so that centre and scale come from the body
    f[~m] = np.nan
    return f, m


def _clean(f: np.ndarray, m: np.ndarray, dims: int = 2) -> tuple[np.ndarray, np.ndarray]:
    x = f[..., :dims]
    m = m & np.isfinite(x).all(-1)
    return np.where(m[..., None], x, 0.0).astype(np.float32), m


# -- resampling -------------------------------------------------------------------------
def test_resample_exact_values_and_the_mask_rule() -> None:
    x = np.zeros((3, 75, 2), np.float32)
    x[:, 0, 0] = [0.0, 1.0, 3.0]
    x[:, 1, 0] = [2.0, 4.0, 8.0]
    m = np.ones((3, 75), bool)
    m[1, 1] = False  # joint 1 missing in the middle frame
    m[:, 2] = [False, False, True]
    x = np.where(m[..., None], x, 0.0).astype(np.float32)
    y, ym = resample_rate(x, m, np.arange(3) / 10.0, 20.0)  # 10 -> 20 fps: 5 samples
    assert y.shape == (5, 75, 2) and y.dtype == np.float32
    assert y[:, 0, 0].tolist() == [0.0, 0.5, 1.0, 2.0, 3.0]  # halfway = the mean
    # joint 1: observed, missing, observed -> the observed neighbour between, itself on a
    # source frame (masked there)
    assert y[:, 1, 0].tolist() == [2.0, 2.0, 0.0, 8.0, 8.0]
    assert ym[:, 1].tolist() == [True, True, False, True, True]
    # joint 2 seen only in the last frame: masked where neither frame has it
    assert ym[:, 2].tolist() == [False, False, False, True, True]
    assert (y[~ym] == 0).all()


def test_resample_down_takes_the_source_frames_and_round_trips() -> None:
    x, m = _clean(*_clip(41, 0))
    y, ym = resample_rate(x, m, np.arange(41) / 30.0, 15.0)  # every other frame, exactly
    np.testing.assert_array_equal(y, x[::2])
    np.testing.assert_array_equal(ym, m[::2])
    up, upm = resample_rate(y, ym, np.arange(21) / 15.0, 30.0)
    back, backm = resample_rate(up, upm, np.arange(41) / 30.0, 15.0)
    np.testing.assert_array_equal(back, y)
    np.testing.assert_array_equal(backm, ym)


def test_rate_grid_and_fit_window() -> None:
    assert rate_grid(0.0, 1.0, 4.0).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert rate_grid(2.0, 2.0, 15.0).tolist() == [2.0]
    x, m = _clean(*_clip(5, 1))
    y, ym = fit_window(x, m, 8)  # shorter: centred between masked frames
    np.testing.assert_array_equal(y[1:6], x)
    assert not ym[[0, 6, 7]].any() and (y[[0, 6, 7]] == 0).all()
    y, ym = fit_window(x, m, 3)  # longer: the middle frames
    np.testing.assert_array_equal(y, x[1:4])


def test_interpolate_on_a_source_frame_is_that_frame() -> None:
    x0, x1 = np.full((75, 2), 1.0, np.float32), np.full((75, 2), 5.0, np.float32)
    m0, m1 = np.zeros(75, bool), np.ones(75, bool)
    x0[~m0] = 0.0
    y, ym = interpolate(x0, m0, x1, m1, np.float64(0.0))
    assert not ym.any() and (y == 0).all()  # not the neighbour's joints
    y, ym = interpolate(x0, m0, x1, m1, np.float64(0.25))
    assert ym.all() and (y == 5.0).all()  # only frame 1 sees them


# -- configs and metadata ----------------------------------------------------------------
def test_fps_config_round_trip_version_and_refusals() -> None:
    cfg = PreprocessConfig(window=16, fps=15)
    d = cfg.to_dict()
    assert d["fps"] == 15.0 and d["version"] == 3 == PREPROCESS_VERSION
    assert PreprocessConfig.from_dict(d) == cfg and cfg.version == 3
    plain = PreprocessConfig(window=16).to_dict()
    assert "fps" not in plain and plain["version"] == 2  # as written before version 3
    for bad in (0, -1.0, float("nan"), True, "15"):
        with pytest.raises(ValueError, match="fps must be a number > 0"):
            PreprocessConfig(fps=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="version 2 has no 'fps'"):
        PreprocessConfig.from_dict({**plain, "fps": 15.0})
    assert clip_rate(0.0, PreprocessConfig()) is None
    assert clip_rate(30, cfg) == 30.0
    with pytest.raises(ValueError, match=r"frame rate is unknown \(fps 0.0\) but the model "
                                         r"works at 15 fps"):
        clip_rate(0.0, cfg)
    meta = ModelMeta(preprocess=cfg, tasks=("action",), labels={"action": LABELS})
    back = ModelMeta.from_json(meta.to_json())
    assert back == meta and back.fps == 15.0
    future = json.loads(meta.to_json())
    future["preprocess"]["version"] = 4
    with pytest.raises(MetadataError, match=r"m.onnx: preprocessing version 4 does not "
                                            r"match this package's 3 \(reads \[1, 2, 3\]\)"):
        ModelMeta.from_dict(future, source="m.onnx")


# What the package computed before version 3 (sha256 of the output bytes, computed with
# edge/core/preprocess.py at 5e40967): configs without a rate must keep computing exactly this.
_BEFORE = {(7, 1): "d65eb8f3f4eef4da", (7, 2): "532164010e6b2ba5",
           (45, 1): "d842e0738e8a4e92", (45, 2): "8886b9c63b4ee6cc"}


@pytest.mark.parametrize("n,version", sorted(_BEFORE))
def test_configs_without_a_rate_compute_what_they_did(n: int, version: int) -> None:
    d = ({"window": 32, "dims": 2, "version": 1} if version == 1 else
         {"window": 16, "dims": 3, "streams": ["joint"], "joints": [11, 12, 23, 24, 0],
          "scale": "torso", "version": 2})
    f, m = _clip(n, n)
    y = preprocess(f, m, PreprocessConfig.from_dict(d), fps=30.0)  # no rate: fps ignored
    assert hashlib.sha256(y.tobytes()).hexdigest()[:16] == _BEFORE[(n, version)]


def test_a_preprocess_version_1_model_reads_as_before() -> None:
    onnx = pytest.importorskip("onnx")
    # the model shipped until 2026-12-05, written by preprocess version 1
    path = REPO / "tests/fixtures/stgcn_tiny/model.onnx"
    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    stored = json.loads(props[META_KEY])
    meta = ModelMeta.from_dict(stored, source=str(path))
    assert meta.fps is None and stored["preprocess"]["version"] == 1
    assert "fps" not in meta.to_dict()["preprocess"]  # re-written as version 2 wrote it


# -- train == deploy ---------------------------------------------------------------------
class Recorder(Backend):
    """A backend that keeps every input it is given and answers fixed logits."""

    name = "recorder"

    def __init__(self, meta: ModelMeta) -> None:
        self.meta, self.path = meta, Path("recorder")
        self.inputs: list[np.ndarray] = []

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        x = self.check_input(x)
        self.inputs.append(x.copy())
        return {"logits_action": np.tile(np.log([0.8, 0.1, 0.1]), (len(x), 1))
                .astype(np.float32)}


def _meta(fps: float | None) -> ModelMeta:
    return ModelMeta(preprocess=PreprocessConfig(window=16, fps=fps), tasks=("action",),
                     labels={"action": LABELS}, stride=4, has_task_head=False)


def _stream(meta: ModelMeta, f: np.ndarray, m: np.ndarray, fps: float) -> Recorder:
    rec = Recorder(meta)
    pipe = Pipeline(rec, "action", StreamConfig(alpha=1.0))
    for i in range(len(f)):
        pipe.push((f[i], m[i], i / fps))
    pipe.finish()
    return rec


def test_a_short_segment_streams_the_window_training_computes(tmp_path: Path) -> None:
    """8 frames at 7.5 fps (1 s) for a 16-frame window at 15 fps: one window at the end of
    the stream, the very numbers the trainer's dataset and calibration compute."""
    torch = pytest.importorskip("torch")
    from calibration.calibset import load_split
    from trainer.config import DataConfig, SourceConfig
    from trainer.data import ClipDataset, Composite

    f, m = _clip(8, 3)
    meta = _meta(15.0)
    rec = _stream(meta, f, m, 7.5)
    assert len(rec.inputs) == 1
    window = rec.inputs[0][0]
    expected = preprocess(f, m, meta.preprocess, fps=7.5)
    np.testing.assert_array_equal(window, expected)
    # 1 s at 15 fps: 15 frames centred in the window ((16 - 15) // 2 = 0 before, 1 after)
    assert window[-1, :, 11].tolist() == [1.0] * 15 + [0.0]

    x, mk = _clean(f, m, 3)
    store = write_store([Clip(frames=x, mask=mk, label="wave", task="action", split="test",
                              clip_id="c0", fps=7.5)], tmp_path / "s.store")
    comp = Composite(DataConfig(sources=(SourceConfig(store=str(store)),), val_fraction=0.0))
    item = ClipDataset(comp, [0], meta.preprocess)[0][0]
    assert isinstance(item, torch.Tensor)
    np.testing.assert_array_equal(item.numpy(), expected)
    np.testing.assert_array_equal(load_split([store], meta).x[0], expected)


def test_streamed_windows_are_the_batch_windows_at_the_model_rate() -> None:
    f, m = _clip(50, 4)
    meta = _meta(15.0)
    rec = _stream(meta, f, m, 30.0)  # 50 frames at 30 fps -> 25 at 15 -> windows 0, 4, 8
    streamed = np.concatenate(rec.inputs)
    batch = batch_inputs(f, m, meta.preprocess, meta.stride, flush=True, fps=30.0)
    assert streamed.shape == batch.shape == (3, meta.preprocess.channels, 16, 75)
    np.testing.assert_array_equal(streamed, batch)
    x, mk = _clean(f, m)
    np.testing.assert_array_equal(batch[1], preprocess(x[8::2][:16], mk[8::2][:16],
                                                       meta.preprocess))


def test_rate_converter_skips_late_frames_restarts_after_a_gap_and_passes_through() -> None:
    f, m = _clip(4, 5)
    conv = RateConverter(PreprocessConfig(window=8, fps=10.0))
    assert len(conv.push(f[0], m[0], 1.0)) == 1
    assert conv.push(f[1], m[1], 1.0) == [] and conv.skipped == 1
    out = conv.push(f[2], m[2], 1.25)  # 1.1 and 1.2 lie between
    assert [t for _, _, t in out] == [1.0 + 1 / 10.0, 1.0 + 2 / 10.0]
    out = conv.push(f[3], m[3], 1.25 + 0.81)  # a gap over one window (0.8 s): no filling
    assert [t for _, _, t in out] == [1.25 + 0.81] and conv.restarts == 1
    np.testing.assert_array_equal(out[0][0], _clean(f[3:4], m[3:4])[0][0])
    plain = RateConverter(PreprocessConfig(window=8))
    (j, mm, t), = plain.push(f[3], m[3], 7.0)
    assert np.shares_memory(j, f) and np.shares_memory(mm, m) and t == 7.0


def test_a_model_without_a_rate_streams_as_before() -> None:
    """No rate: every source frame reaches the buffer, windows stretch as they did."""
    f, m = _clip(24, 6)
    rec = _stream(_meta(None), f, m, 7.5)
    batch = batch_inputs(f, m, _meta(None).preprocess, 4, flush=True, fps=7.5)
    assert len(rec.inputs) == 3
    np.testing.assert_array_equal(np.concatenate(rec.inputs), batch)
    np.testing.assert_array_equal(batch[0], preprocess(f[:16], m[:16], _meta(None).preprocess))


def test_training_refuses_a_store_without_fps_for_a_model_with_a_rate(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from trainer.config import DataConfig, SourceConfig
    from trainer.data import ClipDataset, Composite

    x, mk = _clean(*_clip(6, 7))
    store = write_store([Clip(frames=x, mask=mk, label="wave", task="action", split="train",
                              clip_id=f"c{i}") for i in range(2)], tmp_path / "s.store")
    comp = Composite(DataConfig(sources=(SourceConfig(store=str(store)),), val_fraction=0.0))
    with pytest.raises(StoreError, match=r"s.store: 2 clip\(s\) have no frame rate \(fps 0\) "
                                         r"but preprocess.fps is 15"):
        ClipDataset(comp, [0, 1], PreprocessConfig(window=8, fps=15.0))
    assert len(ClipDataset(comp, [0, 1], PreprocessConfig(window=8))) == 2
