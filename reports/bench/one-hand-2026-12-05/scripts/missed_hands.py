# Usage: .venv/bin/python reports/bench/one-hand-2026-12-05/scripts/missed_hands.py VIDEO MAX_FRAMES
"""Hands missed against the full front end: old auto (two-hand landmarker, pose every 3rd
frame while still) vs new auto, on Megamind; where the misses are."""
import sys, numpy as np, cv2
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[4]))  # the repo
from edge.frontend.landmarks import Landmarker
from edge.frontend.policy import FrontEndPolicy
from edge.bench.frontend import hand_deviation
cap = cv2.VideoCapture(sys.argv[1]); fr = []
while len(fr) < int(sys.argv[2]):
    ok, im = cap.read()
    if not ok: break
    fr.append(cv2.cvtColor(im, cv2.COLOR_BGR2RGB))
lms = {"full": Landmarker(), "old": Landmarker(policy=FrontEndPolicy(task="auto", still_every=3)),
       "new": Landmarker(policy="auto")}
lms["old"]._hand1.close(); lms["old"]._hand1 = None
runs = {k: [] for k in lms}; ran = {k: [] for k in lms}
for i, im in enumerate(fr):
    for k, lm in lms.items():
        runs[k].append(lm.process(im, i / 30, i)); ran[k].append(lm.last_plan.hands)
for k, r in hand_deviation(runs, "Megamind").items():
    print(k, round(r.value, 4), r.note)
for k in ("old", "new"):
    miss_ran = miss_skip = 0
    for a, b, rn in zip(runs["full"], runs[k], ran[k]):
        for s in (slice(33, 54), slice(54, 75)):
            if a.mask[s].any() and not b.mask[s].any():
                if rn: miss_ran += 1
                else: miss_skip += 1
    print(k, "missed while the hand stage ran:", miss_ran, "while skipped:", miss_skip)
