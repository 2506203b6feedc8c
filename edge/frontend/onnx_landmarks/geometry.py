"""The pure geometry of MediaPipe's pose and hand graphs, in numpy (no model, no cv2).

Each function reimplements one MediaPipe calculator, named in its docstring, with the
options the pinned ``pose_landmarker_full.task`` / ``hand_landmarker.task`` graphs use
(and the holistic graph's hand-from-pose rule), so that the ONNX front end
(:mod:`edge.frontend.onnx_landmarks.landmarker`) feeds the converted models the same crops.

Conventions: a :class:`Rect` is MediaPipe's ``NormalizedRect``: centre, width and height
normalised to the image (x by its width W, y by its height H), rotation in radians,
clockwise on screen (y grows downwards). A crop maps the rotated rect onto an ``S x S``
model input; landmarks come back in the model's normalised ``[0, 1]`` input frame and are
projected back to image-normalised coordinates by :func:`project_landmarks`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Rect:
    """A rotated region of interest, MediaPipe's ``NormalizedRect``.

    Attributes:
        cx, cy: centre, normalised to the image width and height.
        w, h: size, normalised to the image width and height.
        rotation: radians, clockwise on screen.
    """

    cx: float
    cy: float
    w: float
    h: float
    rotation: float = 0.0


@dataclass(frozen=True)
class Detection:
    """One decoded detection, normalised to the detector's input.

    Attributes:
        box: ``(4,)`` float32 x_center, y_center, w, h.
        keypoints: ``(K, 2)`` float32 x, y.
        score: the sigmoid score.
    """

    box: np.ndarray
    keypoints: np.ndarray
    score: float


def normalize_radians(a: float) -> float:
    """``a`` wrapped into ``[-pi, pi)``."""
    return a - 2 * math.pi * math.floor((a + math.pi) / (2 * math.pi))


def ssd_anchors(input_size: int = 224, strides: tuple[int, ...] = (8, 16, 32, 32, 32),
                anchors_per_layer: int = 2) -> np.ndarray:
    """SsdAnchorsCalculator with ``fixed_anchor_size`` (the pose detector's options).

    Consecutive layers with the same stride share one grid; each layer adds
    ``anchors_per_layer`` anchors per cell (aspect ratio 1 and the interpolated scale).
    The pose detector's 224 px input gives 28*28*2 + 14*14*2 + 7*7*6 = 2254 anchors.

    Returns:
        ``(N, 2)`` float32 anchor centres x, y in ``[0, 1]`` (fixed anchors have w = h = 1).
    """
    out = []
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        n = (j - i) * anchors_per_layer
        side = math.ceil(input_size / strides[i])
        ys, xs = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
        centres = np.stack([(xs + 0.5) / side, (ys + 0.5) / side], -1).reshape(-1, 1, 2)
        out.append(np.repeat(centres, n, axis=1).reshape(-1, 2))
        i = j
    return np.concatenate(out).astype(np.float32)


def decode_detections(boxes: np.ndarray, scores: np.ndarray, anchors: np.ndarray, *,
                      scale: float = 224.0, num_keypoints: int = 4,
                      min_score: float = 0.5, clip: float = 100.0) -> list[Detection]:
    """TensorsToDetectionsCalculator: raw SSD outputs -> detections above ``min_score``.

    Args:
        boxes: ``(N, 4 + 2K)`` raw regressors: x, y, w, h offsets, then K keypoints, in
            input pixels relative to the anchor centre.
        scores: ``(N,)`` or ``(N, 1)`` raw logits (sigmoid after clipping to ``±clip``).
        anchors: ``(N, 2)`` from :func:`ssd_anchors`.

    Returns:
        Detections, highest score first, normalised to the detector input.
    """
    s = 1.0 / (1.0 + np.exp(-np.clip(scores.reshape(-1).astype(np.float64), -clip, clip)))
    keep = np.flatnonzero(s >= min_score)
    keep = keep[np.argsort(-s[keep], kind="stable")]
    out = []
    for k in keep:
        raw = boxes[k] / scale
        a = anchors[k]
        box = np.asarray([raw[0] + a[0], raw[1] + a[1], raw[2], raw[3]], np.float32)
        kps = raw[4:4 + 2 * num_keypoints].reshape(num_keypoints, 2) + a
        out.append(Detection(box, kps.astype(np.float32), float(s[k])))
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ax0, ay0, ax1, ay1 = a[0] - a[2] / 2, a[1] - a[3] / 2, a[0] + a[2] / 2, a[1] + a[3] / 2
    bx0, by0, bx1, by1 = b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2
    iw = max(0.0, min(ax1, bx1) - max(ax0, bx0))
    ih = max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


def weighted_nms(dets: list[Detection], iou_threshold: float = 0.3,
                 max_detections: int = 1) -> list[Detection]:
    """NonMaxSuppressionCalculator, ``WEIGHTED`` algorithm: each kept detection is the
    score-weighted mean (box and keypoints) of the detections overlapping it by more
    than ``iou_threshold``; its score stays the best one's.

    Args:
        dets: highest score first (as :func:`decode_detections` returns them).
    """
    remaining = list(dets)
    out: list[Detection] = []
    while remaining and len(out) < max_detections:
        top = remaining[0]
        # The top one always belongs to its own group (even a degenerate, empty box).
        near = [d is top or _iou(top.box, d.box) > iou_threshold for d in remaining]
        group = [d for d, n in zip(remaining, near) if n]
        rest = [d for d, n in zip(remaining, near) if not n]
        w = np.asarray([d.score for d in group], np.float32)
        box = np.tensordot(w, np.stack([d.box for d in group]), 1) / w.sum()
        kps = np.tensordot(w, np.stack([d.keypoints for d in group]), 1) / w.sum()
        out.append(Detection(box.astype(np.float32), kps.astype(np.float32), top.score))
        remaining = rest
    return out


def letterbox_rect(image_size: tuple[int, int]) -> Rect:
    """The square rect around the whole image: ImageToTensorCalculator's
    ``keep_aspect_ratio`` letterbox, as a crop (its padding is what lies outside the
    image). Projecting detector outputs through it is DetectionLetterboxRemoval."""
    w, h = image_size
    side = max(w, h)
    return Rect(0.5, 0.5, side / w, side / h, 0.0)


def alignment_rect(start: np.ndarray, end: np.ndarray, image_size: tuple[int, int],
                   target_angle: float = math.pi / 2) -> Rect:
    """AlignmentPointsRectsCalculator: a square centred on ``start``, of side twice the
    distance to ``end`` (in pixels), rotated so that start -> end points up.

    Args:
        start, end: ``(2,)`` image-normalised x, y (the pose's hip centre and the point
            that gives its scale and tilt).
    """
    w, h = image_size
    x0, y0 = float(start[0]) * w, float(start[1]) * h
    x1, y1 = float(end[0]) * w, float(end[1]) * h
    size = 2.0 * math.hypot(x1 - x0, y1 - y0)
    rot = normalize_radians(target_angle - math.atan2(-(y1 - y0), x1 - x0))
    return Rect(x0 / w, y0 / h, size / w, size / h, rot)


def transform_rect(r: Rect, image_size: tuple[int, int], *, scale: float = 1.0,
                   shift_x: float = 0.0, shift_y: float = 0.0,
                   square_long: bool = True) -> Rect:
    """RectTransformationCalculator: shift (in the rect's own rotated frame, as fractions
    of its size), make square on the long side (in pixels), then scale."""
    w, h = image_size
    cx, cy = r.cx, r.cy
    if r.rotation == 0.0:
        cx += r.w * shift_x
        cy += r.h * shift_y
    else:
        c, s = math.cos(r.rotation), math.sin(r.rotation)
        cx += (w * r.w * shift_x * c - h * r.h * shift_y * s) / w
        cy += (w * r.w * shift_x * s + h * r.h * shift_y * c) / h
    rw, rh = r.w, r.h
    if square_long:
        side = max(rw * w, rh * h)
        rw, rh = side / w, side / h
    return Rect(cx, cy, rw * scale, rh * scale, r.rotation)


def crop_matrix(r: Rect, image_size: tuple[int, int], size: int) -> np.ndarray:
    """The ``(2, 3)`` affine map from model-input pixels to image pixels of a crop.

    ImageToTensorCalculator maps the rect's corners onto the corners (0 and ``size``) of
    the model input; the same map, inverted, is what :func:`project_landmarks` applies to
    the model's normalised output.
    """
    w, h = image_size
    c, s = math.cos(r.rotation), math.sin(r.rotation)
    pw, ph = r.w * w / size, r.h * h / size  # image pixels per input pixel
    # image = centre + R @ ((u - size/2) * pw, (v - size/2) * ph)
    a = np.asarray([[c * pw, -s * ph], [s * pw, c * ph]], np.float64)
    t = np.asarray([r.cx * w, r.cy * h]) - a @ np.asarray([size / 2.0, size / 2.0])
    return np.concatenate([a, t[:, None]], 1)


def project_landmarks(lms: np.ndarray, r: Rect) -> np.ndarray:
    """LandmarkProjectionCalculator: ``(N, 3)`` landmarks normalised to the crop -> the
    image (x, y normalised to the image; z scaled by the rect's width, like x)."""
    c, s = math.cos(r.rotation), math.sin(r.rotation)
    x = lms[:, 0] - 0.5
    y = lms[:, 1] - 0.5
    out = np.empty_like(lms, dtype=np.float32)
    out[:, 0] = (c * x - s * y) * r.w + r.cx
    out[:, 1] = (s * x + c * y) * r.h + r.cy
    out[:, 2] = lms[:, 2] * r.w
    return out


def unproject_landmarks(pts: np.ndarray, r: Rect) -> np.ndarray:
    """The inverse of :func:`project_landmarks` (for tests and for re-cropping)."""
    c, s = math.cos(r.rotation), math.sin(r.rotation)
    x = (pts[:, 0] - r.cx) / r.w
    y = (pts[:, 1] - r.cy) / r.h
    out = np.empty_like(pts, dtype=np.float32)
    out[:, 0] = c * x + s * y + 0.5
    out[:, 1] = -s * x + c * y + 0.5
    out[:, 2] = pts[:, 2] / r.w
    return out


def refine_from_heatmap(lms: np.ndarray, heatmap: np.ndarray, *, kernel: int = 7,
                        min_confidence: float = 0.5) -> np.ndarray:
    """RefineLandmarksFromHeatmapCalculator: move each landmark (normalised to the crop)
    to the confidence-weighted centre of its heatmap window when the window's peak
    confidence reaches ``min_confidence``.

    Args:
        lms: ``(N, >=2)`` landmarks normalised to the crop.
        heatmap: ``(Hh, Wh, N)`` raw logits.
    """
    out = lms.copy()
    hh, hw = heatmap.shape[:2]
    off = (kernel - 1) // 2
    for i in range(min(len(lms), heatmap.shape[2])):
        col, row = int(lms[i, 0] * hw), int(lms[i, 1] * hh)
        if not (0 <= col < hw and 0 <= row < hh):
            continue
        win = heatmap[max(0, row - off):min(hh, row + off + 1),
                      max(0, col - off):min(hw, col + off + 1), i]
        conf = 1.0 / (1.0 + np.exp(-win.astype(np.float64)))
        total = conf.sum()
        if conf.max() < min_confidence or total <= 0:
            continue
        rows = np.arange(max(0, row - off), min(hh, row + off + 1))[:, None]
        cols = np.arange(max(0, col - off), min(hw, col + off + 1))[None, :]
        out[i, 0] = float((conf * cols).sum() / total / hw)
        out[i, 1] = float((conf * rows).sum() / total / hh)
    return out


def hand_rect_from_pose(wrist: np.ndarray, pinky: np.ndarray, index: np.ndarray,
                        image_size: tuple[int, int]) -> Rect:
    """HandDetectionsFromPoseToRectsCalculator (MediaPipe holistic): the hand's rect from
    the pose's wrist, pinky and index joints, before :func:`transform_rect`.

    The middle finger is estimated at ``(2 * index + pinky) / 3``; the rect is centred
    there, its side twice the wrist-to-middle distance, rotated so the fingers point up.
    """
    w, h = image_size
    px = np.asarray([w, h], np.float64)
    wr, pk, ix = (np.asarray(p[:2], np.float64) * px for p in (wrist, pinky, index))
    mid = (2.0 * ix + pk) / 3.0
    size = 2.0 * float(np.hypot(*(mid - wr)))
    rot = normalize_radians(math.pi / 2 - math.atan2(-(mid[1] - wr[1]), mid[0] - wr[0]))
    return Rect(float(mid[0] / w), float(mid[1] / h), size / w, size / h, rot)


# The landmarks HandLandmarksToRectCalculator looks at: wrist, thumb CMC/MCP, and the
# MCP and PIP joints of the four fingers (the tips move too much to frame a hand).
_HAND_PARTIAL = (0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18)


def hand_rect_from_landmarks(lms: np.ndarray, image_size: tuple[int, int]) -> Rect:
    """HandLandmarksToRectCalculator: the rect around a hand's palm landmarks, rotated
    so that the wrist -> middle-finger-base direction points up (before
    :func:`transform_rect` with scale 2, shift_y -0.1).

    Args:
        lms: ``(21, >=2)`` image-normalised hand landmarks.
    """
    w, h = image_size
    p = np.asarray(lms, np.float64)[list(_HAND_PARTIAL), :2] * np.asarray([w, h])
    x0, y0 = p[0]
    x1, y1 = (p[4] + p[8]) / 2.0  # index and ring MCP
    x1, y1 = (x1 + p[6][0]) / 2.0, (y1 + p[6][1]) / 2.0  # and the middle MCP
    rot = normalize_radians(math.pi / 2 - math.atan2(-(y1 - y0), x1 - x0))
    lo, hi = p.min(0), p.max(0)
    centre = (lo + hi) / 2.0
    c, s = math.cos(-rot), math.sin(-rot)
    q = p - centre
    proj = np.stack([q[:, 0] * c - q[:, 1] * s, q[:, 0] * s + q[:, 1] * c], 1)
    plo, phi = proj.min(0), proj.max(0)
    pc = (plo + phi) / 2.0
    c2, s2 = math.cos(rot), math.sin(rot)
    cx = pc[0] * c2 - pc[1] * s2 + centre[0]
    cy = pc[0] * s2 + pc[1] * c2 + centre[1]
    size = phi - plo
    return Rect(float(cx / w), float(cy / h), float(size[0] / w), float(size[1] / h), rot)
