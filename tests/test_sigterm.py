"""A clean stop: SIGTERM and SIGINT end ``skelmtl run``, the Pipeline API and ``extract``'s
workers the way the end of the source does (issue 15).

The ``run`` test starts a real process replaying the bundled landmark clips (no MediaPipe,
no torch: the bundled ONNX model on ONNX Runtime), waits on its output with a bounded read
loop, signals it, and reads the finished files.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edge.core.events import read_jsonl

pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "edge" / "assets" / "model"
CLIPS = sorted((ROOT / "edge" / "assets" / "clips").glob("*.landmarks.npz"))
CLIP = CLIPS[0]
# Enough copies of the 30-frame clips that the replay cannot end before the signal arrives;
# the clips take turns, so that events keep coming (a closed pipe shows at the next print).
COPIES = 400
DEADLINE_S = 60  # only a bound against a hung test; nothing is timed


@pytest.fixture(scope="module")
def long_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("long")
    for i in range(COPIES):
        (folder / f"c{i:04d}.landmarks.npz").symlink_to(CLIPS[i % len(CLIPS)])
    return folder


def _kill_later(proc: subprocess.Popen[str]) -> threading.Timer:
    timer = threading.Timer(DEADLINE_S, proc.kill)
    timer.daemon = True
    timer.start()
    return timer


def _lines_until(proc: subprocess.Popen[str], want: str, limit: int = 10_000) -> list[str]:
    """Read stdout lines until one contains ``want`` (at most ``limit`` lines)."""
    assert proc.stdout is not None
    seen = []
    for _ in range(limit):
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if want in line:
            return seen
    raise AssertionError(f"no {want!r} in the first {len(seen)} lines: {seen[-5:]}")


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130),
                                      (signal.SIGHUP, 129)])
def test_signal_ends_run_cleanly(long_source: Path, tmp_path: Path, sig: int,
                                 code: int) -> None:
    jsonl, overlay, stats = tmp_path / "ev.jsonl", tmp_path / "o.mp4", tmp_path / "s.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "skelmtl.cli", "run", "--model", str(MODEL), "--source",
         str(long_source), "--jsonl", str(jsonl), "--overlay", str(overlay), "--stats",
         str(stats)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    timer = _kill_later(proc)
    try:
        _lines_until(proc, " begin ")  # a label is active: the stop must close it
        proc.send_signal(sig)
        rest, err = proc.communicate(timeout=DEADLINE_S)
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
    name = signal.Signals(sig).name
    assert proc.returncode == code, err
    assert f"skelmtl run: stopped by {name}" in err
    events = list(read_jsonl(jsonl))
    last = events[-1]
    assert last.kind == "stream" and last.state == "ended"
    assert last.reason == f"stopped by {name}"
    begins = [e for e in events if e.kind == "begin"]
    ends = [e for e in events if e.kind == "end"]
    assert len(begins) == len(ends) >= 1  # every open label was closed
    assert ends[-1].reason == "end_of_stream" and ends[-1].frame == last.frame
    s = json.loads(stats.read_text())
    assert s["frames"] == last.frame + 1 < COPIES * 30  # stopped early, counted exactly
    assert f"overlay: {overlay} ({s['frames']} frames)" in err
    assert overlay.stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ev.jsonl", "o.mp4", "s.json"]
    assert "Traceback" not in err


def test_run_into_a_closed_pipe_ends_quietly(long_source: Path, tmp_path: Path) -> None:
    """``skelmtl run ... | head -2``: the stream is ended, no traceback, exit 141."""
    jsonl = tmp_path / "ev.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "skelmtl.cli", "run", "--model", str(MODEL), "--source",
         str(long_source), "--jsonl", str(jsonl)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    timer = _kill_later(proc)
    try:
        _lines_until(proc, " begin ")
        assert proc.stdout is not None
        proc.stdout.close()  # what `head` does once it has its lines
        _, err = proc.communicate(timeout=DEADLINE_S)
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err
    last = list(read_jsonl(jsonl))[-1]
    assert last.kind == "stream" and last.reason == "standard output closed"


def _frames(n: int) -> Iterator[tuple[np.ndarray, np.ndarray, float]]:
    from edge.core.recording import load_recording

    rec = load_recording(CLIP)
    for i in range(n):
        k = i % len(rec)
        yield rec.frames[k], rec.mask[k], i / 30.0


@pytest.mark.parametrize("threaded", [False, True])
def test_pipeline_stop_on_signals(threaded: bool) -> None:
    """The API: within ``stop_on_signals`` a SIGTERM ends the stream with its events."""
    from edge.runtime.pipeline import Pipeline, stop_on_signals

    events = []
    with Pipeline.from_model(MODEL) as pipe, stop_on_signals(pipe) as got:
        for ev in pipe.run(_frames(100_000), threaded=threaded):
            events.append(ev)
            if ev.kind == "begin":
                signal.raise_signal(signal.SIGTERM)
    assert got["signal"] == signal.SIGTERM
    assert events[-1].kind == "stream" and events[-1].reason == "stopped by SIGTERM"
    assert events[-2].kind == "end" and events[-2].reason == "end_of_stream"
    assert pipe.frames < 100_000
    # The handlers are restored afterwards.
    assert signal.getsignal(signal.SIGTERM) is not None


def test_second_signal_stops_at_once() -> None:
    from edge.runtime.pipeline import Pipeline, stop_on_signals

    with Pipeline.from_model(MODEL) as pipe, pytest.raises(KeyboardInterrupt, match="SIGINT"):
        with stop_on_signals(pipe):
            for _ in pipe.run(_frames(100_000)):
                signal.raise_signal(signal.SIGINT)


def _block() -> int:
    threading.Event().wait()
    return 0


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs os.pidfd_open (Linux)")
def test_extract_workers_do_not_outlive_a_killed_parent(tmp_path: Path) -> None:
    """A parent killed with SIGKILL takes its worker processes with it."""
    script = tmp_path / "parent.py"
    script.write_text(
        "import os, sys\n"
        "import multiprocessing as mp\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from edge.frontend.extract import _worker_init\n"
        "from tests.test_sigterm import _block\n"
        "if __name__ == '__main__':\n"  # spawn imports this file again in each worker
        "    pool = ProcessPoolExecutor(2, mp_context=mp.get_context('spawn'),\n"
        "                               initializer=_worker_init, initargs=(os.getpid(),))\n"
        "    pids = {pool.submit(os.getpid).result() for _ in range(8)}\n"
        "    pool.submit(_block); pool.submit(_block)\n"
        "    print(' '.join(map(str, sorted(pids))), flush=True)\n"
        "    _block()\n")
    proc = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    timer = _kill_later(proc)
    try:
        assert proc.stdout is not None
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert pids and proc.pid not in pids
        fds = [os.pidfd_open(p) for p in pids]
        proc.kill()
        proc.wait(timeout=DEADLINE_S)
        for fd in fds:  # a pidfd becomes readable when its process exits
            ready, _, _ = select.select([fd], [], [], DEADLINE_S)
            assert ready == [fd]
            os.close(fd)
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs os.pidfd_open (Linux)")
def test_extract_stops_its_busy_workers_on_interrupt() -> None:
    """Ctrl-C or SIGTERM in extract: workers in the middle of a video are ended, not awaited."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from edge.frontend.extract import _kill_pool, _worker_init

    pool = ProcessPoolExecutor(2, mp_context=mp.get_context("spawn"),
                               initializer=_worker_init, initargs=(os.getpid(),))
    pids = {pool.submit(os.getpid).result() for _ in range(4)}
    for _ in range(4):  # two run forever, two wait
        pool.submit(_block)
    fds = [os.pidfd_open(p) for p in pids]
    _kill_pool(pool)
    for fd in fds:
        ready, _, _ = select.select([fd], [], [], DEADLINE_S)
        assert ready == [fd]
        os.close(fd)


