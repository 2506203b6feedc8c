# Usage: .venv/bin/python reports/bench/one-hand-2026-12-05/scripts/image_mode.py VIDEO
"""Frames with a hand, hand landmarker with num_hands=1 vs 2, image mode (a palm search on every frame)."""
import sys, numpy as np, cv2
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[4]))  # the repo
from edge.frontend.landmarks import _import_mediapipe
from edge.frontend.model_files import resolve_model
mp = _import_mediapipe()
from mediapipe.tasks.python import BaseOptions, vision
cap = cv2.VideoCapture(sys.argv[1]); fr = []
while len(fr) < 270:
    ok, im = cap.read()
    if not ok: break
    fr.append(cv2.cvtColor(im, cv2.COLOR_BGR2RGB))
h = {n: vision.HandLandmarker.create_from_options(vision.HandLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(resolve_model("hand", None))),
        running_mode=vision.RunningMode.IMAGE, num_hands=n)) for n in (1, 2)}
c = {1: [], 2: []}
for i, im in enumerate(fr):
    img = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(im))
    for n in (1, 2): c[n].append(len(h[n].detect(img).hand_landmarks))
a, b = np.array(c[1]), np.array(c[2])
print("image mode: frames with a hand: num_hands=1", (a > 0).sum(), " num_hands=2", (b > 0).sum(),
      " frames where 2 finds some hand and 1 none:", ((b > 0) & (a == 0)).sum(), "of", len(a))
