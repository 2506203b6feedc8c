"""Model registry: every registered ST-GCN network x sharing mode x task count, rebuild from
model_args, task subsets, FLOP counting, learned-sharing schedule, and ONNX agreement."""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
import pytest
import torch

from edge.core.layout import MP75
from trainer.models import (
    JCD_MODELS,
    MODELS,
    count_flops,
    count_macs,
    count_params,
    create_model,
    list_models,
)
from trainer.models.graph import normalized_adjacency, partitioned_adjacency
from trainer.models.net import temperature_schedule

SHARING = ("hard", "soft", "learned")
TASK_SETS = {1: {"action": 5}, 2: {"action": 5, "gesture": 4}, 3: {"a": 3, "b": 4, "c": 2}}
C, T, V = 7, 8, 75  # 2D joint/motion/bone + mask; a short window keeps the tests fast


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _model(name: str, sharing: str, n_tasks: int, **kw: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, in_channels=C, tasks=TASK_SETS[n_tasks], sharing=sharing, **kw)


def test_registry_names_and_errors() -> None:
    assert list_models() == sorted([*MODELS, *JCD_MODELS])
    assert {"stgcn_tiny", "stgcn_small", "stgcn_base"} <= set(list_models())
    with pytest.raises(KeyError, match="unknown model 'nope'.*stgcn_tiny"):
        create_model("nope", in_channels=C, tasks={"a": 2})
    with pytest.raises(ValueError, match="unknown sharing 'partial'"):
        create_model("stgcn_tiny", in_channels=C, tasks={"a": 2}, sharing="partial")
    with pytest.raises(ValueError, match=r"unknown model overrides \['width'\]"):
        create_model("stgcn_tiny", in_channels=C, tasks={"a": 2}, width=3)
    with pytest.raises(ValueError, match="num_joints=25"):
        create_model("stgcn_tiny", in_channels=C, tasks={"a": 2}, num_joints=25)
    with pytest.raises(ValueError, match="at least one task"):
        create_model("stgcn_tiny", in_channels=C, tasks={})


@pytest.mark.parametrize("n_tasks", [1, 2, 3])
@pytest.mark.parametrize("sharing", SHARING)
@pytest.mark.parametrize("name", sorted(MODELS))  # the jcd family: tests/test_jcd.py
def test_structure_outputs_and_gradients(name: str, sharing: str, n_tasks: int) -> None:
    """Output names and shapes per head, no NaN, and a gradient for every parameter."""
    model = _model(name, sharing, n_tasks, dropout=0.1)
    tasks = TASK_SETS[n_tasks]
    assert model.task_names == tuple(tasks)
    x = torch.randn(4, C, T, V)
    out = model(x)
    want = {f"logits_{t}": (4, k) for t, k in tasks.items()}
    if n_tasks > 1:
        want["task_logits"] = (4, n_tasks)
    assert list(out) == list(want)  # task order, then the task head
    assert {k: tuple(v.shape) for k, v in out.items()} == want
    total = sum(v.square().mean() for v in out.values()) + model.regularization()
    total.backward()
    for k, p in model.named_parameters():
        assert p.grad is not None, f"{k} gets no gradient"
        assert torch.isfinite(p.grad).all(), k
        assert p.grad.abs().sum() > 0, f"{k} has an all-zero gradient"
    assert all(torch.isfinite(v).all() for v in out.values())
    # One task: soft and learned sharing degenerate to one trunk (nothing to share).
    if n_tasks == 1:
        ref = _model(name, "hard", 1)
        assert count_params(model) == count_params(ref)
        assert "task_logits" not in out and model.model_args["task_head"] is False


@pytest.mark.parametrize("sharing", SHARING)
@pytest.mark.parametrize("name", sorted(MODELS))  # the jcd family: tests/test_jcd.py
def test_rebuild_from_model_args(name: str, sharing: str) -> None:
    model = _model(name, sharing, 2, dropout=0.2)
    model.train()
    model.on_epoch_start(0, 10)
    model(torch.randn(6, C, T, V))  # move the batch-norm statistics off their init
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    args = model.model_args
    assert args["name"] == name and args["sharing"] == sharing
    assert args["tasks"] == {"action": 5, "gesture": 4}
    import json

    assert json.loads(json.dumps(args)) == args  # JSON-serialisable, unchanged by a round trip
    again = create_model(**args)
    again.load_state_dict(model.state_dict())
    model.eval()
    again.eval()
    x = torch.randn(3, C, T, V)
    with torch.no_grad():
        a, b = model(x), again(x)
    assert list(a) == list(b)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