def test_interrupted_store_write_keeps_the_old_store(tmp_path: Path) -> None:
    """SIGTERM during convert/extract's write: the old store stays, no temporary folder."""
    from edge.core.clipstore import Clip, ClipStore, write_store
    from edge.core.errors import Interrupted

    def clip(i: int) -> Clip:
        return Clip(np.full((4, 75, 3), 0.5, np.float32), np.ones((4, 75), bool), "a",
                    "gesture", clip_id=f"c{i}")

    dst = write_store([clip(0), clip(1)], tmp_path / "st")

    def clips() -> Iterator[Clip]:
        yield clip(0)
        raise Interrupted(signal.SIGTERM)

    with pytest.raises(Interrupted):
        write_store(clips(), dst, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["st"]
    assert len(ClipStore(dst)) == 2


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_every_command_maps_a_stop_signal_to_its_exit_code(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], sig: int,
        code: int) -> None:
    """The handler skelmtl.cli installs turns the signal into Interrupted wherever it lands."""
    import trainer.datasets.cli as data_cli
    from skelmtl.cli import main

    def convert(args: object) -> int:
        signal.raise_signal(sig)
        raise AssertionError("the signal did not interrupt")

    monkeypatch.setattr(data_cli, "_convert", convert)
    before = signal.getsignal(sig)
    assert main(["data", "convert", "a", "b"]) == code
    assert capsys.readouterr().err == (f"skelmtl data: interrupted "
                                       f"({signal.Signals(sig).name})\n")
    assert signal.getsignal(sig) is before  # restored for the caller


