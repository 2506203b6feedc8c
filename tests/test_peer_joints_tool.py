"""tools/peer_joints.py: the peer's reader wrapped so dropped joints never reach it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

FAKE_PEER = '''
import argparse, json, sys
import numpy as np

def load(root, args):
    x = np.arange(2 * 5 * 3, dtype=np.float64).reshape(2, 5, 3)
    x[:, 1, 0] += 2.0            # joint 1 two units right of joint 0: shoulder width 2
    return ([x, x + 1], [0, 1]), None, ([x], [0]), ["a", "b"], {"joints": "five"}, {}

LOADERS = {"toy": load}

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset")
    ap.add_argument("--out")
    a = ap.parse_args()
    train, val, test, classes, info, extra = LOADERS[a.dataset](None, a)
    json.dump({"shape": list(train[0][0].shape), "labels": train[1], "val": val,
               "info": info["joints"], "first": train[0][0][0].tolist()}, open(a.out, "w"))
'''


def _run(tmp: Path, *flags: str) -> dict:
    peer = tmp / "ddnet.py"
    peer.write_text(FAKE_PEER)
    out = tmp / "out.json"
    subprocess.run([sys.executable, str(ROOT / "tools" / "peer_joints.py"), "--peer", str(peer),
                    *flags, "--", "--dataset", "toy", "--out", str(out)], check=True)
    return json.loads(out.read_text())


def test_dropped_joints_never_reach_the_peer(tmp_path: Path) -> None:
    got = _run(tmp_path, "--drop", "2", "4")
    assert got["shape"] == [2, 3, 3] and got["labels"] == [0, 1] and got["val"] is None
    assert got["info"] == "five; dropped indices [2, 4]"
    x = np.arange(30, dtype=np.float64).reshape(2, 5, 3)
    x[:, 1, 0] += 2.0
    assert np.array_equal(np.asarray(got["first"]), x[0, [0, 1, 3]])


def test_torso_scale_divides_by_the_preprocessing_body_size(tmp_path: Path) -> None:
    # joints 0/1 as the shoulders and 2/3 as the hips; the size is the preprocessing's
    # rule (edge.core.preprocess.body_sizes), written out here as the reference
    got = _run(tmp_path, "--drop", "4", "--torso-scale", "0", "1", "2", "3")
    x = np.arange(30, dtype=np.float64).reshape(2, 5, 3)
    x[:, 1, 0] += 2.0
    width = np.linalg.norm(x[:, 0] - x[:, 1], axis=-1)
    length = np.linalg.norm(0.5 * (x[:, 0] + x[:, 1] - x[:, 2] - x[:, 3]), axis=-1)
    size = np.median(np.maximum(width, 0.6 * length))
    assert np.allclose(np.asarray(got["first"]), x[0, :4] / size)
    assert got["info"].endswith("torso-scaled by [0, 1, 2, 3]")


def test_missing_peer_is_one_line(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "peer_joints.py"), "--peer",
                        str(tmp_path / "nope.py"), "--drop", "1", "--", "--dataset", "toy"],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.strip() == f"peer_joints: {tmp_path / 'nope.py'}: no such file"
