"""The agreements docs/jetson.md quotes for skelmtl selfcheck's 83 bundled windows.

Usage: PYTHONPATH=. .venv/bin/python reports/selfcheck-agreement-2026-12-05/agree.py [MODEL_DIR]

ONNX Runtime on the INT8 model against FP32 (quantization's share), and the INT8 model as
build-engine prepares it for TensorRT 8.5 and 10.3, run by ONNX Runtime (the arithmetic
tests/fake_tensorrt simulates), against the unprepared INT8 model (selfcheck's gate).
"""
import copy
import sys

import onnx
import onnxruntime as ort

import calibration.trt_prepare as tp
from calibration.selfcheck import bundled_windows, top1_agreement
from calibration.trt.versions import profile_for
from edge.backends import load_backend

d = sys.argv[1] if len(sys.argv) > 1 else "edge/assets/model"
fp32 = load_backend(d + "/model.onnx", "onnxruntime")
x = bundled_windows(fp32.meta)
ref = fp32.infer(x)
i8 = load_backend(d + "/model.int8.onnx", "onnxruntime").infer(x)
print(f"{len(x)} windows; ONNX Runtime INT8 vs FP32:", top1_agreement(i8, ref))
m = onnx.load(d + "/model.int8.onnx")
for v in ("8.5.2.2", "10.3.0"):
    mm = copy.deepcopy(m)
    tp.prepare_for_tensorrt(mm, profile_for(v), tp.PrepareOptions())
    s = ort.InferenceSession(mm.SerializeToString(), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in s.get_outputs()], s.run(None, {s.get_inputs()[0].name: x})))
    print(f"prepared for {v} vs the INT8 model:", top1_agreement(got, i8))
