"""Usage: skelmtl data convert ../shared/data/msr_action3d runs/stores/msr --format msr_action3d

Sub-commands:
    convert SRC DST [--format NAME] [--task NAME] [--split-protocol P] [--seed N]
            [--test-fraction F] [--classes 14|28] [--overwrite]
        read a published dataset and write a clip store (atomically), then summarise it.
    info STORE [--png strip.png] [--clip I] [--json]
        counts per class and split, sequence lengths, missing-joint rates per body part,
        and optionally a PNG strip of one clip's skeleton over time.
    list-formats
        the readers, their default task, source layout and split protocols.

numpy and matplotlib only: works without torch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edge.core.clipstore import Clip, ClipStore, check_destination, write_store
from edge.core.layout import MP75
from trainer.datasets import (
    READERS,
    DatasetError,
    ReadLog,
    ReadOptions,
    detect_format,
    read_dataset,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="{convert,info,list-formats}")
    sub.required = True
    c = sub.add_parser("convert", help="published dataset -> clip store")
    c.add_argument("src", help="dataset folder (or file for asl16)")
    c.add_argument("dst", help="clip store folder to create")
    c.add_argument("--format", choices=sorted(READERS), help="reader (default: autodetect)")
    c.add_argument("--task", help="task name to store (default: the reader's)")
    c.add_argument("--split-protocol", help="split protocol (see list-formats)")
    c.add_argument("--seed", type=int, default=0, help="seed of hash-based splits")
    c.add_argument("--test-fraction", type=float, default=0.2,
                   help="share of each class in test for hash-based splits")
    c.add_argument("--classes", help="label granularity where a dataset has two (14|28)")
    c.add_argument("--overwrite", action="store_true",
                   help="replace an existing clip store (only a clip store, never the input "
                        "or a folder holding it)")
    c.add_argument("--json", action="store_true", help="print the summary as JSON")
    i = sub.add_parser("info", help="summarise a clip store")
    i.add_argument("store")
    i.add_argument("--png", help="write a strip of one clip's skeleton over time here")
    i.add_argument("--clip", type=int, default=0, help="which clip the strip shows")
    i.add_argument("--frames", type=int, default=8, help="frames in the strip")
    i.add_argument("--json", action="store_true", help="print the summary as JSON")
    sub.add_parser("list-formats", help="the dataset readers")


def main(args: argparse.Namespace) -> int:
    if args.action == "list-formats":
        return _list_formats()
    if args.action == "convert":
        return _convert(args)
    return _info(args)


def _list_formats() -> int:
    for name, s in READERS.items():
        extra = f"; --classes {'|'.join(s.classes)}" if s.classes else ""
        prot = ", ".join(s.protocols[:3]) + (", ..." if len(s.protocols) > 3 else "")
        print(f"{name:<13} task={s.task:<8} layout={s.source:<22} protocols: {prot} "
              f"(default {s.protocols[0]}){extra}\n{'':<13} {s.description}")
    return 0


def _convert(args: argparse.Namespace) -> int:
    for value, what in ((args.src, "SRC"), (args.dst, "DST")):
        if not str(value).strip():  # Path("") is the current folder: never meant
            raise DatasetError(f"{what} is empty; give a path")
    src, dst = Path(args.src), Path(args.dst)
    fmt = args.format or detect_format(src)
    opts = ReadOptions(task=args.task, split_protocol=args.split_protocol, seed=args.seed,
                       test_fraction=args.test_fraction, classes=args.classes)
    log = ReadLog()
    # Before the (long) read: never replace the source, a folder holding it, or anything
    # that is not a clip store.
    check_destination(dst, args.overwrite, [src], error=DatasetError)
    spec = READERS[fmt]
    clips = read_dataset(src, fmt, opts, log)
    info = {"reader": fmt, "src": str(src), "task": opts.task or spec.task,
            "split_protocol": opts.split_protocol or spec.protocols[0], "seed": opts.seed,
            "test_fraction": opts.test_fraction, "classes": opts.classes}
    write_store(_logged(clips, log, info), dst, overwrite=args.overwrite, info=info,
                inputs=[src])
    store = ClipStore(dst)
    summary = summarize(store)
    summary["skipped"] = [{"file": f, "reason": r} for f, r in log.skipped]
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(f"wrote {dst} ({fmt}, split protocol {info['split_protocol']})")
        print(format_summary(summary))
        if log.skipped:
            reasons = Counter(r for _, r in log.skipped)
            print(f"skipped {len(log.skipped)} input(s): "
                  + "; ".join(f"{n} x {r}" for r, n in reasons.items()))
            for f, r in log.skipped[:10]:
                print(f"  {f}: {r}")
    return 0


def _logged(clips: Iterator[Clip], log: ReadLog, info: dict[str, Any]) -> Iterator[Clip]:
    """Pass clips through; once all are read, put the reader's log into ``info`` (which
    write_store serialises after the last clip, so the store records what was skipped)."""
    yield from clips
    info["skipped"] = [{"file": f, "reason": r} for f, r in log.skipped]
    info["notes"] = list(dict.fromkeys(log.notes))[:50]


def summarize(store: ClipStore) -> dict[str, Any]:
    """Counts per task/class/split, lengths, missing-joint rates per mp75 part."""
    labels, tasks, splits = store.labels(), store.task_of(), store.column("split")
    per: dict[str, dict[str, Counter[str]]] = {}
    for t, lab, s in zip(tasks, labels, splits):
        per.setdefault(t, {}).setdefault(lab, Counter())[s or "-"] += 1
    lengths = store.lengths()
    missing: dict[str, float] = {}
    present = np.zeros(MP75.num_joints, dtype=np.int64)
    n_frames = int(len(store.masks))
    for a in range(0, n_frames, 1 << 16):  # chunks: the mask may be larger than RAM
        present += np.asarray(store.masks[a: a + (1 << 16)]).sum(0)
    for part, (a, b) in MP75.parts.items():
        missing[part] = round(1.0 - float(present[a:b].sum()) / max(1, n_frames * (b - a)), 4)
    return {
        "store": str(store.path),
        "num_clips": len(store),
        "num_frames": n_frames,
        "dims": store.dims,
        "datasets": sorted(set(store.column("dataset"))),
        "sources": sorted(set(store.column("source"))),
        "split_counts": dict(sorted(Counter(s or "-" for s in splits).items(),
                                    key=lambda kv: _split_order(kv[0]))),
        "tasks": {t: {"num_classes": len(store.tasks[t]),
                      "classes": {lab: dict(sorted(c.items(), key=lambda kv: _split_order(kv[0])))
                                  for lab, c in
                                  sorted(per.get(t, {}).items())}}
                  for t in store.task_names},
        "length": {"min": int(lengths.min()), "median": float(np.median(lengths)),
                   "max": int(lengths.max())},
        "missing_rate": missing,
        "info": store.meta.get("info", {}),
    }


def _split_order(name: str) -> tuple[int, str]:
    return ({"train": 0, "val": 1, "test": 2}.get(name, 3), name)


def format_summary(s: dict[str, Any]) -> str:
    n_classes = sum(t["num_classes"] for t in s["tasks"].values())
    out = [f"{s['store']}: {s['num_clips']} clips / {n_classes} classes, "
           f"{s['num_frames']} frames, {s['dims']}D, datasets {', '.join(s['datasets'])}, "
           f"sources {', '.join(s['sources'])}",
           "splits: " + ", ".join(f"{k} {v}" for k, v in s["split_counts"].items())]
    split_names = list(s["split_counts"])
    for task, t in s["tasks"].items():
        out.append(f"task {task}: {t['num_classes']} classes")
        w = max([5] + [len(c) for c in t["classes"]])
        out.append(f"  {'class':<{w}} " + " ".join(f"{n:>6}" for n in split_names)
                   + f" {'total':>6}")
        for lab, c in t["classes"].items():
            out.append(f"  {lab:<{w}} " + " ".join(f"{c.get(n, 0):>6}" for n in split_names)
                       + f" {sum(c.values()):>6}")
    ln = s["length"]
    out.append(f"sequence length (frames): min {ln['min']}, median {ln['median']:g}, "
               f"max {ln['max']}")
    out.append("missing joints (share of frame x joint entries masked): "
               + ", ".join(f"{p} {100 * r:.1f}%" for p, r in s["missing_rate"].items()))
    return "\n".join(out)


def _info(args: argparse.Namespace) -> int:
    if not str(args.store).strip():
        raise DatasetError("STORE is empty; give a path")
    if args.frames < 1:
        raise DatasetError(f"--frames must be >= 1, got {args.frames}")
    if args.png:
        png = Path(args.png)
        if png.is_dir():
            raise DatasetError(f"{png}: is a folder; --png takes a file name")
        if png.parent.exists() and not png.parent.is_dir():
            raise DatasetError(f"{png}: {png.parent} is not a folder")
        store_dir = Path(args.store).resolve()
        if store_dir == png.resolve() or store_dir in png.resolve().parents:
            raise DatasetError(f"{png}: --png may not write into the store {args.store}")
    store = ClipStore(args.store)
    s = summarize(store)
    if args.png:
        if not -len(store) <= args.clip < len(store):
            raise DatasetError(f"{args.store}: no clip {args.clip} (store has {len(store)})")
        s["png"] = str(draw_strip(store, args.clip, Path(args.png), args.frames))
    if args.json:
        print(json.dumps(s, indent=1))
    else:
        print(format_summary(s))
        if args.png:
            print(f"strip of clip {args.clip} ({store[args.clip].clip_id}): {s['png']}")
    return 0


def draw_strip(store: ClipStore, index: int, out: Path, n_frames: int = 8) -> Path:
    """Draw ``n_frames`` evenly spaced frames of one clip side by side (x right, y down)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clip = store[index]
    f, m = np.asarray(clip.frames), np.asarray(clip.mask)
    ts = np.unique(np.linspace(0, len(f) - 1, min(n_frames, len(f))).round().astype(int))
    pts = f[..., :2][m]
    if len(pts):
        lo, hi = pts.min(0), pts.max(0)
    else:
        lo, hi = np.zeros(2), np.ones(2)
    pad = 0.05 * float(max(hi - lo)) + 1e-6
    fig, axes = plt.subplots(1, len(ts), figsize=(2.0 * len(ts), 2.6), squeeze=False)
    colours = {"body": "tab:blue", "left_hand": "tab:green", "right_hand": "tab:red"}
    part_of = np.empty(MP75.num_joints, dtype=object)
    for part, (a, b) in MP75.parts.items():
        part_of[a:b] = part
    for ax, t in zip(axes[0], ts):
        for i, j in MP75.edges:
            if m[t, i] and m[t, j]:
                ax.plot([f[t, i, 0], f[t, j, 0]], [f[t, i, 1], f[t, j, 1]], "-",
                        color=colours[part_of[j]], lw=1)
        vis = m[t]
        ax.scatter(f[t, vis, 0], f[t, vis, 1], s=3, c="k")
        ax.set_xlim(lo[0] - pad, hi[0] + pad)
        ax.set_ylim(hi[1] + pad, lo[1] - pad)  # y grows downwards (image convention)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"t={t}", fontsize=8)
    fig.suptitle(f"{clip.clip_id}: {clip.label} ({clip.task}, {clip.dataset})", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".png", dir=out.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=100)
        os.replace(tmp, out)
    finally:
        plt.close(fig)
        Path(tmp).unlink(missing_ok=True)
    return out


if __name__ == "__main__":
    from edge.commands.runner import run_main

    sys.exit(run_main("data", sys.modules[__name__]))
