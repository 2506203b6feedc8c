"""Runs NVIDIA ModelOpt's ONNX quantizer in a child process for ``skelmtl calibrate
--quantizer modelopt`` (:func:`calibration.quantize.modelopt_quantize`).

Usage (the parent writes the job file): python -m calibration.modelopt_child JOB.json

ModelOpt patches ONNX Runtime's quantization modules for the whole process when it runs
(its calibrators, the QDQ operator registry). In a child process that leaves the
caller's onnxruntime as it was, so ``calibrate`` with the default quantizer still works
afterwards in the same Python session.

The job file holds ``model``, ``output``, ``calib`` (an ``.npy`` of ``(N, C', T, V)``
windows), ``input`` (the graph input's name), ``method`` (ModelOpt's: ``entropy`` or
``max``), ``shapes`` (``calibration_shapes``), ``op_types`` and ``exclude``. The child
prints one JSON line, ``{"modelopt": version}``; on failure it exits 1 with the error on
stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def run(job: dict) -> str:
    """Quantize as ``job`` says; returns ModelOpt's version."""
    import modelopt
    import numpy as np
    from modelopt.onnx.quantization import quantize

    calib = np.load(job["calib"])
    quantize(job["model"], quantize_mode="int8", calibration_data={job["input"]: calib},
             calibration_method=job["method"], calibration_eps=["cpu"],
             calibration_shapes=job["shapes"], op_types_to_quantize=list(job["op_types"]),
             nodes_to_exclude=list(job["exclude"]), output_path=job["output"],
             # ModelOpt's default turns the float parts to FP16; the CPU runtime wants FP32.
             high_precision_dtype="fp32", log_level="WARNING")
    return str(getattr(modelopt, "__version__", "unknown"))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m calibration.modelopt_child JOB.json", file=sys.stderr)
        return 2
    job = json.loads(Path(args[0]).read_text())
    try:
        # ModelOpt and ONNX Runtime print progress to stdout; stdout carries the result.
        real_stdout, sys.stdout = sys.stdout, sys.stderr
        try:
            version = run(job)
        finally:
            sys.stdout = real_stdout
    except Exception as e:  # reported to the parent, which raises
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"modelopt": version}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
