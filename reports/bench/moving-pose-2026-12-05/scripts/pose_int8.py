# Usage: .venv/bin/python reports/bench/moving-pose-2026-12-05/scripts/pose_int8.py   (needs skelmtl convert-landmarks output in ~/.cache/skelmtl/mediapipe/onnx)
"""Time and error of ONNX Runtime static INT8 (QDQ, per channel) on the converted pose landmark model, 20 Megamind frames each for calibration and test."""
import os, numpy as np, cv2, time, onnxruntime as ort, sys
from onnxruntime.quantization import quantize_static, CalibrationDataReader, QuantType, QuantFormat
src = os.path.expanduser("~/.cache/skelmtl/mediapipe/onnx/pose_landmarks_detector.onnx")
cap = cv2.VideoCapture("/usr/share/doc/opencv-doc/examples/data/Megamind.avi"); fr=[]
while len(fr) < 60:
    ok, im = cap.read()
    if not ok: break
    fr.append(cv2.cvtColor(im, cv2.COLOR_BGR2RGB))
s = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
inp = s.get_inputs()[0]; print(inp.name, inp.shape, [o.name for o in s.get_outputs()])
# crop a square around the centre, 256x256, [0,1]
def prep(im):
    h, w = im.shape[:2]; c = min(h, w); y0=(h-c)//2; x0=(w-c)//2
    return (cv2.resize(im[y0:y0+c, x0:x0+c], (256, 256)).astype(np.float32) / 255.0)[None]
X = [prep(f) for f in fr]
class R(CalibrationDataReader):
    def __init__(s): s.it = iter(X[::3])
    def get_next(s):
        x = next(s.it, None); return None if x is None else {inp.name: x}
from onnxruntime.quantization.shape_inference import quant_pre_process
quant_pre_process(src, "/tmp/pose_int8_pre.onnx")
quantize_static("/tmp/pose_int8_pre.onnx", "/tmp/pose_int8_int8.onnx", R(), quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
o = ort.SessionOptions(); o.intra_op_num_threads = 1; o.inter_op_num_threads = 1
a = ort.InferenceSession(src, o, providers=["CPUExecutionProvider"])
b = ort.InferenceSession("/tmp/pose_int8_int8.onnx", o, providers=["CPUExecutionProvider"])
ta, tb, d = [], [], []
for x in X[1::3]:
    for sess, t in ((a, ta), (b, tb)):
        c = time.process_time(); out = sess.run(None, {inp.name: x}); t.append((time.process_time()-c)*1e3)
    ya = a.run(None, {inp.name: x})[0].reshape(-1, 5)[:33, :2]; yb = b.run(None, {inp.name: x})[0].reshape(-1, 5)[:33, :2]
    d.append(np.abs(ya - yb).mean())
print(f"fp32 {np.median(ta):.1f} ms  int8 {np.median(tb):.1f} ms  landmark diff (256px input) mean {np.mean(d):.2f} px  p95 {np.percentile(d,95):.2f}")
