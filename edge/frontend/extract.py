"""Usage: skelmtl extract videos/ -o gestures.store --label-from parent --task gesture --workers 2

``skelmtl extract``: videos -> MediaPipe landmarks -> a labelled clip store. Each video runs through the landmark front end (:class:`edge.frontend.landmarks.Landmarker`,
video mode; ``--front-end onnx``: :class:`edge.frontend.onnx_landmarks.OnnxLandmarker`) in its own worker process; every worker creates its own landmarkers. The
landmarks of each finished video are cached as a ``*.landmarks.npz`` file in a work
folder (default: ``.<STORE>.work`` beside the store), so ``--resume`` after an
interruption skips the videos already done. The clip store is written at the end, in one
atomic step (:func:`edge.core.clipstore.write_store`). A video that cannot be decoded is
reported by name and left out; it does not stop the others.

Inputs are video files, folders (searched recursively for videos), or recorded
``*.landmarks.npz`` files (taken as they are, no MediaPipe). ``--label-from parent``
labels each clip with its folder's name (``videos/wave/001.mp4`` -> ``wave``); any other
value is used as the label of every clip.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.core.clipstore import Clip, check_destination, write_store
from edge.core.errors import SkelmtlError
from edge.core.recording import SUFFIX as RECORDING_SUFFIX
from edge.core.recording import RecordingError, load_recording, recording_stem, save_recording
from edge.frontend.sources import VIDEO_EXTENSIONS

CACHE_VERSION = 1


class ExtractError(SkelmtlError):
    """Bad arguments or nothing to extract."""


@dataclass(frozen=True)
class Job:
    """One input of the extraction.

    Attributes:
        path: the video (or recording) file.
        clip_id: unique name in the store (path relative to the input given).
        label: the clip's label.
        cache: where its landmarks are cached in the work folder.
    """

    path: Path
    clip_id: str
    label: str
    cache: Path

    @property
    def is_recording(self) -> bool:
        return self.path.name.endswith(RECORDING_SUFFIX)




# --------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------


def find_inputs(inputs: Sequence[str | os.PathLike[str]]) -> list[tuple[Path, str]]:
    """``(file, clip_id)`` for every video or recording named or found below a folder.

    Raises:
        ExtractError: for a path that does not exist.
    """
    out: list[tuple[Path, str]] = []
    for item in inputs:
        root = Path(item).expanduser()
        if root.is_dir():
            found = sorted(p for p in root.rglob("*") if p.is_file() and _is_input(p))
            out.extend((p, f"{root.name}/{p.relative_to(root).as_posix()}") for p in found)
        elif root.is_file():
            out.append((root, root.name))
        else:
            raise ExtractError(f"{root}: no such file or folder")
    seen: dict[str, int] = {}
    unique = []
    for p, cid in out:
        n = seen.get(cid, 0)
        seen[cid] = n + 1
        unique.append((p, cid if n == 0 else f"{cid}#{n}"))
    return unique


def _is_input(p: Path) -> bool:
    return p.suffix.lower() in VIDEO_EXTENSIONS or p.name.endswith(RECORDING_SUFFIX)


def cache_name(path: Path, every: int, models: Sequence[str]) -> str:
    """Cache file name: changes when the video, the frame step or the models change."""
    st = path.stat()
    key = "|".join([str(CACHE_VERSION), str(path.resolve()), str(st.st_size),
                    str(st.st_mtime_ns), str(every), *models])
    stem = recording_stem(path.name).rsplit(".", 1)[0][:40]
    return f"{stem}-{hashlib.sha1(key.encode()).hexdigest()[:12]}{RECORDING_SUFFIX}"


def plan(inputs: Sequence[str | os.PathLike[str]], label_from: str, work_dir: Path,
         every: int = 1, models: Sequence[str] = ()) -> list[Job]:
    """The jobs for ``inputs``, labelled, each with its cache path."""
    jobs = []
    for path, cid in find_inputs(inputs):
        label = path.parent.name if label_from == "parent" else label_from
        if not label:
            raise ExtractError(f"{path}: no parent folder name to use as label")
        jobs.append(Job(path, cid, label, work_dir / cache_name(path, every, models)))
    return jobs


def assign_splits(jobs: Sequence[Job], split: str, test_fraction: float, seed: int
                  ) -> dict[str, str]:
    """clip_id -> split; with ``test_fraction`` > 0, a stratified hash split per label.

    The same rule as the dataset readers (``trainer.datasets.base.hash_split``): within
    each label, clips ordered by ``sha1(f"{seed}:{clip_id}")``, the first
    ``round(test_fraction * n)`` go to ``test``.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise ExtractError(f"--test-fraction must be in [0, 1), got {test_fraction}")
    out = {j.clip_id: split for j in jobs}
    if test_fraction > 0:
        groups: dict[str, list[str]] = {}
        for j in jobs:
            groups.setdefault(j.label, []).append(j.clip_id)
        for members in groups.values():
            order = sorted(members,
                           key=lambda k: hashlib.sha1(f"{seed}:{k}".encode()).hexdigest())
            for m in order[: int(round(test_fraction * len(order)))]:
                out[m] = "test"
    return out