@pytest.mark.parametrize("sharing", SHARING)
def test_task_subset_matches_full_output(sharing: str) -> None:
    model = _model("stgcn_tiny", sharing, 3).eval()
    if sharing == "learned":  # a mixed decision: a and b share block 0, c does not
        with torch.no_grad():
            model.gate.copy_(torch.tensor([[1.0, 1.0, -1.0], [1.0, -1.0, 1.0],
                                           [-1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]))
        model.eval()  # eval mode reads the decisions
        assert model.sharing_decisions()["c"] == ["specific", "shared", "shared", "shared"]
    x = torch.randn(2, C, T, V)
    with torch.no_grad():
        full = model(x)
        only_b = model(x, tasks=["b"])
        b_and_head = model(x, tasks=["b", "task_logits"])
    assert list(only_b) == ["logits_b"]
    assert list(b_and_head) == ["logits_b", "task_logits"]
    torch.testing.assert_close(only_b["logits_b"], full["logits_b"])
    torch.testing.assert_close(b_and_head["task_logits"], full["task_logits"])
    with pytest.raises(KeyError, match=r"unknown tasks \['z'\]"):
        model(x, tasks=["z"])


def test_task_subset_computes_less() -> None:
    """Soft sharing runs only the requested trunk's last block; learned only its streams."""
    soft = _model("stgcn_tiny", "soft", 3)
    full, one = count_macs(soft, (1, C, 32, V)), count_macs(soft, (1, C, 32, V), tasks=["a"])
    assert one < full
    learned = _model("stgcn_tiny", "learned", 3)
    with torch.no_grad():
        learned.gate.fill_(-1.0)  # every task specific everywhere: 3 separate trunks
    learned.eval()
    f3, f1 = count_macs(learned, (1, C, 32, V)), count_macs(learned, (1, C, 32, V), ["a"])
    hard = count_macs(create_model("stgcn_tiny", in_channels=C, tasks={"a": 3}), (1, C, 32, V))
    assert f1 == hard  # one trunk and one 3-class head: exactly an STL model of task a
    assert f3 == pytest.approx(3 * hard, rel=0.01)
    with torch.no_grad():
        learned.gate.fill_(1.0)  # every block shared: one trunk computed once for all heads
    learned.eval()
    assert count_macs(learned, (1, C, 32, V)) == pytest.approx(hard, rel=0.01)


def test_count_macs_by_hand() -> None:
    """One block, 2 -> 4 channels, uniform graph, T = 4, one task of 3 classes.

    graph matmul: (1, 2, 4, 75) outputs x 75 inputs = 45000; 1x1 conv 2 -> 4: 1200 x 2 =
    2400; temporal conv 4 -> 4, kernel 5: 1200 x 4 x 5 = 24000; head 3 x 4 = 12.
    """
    m = create_model("stgcn_tiny", in_channels=2, tasks={"a": 3}, blocks=[[4, 1]],
                     temporal_kernel=5, partitions="uniform")
    assert count_macs(m, (1, 2, 4, V)) == 45000 + 2400 + 24000 + 12 == 71412
    assert count_flops(m, (1, 2, 4, V)) == 2 * 71412
    assert count_macs(m, (3, 2, 4, V)) == 3 * 71412


def test_tiny_is_edge_sized() -> None:
    """stgcn_tiny, hard sharing, 3D input (C' = 10), T = 32: well under 1 GFLOP per window."""
    m = create_model("stgcn_tiny", in_channels=10, tasks={"action": 20, "gesture": 45})
    flops = count_flops(m, (1, 10, 32, V))
    assert flops < 1e9
    assert 40e6 < flops < 80e6  # about 56 MFLOPs; changes to the spec should show here


def test_adjacency() -> None:
    an = normalized_adjacency()
    np.testing.assert_allclose(an, an.T)
    deg = MP75.adjacency().sum(1) + 1
    i, j = 60, 61  # right index PIP -- DIP: 1 / sqrt(deg_i deg_j)
    assert an[i, j] == pytest.approx(1 / math.sqrt(deg[i] * deg[j]))
    uni = partitioned_adjacency("uniform")
    assert uni.shape == (1, V, V)
    sp = partitioned_adjacency("spatial")
    assert sp.shape == (3, V, V)
    np.testing.assert_allclose(sp.sum(0), an.T, atol=1e-7)  # a split of the same matrix
    # Joint 61 (index DIP) receives from 60 (closer to the shoulders) via the centripetal
    # partition; 59 (index MCP) receives from 60 (farther) via the centrifugal one.
    assert sp[1, 60, 61] > 0 and sp[2, 60, 59] > 0 and sp[0, 60, 60] > 0
    with pytest.raises(ValueError, match="unknown graph partition"):
        partitioned_adjacency("distance")


def test_soft_sharing_starts_near_identity() -> None:
    m2, m3 = _model("stgcn_tiny", "soft", 2), _model("stgcn_tiny", "soft", 3)
    n_blocks = len(MODELS["stgcn_tiny"].blocks)
    assert m2.stitch.shape == (n_blocks - 1, 2, 2)
    torch.testing.assert_close(m2.stitch[0], torch.tensor([[0.9, 0.1], [0.1, 0.9]]))
    torch.testing.assert_close(m3.stitch[1], torch.tensor([[0.9, 0.05, 0.05],
                                                           [0.05, 0.9, 0.05],
                                                           [0.05, 0.05, 0.9]]))
    assert m2.regularization().item() == 0.0


def test_learned_sharing_schedule_and_decisions() -> None:
    m = _model("stgcn_tiny", "learned", 2, share_cost=0.1)
    x = torch.randn(4, C, T, V)
    # 10 epochs, search_frac 0.7: 7 search epochs, tau 2.0 -> 0.2 geometrically.
    taus = temperature_schedule(2.0, 0.2, 7)
    assert taus[0] == 2.0 and taus[-1] == pytest.approx(0.2)
    assert taus[3] == pytest.approx(2.0 * 0.1 ** 0.5)
    m.train()
    for e in range(7):
        m.on_epoch_start(e, 10)
        assert m.tau == pytest.approx(taus[e])
    # While searching: the cost is share_cost x mean P(specific) = 0.1 x 0.5 at gate 0.
    assert m.regularization().item() == pytest.approx(0.05)
    torch.manual_seed(1)
    a = m(x)["logits_action"]
    torch.manual_seed(2)
    b = m(x)["logits_action"]
    assert not torch.allclose(a, b)  # gate noise while searching
    with torch.no_grad():
        m.gate.copy_(torch.tensor([[2.0, 3.0], [1.0, -1.0], [-2.0, 0.5], [0.1, 0.2]]))
    m.on_epoch_start(7, 10)  # search over: the decision is frozen
    assert m.decided.tolist() == [[1, 1], [1, 0], [0, 1], [1, 1]]
    assert m.regularization().item() == 0.0
    assert m.sharing_decisions() == {
        "action": ["shared", "shared", "specific", "shared"],
        "gesture": ["shared", "specific", "shared", "shared"]}
    with torch.no_grad():
        m.gate.fill_(-5.0)  # the gates no longer matter once frozen
    m.eval()
    assert m.sharing_decisions()["action"][0] == "shared"
    with torch.no_grad():
        torch.testing.assert_close(m(x), m(x))  # eval: deterministic
    again = create_model(**m.model_args)
    again.load_state_dict(m.state_dict())
    again.eval()
    assert again.sharing_decisions() == m.sharing_decisions()
    assert again.share_probabilities()["action"][0] == pytest.approx(1 / (1 + math.exp(5)))


def test_batch_norm_statistics_restart_each_epoch() -> None:
    """Eval statistics are the plain average over the last epoch's batches."""
    m = _model("stgcn_tiny", "hard", 1, data_bn=False)
    bn = m.trunk[0].gcn.bn
    m.train()
    m.on_epoch_start(0, 2)
    for _ in range(3):
        m(torch.randn(2, C, T, V) + 5)
    assert bn.num_batches_tracked.item() == 3
    m.on_epoch_start(1, 2)
    assert bn.num_batches_tracked.item() == 0
    assert torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
    x1, x2 = torch.randn(2, C, T, V), torch.randn(2, C, T, V)
    with torch.no_grad():
        m(x1)
        m(x2)
        m.eval()  # the stem's output of each batch, averaged, is what BN stored
        h1 = m.trunk[0].gcn.conv(m.trunk[0].gcn.mm(x1, m.trunk[0].gcn.A[0]))
        h2 = m.trunk[0].gcn.conv(m.trunk[0].gcn.mm(x2, m.trunk[0].gcn.A[0]))
    want = (h1.mean((0, 2, 3)) + h2.mean((0, 2, 3))) / 2
    torch.testing.assert_close(bn.running_mean, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("sharing", SHARING)
@pytest.mark.parametrize("name", sorted(MODELS))  # the jcd family: tests/test_jcd.py
def test_onnx_export_matches_torch(name: str, sharing: str) -> None:
    """opset 17, dynamic batch, plain ops only; ONNX Runtime agrees with torch to 1e-4."""
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    model = _model(name, sharing, 2)
    model.train()
    model.on_epoch_start(0, 10)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))  # non-zero adjacency correction, stitches
        model(torch.randn(8, C, 16, V))  # batch-norm statistics that fit these weights
    if sharing == "learned":
        with torch.no_grad():
            model.gate[:, 0] = 1.0  # action shares, gesture goes its own way
    model.eval()
    x = torch.randn(2, C, 16, V)
    names = list(model(x))
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("error", torch.jit.TracerWarning)  # no data-dependent tracing
        torch.onnx.export(model, (x,), f, dynamo=False, opset_version=17,
                          input_names=["input"], output_names=names,
                          dynamic_axes={"input": {0: "batch"}, **{k: {0: "batch"} for k in names}})
    proto = onnx.load_from_string(f.getvalue())
    ops = {n.op_type for n in proto.graph.node}
    assert ops <= {"Conv", "MatMul", "Add", "Mul", "Relu", "Concat", "GlobalAveragePool",
                   "Flatten", "Gemm", "Identity"}, ops
    sess = ort.InferenceSession(f.getvalue(), providers=["CPUExecutionProvider"])
    xb = torch.randn(5, C, 16, V)  # another batch size than at export
    got = sess.run(names, {"input": xb.numpy()})
    with torch.no_grad():
        ref = model(xb)
    assert max(float(v.abs().max()) for v in ref.values()) < 100  # a tolerance that means something
    for k, g in zip(names, got):
        np.testing.assert_allclose(g, ref[k].numpy(), rtol=0, atol=1e-4, err_msg=k)


