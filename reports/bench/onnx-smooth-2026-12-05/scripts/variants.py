"""The ONNX front end's pose against the Tasks API's on carphone in video mode, with the
smoothing filter's settings varied offline.

Usage: .venv/bin/python reports/bench/onnx-smooth-2026-12-05/scripts/variants.py

The ONNX front end runs once unsmoothed; its raw pose, visibility and next-frame ROI are
then smoothed offline per variant (exact: the ROI comes from the unsmoothed points, so the
filter does not change what the models see). Mean pixel distance over the 33 joints both
report, per frame, as calibration/landmarks_check.py's part_errors.
"""

from __future__ import annotations

import numpy as np

from calibration import landmarks_check as lc
from edge.assets import sample_video
from edge.core.layout import N_POSE
from edge.frontend.landmarks import Landmarker
from edge.frontend.onnx_landmarks import OnnxLandmarker
from edge.frontend.onnx_landmarks import smoothing as sm


def main() -> None:
    video = sample_video()
    assert video is not None
    clip = lc.read_video(video)
    tasks, raw, rects = [], [], []
    with Landmarker(mode="video") as t_lm, OnnxLandmarker(mode="video", smooth_landmarks=False,
                                                          hands=False) as o_lm:
        for i, img in enumerate(clip):
            tasks.append(t_lm.process(img, t=i / 30.0, index=i))
            raw.append(o_lm.process(img, t=i / 30.0, index=i))
            rects.append(o_lm._pose_rect)
    w, h = raw[0].image_size

    def err(frames: list[np.ndarray]) -> np.ndarray:
        return np.asarray([np.linalg.norm((a[:, :2] - b.joints[:N_POSE, :2]) * [w, h], axis=1).mean()
                           for a, b in zip(frames, tasks)])

    def smoothed(settings: sm.OneEuroSettings, scale_from: str) -> list[np.ndarray]:
        state, out = sm.PoseSmoothing(), []
        for i, (f, r) in enumerate(zip(raw, rects)):
            lms = f.joints[:N_POSE]
            if scale_from == "roi":
                scale = (r.w * w + r.h * h) / 2.0
            else:  # the legacy graph: the landmarks' own box
                px = lms[:, :2] * [w, h]
                scale = float((np.ptp(px[:, 0]) + np.ptp(px[:, 1])) / 2.0)
            o, _, state = sm.smooth_pose(state, lms, f.visibility[:N_POSE],
                                         int(round(i / 30.0 * 1e6)), scale, (w, h), settings)
            out.append(o)
        return out

    variants = {
        "none": [f.joints[:N_POSE] for f in raw],
        "tasks (0.05, 80), ROI scale": smoothed(sm.POSE_ONE_EURO, "roi"),
        "tasks (0.05, 80), landmark-box scale": smoothed(sm.POSE_ONE_EURO, "box"),
        "legacy (0.1, 40), landmark-box scale": smoothed(sm.OneEuroSettings(0.1, 40.0), "box"),
        "legacy (0.1, 40), ROI scale": smoothed(sm.OneEuroSettings(0.1, 40.0), "roi"),
    }
    print(f"{video.name}, {len(clip)} frames, {w}x{h}: ONNX pose vs Tasks API pose, px")
    print("| variant | mean | median | frames 0-9 | frames 10+ |\n|---|---|---|---|---|")
    for name, frames in variants.items():
        e = err(frames)
        print(f"| {name} | {e.mean():.2f} | {np.median(e):.2f} | {e[:10].mean():.2f} | "
              f"{e[10:].mean():.2f} |")


if __name__ == "__main__":
    main()
