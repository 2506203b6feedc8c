"""Convert MediaPipe's pose and hand landmark models (.tflite in the .task bundles) to ONNX.

Usage: skelmtl convert-landmarks [-o DIR] [--pose-model P.task] [--hand-model H.task]
       skelmtl convert-landmarks --check [-o DIR] [--image PATH ...]   (runtime venv)

A one-time step for the ONNX front end (:mod:`edge.frontend.onnx_landmarks`). It reads the pinned
``pose_landmarker_full.task`` and ``hand_landmarker.task`` (found by
:func:`edge.frontend.model_files.resolve_model`; a ``.task`` file is a zip), takes out
``pose_detector.tflite``, ``pose_landmarks_detector.tflite`` and
``hand_landmarks_detector.tflite``, converts each with tf2onnx, checks each ONNX model
against the TFLite interpreter on the same random input, and writes the three ``.onnx``
files atomically into ``DIR`` (default: :func:`edge.frontend.onnx_landmarks.default_model_dir`,
next to the ``.task`` cache). The palm detector is not converted: the ONNX front end
places hands from the body.

The tools (tf2onnx and tensorflow-cpu) are the ``convert`` extra and belong in a venv of
their own, never in the runtime's::

    python3 -m venv /work/convert-venv
    /work/convert-venv/bin/pip install -e '.[convert]'
    /work/convert-venv/bin/skelmtl convert-landmarks

Why tf2onnx needs help with ``pose_detector.tflite``: its convolution weights are stored
sparse (TFLite's sparsity format, undone at run time by ``DENSIFY`` operators), which
tf2onnx 1.17 can neither parse ("cannot reshape array of size 96 into shape
(16,1,1,24)") nor convert. The TFLite interpreter densifies them itself; the dense values
are read from the outputs of those ``DENSIFY`` operators after one invocation and put in
as constants, so each ``DENSIFY`` becomes an ``Identity`` of its dense weights.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.core.atomic import atomic_write
from edge.core.errors import SkelmtlError

LOG = logging.getLogger(__name__)

# (bundle kind, member of the .task zip, ONNX file written)
MEMBERS: tuple[tuple[str, str, str], ...] = (
    ("pose", "pose_detector.tflite", "pose_detector.onnx"),
    ("pose", "pose_landmarks_detector.tflite", "pose_landmarks_detector.onnx"),
    ("hand", "hand_landmarks_detector.tflite", "hand_landmarks_detector.onnx"),
)
OPSET = 17
# The ONNX model must reproduce TFLite's outputs to this (max abs difference, relative to
# the output's own range): fp32 ONNX vs TFLite's fp32 kernels on fp16-stored weights.
MAX_REL_DIFF = 1e-3


class ConvertError(SkelmtlError, RuntimeError):
    """A model that cannot be converted, or whose conversion does not match TFLite."""


@dataclass(frozen=True)
class Converted:
    """One converted model.

    Attributes:
        path: the ``.onnx`` file written.
        densified: sparse weight tensors that were densified.
        max_rel_diff: max abs difference to TFLite over all outputs / the output range.
    """

    path: Path
    densified: int
    max_rel_diff: float


def _import_tools() -> tuple[Any, Any]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
        import tf2onnx
    except ImportError as e:
        raise ConvertError(f"converting the landmark models needs tf2onnx and tensorflow-cpu "
                           f"({e}); install them in a separate venv: pip install "
                           "'skelmtl[convert]'") from None
    return tf, tf2onnx


def extract_tflite(task: Path, member: str) -> bytes:
    """The bytes of ``member`` inside a ``.task`` bundle (a zip)."""
    try:
        with zipfile.ZipFile(task) as z:
            return z.read(member)
    except (zipfile.BadZipFile, KeyError, OSError) as e:
        raise ConvertError(f"{task}: cannot read {member} from the bundle ({e})") from None


def _interpreter(tf: Any, tflite: bytes) -> Any:
    it = tf.lite.Interpreter(
        model_content=tflite, experimental_preserve_all_tensors=True,
        # Without the default (XNNPACK) delegate the DENSIFY operators stay visible.
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    return it


def _random_inputs(it: Any, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.uniform(0.0, 1.0, d["shape"]).astype(d["dtype"]) for d in it.get_input_details()]


def dense_weights(tf: Any, tflite: bytes) -> dict[str, np.ndarray]:
    """Name of each ``DENSIFY`` operator's (sparse) input -> its dense value, read from the
    operator's output after one invocation.

    Keyed by the input: a DENSIFY output often has the same name as its input in the
    .tflite file, and tf2onnx renames such duplicates."""
    it = _interpreter(tf, tflite)
    for d, x in zip(it.get_input_details(), _random_inputs(it)):
        it.set_tensor(d["index"], x)
    it.invoke()
    names = {t["index"]: t["name"] for t in it.get_tensor_details()}
    out = {}
    for op in it._get_ops_details():
        if op["op_name"] == "DENSIFY":
            out[names[int(op["inputs"][0])]] = np.array(it.get_tensor(int(op["outputs"][0])))
    return out


@contextmanager
def _densify_patch(tf2onnx: Any, dense: dict[str, np.ndarray]) -> Iterator[None]:
    """Make tf2onnx accept sparse constants and turn DENSIFY into Identity of ``dense``."""
    from tf2onnx import tflite_utils
    from tf2onnx.handler import tfl_op

    real = tflite_utils.tensor_util

    class _Lenient:
        # A sparse constant's buffer holds fewer values than its shape: its placeholder
        # value does not matter, DENSIFY below swaps in the dense weights.
        @staticmethod
        def MakeNdarray(t: Any) -> np.ndarray:
            try:
                return np.asarray(real.MakeNdarray(t))
            except ValueError:
                return np.zeros([d.size for d in t.tensor_shape.dim], np.float32)

    @tfl_op("TFL_DENSIFY")
    class _Densify:
        @classmethod
        def version_1(cls, ctx: Any, node: Any, **kwargs: Any) -> None:
            name = node.input[0]
            if name not in dense:
                raise ConvertError(f"DENSIFY of {name!r}: no dense value was read")
            const = ctx.make_const(tf2onnx.utils.make_name(name + "_dense"), dense[name])
            ctx.replace_inputs(node, [const.output[0]])
            node.type = "Identity"

    tflite_utils.tensor_util = _Lenient
    try:
        yield
    finally:
        tflite_utils.tensor_util = real


def convert_tflite(tflite: bytes, name: str, opset: int = OPSET) -> tuple[bytes, int]:
    """One ``.tflite`` model -> serialized ONNX and the number of densified tensors.

    Raises:
        ConvertError: tf2onnx fails (its message, which names unsupported operators).
    """
    tf, tf2onnx = _import_tools()
    dense = dense_weights(tf, tflite)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / name
        src.write_bytes(tflite)
        try:
            with _densify_patch(tf2onnx, dense):
                model, _ = tf2onnx.convert.from_tflite(str(src), opset=opset)
        except Exception as e:  # tf2onnx raises plain exceptions with the op names
            raise ConvertError(f"{name}: tf2onnx failed: {type(e).__name__}: {e}") from None
    return model.SerializeToString(), len(dense)


def compare_with_tflite(tflite: bytes, onnx_bytes: bytes, name: str, seed: int = 1) -> float:
    """Max abs difference between ONNX Runtime and TFLite on one random input, relative
    to each output's range (the worst output)."""
    import onnxruntime as ort

    tf, _ = _import_tools()
    it = _interpreter(tf, tflite)
    xs = _random_inputs(it, seed)
    for d, x in zip(it.get_input_details(), xs):
        it.set_tensor(d["index"], x)
    it.invoke()
    want = {d["name"]: it.get_tensor(d["index"]) for d in it.get_output_details()}
    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    got = sess.run(None, {i.name: x for i, x in zip(sess.get_inputs(), xs)})
    worst = 0.0
    for o, g in zip(sess.get_outputs(), got):
        w = want.get(o.name)
        if w is None or w.shape != g.shape:
            raise ConvertError(f"{name}: ONNX output {o.name} {g.shape} has no TFLite "
                               f"counterpart of that shape")
        span = float(np.ptp(w)) or 1.0
        worst = max(worst, float(np.abs(w - g).max()) / span)
    return worst