def _one_clip() -> object:
    from edge.core.clipstore import Clip

    return Clip(np.full((4, 75, 3), 0.5, np.float32), np.ones((4, 75), bool), "a", "gesture",
                clip_id="c")


def test_a_killed_overwrite_leaves_nothing_for_good(tmp_path: Path) -> None:
    """kill -9 in the middle of writing a store over an old one: the next write cleans up."""
    from edge.core.clipstore import ClipStore, write_store

    dst = tmp_path / "st"
    write_store([_one_clip(), _one_clip()], dst)  # the old store: two clips
    script = tmp_path / "writer.py"
    script.write_text(
        "import threading\n"
        "from edge.core.clipstore import write_store\n"
        "from tests.test_sigterm import _one_clip\n"
        "def clips():\n"
        "    yield _one_clip()\n"
        "    print('writing', flush=True)\n"
        "    threading.Event().wait()\n"  # killed here, half-way through the new store
        f"write_store(clips(), {str(dst)!r}, overwrite=True)\n")
    proc = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    timer = _kill_later(proc)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "writing\n"
        proc.kill()
        proc.wait(timeout=DEADLINE_S)
    finally:
        timer.cancel()
    left = [p.name for p in tmp_path.iterdir() if p.name.startswith(".st.tmp-")]
    assert len(left) == 1 and left[0].startswith(f".st.tmp-{proc.pid}-")  # what kill -9 left
    assert len(ClipStore(dst)) == 2  # the old store is whole
    write_store([_one_clip()], dst, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["st", "writer.py"]
    assert len(ClipStore(dst)) == 1


def _can_be_pid_1() -> bool:
    import shutil as _shutil

    if not _shutil.which("unshare"):
        return False
    r = subprocess.run(["unshare", "-fp", "--mount-proc", "true"], capture_output=True,
                       timeout=DEADLINE_S)
    return r.returncode == 0


@pytest.mark.skipif(not sys.platform.startswith("linux") or not _can_be_pid_1(),
                    reason="needs unshare -p (a PID namespace; root or user namespaces)")
def test_sigterm_reaches_run_as_pid_1(long_source: Path, tmp_path: Path) -> None:
    """As PID 1 (a container without an init) the kernel drops signals that have no
    handler; skelmtl installs one, so `docker stop` still ends the stream cleanly."""
    jsonl = tmp_path / "ev.jsonl"
    proc = subprocess.Popen(
        ["unshare", "-fp", "--mount-proc", sys.executable, "-m", "skelmtl.cli", "run", "--model",
         str(MODEL), "--source", str(long_source), "--jsonl", str(jsonl)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    timer = _kill_later(proc)
    try:
        _lines_until(proc, " begin ")
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(children) == 1  # python, PID 1 inside its namespace
        os.kill(int(children[0]), signal.SIGTERM)
        _, err = proc.communicate(timeout=DEADLINE_S)
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    last = list(read_jsonl(jsonl))[-1]
    assert last.kind == "stream" and last.reason == "stopped by SIGTERM"
