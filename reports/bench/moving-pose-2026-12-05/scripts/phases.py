# Usage: .venv/bin/python reports/bench/moving-pose-2026-12-05/scripts/phases.py VIDEO MAX_FRAMES FIRST_FRAME
"""Events and rough CPU of `auto` with the pose thinned while the body moves (moving_every=2),
the carried pose held or extrapolated (extrapolate), interleaved frame by frame."""
import sys, time, numpy as np, cv2
REPO = __import__("pathlib").Path(__file__).resolve().parents[4]
sys.path.insert(0, str(REPO))
from edge.frontend.landmarks import Landmarker
from edge.frontend.policy import FrontEndPolicy
from edge.runtime.pipeline import Pipeline
from edge.bench.frontend import run_stream, event_agreement
path, n, off = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
from itertools import islice
from edge.frontend.sources import open_source
with open_source(path) as src:  # RGB frames, as the runtime reads them
    fr = [f.image for f in islice(src, n)]
fr = fr[off:]
A = dict(task="auto")
cfg = {"full": "full", "now": FrontEndPolicy(**A),
       "m2": FrontEndPolicy(**A, moving_every=2),
       "m2x": FrontEndPolicy(**A, moving_every=2, extrapolate=True),
       "m2x_s3": FrontEndPolicy(**A, moving_every=2, still_every=3, extrapolate=True)}
lms = {k: Landmarker(policy=p) for k, p in cfg.items()}
runs = {k: [] for k in lms}; cpu = {k: 0.0 for k in lms}
for i, im in enumerate(fr):
    ks = list(lms); k0 = i % len(ks)
    for k in ks[k0:] + ks[:k0]:
        c = time.process_time(); runs[k].append(lms[k].process(im, i / 30, i)); cpu[k] += time.process_time() - c
model = str(REPO / "edge/assets/model/model.int8.onnx")
res = {}
for k, frames in runs.items():
    with Pipeline.from_model(model, task="auto", backend="onnxruntime") as pipe:
        res[k] = run_stream(pipe, frames)
for k in runs:
    c = lms[k].stages.counts
    print(f"{k:8s} cpu/full {cpu[k]/cpu['full']:.2f} pose {c['pose']/c['frames']:.0%} hands {c['hands']/c['frames']:.0%}  ",
          event_agreement(res["full"][0], res[k][0], (res["full"][1], res[k][1])).note(), flush=True)
for lm in lms.values():
    lm.close()
