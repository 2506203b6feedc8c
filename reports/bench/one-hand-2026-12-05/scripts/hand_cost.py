# Usage: .venv/bin/python reports/bench/one-hand-2026-12-05/scripts/hand_cost.py VIDEO MAX_FRAMES
"""Hand stage cost with num_hands=1 vs 2 (Tasks API, VIDEO mode), interleaved frame by frame."""
import sys, time
import numpy as np, cv2
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[4]))  # the repo
from edge.frontend.landmarks import _import_mediapipe, _pose_arrays
from edge.frontend.model_files import resolve_model
from edge.frontend.policy import hands_in_play, policy_for_task
import inspect
mp = _import_mediapipe()
from mediapipe.tasks.python import BaseOptions, vision

path, nmax = sys.argv[1], int(sys.argv[2])
cap = cv2.VideoCapture(path); frames = []
while len(frames) < nmax:
    ok, im = cap.read()
    if not ok: break
    frames.append(cv2.cvtColor(im, cv2.COLOR_BGR2RGB))
V = vision.RunningMode.VIDEO
def hand(n):
    return vision.HandLandmarker.create_from_options(vision.HandLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(resolve_model("hand", None))),
        running_mode=V, num_hands=n))
pose = vision.PoseLandmarker.create_from_options(vision.PoseLandmarkerOptions(
    base_options=BaseOptions(model_asset_path=str(resolve_model("pose", None))), running_mode=V, num_poses=1))
h = {1: hand(1), 2: hand(2)}
wall = {1: [], 2: []}; cpu = {1: [], 2: []}; found = {1: [], 2: []}; xy = {1: [], 2: []}
wr = []
print(inspect.signature(hands_in_play))
for i, im in enumerate(frames):
    img = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(im))
    ts = int(i * 1000 / 30)
    b = _pose_arrays(pose.detect_for_video(img, ts))
    if b is None: wr.append(-1)
    else:
        p, v = b
        wr.append(int(sum(v[j] >= 0.5 and -0.05 <= p[j,0] <= 1.05 and -0.05 <= p[j,1] <= 1.05 for j in (15, 16))))
    order = (1, 2) if i % 2 else (2, 1)
    for n in order:
        t0, c0 = time.perf_counter(), time.process_time()
        r = h[n].detect_for_video(img, ts)
        wall[n].append((time.perf_counter() - t0) * 1e3); cpu[n].append((time.process_time() - c0) * 1e3)
        found[n].append(len(r.hand_landmarks))
        xy[n].append([np.array([(q.x, q.y) for q in l]) for l in r.hand_landmarks])
wr = np.array(wr)
for n in (1, 2):
    f = np.array(found[n])
    print(f"num_hands={n}: wall median {np.median(wall[n]):.1f} mean {np.mean(wall[n]):.1f} ms; cpu mean {np.mean(cpu[n]):.1f} ms; "
          f"frames with 0/1/2 hands: {(f==0).mean():.2f}/{(f==1).mean():.2f}/{(f==2).mean():.2f}")
    for k in (0, 1, 2):
        sel = f == k
        if sel.any(): print(f"   when it finds {k}: cpu mean {np.mean(np.array(cpu[n])[sel]):.1f} ms  wall median {np.median(np.array(wall[n])[sel]):.1f}")
f2 = np.array(found[2])
print("visible wrists (pose) -1/0/1/2:", [(wr==k).mean().round(2) for k in (-1,0,1,2)])
print("num_hands=2 finds 2 hands, by visible wrists:", {k: int(((f2==2)&(wr==k)).sum()) for k in (-1,0,1,2)}, "of", {k: int((wr==k).sum()) for k in (-1,0,1,2)})
# agreement of the one hand: when h2 finds >=1 and h1 finds 1, is h1's hand one of h2's?
d = []
for a, b in zip(xy[1], xy[2]):
    if a and b:
        d.append(min(np.abs(a[0]-bb).mean() for bb in b))
print("h1 hand vs nearest h2 hand, mean abs (norm img):", np.round(np.percentile(d, [50, 95, 100]), 4) if d else None, len(d))