def test_per_task_export_of_a_soft_model() -> None:
    """``model.subset([task])`` exports a graph with that head only, smaller than the full one."""
    ort = pytest.importorskip("onnxruntime")
    model = _model("stgcn_tiny", "soft", 2).eval()
    x = torch.randn(2, C, 16, V)
    sizes = {}
    for tasks in (["action", "gesture", "task_logits"], ["gesture"]):
        f = io.BytesIO()
        sub = model.subset(tasks)
        with torch.no_grad():
            names = list(sub(x))  # the dict's keys, in order: the exporter's output names
        torch.onnx.export(sub, (x,), f, dynamo=False, opset_version=17,
                          input_names=["input"], output_names=names,
                          dynamic_axes={"input": {0: "batch"}})
        sess = ort.InferenceSession(f.getvalue(), providers=["CPUExecutionProvider"])
        assert [o.name for o in sess.get_outputs()] == [f"logits_{t}" if t != "task_logits"
                                                        else t for t in tasks]
        got = sess.run(None, {"input": x.numpy()})[0 if tasks == ["gesture"] else 1]
        with torch.no_grad():
            np.testing.assert_allclose(got, model(x)["logits_gesture"].numpy(), atol=1e-4)
        sizes[len(tasks)] = len(f.getvalue())
    assert sizes[1] < sizes[3]
    assert not model.training  # exporting the wrapper left the model in eval mode
    with pytest.raises(KeyError, match="unknown tasks"):
        model.subset(["walk"])
