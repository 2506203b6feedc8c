# Usage: .venv/bin/python reports/bench/moving-pose-2026-12-05/scripts/pose_scale.py VIDEO MAX_FRAMES
"""Tasks API pose and one-hand CPU time per call on the frame as it is, halved and at 0.35, interleaved."""
import sys, time
import numpy as np, cv2
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[4]))
from edge.frontend.landmarks import _import_mediapipe, _pose_arrays
from edge.frontend.model_files import resolve_model
mp = _import_mediapipe()
from mediapipe.tasks.python import BaseOptions, vision
path, nmax = sys.argv[1], int(sys.argv[2])
from itertools import islice
from edge.frontend.sources import open_source
with open_source(path) as src:  # RGB frames, as the runtime reads them
    frames = [f.image for f in islice(src, nmax)]
print(frames[0].shape)
V = vision.RunningMode.VIDEO
def pose():
    return vision.PoseLandmarker.create_from_options(vision.PoseLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(resolve_model("pose", None))), running_mode=V, num_poses=1))
def hand():
    return vision.HandLandmarker.create_from_options(vision.HandLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(resolve_model("hand", None))), running_mode=V, num_hands=1))
scales = [1.0, 0.5, 0.35]
P = {s: pose() for s in scales}; H = {s: hand() for s in scales}
cpu = {s: [] for s in scales}; hcpu = {s: [] for s in scales}; out = {s: [] for s in scales}; hout={s: [] for s in scales}
for i, im in enumerate(frames):
    ts = int(i * 1000 / 30)
    for s in (scales if i % 2 else scales[::-1]):
        c0 = time.process_time()
        x = im if s == 1.0 else cv2.resize(im, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        img = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(x))
        r = P[s].detect_for_video(img, ts)
        c1 = time.process_time()
        rh = H[s].detect_for_video(img, ts)
        c2 = time.process_time()
        cpu[s].append((c1 - c0) * 1e3); hcpu[s].append((c2-c1)*1e3)
        b = _pose_arrays(r); out[s].append(None if b is None else b[0][:, :2])
        hout[s].append([np.array([(q.x, q.y) for q in l]) for l in rh.hand_landmarks])
W, Hh = frames[0].shape[1], frames[0].shape[0]
for s in scales:
    d = [np.abs((a - b) * [W, Hh]).mean() for a, b in zip(out[s], out[1.0]) if a is not None and b is not None]
    hd = [np.abs((a[0] - b[0]) * [W, Hh]).mean() for a, b in zip(hout[s], hout[1.0]) if a and b]
    nh = sum(bool(a) for a in hout[s])
    print(f"scale {s}: pose cpu mean {np.mean(cpu[s]):.1f} ms, hand cpu {np.mean(hcpu[s]):.1f}; pose px vs full-res {np.mean(d) if d else 0:.2f} (n={len(d)}), hands found {nh}, hand px {np.mean(hd) if hd else 0:.2f}")