# --------------------------------------------------------------------------------------
# Work (runs in the worker processes)
# --------------------------------------------------------------------------------------


def extract_video(path: str | os.PathLike[str], *, pose_model: str | None = None,
                  hand_model: str | None = None, every: int = 1,
                  offline: bool | None = None, front_end: str = "mediapipe",
                  providers: str | None = None) -> tuple[Any, dict[str, Any]]:
    """Landmarks of one video as a :class:`edge.core.recording.Recording`, through the landmark
    front end ``front_end`` (:data:`edge.frontend.landmarks.FRONT_ENDS`; ``providers``: the ONNX
    Runtime providers of ``onnx``).

    Returns:
        ``(recording, info)``; ``info`` has ``frames``, ``fps``, ``end_reason``,
        ``ended_early``, and the per-stage milliseconds summed (``decode_ms``,
        ``pose_ms``, ``hands_ms``).

    Raises:
        edge.frontend.sources.SourceError: the video cannot be opened or decodes no frame.
    """
    from edge.frontend.landmarks import front_end_options, open_front_end, to_recording
    from edge.frontend.sources import open_source

    frames = []
    totals = {"pose_ms": 0.0, "hands_ms": 0.0}
    lm = open_front_end(front_end, mode="video", pose_model=pose_model or None,
                        hand_model=hand_model or None,
                        **front_end_options(front_end, providers=providers, offline=offline))
    with open_source(path) as src, contextlib.closing(lm):
        for f in src:
            if f.index % every:
                continue
            frames.append(lm.process(f.image, f.t, f.index))
            for k in totals:
                totals[k] += lm.last_timings[k]
    fps = src.fps / every if src.fps else 0.0
    info = {"frames": len(frames), "fps": fps, "end_reason": src.end_reason,
            "ended_early": src.ended_early, "decode_ms": src.decode_ms_total, **totals}
    meta = {"source": str(path), "fps": fps, "every": every, "end_reason": src.end_reason,
            "ended_early": src.ended_early}
    return to_recording(frames, meta), info


def _work(job: Job, pose_model: str, hand_model: str, every: int, front_end: str = "mediapipe",
          providers: str | None = None) -> tuple[str, str | None, dict[str, Any]]:
    """Extract one job into its cache file; errors are returned, not raised."""
    t0 = time.perf_counter()
    try:
        rec, info = extract_video(job.path, pose_model=pose_model, hand_model=hand_model,
                                  every=every, offline=True, front_end=front_end,
                                  providers=providers)
        save_recording(job.cache, rec)
    except (SkelmtlError, OSError, ValueError, RuntimeError) as e:
        return job.clip_id, f"{type(e).__name__}: {e}", {}
    except Exception as e:  # cv2.error and friends: report, keep going
        return job.clip_id, f"{type(e).__name__}: {e}", {}
    info["seconds"] = time.perf_counter() - t0
    return job.clip_id, None, info


# --------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------


@dataclass
class Report:
    """What an extraction did.

    Attributes:
        done: clip ids extracted in this run.
        cached: clip ids reused from the work folder (``--resume``).
        failed: clip id -> reason, for inputs left out.
        warnings: clip id -> note (video ended early, no person or hand found).
        store: the written store, or None.
    """

    done: list[str]
    cached: list[str]
    failed: dict[str, str]
    warnings: dict[str, str]
    store: Path | None = None