def convert_landmark_models(out_dir: Path, pose_task: str | os.PathLike[str] | None = None,
                            hand_task: str | os.PathLike[str] | None = None,
                            offline: bool | None = None) -> list[Converted]:
    """Convert the three models of :data:`MEMBERS` into ``out_dir``.

    Raises:
        ConvertError: a model that does not convert or does not match TFLite.
    """
    from edge.frontend.model_files import resolve_model

    tasks = {"pose": resolve_model("pose", pose_task, offline=offline),
             "hand": resolve_model("hand", hand_task, offline=offline)}
    out_dir.mkdir(parents=True, exist_ok=True)
    done = []
    for kind, member, filename in MEMBERS:
        tflite = extract_tflite(tasks[kind], member)
        onnx_bytes, densified = convert_tflite(tflite, member)
        diff = compare_with_tflite(tflite, onnx_bytes, member)
        if diff > MAX_REL_DIFF:
            raise ConvertError(f"{member}: the ONNX model differs from TFLite by {diff:.2e} "
                               f"of the output range (allowed {MAX_REL_DIFF:.0e})")
        path = out_dir / filename
        atomic_write(path, onnx_bytes)
        LOG.info("%s -> %s (%d densified tensors, max diff to TFLite %.1e of range)",
                 member, path, densified, diff)
        done.append(Converted(path, densified, diff))
    return done


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``skelmtl convert-landmarks``."""
    parser.add_argument("-o", "--output-dir", type=Path, default=None,
                        help="folder of the .onnx files (default: the model cache's onnx/)")
    parser.add_argument("--pose-model", default=None, help="pose_landmarker_full.task")
    parser.add_argument("--hand-model", default=None, help="hand_landmarker.task")
    parser.add_argument("--offline", action="store_true", help="never download the .task files")
    parser.add_argument("--check", action="store_true",
                        help="do not convert: compare the converted models (in -o) with the "
                             "Tasks API on real frames, and time both on the carphone clip "
                             "(needs the runtime venv: mediapipe, onnxruntime, cv2)")
    parser.add_argument("--image", action="append", default=[],
                        help="with --check: another image to compare on (repeatable)")
    parser.add_argument("--onnx-option", action="append", default=[], metavar="KEY=VALUE",
                        help="with --check: an OnnxLandmarker keyword (a number), e.g. "
                             "hand_refine=0 or hand_from_pose_scale=2.2 (repeatable)")
    parser.add_argument("--threads", type=int, default=1,
                        help="with --check: ONNX Runtime threads per model (pin the process "
                             "with taskset -c 0 to give MediaPipe one core too)")


def parse_options(pairs: list[str]) -> dict[str, float]:
    """``["hand_refine=0", ...]`` -> ``{"hand_refine": 0.0, ...}``.

    Raises:
        ConvertError: a pair that is not KEY=NUMBER.
    """
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        try:
            if not sep or not key:
                raise ValueError
            out[key] = float(value)
        except ValueError:
            raise ConvertError(f"--onnx-option {pair!r}: expected KEY=NUMBER") from None
    return out


def run_check(model_dir: Path, images: list[str], threads: int = 1,
              options: dict[str, float] | None = None) -> int:
    """Print the comparison table and the per-stage times; 0 when every frame meets the bar.

    Args:
        options: extra :class:`~edge.frontend.onnx_landmarks.OnnxLandmarker` keywords.
    """
    opts: dict[str, Any] = dict(options or {})
    from calibration import landmarks_check as lc
    from edge.assets import sample_video
    from edge.frontend.landmarks import Landmarker
    from edge.frontend.onnx_landmarks import OnnxLandmarker

    frames = lc.real_frames(images)
    timings: dict[str, list[dict[str, float]]] = {"tasks": [], "onnx": []}

    def timed(name: str, lm: Any) -> lc.Process:
        def process(img: np.ndarray) -> Any:
            frame = lm.process(img)
            timings[name].append(dict(lm.last_timings))
            return frame
        return process

    with OnnxLandmarker(mode="image", model_dir=model_dir, threads=threads,
                                        **opts) as onnx, \
            Landmarker(mode="image") as tasks:
        checks = lc.check_frames(frames, timed("onnx", onnx), timed("tasks", tasks))
    print(lc.format_checks(checks))
    for name, rows in timings.items():
        # check_frames runs the Tasks API twice per frame (the JPEG copy): the originals
        rows = rows[::2] if name == "tasks" else rows
        print(f"image mode, median ms per frame, {name}: "
              + _fmt({k: float(np.median([r[k] for r in rows])) for k in rows[0]}))
    failed = [c.name for c in checks if not lc.meets_bar(c)]
    print(f"\n{len(checks) - len(failed)} of {len(checks)} frames within the bar"
          + (f"; over it: {', '.join(failed)}" if failed else ""))
    video = sample_video()
    if video is not None:
        clip = lc.read_video(video)
        print(f"\nper-stage median ms per frame, {video.name} ({len(clip)} frames, video mode, "
              "the two front ends taking turns frame by frame):")
        with Landmarker(mode="video") as tasks, \
                OnnxLandmarker(mode="video", model_dir=model_dir, threads=threads,
                                             **opts) as onnx:
            timed_clip = lc.time_stages({"tasks": tasks, "onnx": onnx}, clip)
        (t_tasks, f_tasks), (t_onnx, f_onnx) = timed_clip["tasks"], timed_clip["onnx"]
        print("  tasks:", _fmt(t_tasks))
        print("  onnx: ", _fmt(t_onnx))
        print("  onnx vs tasks, both tracking, mean px per part:",
              _fmt(lc.clip_errors(f_onnx, f_tasks)),
              f"(hands found in frames: onnx {sum(f.num_hands for f in f_onnx)}, "
              f"tasks {sum(f.num_hands for f in f_tasks)})")
    return 1 if failed else 0


def _fmt(t: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in t.items())


def main(args: argparse.Namespace) -> int:
    """Convert (one line per written file on stdout), or compare with ``--check``."""
    from edge.frontend.onnx_landmarks import default_model_dir

    if LOG.level == logging.NOTSET:
        LOG.setLevel(logging.INFO)
    out = args.output_dir or default_model_dir()
    if args.check:
        return run_check(out, args.image, args.threads, parse_options(args.onnx_option))
    for c in convert_landmark_models(out, args.pose_model, args.hand_model,
                                     offline=args.offline or None):
        print(c.path)
    return 0
