"""The jcd family: features against a numpy reference, masking, rebuild, ONNX agreement,
sizes, and the preprocessing ``joints`` it relies on."""

from __future__ import annotations

import io
import itertools
import warnings

import numpy as np
import pytest
import torch

from edge.core.layout import MP75
from edge.core.metadata import ModelMeta
from edge.core.preprocess import PREPROCESS_VERSION, PreprocessConfig, preprocess
from trainer.models import JCD_MODELS, count_flops, count_params, create_model

V = MP75.num_joints
JOINTS = [0, 11, 12, 13, 14, 15, 16, 23, 24]  # a JHMDB-like body subset


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _model(name: str = "jcd_tiny", tasks: dict[str, int] | None = None, dims: int = 2,
           **kw: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, in_channels=dims + 1, tasks=tasks or {"action": 5, "gesture": 4},
                        dims=dims, joints=JOINTS, **kw)


def _window(n: int, t: int, dims: int = 2, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    x = np.zeros((n, dims + 1, t, V), np.float32)
    x[:, :dims] = rng.normal(size=(n, dims, t, V))
    x[:, dims] = 1.0
    return torch.from_numpy(x)


def test_features_match_a_numpy_reference() -> None:
    m = _model(dims=3)
    x = _window(2, 8, dims=3)
    x[1, 3, 2, JOINTS[1]] = 0.0  # joint 11 missing in frame 2 of clip 1
    x[1, :3, 2, JOINTS[1]] = 0.0
    jcd, slow, fast = m.features(x)
    pos = x[:, :3][..., JOINTS].numpy()  # (N, D, T, J)
    mask = x[:, 3][..., JOINTS].numpy()  # (N, T, J)
    pairs = list(itertools.combinations(range(len(JOINTS)), 2))
    want = np.stack([np.sqrt(np.maximum(((pos[..., a] - pos[..., b]) ** 2).sum(1), 1e-6))
                     * mask[..., a] * mask[..., b] for a, b in pairs], 1)
    np.testing.assert_allclose(jcd.numpy(), want, rtol=1e-5, atol=1e-6)
    assert jcd[1, 0, 2] == 0.0 and jcd[1, 0, 1] > 0  # pair (0, 11): masked only in frame 2
    flat = pos.transpose(0, 1, 3, 2).reshape(2, -1, 8)
    mf = np.tile(mask.transpose(0, 2, 1), (1, 3, 1))
    want_slow = np.zeros_like(flat)
    want_slow[..., :-1] = (flat[..., 1:] - flat[..., :-1]) * mf[..., 1:] * mf[..., :-1]
    np.testing.assert_allclose(slow.numpy(), want_slow, atol=1e-6)
    want_fast = np.zeros((2, flat.shape[1], 4), np.float32)
    want_fast[..., :3] = (flat[..., 2::2] - flat[..., :-2:2]) * mf[..., 2::2] * mf[..., :-2:2]
    np.testing.assert_allclose(fast.numpy(), want_fast, atol=1e-6)


def test_joints_outside_the_set_do_not_change_the_output() -> None:
    m = _model().eval()
    x = _window(3, 16)
    y = x.clone()
    others = [j for j in range(V) if j not in JOINTS]
    y[:, :2, :, others] = torch.randn(3, 2, 16, len(others)) * 100
    with torch.no_grad():
        a, b = m(x), m(y)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(JCD_MODELS))
