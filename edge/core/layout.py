"""The one skeleton layout every stage uses, and the adapters from source layouts into it.

The unified layout ``mp75`` is MediaPipe's pose (33 joints) followed by the left hand (21)
and the right hand (21): 75 joints. "Left" and "right" are the *subject's* sides, as in
MediaPipe's pose model.

Coordinates follow the image convention of MediaPipe: x grows to the image's right, y grows
*downwards*, z grows away from the camera. Adapters convert every source into it, so that
"the head is above the hips" means ``y_head < y_hips`` everywhere.

Everything here is data (tuples and small frozen dataclasses) so that a layout can be
checked, drawn and serialised; nothing imports torch.

Shapes:
    frames: ``(T, V, C)`` float32, V = 75, C = 2 (2D sources) or 3.
    mask:   ``(T, V)`` bool, True where the joint was observed.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

# --------------------------------------------------------------------------------------
# MediaPipe pose (33) and hand (21): names and connections as published by MediaPipe
# (mediapipe/python/solutions/pose_connections.py and hands_connections.py).
# --------------------------------------------------------------------------------------
POSE_JOINTS: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
    "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index", "left_thumb",
    "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle", "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)  # fmt: skip

POSE_CONNECTIONS: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10), (11, 12),
    (11, 13), (13, 15), (15, 17), (15, 19), (15, 21), (17, 19), (12, 14), (14, 16), (16, 18),
    (16, 20), (16, 22), (18, 20), (11, 23), (12, 24), (23, 24), (23, 25), (24, 26), (25, 27),
    (26, 28), (27, 29), (28, 30), (29, 31), (30, 32), (27, 31), (28, 32),
)  # fmt: skip

HAND_JOINTS: tuple[str, ...] = (
    "wrist", "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip", "index_mcp", "index_pip",
    "index_dip", "index_tip", "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
    "ring_mcp", "ring_pip", "ring_dip", "ring_tip", "pinky_mcp", "pinky_pip", "pinky_dip",
    "pinky_tip",
)  # fmt: skip

HAND_CONNECTIONS: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10),
    (10, 11), (11, 12), (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (0, 17), (17, 18),
    (18, 19), (19, 20),
)  # fmt: skip

N_POSE = len(POSE_JOINTS)  # 33
N_HAND = len(HAND_JOINTS)  # 21
LEFT_HAND0 = N_POSE  # 33: first joint of the left-hand slot
RIGHT_HAND0 = N_POSE + N_HAND  # 54: first joint of the right-hand slot
NUM_JOINTS = N_POSE + 2 * N_HAND  # 75

# Pose indices used by preprocessing and the checks.
NOSE, L_SHOULDER, R_SHOULDER, L_WRIST, R_WRIST, L_HIP, R_HIP = 0, 11, 12, 15, 16, 23, 24
HAND_WRIST, HAND_MIDDLE_MCP = 0, 9


@dataclass(frozen=True)
class Layout:
    """A skeleton layout as data.

    Attributes:
        name: identifier stored in every artefact (``"mp75"``).
        joints: joint names, ``V`` of them.
        edges: pairs drawn and used as graph links, ``(i, j)`` with i, j < V.
        parents: parent of each joint in a spanning tree (root is its own parent);
            defines the bone stream.
        mirror: index of the mirrored joint for each joint (left <-> right).
        parts: name -> (start, stop) joint range, e.g. ``"left_hand": (33, 54)``.
        center: joints whose midpoint is the body centre (the shoulders: they are present
            in every body source and in upper-body camera shots, unlike the hips).
        hips: the two hip joints; with the centre they give the torso length that the
            preprocessing's ``torso`` scale uses when a body turns sideways.
        core: the joints a recogniser uses unless told otherwise (empty = all): for mp75
            the body without the face details (eyes, ears, mouth), the pose model's pinky
            and thumb points and the heels, plus both hands. MediaPipe places those least
            steadily, the hand landmarks and the feet already cover them, and every pair
            of joints is a feature of the jcd networks (75 joints: 2,775 pairs; 59: 1,711).
    """

    name: str
    joints: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    parents: tuple[int, ...]
    mirror: tuple[int, ...]
    parts: dict[str, tuple[int, int]] = field(hash=False)
    center: tuple[int, ...]
    hips: tuple[int, ...] = ()
    core: tuple[int, ...] = ()

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    def index(self, name: str) -> int:
        """Index of a joint by its qualified name, e.g. ``"left_hand.wrist"``."""
        try:
            return self.joints.index(name)
        except ValueError:
            raise KeyError(f"layout {self.name!r} has no joint {name!r}") from None

    def adjacency(self) -> np.ndarray:
        """Symmetric ``(V, V)`` 0/1 adjacency of the graph edges, no self loops."""
        a = np.zeros((self.num_joints, self.num_joints), dtype=np.float32)
        for i, j in self.edges:
            a[i, j] = a[j, i] = 1.0
        return a


def _mirror_pose() -> list[int]:
    m = list(range(N_POSE))
    for i, n in enumerate(POSE_JOINTS):
        for a, b in (("left_", "right_"), ("right_", "left_"), ("mouth_left", "mouth_right"),
                     ("mouth_right", "mouth_left")):
            if n.startswith(a):
                m[i] = POSE_JOINTS.index(n.replace(a, b, 1))
    return m


def _spanning_parents(n: int, edges: tuple[tuple[int, int], ...], root: int) -> tuple[int, ...]:
    nbrs: list[list[int]] = [[] for _ in range(n)]
    for i, j in edges:
        nbrs[i].append(j)
        nbrs[j].append(i)
    parent = [-1] * n
    parent[root] = root
    q = deque([root])
    while q:
        u = q.popleft()
        for v in sorted(nbrs[u]):
            if parent[v] < 0:
                parent[v] = u
                q.append(v)
    if min(parent) < 0:
        raise ValueError("layout graph is not connected")
    return tuple(parent)


def _build_mp75() -> Layout:
    joints = (POSE_JOINTS
              + tuple(f"left_hand.{n}" for n in HAND_JOINTS)
              + tuple(f"right_hand.{n}" for n in HAND_JOINTS))  # fmt: skip
    hand_l = tuple((LEFT_HAND0 + i, LEFT_HAND0 + j) for i, j in HAND_CONNECTIONS)
    hand_r = tuple((RIGHT_HAND0 + i, RIGHT_HAND0 + j) for i, j in HAND_CONNECTIONS)
    # The wrist links join each hand slot to the pose wrist of the same side.
    wrist_links = ((L_WRIST, LEFT_HAND0 + HAND_WRIST), (R_WRIST, RIGHT_HAND0 + HAND_WRIST))
    # MediaPipe draws the face as islands; these bridges (not in MediaPipe's drawing set)
    # connect them to the body so that graph convolutions and bones reach every joint.
    bridges = ((0, L_SHOULDER), (0, R_SHOULDER), (9, 0), (10, 0))
    edges = POSE_CONNECTIONS + hand_l + hand_r + wrist_links + bridges
    mirror = (_mirror_pose()
              + list(range(RIGHT_HAND0, RIGHT_HAND0 + N_HAND))
              + list(range(LEFT_HAND0, LEFT_HAND0 + N_HAND)))  # fmt: skip
    return Layout(
        name="mp75",
        joints=joints,
        edges=edges,
        parents=_spanning_parents(len(joints), edges, root=L_HIP),
        mirror=tuple(mirror),
        parts={"body": (0, N_POSE), "left_hand": (LEFT_HAND0, RIGHT_HAND0),
               "right_hand": (RIGHT_HAND0, NUM_JOINTS)},
        center=(L_SHOULDER, R_SHOULDER),
        hips=(L_HIP, R_HIP),
        # Not 1-10 (face details), 17, 18, 21, 22 (pose pinky, thumb), 29, 30 (heels);
        # the pose index fingers (19, 20) and foot tips (31, 32) stay: Kinect maps its
        # hands and feet there.
        core=tuple(j for j in range(NUM_JOINTS) if j not in (*range(1, 11), 17, 18, 21, 22, 29, 30)),
    )


MP75 = _build_mp75()
LAYOUTS: dict[str, Layout] = {MP75.name: MP75}


# --------------------------------------------------------------------------------------
# Source layouts. Each maps its joints into mp75 by name; joints without an mp75
# counterpart (spine, neck, hip centre) are dropped, never invented.
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceLayout:
    """A published skeleton layout and how it maps into mp75.

    Attributes:
        name: identifier stored per clip (``"kinect_v1_msr"``).
        joints: the source's joint names in file order.
        target: for each source joint, its mp75 joint name, or None (dropped).
        dims: 2 or 3 coordinates per joint in the source.
        axis_sign: multiply source (x, y, z) by this to get mp75 image convention.
        note: where the joint order comes from and what was approximated.
    """

    name: str
    joints: tuple[str, ...]
    target: tuple[str | None, ...]
    dims: int
    axis_sign: tuple[float, float, float] = (1.0, 1.0, 1.0)
    note: str = ""

    def __post_init__(self) -> None:
        if len(self.joints) != len(self.target):
            raise ValueError(f"{self.name}: {len(self.joints)} joints, {len(self.target)} targets")

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    def index_map(self) -> tuple[np.ndarray, np.ndarray]:
        """(source indices, mp75 indices) of the mapped joints."""
        src = [i for i, t in enumerate(self.target) if t is not None]
        dst = [MP75.index(t) for t in self.target if t is not None]
        return np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64)

    def to_mp75(self, x: np.ndarray, valid: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """Map ``(T, J, >=dims)`` source frames to mp75.

        Args:
            x: source coordinates; columns beyond ``dims`` (e.g. a confidence) are ignored.
            valid: optional ``(T, J)`` bool, False where the source says the joint is absent.

        Returns:
            ``frames (T, 75, dims)`` float32 with zeros where absent, ``mask (T, 75)`` bool.
        """
        if x.ndim != 3 or x.shape[1] != self.num_joints or x.shape[2] < self.dims:
            raise ValueError(f"{self.name}: expected (T, {self.num_joints}, >={self.dims}), "
                             f"got {x.shape}")
        t = x.shape[0]
        src, dst = self.index_map()
        frames = np.zeros((t, NUM_JOINTS, self.dims), dtype=np.float32)
        sign = np.asarray(self.axis_sign[: self.dims], dtype=np.float32)
        frames[:, dst] = x[:, src, : self.dims] * sign
        mask = np.zeros((t, NUM_JOINTS), dtype=bool)
        ok = np.isfinite(x[:, src, : self.dims]).all(-1)
        if valid is not None:
            ok &= valid[:, src]
        mask[:, dst] = ok
        frames[~mask] = 0.0
        return frames, mask


def _hand_slot(side: str) -> tuple[str, ...]:
    return tuple(f"{side}_hand.{n}" for n in HAND_JOINTS)


_POSE_MAP = POSE_JOINTS

SOURCE_LAYOUTS: dict[str, SourceLayout] = {}


def _register(sl: SourceLayout) -> SourceLayout:
    SOURCE_LAYOUTS[sl.name] = sl
    return sl


# MediaPipe holistic as flattened by the common "MP_Data" recipe: pose 33 x (x, y, z,
# visibility), [face 468 x (x, y, z)], left hand 21 x (x, y, z), right hand 21 x (x, y, z).
# The adapters for these flattened vectors live in ``holistic_to_mp75`` below; these
# entries name the per-joint part.
MEDIAPIPE_POSE = _register(SourceLayout(
    "mediapipe_pose", POSE_JOINTS, _POSE_MAP, 3,
    note="MediaPipe Tasks PoseLandmarker order"))
MEDIAPIPE_HAND_LEFT = _register(SourceLayout(
    "mediapipe_hand_left", HAND_JOINTS, _hand_slot("left"), 3,
    note="MediaPipe Tasks HandLandmarker order, subject's left hand"))
MEDIAPIPE_HAND_RIGHT = _register(SourceLayout(
    "mediapipe_hand_right", HAND_JOINTS, _hand_slot("right"), 3,
    note="MediaPipe Tasks HandLandmarker order, subject's right hand"))

# F-PHAB: order from the dataset's documentation, checked on the data by bone lengths
# (tests/test_layout_real.py). F-PHAB's thumb joints are named MCP/PIP/DIP/TIP but sit
# where MediaPipe has CMC/MCP/IP/TIP. F-PHAB annotates the subject's right hand.
# Coordinates are camera space in millimetres with y down, z away: already mp75's axes.
FPHAB = _register(SourceLayout(
    "fphab_hand21",
    ("Wrist", "TMCP", "IMCP", "MMCP", "RMCP", "PMCP", "TPIP", "TDIP", "TTIP", "IPIP",
     "IDIP", "ITIP", "MPIP", "MDIP", "MTIP", "RPIP", "RDIP", "RTIP", "PPIP", "PDIP", "PTIP"),
    tuple(f"right_hand.{n}" for n in (
        "wrist", "thumb_cmc", "index_mcp", "middle_mcp", "ring_mcp", "pinky_mcp",
        "thumb_mcp", "thumb_ip", "thumb_tip", "index_pip", "index_dip", "index_tip",
        "middle_pip", "middle_dip", "middle_tip", "ring_pip", "ring_dip", "ring_tip",
        "pinky_pip", "pinky_dip", "pinky_tip")),
    3, note="F-PHAB documentation order; right hand; millimetres"))  # fmt: skip

# MSR Action3D (Kinect v1 skeleton from the dataset's own tracker). The order was
# established from the data: the dataset's drawskt.m gives the bones; y is up (head
# above hip centre); joint 11 (1-based) moves most in one-arm actions, which the
# protocol asks subjects to do with the right arm, so 2/9/11/13 are the right side and
# sit at +x: a right-handed Kinect frame (x to the sensor's left, y up, z away).
# mp75 wants x to the image's right and y down, hence the sign (-1, -1, 1).
KINECT_V1_MSR = _register(SourceLayout(
    "kinect_v1_msr",
    ("left_shoulder", "right_shoulder", "neck", "spine", "left_hip", "right_hip",
     "hip_center", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand",
     "right_hand", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_foot",
     "right_foot", "head"),
    ("left_shoulder", "right_shoulder", None, None, "left_hip", "right_hip", None,
     "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_index", "right_index",
     "left_knee", "right_knee", "left_ankle", "right_ankle", "left_foot_index",
     "right_foot_index", "nose"),
    3, (-1.0, -1.0, 1.0),
    note="order from data; Kinect hand -> index, foot -> foot_index, head -> nose "
         "(approximate); neck, spine, hip centre dropped"))  # fmt: skip

# NTU RGB+D (Kinect v2, 25 joints), order from the dataset's README (1-based there).
# Camera space, metres, Kinect axes: same sign flip as Kinect v1.
KINECT_V2_NTU = _register(SourceLayout(
    "kinect_v2_ntu",
    ("spine_base", "spine_mid", "neck", "head", "left_shoulder", "left_elbow", "left_wrist",
     "left_hand", "right_shoulder", "right_elbow", "right_wrist", "right_hand", "left_hip",
     "left_knee", "left_ankle", "left_foot", "right_hip", "right_knee", "right_ankle",
     "right_foot", "spine_shoulder", "left_hand_tip", "left_thumb", "right_hand_tip",
     "right_thumb"),
    (None, None, None, "nose", "left_shoulder", "left_elbow", "left_wrist", None,
     "right_shoulder", "right_elbow", "right_wrist", None, "left_hip", "left_knee",
     "left_ankle", "left_foot_index", "right_hip", "right_knee", "right_ankle",
     "right_foot_index", None, "left_index", "left_thumb", "right_index", "right_thumb"),
    3, (-1.0, -1.0, 1.0),
    note="NTU README order; hand tip -> index, head -> nose (approximate); hand centre, "
         "spine, neck dropped"))  # fmt: skip

# JHMDB puppet joints (2D, image convention already: y down).
JHMDB15 = _register(SourceLayout(
    "jhmdb15",
    ("neck", "belly", "face", "right_shoulder", "left_shoulder", "right_hip", "left_hip",
     "right_elbow", "left_elbow", "right_knee", "left_knee", "right_wrist", "left_wrist",
     "right_ankle", "left_ankle"),
    (None, None, "nose", "right_shoulder", "left_shoulder", "right_hip", "left_hip",
     "right_elbow", "left_elbow", "right_knee", "left_knee", "right_wrist", "left_wrist",
     "right_ankle", "left_ankle"),
    2, note="JHMDB puppet order (data README); face -> nose (approximate)"))  # fmt: skip

# SHREC'17 / DHG-14/28 hand (22 joints): wrist, palm, then thumb (base to tip), index,
# middle, ring, pinky, 4 each. World coordinates in metres from an Intel RealSense.
# The palm centre has no MediaPipe counterpart and is dropped. Hand side is unknown in
# the dataset (mostly right hands): mapped to the right slot.
DHG22 = _register(SourceLayout(
    "dhg22",
    ("wrist", "palm", "thumb_base", "thumb_first", "thumb_second", "thumb_tip",
     "index_base", "index_first", "index_second", "index_tip", "middle_base",
     "middle_first", "middle_second", "middle_tip", "ring_base", "ring_first",
     "ring_second", "ring_tip", "pinky_base", "pinky_first", "pinky_second", "pinky_tip"),
    (("right_hand.wrist", None) + tuple(f"right_hand.{n}" for n in HAND_JOINTS[1:])),
    3, (1.0, -1.0, 1.0),
    note="SHREC'17 format description; palm dropped; y flipped to point down"))  # fmt: skip


def get_source_layout(name: str) -> SourceLayout:
    """The source layout ``name``; raises ``KeyError`` naming the known ones."""
    try:
        return SOURCE_LAYOUTS[name]
    except KeyError:
        raise KeyError(f"unknown source layout {name!r}; known: {sorted(SOURCE_LAYOUTS)}") from None


# Flattened MediaPipe holistic vectors: total length -> (description, dims).
HOLISTIC_SIZES: dict[int, str] = {
    258: "pose 33x(x,y,z,vis) + left hand 21x3 + right hand 21x3",
    1662: "pose 33x(x,y,z,vis) + face 468x3 + left hand 21x3 + right hand 21x3",
    225: "pose 33x3 + left hand 21x3 + right hand 21x3",
    158: "face 4x2 + pose 33x2 + left hand 21x2 + right hand 21x2 (2D pixels, asl16)",
}


def holistic_to_mp75(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flattened MediaPipe holistic vectors ``(T, D)`` to mp75.

    A part (pose, left hand, right hand) whose values are all zero was not detected and is
    masked. Pose visibility is not used for masking: MediaPipe always returns 33 pose
    joints once a person is found.

    Returns:
        ``frames (T, 75, C)`` float32 (C = 2 for the 158-value 2D variant, else 3) and
        ``mask (T, 75)`` bool.

    Raises:
        ValueError: for a length not in ``HOLISTIC_SIZES``.
    """
    if x.ndim != 2 or x.shape[1] not in HOLISTIC_SIZES:
        raise ValueError(f"holistic vector of length {x.shape[-1]} is not one of "
                         f"{sorted(HOLISTIC_SIZES)} ({'; '.join(HOLISTIC_SIZES.values())})")
    d = x.shape[1]
    x = x.astype(np.float32, copy=False)
    if d == 158:
        c, pose = 2, x[:, 8:74].reshape(-1, N_POSE, 2)
        lh, rh = x[:, 74:116].reshape(-1, N_HAND, 2), x[:, 116:158].reshape(-1, N_HAND, 2)
    else:
        c = 3
        pw = 3 if d == 225 else 4
        pose = x[:, : N_POSE * pw].reshape(-1, N_POSE, pw)[:, :, :3]
        off = N_POSE * pw + (468 * 3 if d == 1662 else 0)
        lh = x[:, off: off + 63].reshape(-1, N_HAND, 3)
        rh = x[:, off + 63: off + 126].reshape(-1, N_HAND, 3)
    t = x.shape[0]
    frames = np.zeros((t, NUM_JOINTS, c), dtype=np.float32)
    mask = np.zeros((t, NUM_JOINTS), dtype=bool)
    for part, (a, b) in ((pose, (0, N_POSE)), (lh, (LEFT_HAND0, RIGHT_HAND0)),
                         (rh, (RIGHT_HAND0, NUM_JOINTS))):
        present = np.isfinite(part).all(axis=(1, 2)) & (np.abs(part).sum(axis=(1, 2)) > 0)
        frames[present, a:b] = part[present]
        mask[present, a:b] = True
    return frames, mask
