"""Usage: skelmtl extract videos/ -o gestures.store --label-from parent --task gesture --workers 2

``skelmtl extract``: the arguments of :func:`edge.frontend.extract.run_extract`,
which does the work (worker processes, the resumable work folder, the atomic store).
"""

from __future__ import annotations

import argparse
import os

from edge.frontend.extract import run_extract


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="VIDEOS_OR_FOLDERS",
                   help="video files, folders of videos (recursive) or *.landmarks.npz files")
    p.add_argument("-o", "--output", required=True, metavar="STORE", help="clip store to write")
    p.add_argument("--label-from", default="parent", metavar="parent|LABEL",
                   help="'parent': each video's folder name; anything else: that label "
                        "for every clip (default: parent)")
    p.add_argument("--task", default="gesture", help="task of the clips (default: gesture)")
    p.add_argument("--workers", type=int, default=max(1, min(4, os.cpu_count() or 1)),
                   help="parallel processes (default: min(4, CPUs)); 1 runs in this process")
    p.add_argument("--resume", action="store_true",
                   help="reuse landmarks already extracted into the work folder")
    p.add_argument("--work-dir", metavar="DIR",
                   help="per-video landmark cache (default: .STORE.work beside the store)")
    p.add_argument("--save-landmarks", metavar="DIR",
                   help="also write each video's landmarks as DIR/<clip>.landmarks.npz")
    p.add_argument("--split", default="train", help="split of the clips (default: train)")
    p.add_argument("--test-fraction", type=float, default=0.0,
                   help="put this share of each label's clips in the 'test' split, chosen "
                        "by a hash of the clip name (default: 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the test split hash")
    p.add_argument("--every", type=int, default=1, metavar="N",
                   help="keep every N-th frame (default: 1, all)")
    from edge.commands.run import add_front_end_argument

    add_front_end_argument(p, providers="--providers")
    p.add_argument("--providers", default=None,
                   help="ONNX Runtime providers of the onnx front end: cpu (default), cuda, "
                        "tensorrt, best")
    p.add_argument("--pose-model", metavar="PATH", help="pose_landmarker .task file")
    p.add_argument("--hand-model", metavar="PATH", help="hand_landmarker .task file")
    p.add_argument("--offline", action="store_true",
                   help="never download model files (same as SKELMTL_OFFLINE=1)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing clip store (only a clip store, never an input "
                        "or a folder holding one)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    report = run_extract(
        args.inputs, args.output, label_from=args.label_from, task=args.task,
        workers=args.workers, resume=args.resume, work_dir=args.work_dir,
        save_landmarks=args.save_landmarks, split=args.split, test_fraction=args.test_fraction,
        seed=args.seed, every=args.every, pose_model=args.pose_model,
        hand_model=args.hand_model, offline=True if args.offline else None,
        overwrite=args.overwrite, progress=not args.no_progress, front_end=args.front_end,
        providers=args.providers)
    return 0 if report.store is not None else 1
