"""The ONNX landmark front end: MediaPipe's converted models, our detection and ROI logic.

Per frame:

1. **Pose.** Without a tracked pose (first frame, ``"image"`` mode, or a lost track) the
   pose detector (224 px, letterboxed) finds the person; its hip-centre and scale
   keypoints give the pose ROI (:func:`~edge.frontend.onnx_landmarks.geometry.alignment_rect`,
   scaled 1.25, square). The pose landmark model (256 px) gives 39 landmarks (33 joints
   and 2 ROI points kept; the last 4 are unused), refined from its heatmap and projected
   back to the image. In ``"video"`` mode the ROI points give the next frame's ROI, so
   the detector runs only when the pose is lost.
2. **Hands from the body** (MediaPipe holistic's rule, without its palm detector or
   re-crop model): each side's hand ROI comes from the pose's wrist, pinky and index
   joints (:func:`~edge.frontend.onnx_landmarks.geometry.hand_rect_from_pose`, scaled
   ``hand_from_pose_scale``); the hand landmark model (224 px) runs on it, and, because
   that ROI is rough, once more on the ROI the found landmarks give
   (:func:`~edge.frontend.onnx_landmarks.geometry.hand_rect_from_landmarks`, scaled 2, shifted
   -0.1). In ``"video"`` mode a found hand's landmarks give its next ROI (one pass),
   unless its wrist has drifted away from the pose's wrist.

In ``"video"`` mode the 33 pose joints and their visibility are smoothed over time as the
Tasks API smooths them (:mod:`~edge.frontend.onnx_landmarks.smoothing`; the hands are
not, as there); the next frame's ROI comes from the unsmoothed auxiliary points, as there.

The slot of each hand is the pose side that placed it, so no handedness vote is needed;
the hand model's own handedness is kept only to count disagreements
(``hands_swapped``). Output: the same :class:`edge.frontend.landmarks.LandmarkFrame` as the
Tasks-API front end (visibility of hand joints: the hand model's presence score).

Usage: with OnnxLandmarker(model_dir="~/.cache/skelmtl/mediapipe/onnx") as lm: lm.process(rgb)
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from edge.core.layout import LEFT_HAND0, N_HAND, N_POSE, NUM_JOINTS, RIGHT_HAND0
from edge.frontend.landmarks import LandmarkerError, LandmarkFrame
from edge.frontend.onnx_landmarks import geometry as g
from edge.frontend.onnx_landmarks import smoothing as sm
from edge.frontend.onnx_landmarks.runner import TensorModel, open_tensor_model
from edge.frontend.policy import FrontEndPolicy, StagePlan, StageRouter, policy_for_task

Mode = Literal["video", "image"]

POSE_DETECTOR = "pose_detector.onnx"
POSE_LANDMARKS = "pose_landmarks_detector.onnx"
HAND_LANDMARKS = "hand_landmarks_detector.onnx"
MODEL_FILES = (POSE_DETECTOR, POSE_LANDMARKS, HAND_LANDMARKS)

# Pose joints that place each hand: (wrist, pinky, index), the subject's sides.
HAND_FROM_POSE = {"left": (15, 17, 19), "right": (16, 18, 20)}
_AUX_START, _AUX_END = 33, 34  # the pose model's hip centre and scale points


def default_model_dir() -> Path:
    """Where ``skelmtl convert-landmarks`` writes the models: ``$SKELMTL_LANDMARK_ONNX``,
    else ``onnx/`` in the ``.task`` cache (:func:`edge.frontend.model_files.cache_dir`)."""
    env = os.environ.get("SKELMTL_LANDMARK_ONNX")
    if env:
        return Path(env).expanduser()
    from edge.frontend.model_files import cache_dir

    return cache_dir() / "onnx"


def missing_models(model_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """The converted model files absent from ``model_dir`` (empty: all present)."""
    d = Path(model_dir).expanduser() if model_dir is not None else default_model_dir()
    return [d / f for f in MODEL_FILES if not (d / f).is_file()]


def require_models(model_dir: str | os.PathLike[str] | None = None, *,
                   hands: bool = True) -> Path:
    """The model folder, after checking that its converted models are there.

    Raises:
        LandmarkerError: one line naming the folder, the missing files and the command
            that makes them (the hand model is not needed without ``hands``).
    """
    d = Path(model_dir).expanduser() if model_dir is not None else default_model_dir()
    missing = [p for p in missing_models(d) if hands or p.name != HAND_LANDMARKS]
    if missing:
        raise LandmarkerError(f"{d}: converted landmark models missing "
                              f"({', '.join(p.name for p in missing)}); create them once "
                              "with 'skelmtl convert-landmarks' (docs/landmarks.md)")
    return d


@dataclass(frozen=True)
class HandResult:
    """One hand from the hand landmark model.

    Attributes:
        landmarks: ``(21, 3)`` float32, image-normalised x, y and z.
        presence: the model's hand-presence score.
        right: the model's handedness score, MediaPipe's "Right" (the subject's right
            hand in an unmirrored image).
        rect: the ROI it was found in.
    """

    landmarks: np.ndarray
    presence: float
    right: float
    rect: g.Rect


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class OnnxLandmarker:
    """Pose + hands through converted MediaPipe models -> :class:`LandmarkFrame`.

    Same calls as :class:`edge.frontend.landmarks.Landmarker` (``process``, ``run``, ``close``,
    ``last_timings``); not thread-safe.

    Attributes:
        mode: ``"video"`` (track between frames) or ``"image"``.
        last_timings: ms of the last frame: ``detect_ms`` (0 when tracking), ``pose_ms``
            (detector included), ``hands_ms``, ``merge_ms``, ``total_ms``.
        hand_passes: hand-model runs in the last frame.
        policy, stages, last_plan: the routing policy, its state and the last frame's
            plan, as in :class:`edge.frontend.landmarks.Landmarker`.
    """

    def __init__(self, *, mode: Mode = "video", model_dir: str | os.PathLike[str] | None = None,
                 hands: bool = True, providers: str | Sequence[str] = "cpu",
                 threads: int = 1, min_detection_confidence: float = 0.5,
                 min_presence_confidence: float = 0.5, min_tracking_confidence: float = 0.5,
                 hand_from_pose_scale: float = 2.7, hand_refine: bool = True,
                 min_wrist_visibility: float = 0.1, smooth_landmarks: bool = True,
                 trt_cache_dir: str | None = None,
                 policy: FrontEndPolicy | str | None = None,
                 pose_model: str | os.PathLike[str] | None = None,
                 hand_model: str | os.PathLike[str] | None = None) -> None:
        """Open the three converted models.

        Args:
            mode: ``"video"`` or ``"image"``.
            model_dir: folder with :data:`MODEL_FILES` (default :func:`default_model_dir`).
            hands: run the hand model (False: pose only).
            providers: ONNX Runtime providers (``cpu``, ``cuda``, ``tensorrt``, ``best``).
            threads: ONNX Runtime intra-op threads per model.
            min_detection_confidence: pose detector score threshold.
            min_presence_confidence: pose / hand presence needed to report them.
            min_tracking_confidence: presence needed to keep tracking into the next frame.
            hand_from_pose_scale: scale of the hand ROI taken from the pose (holistic: 2.7).
            hand_refine: run the hand model again on the ROI of its own landmarks when a
                hand is placed from the pose (not when tracked).
            min_wrist_visibility: pose wrist visibility below which no hand is looked for.
            smooth_landmarks: in ``"video"`` mode, smooth the pose as the Tasks API does
                (:mod:`edge.frontend.onnx_landmarks.smoothing`); ``"image"`` mode never
                smooths.
            trt_cache_dir: TensorRT execution provider engine cache.
            policy: which stages run per frame (:mod:`edge.frontend.policy`): a policy, a
                task name, or None for ``full``.
            pose_model, hand_model: refused: this front end reads converted models from
                ``model_dir`` (convert other ``.task`` files with
                ``skelmtl convert-landmarks --pose-model/--hand-model``).

        Raises:
            LandmarkerError: a model file is missing (the message says how to convert).
            edge.backends.base.BackendError: a model that does not load.
        """
        if mode not in ("video", "image"):
            raise LandmarkerError(f"mode must be 'video' or 'image', got {mode!r}")
        if pose_model is not None or hand_model is not None:
            raise LandmarkerError("the onnx front end takes converted models from its model "
                                  "folder, not .task files; convert them with 'skelmtl "
                                  "convert-landmarks --pose-model P --hand-model H -o DIR'")
        self.mode: Mode = mode
        if not isinstance(policy, FrontEndPolicy):
            policy = policy_for_task(policy or "full")
        self.policy = policy
        self.stages = StageRouter(policy)
        self.last_plan: StagePlan | None = None
        self.model_dir = require_models(model_dir or None, hands=hands)
        self.min_detection = min_detection_confidence
        self.min_presence = min_presence_confidence
        self.min_tracking = min_tracking_confidence
        self.hand_scale = hand_from_pose_scale
        self.hand_refine = hand_refine
        self.min_wrist_visibility = min_wrist_visibility
        self.smooth_landmarks = bool(smooth_landmarks) and mode == "video"
        self._smoothing = sm.PoseSmoothing()
        opts: dict[str, Any] = {"providers": providers, "intra_op_threads": threads,
                                "trt_cache_dir": trt_cache_dir}
        self._models: list[TensorModel] = []
        try:
            self._detector = self._open(POSE_DETECTOR, opts)
            self._pose = self._open(POSE_LANDMARKS, opts)
            self._hand = self._open(HAND_LANDMARKS, opts) if hands else None
        except Exception:
            self.close()
            raise
        self._anchors = g.ssd_anchors(self._detector.input_shape[1])
        self._pose_rect: g.Rect | None = None
        self._hand_tracks: dict[str, np.ndarray] = {}
        self.hand_passes = 0
        self._detect_s = 0.0
        self.last_timings: dict[str, float] = {"detect_ms": 0.0, "pose_ms": 0.0,
                                               "hands_ms": 0.0, "merge_ms": 0.0,
                                               "total_ms": 0.0}

    def _open(self, name: str, opts: dict[str, Any]) -> TensorModel:
        m = open_tensor_model(self.model_dir / name, **opts)
        self._models.append(m)
        return m

    # ------------------------------------------------------------------------------
    @staticmethod
    def _crop(image: np.ndarray, rect: g.Rect, size: int, lo: float, hi: float,
              replicate: bool = True) -> np.ndarray:
        """The rect's ``size x size`` crop as a ``(1, size, size, 3)`` float32 in [lo, hi],
        bilinear, as MediaPipe's CPU ImageToTensor: outside the image the edge pixels are
        replicated (its default, which the landmark graphs keep) or, for the detector's
        letterbox, zeros (as the detector graph sets it). Zeros around a landmark crop
        moved the off-image joints of close-ups by 28 to 75 px against the Tasks API,
        replicated edges by under 2.5 px (docs/landmarks.md)."""
        import cv2

        h, w = image.shape[:2]
        m = g.crop_matrix(rect, (w, h), size)
        crop = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE if replicate else cv2.BORDER_CONSTANT,
                              borderValue=(0, 0, 0))
        x = crop.astype(np.float32) * np.float32((hi - lo) / 255.0) + np.float32(lo)
        return x[None]

    def detect_pose(self, image: np.ndarray) -> g.Rect | None:
        """The pose detector's ROI for the best person, or None."""
        h, w = image.shape[:2]
        size = self._detector.input_shape[1]
        box = g.letterbox_rect((w, h))
        out = self._detector.run(self._crop(image, box, size, -1.0, 1.0, replicate=False))
        regs, scores = (out[k] for k in sorted(out, key=lambda k: out[k].shape[-1], reverse=True))
        dets = g.decode_detections(regs[0], scores[0], self._anchors, scale=float(size),
                                   min_score=self.min_detection)
        best = g.weighted_nms(dets, 0.3, max_detections=1)
        if not best:
            return None
        kps = np.concatenate([best[0].keypoints, np.zeros((len(best[0].keypoints), 1),
                                                          np.float32)], 1)
        kps = g.project_landmarks(kps, box)
        return g.transform_rect(g.alignment_rect(kps[0], kps[1], (w, h)), (w, h), scale=1.25)

    def pose_landmarks(self, image: np.ndarray, rect: g.Rect
                       ) -> tuple[np.ndarray, np.ndarray, float]:
        """``(39, 3)`` image-normalised landmarks, ``(39,)`` visibility and the presence
        score of the pose in ``rect``."""
        size = self._pose.input_shape[1]
        out = self._pose.run(self._crop(image, rect, size, 0.0, 1.0))
        raw = out["Identity"].reshape(-1, 5).astype(np.float32)
        presence = float(out["Identity_1"].reshape(-1)[0])
        lms = raw[:, :3] / np.float32(size)
        lms = g.refine_from_heatmap(lms, out["Identity_3"][0])
        return g.project_landmarks(lms, rect), _sigmoid(raw[:, 3]), presence

    def hand_landmarks(self, image: np.ndarray, rect: g.Rect) -> HandResult:
        """The hand model on one ROI."""
        assert self._hand is not None
        size = self._hand.input_shape[1]
        out = self._hand.run(self._crop(image, rect, size, 0.0, 1.0))
        self.hand_passes += 1
        lms = out["Identity"].reshape(21, 3).astype(np.float32) / np.float32(size)
        return HandResult(g.project_landmarks(lms, rect), float(out["Identity_1"].ravel()[0]),
                          float(out["Identity_2"].ravel()[0]), rect)

    def _hand_from_landmarks(self, lms: np.ndarray, size: tuple[int, int]) -> g.Rect:
        return g.transform_rect(g.hand_rect_from_landmarks(lms, size), size, scale=2.0,
                                shift_y=-0.1)

    def find_hand(self, image: np.ndarray, pose: np.ndarray, vis: np.ndarray, side: str
                  ) -> HandResult | None:
        """The hand of ``side`` (subject's), placed from the pose or tracked."""
        h, w = image.shape[:2]
        wrist, pinky, index = HAND_FROM_POSE[side]
        if vis[wrist] < self.min_wrist_visibility:
            self._hand_tracks.pop(side, None)
            return None
        from_pose = g.transform_rect(
            g.hand_rect_from_pose(pose[wrist], pose[pinky], pose[index], (w, h)), (w, h),
            scale=self.hand_scale, shift_y=-0.1)
        prev = self._hand_tracks.pop(side, None)
        res = None
        if prev is not None:
            rect = self._hand_from_landmarks(prev, (w, h))
            # A track that left the pose's hand (jumped to the other hand, or drifted)
            # is dropped: its centre must lie within the pose ROI's half-size.
            off = math.hypot((rect.cx - from_pose.cx) * w, (rect.cy - from_pose.cy) * h)
            if off <= 0.5 * from_pose.w * w:
                res = self.hand_landmarks(image, rect)
                if res.presence < self.min_tracking:
                    res = None
        if res is None:
            res = self.hand_landmarks(image, from_pose)
            if self.hand_refine and res.presence >= self.min_presence:
                res = self.hand_landmarks(image, self._hand_from_landmarks(res.landmarks,
                                                                           (w, h)))
        if res.presence < self.min_presence:
            return None
        if self.mode == "video" and res.presence >= self.min_tracking:
            self._hand_tracks[side] = res.landmarks
        return res

    # ------------------------------------------------------------------------------
    def process(self, image: np.ndarray, t: float | None = None, index: int = -1
                ) -> LandmarkFrame:
        """Landmarks of one ``(H, W, 3)`` uint8 RGB frame.

        Args:
            image: the RGB frame.
            t: capture time in seconds (None: ``index`` at 30 fps).
            index: the frame's number in its source, copied to the result.

        Returns:
            The merged frame; the stages the policy skipped are carried or masked
            (``pose_age`` / ``hands_age``).
        """
        if self._pose is None:
            raise LandmarkerError("this OnnxLandmarker is closed")
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise LandmarkerError(f"expected an (H, W, 3) uint8 RGB image, got "
                                  f"{image.shape} {image.dtype}")
        h, w = image.shape[:2]
        t = float(max(index, 0)) / 30.0 if t is None else float(t)
        self.hand_passes = 0
        t0 = time.perf_counter()
        self._detect_s = 0.0
        body: tuple[np.ndarray, np.ndarray] | None = None
        if self.stages.plan_pose():
            body = self._run_pose(image, t)
            placing = None if body is None else (body[0][:N_POSE], body[1][:N_POSE])
        else:
            placing = self.stages.carried_pose()
        t1 = time.perf_counter()
        plan = self.stages.plan(*(placing if placing is not None else (None, None)))
        hands: dict[str, HandResult] = {}
        if plan.hands and self._hand is not None and placing is not None:
            for side in ("left", "right"):
                found = self.find_hand(image, placing[0], placing[1], side)
                if found is not None:
                    hands[side] = found
        elif plan.hands or self._hand is None:
            self._hand_tracks.clear()  # no body to check tracks against
        t2 = time.perf_counter()
        frame = self._merge(plan, body, hands, t, (w, h), index)
        t3 = time.perf_counter()
        self.last_plan = plan
        self.last_timings = {"detect_ms": self._detect_s * 1e3,
                             "pose_ms": (t1 - t0) * 1e3 if plan.pose else 0.0,
                             "hands_ms": (t2 - t1) * 1e3 if plan.hands else 0.0,
                             "merge_ms": (t3 - t2) * 1e3, "total_ms": (t3 - t0) * 1e3}
        return frame

    def _run_pose(self, image: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray] | None:
        """Track (video) or detect the pose: ``(39, 3)`` landmarks and ``(39,)``
        visibility, or None when no person is found; keeps the next frame's ROI and, in
        video mode, smooths the 33 joints (the ROI points stay as found)."""
        h, w = image.shape[:2]
        rect = self._pose_rect if self.mode == "video" else None
        detected = rect is None
        if rect is None:
            rect = self._timed_detect(image)
        pose = None
        if rect is not None:
            lms, vis, presence = self.pose_landmarks(image, rect)
            if presence < self.min_tracking and not detected:
                # Lost track: detect again on this frame rather than report nothing.
                detected = True
                rect = self._timed_detect(image)
                if rect is not None:
                    lms, vis, presence = self.pose_landmarks(image, rect)
            if rect is not None and presence >= self.min_presence:
                pose = (lms, vis)
        self._pose_rect = None
        if pose is not None and self.mode == "video":
            self._pose_rect = g.transform_rect(
                g.alignment_rect(pose[0][_AUX_START], pose[0][_AUX_END], (w, h)), (w, h),
                scale=1.25)
        if self.smooth_landmarks:
            pose = self._smooth(pose, detected, t, (w, h))
        return pose

    def _smooth(self, pose: tuple[np.ndarray, np.ndarray] | None, detected: bool, t: float,
                size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray] | None:
        """The Tasks API's pose smoothing on one frame's pose. A frame without a pose
        resets the filters (MediaPipe's calculators reset on an empty packet); so does a
        pose the detector found anew: there a lost track leaves one frame empty before
        the detector runs, here the detector runs on the same frame."""
        if pose is None or detected:
            self._smoothing = sm.PoseSmoothing()
        if pose is None or self._pose_rect is None:
            return pose
        lms, vis = pose[0].copy(), pose[1].copy()
        r = self._pose_rect
        scale = (r.w * size[0] + r.h * size[1]) / 2.0
        lms[:N_POSE], vis[:N_POSE], self._smoothing = sm.smooth_pose(
            self._smoothing, lms[:N_POSE], vis[:N_POSE], int(round(t * 1e6)), scale, size)
        return lms, vis

    def _timed_detect(self, image: np.ndarray) -> g.Rect | None:
        t0 = time.perf_counter()
        rect = self.detect_pose(image)
        self._detect_s += time.perf_counter() - t0
        return rect

    __call__ = process

    def _merge(self, plan: StagePlan, body: tuple[np.ndarray, np.ndarray] | None,
               hands: dict[str, HandResult], t: float, size: tuple[int, int], index: int
               ) -> LandmarkFrame:
        joints = np.zeros((NUM_JOINTS, 3), np.float32)
        visibility = np.zeros(NUM_JOINTS, np.float32)
        mask = np.zeros(NUM_JOINTS, bool)
        if body is not None:
            joints[:N_POSE] = body[0][:N_POSE]
            visibility[:N_POSE] = body[1][:N_POSE]
            mask[:N_POSE] = True
        # The hand model's handedness output is the Tasks API's "Right" score (it labels
        # messi5's left hand "Left" 0.73 where this model says 0.27). It is often wrong
        # (the same hand is "Right" 0.9 in a zoomed copy), so it only counts here.
        disagree = 0
        for side, start in (("left", LEFT_HAND0), ("right", RIGHT_HAND0)):
            if side in hands:
                hr = hands[side]
                joints[start:start + N_HAND] = hr.landmarks
                visibility[start:start + N_HAND] = hr.presence
                mask[start:start + N_HAND] = True
                disagree += int((hr.right >= 0.5) != (side == "right"))
        mask &= np.isfinite(joints).all(axis=1)
        joints[~mask] = 0.0
        visibility[~mask] = 0.0
        pose_age, hands_age = self.stages.finish(plan, joints, mask, visibility)
        return LandmarkFrame(t=t, joints=joints, mask=mask, image_size=size,
                             visibility=visibility, index=index, hands_swapped=disagree,
                             pose_age=pose_age, hands_age=hands_age)

    def run(self, frames: Iterable[Any]) -> Iterator[LandmarkFrame]:
        """Landmarks for each :class:`edge.frontend.sources.VideoFrame`; a :class:`LandmarkFrame`
        (a replay) passes through unchanged."""
        for f in frames:
            yield f if isinstance(f, LandmarkFrame) else self.process(f.image, f.t, f.index)

    def reset(self) -> None:
        """Forget the tracked pose and hands, the smoothing and the routing state (a new
        clip)."""
        self._pose_rect = None
        self._smoothing = sm.PoseSmoothing()
        self._hand_tracks.clear()
        self.stages.reset()

    def close(self) -> None:
        """Free the sessions (idempotent)."""
        for m in getattr(self, "_models", []):
            m.close()
        self._models = []
        self._pose = None  # type: ignore[assignment]

    def __enter__(self) -> OnnxLandmarker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
