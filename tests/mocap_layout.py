"""A dataset layout no reader of skelmtl knows, invented for the tests.

The layout is the one docs/tutorial.md describes in "A layout we have no reader for": a
motion-capture export, ``<root>/<label>/<subject>_<take>.csv``, one row per frame and
joint (``frame,joint,x,y,z``), millimetres, y up, 14 named joints, a lost joint simply
has no row. The rows are shuffled and frame numbers start anywhere, as exports do.

Two classes that a tiny network separates: ``reach`` raises the right wrist above the
head and back; ``squat`` lowers the whole body and comes up again.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

JOINTS = ("Head", "Neck", "LShoulder", "LElbow", "LWrist", "RShoulder", "RElbow", "RWrist",
          "LHip", "LKnee", "LAnkle", "RHip", "RKnee", "RAnkle")
# A standing person facing the camera, millimetres, y up, 3 m away; x grows to the
# camera's right, where a person facing it has their left side.
REST = {"Head": (0, 1700, 3000), "Neck": (0, 1500, 3000),
        "LShoulder": (200, 1450, 3000), "LElbow": (250, 1200, 3000),
        "LWrist": (270, 950, 3000), "RShoulder": (-200, 1450, 3000),
        "RElbow": (-250, 1200, 3000), "RWrist": (-270, 950, 3000),
        "LHip": (120, 1000, 3000), "LKnee": (130, 550, 3000), "LAnkle": (130, 80, 3000),
        "RHip": (-120, 1000, 3000), "RKnee": (-130, 550, 3000), "RAnkle": (-130, 80, 3000)}
LABELS = ("reach", "squat")
SUBJECTS = ("s1", "s2", "s3", "s4")
TEST_SUBJECTS = ("s4",)  # as the tutorial's block says
LOST = ("reach", "s2_1", 3, "LWrist")  # (label, take, frame index, joint): no row


def take(label: str, rng: np.random.Generator, frames: int) -> np.ndarray:
    """``(frames, 14, 3)`` millimetres of one performance."""
    x = np.asarray([REST[j] for j in JOINTS], np.float64)[None].repeat(frames, 0)
    x += rng.normal(0, 8, size=x.shape)
    s = np.sin(np.linspace(0, np.pi, frames))
    if label == "reach":
        for j, lift in (("RElbow", 450), ("RWrist", 950)):
            x[:, JOINTS.index(j), 1] += s * lift
    else:
        upper = [i for i, j in enumerate(JOINTS) if "Knee" not in j and "Ankle" not in j]
        x[:, upper, 1] -= s[:, None] * 400
        for j in ("LKnee", "RKnee"):
            x[:, JOINTS.index(j), 2] -= s * 250
    return x


def invent(root: Path, takes: int = 3, frames: int = 24, seed: int = 0) -> Path:
    """Write the dataset under ``root``; returns ``root``."""
    rng = np.random.default_rng(seed)
    for label in LABELS:
        for subject in SUBJECTS:
            for k in range(takes):
                name = f"{subject}_{k}"
                x = take(label, rng, frames + int(rng.integers(-3, 4)))
                first = int(rng.integers(0, 500))
                rows = [(first + t, j, *np.round(x[t, i], 2)) for t in range(len(x))
                        for i, j in enumerate(JOINTS)
                        if (label, name, t, j) != LOST]
                order = rng.permutation(len(rows))
                path = root / label / f"{name}.csv"
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("w", newline="") as f:
                    w = csv.writer(f)
                    w.writerow(("frame", "joint", "x", "y", "z"))
                    w.writerows(rows[i] for i in order)
    return root
