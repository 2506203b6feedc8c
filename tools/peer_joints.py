"""Run the DD-Net peer (../shared/peers/ddnet.py) on a subset of a dataset's joints.

Usage: python tools/peer_joints.py --drop 2 3 6 -- --dataset msr_action3d --filters 64 \
           --seed 0 --threads 1 --out runs/ablation/peer_msr17/seed0

Why: the project's models read skeletons in the mp75 layout (MediaPipe's joints), which has
no slot for some joints a source records (MSR Action3D's Kinect neck, spine and hip centre,
indices 2, 3 and 6 of its order). Training the peer without those joints tells how much of
a gap to the peer is the input the layout cannot carry. The peer script is read, not copied:
its reader is wrapped so that the dropped joints never reach it; everything else, recipe and
splits, is the peer's own.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from edge.core.layout import MP75
from edge.core.preprocess import body_sizes

PEER = Path(__file__).resolve().parents[1].parent / "shared" / "peers" / "ddnet.py"


def torso(x: np.ndarray, ls: int, rs: int, lh: int, rh: int) -> float:
    """The preprocessing's body size of a clip ``x (T, J, D)`` in the source's joint order:
    :func:`edge.core.preprocess.body_sizes` with these joints as the shoulders and hips,
    median over frames (the peer's readers keep only frames with every joint)."""
    layout = replace(MP75, center=(ls, rs), hips=(lh, rh))
    size, _ = body_sizes(x, np.ones(x.shape[:2], bool), layout, "torso")
    return float(np.median(size)) or 1.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--drop", type=int, nargs="+", required=True, help="joint indices to drop")
    ap.add_argument("--torso-scale", type=int, nargs=4, metavar=("LS", "RS", "LH", "RH"),
                    help="divide each clip by its body size as skelmtl's preprocessing "
                         "measures it, from these joints of the source order")
    ap.add_argument("--peer", type=Path, default=PEER, help="the peer script")
    ap.add_argument("rest", nargs=argparse.REMAINDER, help="-- then the peer's own arguments")
    args = ap.parse_args()
    if not args.peer.is_file():
        sys.exit(f"peer_joints: {args.peer}: no such file")
    spec = importlib.util.spec_from_file_location("ddnet_peer", args.peer)
    assert spec is not None and spec.loader is not None
    peer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peer)
    drop = sorted(set(args.drop))

    def wrap(load):
        def loader(root, a):
            train, val, test, classes, info, extra = load(root, a)

            def keep(part):
                if part is None:
                    return None
                xs, ys = part
                if args.torso_scale:
                    xs = [x / torso(x, *args.torso_scale) for x in xs]
                return [x[:, [j for j in range(x.shape[1]) if j not in drop]] for x in xs], ys
            info = dict(info, joints=f"{info['joints']}; dropped indices {drop}"
                             + (f"; torso-scaled by {args.torso_scale}" if args.torso_scale else ""))
            return keep(train), keep(val), keep(test), classes, info, extra
        return loader

    peer.LOADERS = {k: wrap(v) for k, v in peer.LOADERS.items()}
    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    sys.argv = [str(args.peer), *rest]
    peer.main()


if __name__ == "__main__":
    main()