def test_rebuild_outputs_and_gradients(name: str) -> None:
    m = _model(name)
    out = m(_window(4, 16))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "logits_action": (4, 5), "logits_gesture": (4, 4), "task_logits": (4, 2)}
    sum(v.sum() for v in out.values()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
    twin = create_model(**m.model_args)
    twin.load_state_dict(m.state_dict())
    m.eval(), twin.eval()
    x = _window(2, 16, seed=3)
    with torch.no_grad():
        for k, v in m(x).items():
            torch.testing.assert_close(twin(x)[k], v)
    assert m.model_args["joints"] == JOINTS and m.model_args["dims"] == 2


def test_registry_refuses_other_sharing_and_bad_arguments() -> None:
    with pytest.raises(ValueError, match="shares its trunk hard only"):
        create_model("jcd_tiny", in_channels=3, tasks={"a": 2}, sharing="soft")
    with pytest.raises(ValueError, match=r"unknown model overrides \['blocks'\]"):
        create_model("jcd_tiny", in_channels=3, tasks={"a": 2}, blocks=[[8, 1]])
    with pytest.raises(ValueError, match="cannot hold 3 joint channels and the mask"):
        create_model("jcd_tiny", in_channels=3, tasks={"a": 2}, dims=3)
    with pytest.raises(ValueError, match="joints must be >= 2 distinct"):
        create_model("jcd_tiny", in_channels=3, tasks={"a": 2}, joints=[75, 1])


def test_sizes_are_edge_sized() -> None:
    """jcd_small on JHMDB's 13 joints: about half a million parameters, ~6 MFLOPs."""
    m = create_model("jcd_small", in_channels=3, tasks={"action": 14}, dims=2,
                     joints=list(range(13)))
    assert 400_000 < count_params(m) < 600_000
    assert 5.0 < count_flops(m, (1, 3, 32, V)) / 1e6 < 8.0


def test_onnx_export_matches_torch() -> None:
    """Plain ops TensorRT 8.5 parses; ONNX Runtime agrees to 1e-4 at another batch size."""
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    m = _model()
    m.train()
    with torch.no_grad():
        m(_window(8, 16, seed=1))  # batch-norm statistics
    m.eval()
    x = _window(2, 16)
    names = list(m(x))
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("error", torch.jit.TracerWarning)
        torch.onnx.export(m, (x,), f, dynamo=False, opset_version=17, input_names=["input"],
                          output_names=names,
                          dynamic_axes={"input": {0: "batch"}, **{k: {0: "batch"} for k in names}})
    ops = {n.op_type for n in onnx.load_from_string(f.getvalue()).graph.node}
    # no Add: the INT8 quantizer would quantize it inside the distance computation
    assert "Add" not in ops
    assert ops <= {"Gather", "Sub", "Mul", "ReduceSum", "Pow", "Max", "Clip", "Sqrt", "Squeeze", "Transpose",
                   "Reshape", "Tile", "Slice", "Pad", "Conv", "Relu", "MaxPool", "Concat",
                   "ReduceMax", "Gemm", "BatchNormalization", "Shape", "Constant",
                   "ConstantOfShape", "Identity", "Unsqueeze", "Expand", "Cast", "Where",
                   "Equal", "Div", "Floor", "Range"}, ops
    sess = ort.InferenceSession(f.getvalue(), providers=["CPUExecutionProvider"])
    xb = _window(5, 16, seed=2)
    got = sess.run(names, {"input": xb.numpy()})
    with torch.no_grad():
        ref = m(xb)
    for k, g in zip(names, got):
        np.testing.assert_allclose(g, ref[k].numpy(), rtol=0, atol=1e-4, err_msg=k)


# --------------------------------------------------------------- preprocessing joints
def _clip(t: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(t, V, 3)).astype(np.float32), np.ones((t, V), bool)


def test_preprocess_joints_masks_the_rest_before_centring() -> None:
    x, m = _clip()
    cfg = PreprocessConfig(window=8, dims=2, streams=("joint",), joints=(16, 11, 12, 15))
    y = preprocess(x, m, cfg)
    keep = [11, 12, 15, 16]
    others = [j for j in range(V) if j not in keep]
    assert np.all(y[:, :, others] == 0)
    assert np.all(y[2, :, keep] == 1) and cfg.joints == (11, 12, 15, 16)
    # the same as preprocessing a clip in which only those joints were ever present
    m2 = np.zeros_like(m)
    m2[:, keep] = True
    np.testing.assert_array_equal(y, preprocess(x, m2, PreprocessConfig(
        window=8, dims=2, streams=("joint",))))


def test_preprocess_joints_round_trip_and_version_1_reads_as_all_joints() -> None:
    cfg = PreprocessConfig(joints=(12, 11))
    d = cfg.to_dict()
    assert d["joints"] == [11, 12] and d["version"] == 2 < PREPROCESS_VERSION  # no fps
    assert PreprocessConfig.from_dict(d) == cfg
    old = {k: v for k, v in PreprocessConfig().to_dict().items() if k not in ("joints", "scale")}
    old["version"] = 1
    assert PreprocessConfig.from_dict(old) == PreprocessConfig(scale="shoulders")
    with pytest.raises(ValueError, match="version 1 has no 'joints' or 'scale'"):
        PreprocessConfig.from_dict({**old, "joints": [1, 2]})
    with pytest.raises(ValueError, match="joints must be at least 2 distinct indices"):
        PreprocessConfig(joints=(3, 80))


def test_bundled_model_metadata_still_loads() -> None:
    """The bundled model may carry preprocessing version 1 or 2; both are read."""
    from edge.assets import bundled_model

    onnx = pytest.importorskip("onnx")
    proto = onnx.load(str(bundled_model("fp32")))
    meta = ModelMeta.from_json({p.key: p.value for p in proto.metadata_props}["skelmtl"])
    assert meta.preprocess.layout == "mp75"


def _body_clip(shoulder_dx: float) -> tuple[np.ndarray, np.ndarray]:
    """Ten frames of a body with shoulders ``shoulder_dx`` apart and a 1.8-long torso."""
    x = np.zeros((10, V, 2), np.float32)
    x[:, 11], x[:, 12] = (-shoulder_dx / 2, 0.0), (shoulder_dx / 2, 0.0)
    x[:, 23], x[:, 24] = (-0.3, 1.8), (0.3, 1.8)
    x[:, 0] = (0.0, -0.5)
    m = np.zeros((10, V), bool)
    m[:, [0, 11, 12, 23, 24]] = True
    return x, m


def test_torso_scale_keeps_a_side_view_on_the_scale_of_a_front_view() -> None:
    """Shoulder width 1.0 (front) vs 0.05 (side): the torso scale divides both by about
    the same size; the version-1 shoulder scale blew the side view up 20 times."""
    torso = PreprocessConfig(window=4, dims=2, streams=("joint",), with_mask=False)
    shoulders = PreprocessConfig(window=4, dims=2, streams=("joint",), with_mask=False,
                                 scale="shoulders")
    front, side = _body_clip(1.0), _body_clip(0.05)
    nose = lambda cfg, clip: float(preprocess(*clip, cfg)[1, 0, 0])  # noqa: E731
    # torso: max(width, 0.6 x 1.8 = 1.08) -> the nose at -0.5 / 1.08 in both views
    assert nose(torso, front) == pytest.approx(-0.5 / 1.08, rel=1e-5)
    assert nose(torso, side) == pytest.approx(-0.5 / 1.08, rel=1e-5)
    assert nose(shoulders, front) == pytest.approx(-0.5, rel=1e-5)
    assert nose(shoulders, side) == pytest.approx(-10.0, rel=1e-5)
    # without hips the torso scale is the shoulder width (upper-body camera shots)
    x, m = front
    m[:, [23, 24]] = False
    assert float(preprocess(x, m, torso)[1, 0, 0]) == pytest.approx(-0.5, rel=1e-5)
    with pytest.raises(ValueError, match="scale must be one of"):
        PreprocessConfig(scale="height")


def test_each_task_sees_only_its_own_joints() -> None:
    """Actions learned on a body subset, gestures on everything: hands moving (as
    MediaPipe sees them at run time) leave the action logits exactly as they were."""
    hands = list(range(33, 75))
    m = create_model("jcd_tiny", in_channels=3, tasks={"action": 5, "gesture": 4}, dims=2,
                     joints=JOINTS + hands, task_joints={"action": JOINTS}).eval()
    x = _window(2, 16)
    y = x.clone()
    y[:, :2, :, hands] += torch.randn(2, 2, 16, len(hands))
    with torch.no_grad():
        a, b = m(x), m(y)
        only = m(x, tasks=["action"])
    torch.testing.assert_close(a["logits_action"], b["logits_action"], rtol=0, atol=0)
    assert not torch.allclose(a["logits_gesture"], b["logits_gesture"])
    assert not torch.allclose(a["task_logits"], b["task_logits"])
    torch.testing.assert_close(only["logits_action"], a["logits_action"])
    assert m.model_args["task_joints"] == {"action": JOINTS}
    with pytest.raises(ValueError, match="task_joints names unknown tasks"):
        create_model("jcd_tiny", in_channels=3, tasks={"a": 2}, task_joints={"b": [0, 1]})


def test_task_head_sees_only_the_joints_every_task_has() -> None:
    """With ``task_head_joints`` the routing decision cannot depend on joints one
    dataset never filled: moving the hands leaves the task logits exactly as they were,
    while the gesture head (which sees the hands) changes; without it, they change."""
    hands = list(range(33, 75))
    kw: dict = dict(in_channels=3, tasks={"action": 5, "gesture": 4}, dims=2,
                    joints=JOINTS + hands, task_joints={"action": JOINTS})
    torch.manual_seed(0)
    m = create_model("jcd_tiny", task_head_joints=JOINTS, **kw).eval()
    torch.manual_seed(0)
    old = create_model("jcd_tiny", **kw).eval()
    x = _window(2, 16)
    y = x.clone()
    y[:, :2, :, hands] += torch.randn(2, 2, 16, len(hands))
    with torch.no_grad():
        a, b, oa, ob = m(x), m(y), old(x), old(y)
    torch.testing.assert_close(a["task_logits"], b["task_logits"], rtol=0, atol=0)
    assert not torch.allclose(a["logits_gesture"], b["logits_gesture"])
    assert not torch.allclose(oa["task_logits"], ob["task_logits"])
    assert m.task_head_view == m.task_view[0] and old.task_head_view == 0
    with pytest.raises(ValueError, match="task_head_joints must be >= 2"):
        create_model("jcd_tiny", task_head_joints=[74], **kw)


def test_views_share_batch_norm_statistics_as_in_training() -> None:
    """With momentum 1 the running statistics are the last training batch's: evaluating
    that batch must give what training computed, for every head (each view alone through
    the batch norms would leave one view's heads on the other's statistics)."""
    hands = list(range(33, 75))
    m = create_model("jcd_tiny", in_channels=3, tasks={"action": 5, "gesture": 4}, dims=2,
                     joints=JOINTS + hands, task_joints={"action": JOINTS}, dropout=0.0,
                     feature_dropout=0.0)
    for mod in m.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            mod.momentum = 1.0
    x = _window(64, 16)
    x[:, :2, :, hands] *= 3.0  # hands far from the body: the two views differ
    with torch.no_grad():
        trained = m.train()(x)
        evaluated = m.eval()(x)
    for k in trained:
        # What remains is biased (training) vs unbiased (running) variance, mostly in the
        # heads' batch norms over 64 clips: 0.05 on logits up to 1.9. The separate passes
        # this replaced differed by 2.4 on the action head.
        torch.testing.assert_close(evaluated[k], trained[k], rtol=0, atol=0.1, msg=k)