def run_extract(inputs: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], *,
                label_from: str = "parent", task: str = "gesture", workers: int = 1,
                resume: bool = False, work_dir: str | os.PathLike[str] | None = None,
                save_landmarks: str | os.PathLike[str] | None = None, split: str = "train",
                test_fraction: float = 0.0, seed: int = 0, every: int = 1,
                pose_model: str | None = None, hand_model: str | None = None,
                offline: bool | None = None, overwrite: bool = False, progress: bool = True,
                log: Any = None, front_end: str = "mediapipe",
                providers: str | None = None) -> Report:
    """The ``skelmtl extract`` pipeline as a function (arguments as on the command line).

    Raises:
        ExtractError: bad arguments, or no clip could be extracted.
        edge.frontend.model_files.ModelFileError: the MediaPipe models are not available.
        edge.frontend.landmarks.LandmarkerError: ``front_end="onnx"`` without its converted models.
    """
    from edge.frontend.model_files import resolve_models

    log = log or (lambda msg: print(msg, file=sys.stderr))
    if not str(output).strip() or any(not str(i).strip() for i in inputs):
        raise ExtractError("an input or the output is an empty path")  # "" would be "."
    output = Path(output)
    if every < 1 or workers < 1:
        raise ExtractError("--every and --workers must be at least 1")
    # Every option is checked before the first video: extraction can take hours.
    if not task:
        raise ExtractError("--task must not be empty")
    if not label_from:
        raise ExtractError("--label-from must be 'parent' or a label, got ''")
    if not 0.0 <= test_fraction < 1.0:
        raise ExtractError(f"--test-fraction must be in [0, 1), got {test_fraction}")
    if save_landmarks and Path(save_landmarks).exists() and not Path(save_landmarks).is_dir():
        raise ExtractError(f"{save_landmarks}: --save-landmarks takes a folder; this is a file")
    # Before any video is read: never replace an input, a folder holding one, or anything
    # that is not a clip store.
    check_destination(output, overwrite, inputs, error=ExtractError)
    wd = Path(work_dir) if work_dir else output.parent / f".{output.name}.work"
    try:
        _check_work_dir(wd, inputs)
    except ExtractError as e:
        if work_dir:
            raise
        raise ExtractError(f"{e} (it is the default, beside the store: write the store "
                           f"outside the input, or pass --work-dir)") from None
    jobs_all = plan(inputs, label_from, wd, every, ())
    if not jobs_all:
        raise ExtractError(f"no videos found in {', '.join(map(str, inputs))} "
                           f"({', '.join(sorted(VIDEO_EXTENSIONS))})")
    need_mp = any(not j.is_recording for j in jobs_all)
    models: tuple[str, str] = ("", "")
    names: list[str] = []
    if need_mp and front_end == "onnx":
        # Checked here, before the first video, not in each worker.
        if pose_model or hand_model:
            raise ExtractError("--pose-model/--hand-model take MediaPipe .task files; the "
                               "onnx front end reads its converted models (skelmtl "
                               "convert-landmarks)")
        from edge.frontend.onnx_landmarks import MODEL_FILES, require_models

        require_models()
        # The front end is part of the cache key: its landmarks are not MediaPipe's.
        names = [f"onnx/{m}" for m in MODEL_FILES]
        jobs_all = plan(inputs, label_from, wd, every, names)
    elif need_mp:
        # Resolve (and download) once here, so workers never race on the cache.
        pose_p, hand_p = resolve_models(pose_model, hand_model, offline=offline)
        models = (str(pose_p), str(hand_p))
        names = [pose_p.name, hand_p.name]
        jobs_all = plan(inputs, label_from, wd, every, names)
    wd.mkdir(parents=True, exist_ok=True)
    report = Report(done=[], cached=[], failed={}, warnings={})
    todo = []
    for j in jobs_all:
        if j.is_recording:
            continue
        if resume and j.cache.is_file():
            report.cached.append(j.clip_id)
        else:
            todo.append(j)
    if report.cached:
        log(f"resume: {len(report.cached)} of {len(jobs_all)} videos already extracted in {wd}")
    try:
        _run_jobs(todo, models, every, workers, progress, report, (front_end, providers))
    except KeyboardInterrupt:
        log(f"interrupted: {len(report.done) + len(report.cached)} videos are done and cached "
            f"in {wd}; run the same command with --resume to continue")
        raise
    clips = list(_clips(jobs_all, report, task, assign_splits(jobs_all, split, test_fraction,
                                                              seed), save_landmarks))
    for cid, why in report.failed.items():
        log(f"skipped {cid}: {why}")
    for cid, note in report.warnings.items():
        log(f"warning {cid}: {note}")
    if not clips:
        raise ExtractError(f"no clip extracted from {len(jobs_all)} inputs; see the reasons above")
    report.store = write_store(clips, output, overwrite=overwrite, inputs=inputs, info={
        "producer": "skelmtl extract", "inputs": [str(i) for i in inputs], "task": task,
        "label_from": label_from, "every": every,
        "models": names, "front_end": front_end,
        "failed": report.failed})
    labels = sorted({c.label for c in clips})
    log(f"wrote {output}: {len(clips)} clips, {sum(len(c) for c in clips)} frames, "
        f"labels {labels}; {len(report.failed)} inputs skipped; landmark cache in {wd}")
    return report


