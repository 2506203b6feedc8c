"""Synthetic but learnable mp75 clips for trainer tests (real-data tests live elsewhere).

Action classes move the right wrist along a class-specific direction; gesture classes
move a class-specific finger of the right hand in a class-specific direction. Both are unambiguous to a small network,
so a few epochs reach a clear accuracy bar.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.core.clipstore import Clip, write_store
from edge.core.layout import L_SHOULDER, NUM_JOINTS, R_SHOULDER, R_WRIST, RIGHT_HAND0

ACTIONS = ("raise", "sweep", "push")
GESTURES = ("curl_index", "curl_middle", "curl_pinky")
_DIRECTIONS = {"curl_index": (0, 1, 0), "curl_middle": (1, 0, 0), "curl_pinky": (0, 0, -1)}
_FINGERS = {"curl_index": (5, 6, 7, 8), "curl_middle": (9, 10, 11, 12), "curl_pinky": (17, 18, 19, 20)}


def body(t: int, rng: np.random.Generator) -> np.ndarray:
    x = np.zeros((t, NUM_JOINTS, 3), np.float32)
    base = rng.normal(0, 0.02, size=(NUM_JOINTS, 3)).astype(np.float32)
    base[:33, 1] += np.linspace(-0.5, 0.5, 33)
    x[:] = base
    x[:, L_SHOULDER, 0], x[:, R_SHOULDER, 0] = 0.2, -0.2
    return x + rng.normal(0, 0.01, size=x.shape).astype(np.float32)


def action_clip(label: str, rng: np.random.Generator, t: int) -> np.ndarray:
    x = body(t, rng)
    d = {"raise": (0, -1, 0), "sweep": (1, 0, 0), "push": (0, 0, 1)}[label]
    s = np.sin(np.linspace(0, 2 * np.pi, t))[:, None] * 0.4
    x[:, R_WRIST] += s * np.asarray(d, np.float32)
    x[:, RIGHT_HAND0:] = x[:, R_WRIST: R_WRIST + 1]
    return x


def gesture_clip(label: str, rng: np.random.Generator, t: int) -> np.ndarray:
    x = body(t, rng)
    hand = x[:, RIGHT_HAND0: RIGHT_HAND0 + 21]
    hand[:] = x[:, R_WRIST: R_WRIST + 1] + np.linspace(0, 0.1, 21)[None, :, None]
    # Each gesture moves its own finger in its own direction, big enough to stand out of
    # the per-clip body jitter after scale normalisation (shoulder width 0.4). Location
    # alone (which finger) is hard for a 4-block network that pools over joints with
    # ~20 clips per class; the direction makes the classes separable by a small model.
    d = np.asarray(_DIRECTIONS[label], np.float32)
    for j in _FINGERS[label]:
        hand[:, j] += np.sin(np.linspace(0, 2 * np.pi, t))[:, None] * 0.4 * d
    return x


def make_store(path: Path, n_per_class: int = 12, seed: int = 0, t: int = 24,
               tasks: tuple[str, ...] = ("action", "gesture")) -> Path:
    """A store with train/test splits (3 of every 4 clips train) and both tasks."""
    rng = np.random.default_rng(seed)
    clips = []
    for task in tasks:
        names, make = (ACTIONS, action_clip) if task == "action" else (GESTURES, gesture_clip)
        for label in names:
            for i in range(n_per_class):
                n = int(t + rng.integers(-4, 5))
                x = make(label, rng, n)
                clips.append(Clip(frames=x, mask=np.ones(x.shape[:2], bool), label=label,
                                  task=task, subject=f"s{i % 4}",
                                  split="test" if i % 4 == 3 else "train",
                                  source="synthetic", clip_id=f"{task}/{label}/{i}",
                                  dataset="synthetic"))
    return write_store(clips, path)
