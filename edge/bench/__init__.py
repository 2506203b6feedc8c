"""``skelmtl bench``: per-stage latency of the edge runtime, measured in one process.

Usage: skelmtl bench --model edge/assets/model --video carphone --out reports/bench/ [--quick]

Stages (each skipped with a recorded reason when its dependency is missing):

* ``video_decode`` -- one frame from the video (OpenCV, through :mod:`edge.frontend.sources` when
  present);
* ``landmarks_pose``, ``landmarks_hands``, ``landmarks`` -- MediaPipe Tasks pose and hand
  landmarkers in video mode on the decoded frames, and the whole front end per frame, for
  the full front end and for each routed variant (``action``, ``gesture``, ``auto``:
  :mod:`edge.frontend.policy`), interleaved frame by frame; their events are compared with
  the full front end's on the video and on the replayed clips
  (:mod:`edge.bench.frontend`);
* ``preprocess`` -- :func:`edge.core.preprocess.preprocess` of one window of real landmarks;
* ``model`` -- every backend and precision asked for (PyTorch FP32, ONNX Runtime FP32 and
  INT8, TensorRT FP16 and INT8), at batch 1 and a larger batch, their repetitions
  interleaved round-robin (within one batch size) so that a slow spell on a shared machine
  hits all alike;
* ``routing`` -- the task router deciding on one window's outputs;
* ``end_to_end`` -- one video frame through decode, landmarks and the streaming pipeline;
  ``end_to_end_replay`` -- one recorded landmark frame through the streaming pipeline.

Sweep: preprocessing and the ONNX Runtime model (FP32, and INT8 when present) over window
lengths x batch sizes. It is export-free: at each window the bench copies the model with
the input's time axis set to that window, the batch axis symbolic and the metadata's
window changed (:func:`window_copy`), and runs the copy through the normal ONNX Runtime
backend. Weights and architecture are the bundled model's, which is what "how cost grows
with work" asks about; the accuracy of a model at a window it was not trained for is not
the point. A graph that bakes the window length into a constant (a Reshape, a pooling
kernel) fails at other windows; those points are recorded as skipped with the runtime's
message.

FLOPs and parameters per window (:func:`count_onnx`) are counted from the FP32 ONNX
graph: multiply-accumulates of Conv, ConvTranspose, Gemm, MatMul and Einsum nodes, with
every tensor's shape taken from one ONNX Runtime run; FLOPs = 2 x MACs; parameters =
elements of floating-point initializers (batch norm folded by the exporter).

Environment (:func:`device_info`): CPU model, cores, Python and library versions, GPU,
CUDA, TensorRT; on a Jetson the L4T / JetPack release, ``nvpmodel`` power mode,
``jetson_clocks``, jetson-stats readings, and tegrastats power, RAM and GPU load sampled
through the whole run (:class:`TegraStats`). Anything absent is recorded as absent.

Outputs in ``--out``: ``bench.json`` (schema in :mod:`edge.bench.report`), ``bench.md``,
``bench.png``; the table is printed.

The package, one job a module: :mod:`~edge.bench.options` (options, command line),
:mod:`~edge.bench.probe` (environment), :mod:`~edge.bench.inputs` (model files, video,
clips), :mod:`~edge.bench.video` (the video pass and the front-end variants),
:mod:`~edge.bench.frontend` (their event agreement), :mod:`~edge.bench.models` (model rows,
routing, preprocessing, replay), :mod:`~edge.bench.sweep`, :mod:`~edge.bench.flops` (FLOP
counting, window copies), :mod:`~edge.bench.stats` (statistics, entries, interleaving),
:mod:`~edge.bench.ratios`, :mod:`~edge.bench.report` (the typed report, schema, files),
:mod:`~edge.bench.render` (table, markdown, plot), :mod:`~edge.bench.driver` (the run).

May import: every part of edge except commands (core, frontend, engine, backends,
runtime, assets); onnxruntime, mediapipe, OpenCV, TensorRT and matplotlib inside the
functions that need them.
"""

from __future__ import annotations

from edge.bench.driver import main, run_bench
from edge.bench.flops import count_onnx, window_copy
from edge.bench.options import (
    BACKEND_CHOICES,
    FRONT_END_VARIANTS,
    BenchError,
    BenchOptions,
    add_arguments,
    options_from_args,
)
from edge.bench.probe import TegraStats, device_info, parse_tegrastats
from edge.bench.ratios import compute_ratios
from edge.bench.report import BenchReport, Ratio, validate_report, write_report
from edge.bench.stats import Entry, interleaved_groups, interleaved_timing, make_entry, round_entry

__all__ = ["BACKEND_CHOICES", "FRONT_END_VARIANTS", "BenchError", "BenchOptions", "BenchReport",
           "Entry", "Ratio", "TegraStats", "add_arguments", "compute_ratios", "count_onnx",
           "device_info", "interleaved_groups", "interleaved_timing", "main", "make_entry",
           "options_from_args", "parse_tegrastats", "round_entry", "run_bench",
           "validate_report", "window_copy", "write_report"]