def _check_work_dir(wd: Path, inputs: Sequence[str | os.PathLike[str]]) -> None:
    """The work folder holds only cache files; it may not be, or be inside, an input folder.

    Cache files are named by a hash, so they would not replace a video, but a later
    ``extract`` of the same folder would take them for inputs.
    """
    from edge.core.clipstore import _resolved

    if wd.exists() and not wd.is_dir():
        raise ExtractError(f"{wd}: the work folder is a file")
    rw = _resolved(wd)
    for inp in inputs:
        ri = _resolved(inp)
        if ri == rw or (ri.is_dir() and ri in rw.parents) or rw in ri.parents:
            raise ExtractError(f"{wd}: the work folder may not be, hold or lie inside the "
                               f"input {inp}")


def _run_jobs(todo: Sequence[Job], models: tuple[str, str], every: int, workers: int,
              progress: bool, report: Report,
              front: tuple[str, str | None] = ("mediapipe", None)) -> None:
    from tqdm import tqdm

    # disable=None: tqdm turns itself off when stderr is not a terminal (logs, CI), where
    # its redraws would print the bar line again and again.
    bar = tqdm(total=len(todo), unit="video", desc="extract",
               disable=None if progress and todo else True, file=sys.stderr)

    def collect(result: tuple[str, str | None, dict[str, Any]]) -> None:
        cid, err, info = result
        if err:
            report.failed[cid] = err
        else:
            report.done.append(cid)
            if info.get("ended_early"):
                report.warnings[cid] = str(info.get("end_reason"))
        bar.set_postfix_str(cid[-30:], refresh=False)
        bar.update(1)

    try:
        if workers == 1 or len(todo) <= 1:
            for j in todo:
                collect(_work(j, models[0], models[1], every, *front))
        else:
            import multiprocessing as mp

            # spawn: MediaPipe's threads do not survive fork, and each worker needs its own
            # landmarkers anyway.
            pool = ProcessPoolExecutor(max_workers=min(workers, len(todo)),
                                       mp_context=mp.get_context("spawn"),
                                       initializer=_worker_init, initargs=(os.getpid(),))
            try:
                futures = {pool.submit(_work, j, models[0], models[1], every, *front): j
                           for j in todo}
                for fut in as_completed(futures):
                    try:
                        collect(fut.result())
                    except Exception as e:  # a worker that died (e.g. OOM)
                        collect((futures[fut].clip_id, f"worker failed: {e}", {}))
            except BaseException:
                # Ctrl-C / SIGTERM: a video can take minutes; do not wait for the workers.
                _kill_pool(pool)
                raise
            pool.shutdown(wait=True)
    finally:
        bar.close()


def _worker_init(parent: int) -> None:
    """Runs first in each worker: it must never outlive the ``extract`` that started it.

    The parent handles Ctrl-C and SIGTERM (and stops its workers); a worker ignores
    SIGINT, which the terminal sends to the whole process group. On Linux the kernel
    sends the worker SIGKILL when the parent dies (PR_SET_PDEATHSIG), even by SIGKILL;
    elsewhere a watchdog thread notices the new parent process id.
    """
    import signal
    import threading

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before the line above ran
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="skelmtl-parent-watch", daemon=True).start()


def _kill_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and terminate the workers now (SIGTERM, then SIGKILL)."""
    procs = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    for proc in procs:
        proc.join(timeout=1.0)
        if proc.is_alive():
            proc.kill()
            proc.join(timeout=1.0)


def _clips(jobs: Iterable[Job], report: Report, task: str, splits: dict[str, str],
           save_landmarks: str | os.PathLike[str] | None) -> Iterable[Clip]:
    jobs_list = list(jobs)
    for j in jobs_list:
        if j.clip_id in report.failed:
            continue
        src = j.path if j.is_recording else j.cache
        if not src.is_file():
            continue
        try:
            rec = load_recording(src)
        except RecordingError as e:
            report.failed[j.clip_id] = str(e)
            continue
        if len(rec) == 0 or not rec.mask.any():
            report.failed[j.clip_id] = "no person or hand found in any frame"
            continue
        if save_landmarks and not j.is_recording:
            dst = Path(save_landmarks) / (j.clip_id.rsplit(".", 1)[0] + RECORDING_SUFFIX)
            if dst.exists() and any(dst.samefile(k.path) for k in jobs_list
                                    if k.path.exists()):
                raise ExtractError(f"{dst}: --save-landmarks would replace the input "
                                   f"{dst}; choose another folder")
            meta = {**rec.meta, "label": j.label, "task": task}
            save_recording(dst, type(rec)(rec.frames, rec.mask, rec.timestamps_ms, meta))
        yield Clip(frames=rec.frames, mask=rec.mask, label=j.label, task=task,
                   subject=str(rec.meta.get("subject", "")), split=splits[j.clip_id],
                   source="mp75", clip_id=j.clip_id, dataset="extract",
                   fps=float(rec.meta.get("fps") or 0.0))


