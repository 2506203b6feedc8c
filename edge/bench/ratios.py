"""The ratios of a run: what the benchmark is for, measured within one run because this
machine's speed wanders between runs (the same landmarks measured 31 and 17.5 ms per frame
on different days)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from edge.bench.options import variant_key
from edge.bench.report import Ratio
from edge.bench.stats import TARGET_FRONT_END_SHARE, Entry, find_entry, mean, p50, ratio


def front_end_label(variant: str) -> str:
    """The label of a front-end variant's whole-frame row (the full one keeps its old name)."""
    return "landmarks (pose + hands + merge)" if variant == "full" else f"landmarks {variant}"


def _label(e: Entry | None) -> str:
    return e.label if e is not None else "missing"


def compute_ratios(stages: Sequence[Entry], stride: int,
                   agreement: Mapping[str, Mapping[str, float]] | None = None,
                   extra: Mapping[str, Ratio] | None = None) -> dict[str, Ratio]:
    """The ratios that matter, from the entries' medians (p50).

    * ``int8_over_fp32_<backend>_b<batch>``: INT8 / FP32 model latency, same backend;
    * ``model_per_stride_over_landmarks_per_frame``: (model p50 at batch 1 / stride) /
      landmark front-end p50 per frame -- the network's share of the per-frame work; the
      issue's aim is <= 0.1 (INT8 ONNX Runtime, else FP32);
    * ``model_over_landmarks_per_frame``: one model call / one frame of landmarks, the
      stricter un-amortised view (what one window update adds to that frame's latency);
    * ``end_to_end_over_landmarks``: a whole video frame (decode, landmarks, pipeline) over
      its landmarks alone, the two timed interleaved frame by frame;
    * ``pose_over_hands``: the two MediaPipe stages against each other;
    * ``top1_agreement_<backend>_<output>``: share of the benchmark's windows whose top-1
      class on that output equals ONNX Runtime FP32's (informative: these windows slide
      over the clips, they are not a test set);
    * ``front_end_<variant>_over_full``: a routed front end's mean cost per frame over the
      full front end's (pose + hands on every frame), the two timed interleaved frame by
      frame (:mod:`edge.bench.video`); the issue's aim for ``auto`` is <= 0.5; another
      implementation's variants (``onnx:auto``) against the same MediaPipe full front end,
      keyed ``front_end_onnx_auto_over_full``;
    * ``extra``: ratios made elsewhere (the event agreement of the front-end variants).
    """
    out: dict[str, Ratio] = {}
    batches = sorted({e.batch for e in stages if e.stage == "model"})
    for kind in ("onnxruntime", "tensorrt"):
        for b in batches:
            fp = find_entry(stages, "model", backend=kind, precision="fp32", batch=b)
            if kind == "tensorrt":
                fp = fp or find_entry(stages, "model", backend=kind, precision="fp16", batch=b)
            i8 = find_entry(stages, "model", backend=kind, precision="int8", batch=b)
            if fp is None and i8 is None:
                continue
            note = "model latency p50, same backend and batch; < 1 means INT8 is faster"
            per = [i8.rounds_p50_ms if i8 else None, fp.rounds_p50_ms if fp else None]
            rounds = ([round(a / d, 4) for a, d in zip(per[0], per[1]) if d > 0]
                      if per[0] and per[1] and len(per[0]) == len(per[1]) else [])
            if rounds:
                note += (f"; each round's p50 ratio {min(rounds):.2f} to {max(rounds):.2f} "
                         f"({len(rounds)} rounds)")
            out[f"int8_over_{'fp32' if fp is None or fp.precision == 'fp32' else 'fp16'}"
                f"_{kind}_b{b}"] = Ratio(ratio(p50(i8), p50(fp)), _label(i8), _label(fp), note,
                                         tuple(rounds) if rounds else None)
    t_front = (find_entry(stages, "landmarks", label=front_end_label("full"))
               or find_entry(stages, "landmarks"))
    model = (find_entry(stages, "model", backend="onnxruntime", precision="int8", batch=1)
             or find_entry(stages, "model", backend="onnxruntime", precision="fp32", batch=1)
             or find_entry(stages, "model", batch=1))
    m50 = p50(model)
    out["model_per_stride_over_landmarks_per_frame"] = Ratio(
        ratio(None if m50 is None else m50 / stride, p50(t_front)),
        f"{model.label} / stride {stride}" if model else "missing", _label(t_front),
        f"network share of per-frame work; aim <= {TARGET_FRONT_END_SHARE}")
    out["model_over_landmarks_per_frame"] = Ratio(
        ratio(m50, p50(t_front)), _label(model), _label(t_front),
        "one model call vs one frame of landmarks (un-amortised)")
    e2e = find_entry(stages, "end_to_end")
    out["end_to_end_over_landmarks"] = Ratio(
        ratio(p50(e2e), p50(t_front)), _label(e2e), _label(t_front),
        "a whole video frame vs its landmarks alone; the rest of the runtime's share")
    pose, hands = find_entry(stages, "landmarks_pose"), find_entry(stages, "landmarks_hands")
    out["pose_over_hands"] = Ratio(ratio(p50(pose), p50(hands)), "landmarks_pose",
                                   "landmarks_hands",
                                   "MediaPipe pose vs hand landmarker, per frame")
    full_label = front_end_label("full")
    for routed in stages:
        if (routed.stage != "landmarks" or routed.label == full_label
                or not routed.label.startswith("landmarks ") or routed.status != "ok"):
            continue
        variant = routed.label[len("landmarks "):]
        aim = "; the aim is <= 0.5" if variant.endswith("auto") else ""
        out[f"front_end_{variant_key(variant)}_over_full"] = Ratio(
            ratio(mean(routed), mean(t_front)), routed.label, _label(t_front),
            f"mean cost per frame of the front end routed for {variant!r} vs pose + hands "
            f"on every frame, interleaved frame by frame{aim}")
    for which, per_output in sorted((agreement or {}).items()):
        for name, v in per_output.items():
            out[f"top1_agreement_{which.replace('-', '_')}_{name}"] = Ratio(
                v, f"{which} {name}", f"onnxruntime-fp32 {name}",
                "share of the benchmark's windows with the same top-1 class")
    out.update(extra or {})
    return out
