"""Dataset readers and ``skelmtl data``: exact counts, splits and joint maps on the real
data (skipped when ../shared/data is absent), hand-made NTU / SHREC fixtures, round trips,
and the bad-input messages."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from edge.core.clipstore import ClipStore, write_store
from edge.core.layout import (
    HAND_CONNECTIONS,
    KINECT_V1_MSR,
    L_HIP,
    L_SHOULDER,
    L_WRIST,
    LEFT_HAND0,
    MP75,
    NOSE,
    NUM_JOINTS,
    R_HIP,
    R_SHOULDER,
    R_WRIST,
    RIGHT_HAND0,
)
from edge.core.recording import Recording, save_recording
from skelmtl import cli
from trainer.datasets import (
    READERS,
    DatasetError,
    ReadLog,
    ReadOptions,
    detect_format,
    hash_split,
    read_dataset,
)
from trainer.datasets.body import MSR_ACTIONS, main_body, parse_ntu_skeleton

FIXTURES = Path(__file__).resolve().parent / "fixtures"

# name -> (folder in shared/data, format, extra CLI args)
REAL = {
    "volleyball": ("volleyball_referee", "mp_folder", []),
    "asl16": ("asl16", "asl16", []),
    "fphab": ("fpha", "fphab", []),
    "msr": ("msr_action3d", "msr_action3d", []),
    "jhmdb1": ("jhmdb", "jhmdb", ["--split-protocol", "1"]),
}
# name -> (clips, classes, {split: clips}, dims)
EXPECTED = {
    "volleyball": (300, 6, {"train": 240, "test": 60}, 3),
    "asl16": (800, 16, {"train": 640, "val": 80, "test": 80}, 2),
    "fphab": (1175, 45, {"train": 761, "test": 414}, 3),
    "msr": (566, 20, {"train": 291, "test": 275}, 3),
    "jhmdb1": (609, 14, {"train": 433, "test": 176}, 2),
}


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def stores(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each real dataset converted once through the CLI (as the experiment does)."""
    root = tmp_path_factory.mktemp("stores")
    out = {}
    for name, (folder, fmt, extra) in REAL.items():
        dst = root / name
        rc = cli.main(["data", "convert", str(shared_data / folder), str(dst), "--format", fmt,
                       *extra])
        assert rc == 0, name
        out[name] = dst
    return out


# ----------------------------------------------------------------------- real data: counts
@pytest.mark.parametrize("name", list(REAL))
def test_real_counts_and_splits(name: str, stores: dict[str, Path]) -> None:
    n, k, splits, dims = EXPECTED[name]
    s = ClipStore(stores[name])
    assert len(s) == n
    assert sum(len(v) for v in s.tasks.values()) == k
    assert Counter(s.column("split")) == splits
    assert s.dims == dims
    # Every class appears in train and in test.
    labels, sp = s.labels(), s.column("split")
    assert {lab for lab, x in zip(labels, sp) if x == "test"} == set(labels)
    assert {lab for lab, x in zip(labels, sp) if x == "train"} == set(labels)


def test_real_tasks(stores: dict[str, Path]) -> None:
    tasks = {name: ClipStore(p).task_names for name, p in stores.items()}
    assert tasks == {"volleyball": ["gesture"], "asl16": ["gesture"], "fphab": ["gesture"],
                     "msr": ["action"], "jhmdb1": ["action"]}
    assert ClipStore(stores["msr"]).tasks["action"] == sorted(MSR_ACTIONS)


def test_volleyball_split_is_stratified_and_seeded(shared_data: Path) -> None:
    src = shared_data / "volleyball_referee"
    a = [(c.clip_id, c.split) for c in read_dataset(src, "mp_folder")]
    b = [(c.clip_id, c.split) for c in read_dataset(src, "mp_folder", ReadOptions(seed=0))]
    c = [(c.clip_id, c.split) for c in read_dataset(src, "mp_folder", ReadOptions(seed=1))]
    assert a == b and a != c
    test_per_class = Counter(cid.split("/")[0] for cid, s in a if s == "test")
    assert test_per_class == {k: 10 for k in
                              ("DbHit", "Nothing", "OutofB", "Substi", "pointL", "pointR")}


def test_fphab_subjects_and_skips(shared_data: Path) -> None:
    log = ReadLog()
    clips = list(read_dataset(shared_data / "fpha", "fphab", log=log))
    assert len(log.skipped) == 3 and {r for _, r in log.skipped} == {"empty file"}
    assert {c.subject for c in clips if c.split == "train"} == {"1", "2", "3", "4"}
    assert {c.subject for c in clips if c.split == "test"} == {"5", "6"}


def test_msr_subjects_and_skips(shared_data: Path) -> None:
    log = ReadLog()
    clips = list(read_dataset(shared_data / "msr_action3d", "msr_action3d", log=log))
    assert [Path(f).name for f, _ in log.skipped] == ["a13_s09_e02_skeleton3D.txt"]
    assert {c.subject for c in clips if c.split == "train"} == {"1", "3", "5", "7", "9"}
    assert {c.subject for c in clips if c.split == "test"} == {"2", "4", "6", "8", "10"}
    # No clip starts or ends with an empty frame (trailing zero frames are dropped).
    assert all(c.mask[0].any() and c.mask[-1].any() for c in clips)
    # a20_s02_e01 ends in zero frames in the file (56 lines-of-20): trimmed to 24 frames.
    c = next(c for c in clips if c.clip_id == "a20_s02_e01")
    assert len(c) == 24


@pytest.mark.parametrize("split,n_train,n_test", [("1", 433, 176), ("2", 433, 176),
                                                  ("3", 434, 175)])
def test_jhmdb_split_option(shared_data: Path, split: str, n_train: int, n_test: int) -> None:
    clips = list(read_dataset(shared_data / "jhmdb", "jhmdb", ReadOptions(split_protocol=split)))
    assert Counter(c.split for c in clips) == {"train": n_train, "test": n_test}
    assert len({c.label for c in clips}) == 14


# ------------------------------------------------------------------------ real data: masks
def _part_presence(store: Path) -> dict[str, float]:
    m = np.asarray(ClipStore(store).masks)
    return {p: float(m[:, a:b].mean()) for p, (a, b) in MP75.parts.items()}


def test_fphab_only_right_hand(stores: dict[str, Path]) -> None:
    m = np.asarray(ClipStore(stores["fphab"]).masks)
    assert not m[:, :RIGHT_HAND0].any()
    assert m[:, RIGHT_HAND0:].all()


def test_msr_mask_is_the_joint_map(stores: dict[str, Path]) -> None:
    m = np.asarray(ClipStore(stores["msr"]).masks)
    mapped = np.zeros(NUM_JOINTS, bool)
    mapped[KINECT_V1_MSR.index_map()[1]] = True
    assert mapped.sum() == 17  # 20 Kinect joints minus neck, spine, hip centre
    assert not m[:, ~mapped].any()  # nothing invented: no hand slots, no face but the nose
    assert not m[:, LEFT_HAND0:].any()
    # Masked entries are whole interior frames without a skeleton (about 1 %).
    per_frame = m[:, mapped].sum(1)
    assert set(np.unique(per_frame).tolist()) == {0, 17}
    assert 0.98 < (per_frame == 17).mean() < 1.0


def test_volleyball_and_asl16_part_presence(stores: dict[str, Path]) -> None:
    v = _part_presence(stores["volleyball"])
    assert v["body"] == 1.0
    assert 0.85 < v["left_hand"] < 1.0 and 0.85 < v["right_hand"] < 1.0  # ~7 % missing
    a = _part_presence(stores["asl16"])
    assert 0.15 < a["right_hand"] < 0.35  # README: right hand in about 25 % of frames
    s = ClipStore(stores["asl16"])
    empty = s.indices(task="gesture")[np.asarray(s.labels()) == "empty"]
    # README: class "empty" is all zeros; in fact 49 of its 50 clips are (nothing invented).
    assert len(empty) == 50 and sum(not s[int(i)].mask.any() for i in empty) == 49


# ------------------------------------------------------------ real data: the joint maps
def _bone(f: np.ndarray, m: np.ndarray, i: int, j: int) -> np.ndarray:
    ok = m[:, i] & m[:, j]
    return np.linalg.norm(f[ok, i] - f[ok, j], axis=-1)


RIGID_HAND_BONES = ((3, 4), (7, 8), (11, 12), (15, 16), (19, 20),  # distal phalanges
                    (0, 5), (5, 9), (9, 13), (13, 17), (0, 17))  # palm


def _hand_cv(f: np.ndarray, m: np.ndarray, hand0: int) -> dict[tuple[int, int], float]:
    out = {}
    for i, j in HAND_CONNECTIONS:
        ln = _bone(f, m, hand0 + i, hand0 + j)
        out[(i, j)] = float(ln.std() / ln.mean())
    return out


def test_fphab_joint_order_by_bone_lengths(shared_data: Path, stores: dict[str, Path]) -> None:
    """With the documented order, F-PHAB's distal phalanges and palm bones are exactly
    rigid (its annotations come from a fixed-size hand model), every bone is fairly rigid,
    and fingers shorten towards the tips. Reading the file in MediaPipe's finger-grouped
    order instead breaks the rigidity."""
    from edge.core.layout import FPHAB
    from trainer.datasets.hands import read_fphab_file

    files = sorted((shared_data / "fpha" / "Hand_pose_annotation_v1").glob(
        "Subject_1/*/1/skeleton.txt"))[:15]
    x = np.concatenate([read_fphab_file(f) for f in files])
    f, m = FPHAB.to_mp75(x)
    cv = _hand_cv(f, m, RIGHT_HAND0)
    assert all(cv[b] < 0.01 for b in RIGID_HAND_BONES), cv
    assert max(cv.values()) < 0.35, cv
    st = ClipStore(stores["fphab"])
    fa, ma = np.asarray(st.frames), np.asarray(st.masks)
    for mcp in (5, 9, 13, 17):  # index, middle, ring, pinky: proximal > middle > distal
        p, mid, d = (np.median(_bone(fa, ma, RIGHT_HAND0 + mcp + k, RIGHT_HAND0 + mcp + k + 1))
                     for k in range(3))
        assert p > mid > d, mcp
    wrong = np.zeros((len(x), NUM_JOINTS, 3), np.float32)
    wrong[:, RIGHT_HAND0:] = x
    cvw = _hand_cv(wrong, np.ones(wrong.shape[:2], bool), RIGHT_HAND0)
    assert sum(cvw[b] > 0.05 for b in RIGID_HAND_BONES) >= 4


def _median_bone(f: np.ndarray, m: np.ndarray, i: int, j: int) -> float:
    return float(np.median(_bone(f, m, i, j)))


@pytest.mark.parametrize("name", ["msr", "jhmdb1", "volleyball"])
def test_body_maps_left_right_and_up(name: str, stores: dict[str, Path]) -> None:
    s = ClipStore(stores[name])
    f, m = np.asarray(s.frames), np.asarray(s.masks)
    # Left/right bone lengths agree (upper arm, forearm, thigh where present).
    for (la, lb), (ra, rb) in (((11, 13), (12, 14)), ((13, 15), (14, 16)), ((23, 25), (24, 26))):
        if not (m[:, [la, lb, ra, rb]].any(0)).all():
            continue
        left, right = _median_bone(f, m, la, lb), _median_bone(f, m, ra, rb)
        assert abs(left - right) / max(left, right) < 0.2, (name, la, lb)
    # The head is above the hips (y grows downwards) in most frames.
    ok = m[:, NOSE] & m[:, L_HIP] & m[:, R_HIP]
    hip_y = (f[ok, L_HIP, 1] + f[ok, R_HIP, 1]) / 2
    assert (f[ok, NOSE, 1] < hip_y).mean() > 0.95
    # The subject's left shoulder is on the image's right (MediaPipe's non-mirrored view)
    # for a subject facing the camera, in most frames.
    # (JHMDB films people from every side: a weaker majority there.)
    ok = m[:, L_SHOULDER] & m[:, R_SHOULDER]
    assert (f[ok, L_SHOULDER, 0] > f[ok, R_SHOULDER, 0]).mean() > (0.6 if name == "jhmdb1" else 0.9)


@pytest.mark.parametrize("name", ["volleyball", "asl16"])
def test_hands_attach_at_pose_wrists(name: str, stores: dict[str, Path]) -> None:
    s = ClipStore(stores[name])
    f, m = np.asarray(s.frames)[..., :2], np.asarray(s.masks)
    for wrist, hand0 in ((L_WRIST, LEFT_HAND0), (R_WRIST, RIGHT_HAND0)):
        ok = m[:, wrist] & m[:, hand0] & m[:, L_SHOULDER] & m[:, R_SHOULDER]
        width = np.linalg.norm(f[ok, L_SHOULDER] - f[ok, R_SHOULDER], axis=-1)
        gap = np.linalg.norm(f[ok, wrist] - f[ok, hand0], axis=-1) / width
        assert ok.sum() > 100 and np.median(gap) < 0.2, (name, wrist)


# ---------------------------------------------------------------- round trip, CLI, info
def test_round_trip_identical_frames(shared_data: Path, stores: dict[str, Path]) -> None:
    clips = list(read_dataset(shared_data / "msr_action3d", "msr_action3d"))
    s = ClipStore(stores["msr"])
    assert [c.clip_id for c in clips] == s.column("clip_id")
    for c, d in zip(clips, s):
        np.testing.assert_array_equal(c.frames, d.frames)
        np.testing.assert_array_equal(c.mask, d.mask)
        assert (c.label, c.task, c.split, c.subject, c.source) == \
            (d.label, d.task, d.split, d.subject, d.source)


def test_info_json_and_png(stores: dict[str, Path], tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "strip.png"
    rc, out, _ = run_cli(["data", "info", str(stores["fphab"]), "--json", "--png", str(png)],
                         capsys)
    assert rc == 0
    s = json.loads(out)
    assert s["num_clips"] == 1175 and s["tasks"]["gesture"]["num_classes"] == 45
    assert s["split_counts"] == {"train": 761, "test": 414}
    assert s["missing_rate"] == {"body": 1.0, "left_hand": 1.0, "right_hand": 0.0}
    assert s["length"]["min"] <= s["length"]["median"] <= s["length"]["max"]
    assert s["info"]["reader"] == "fphab"
    assert [Path(x["file"]).parent.name for x in s["info"]["skipped"]] == ["4", "2", "2"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name,headline", [
    ("volleyball", "300 clips / 6 classes"), ("asl16", "800 clips / 16 classes"),
    ("fphab", "1175 clips / 45 classes"), ("msr", "566 clips / 20 classes"),
    ("jhmdb1", "609 clips / 14 classes")])
def test_info_text(name: str, headline: str, stores: dict[str, Path],
                   capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run_cli(["data", "info", str(stores[name])], capsys)
    assert rc == 0 and headline in out
    assert "sequence length (frames): min" in out and "missing joints" in out


def test_info_jhmdb_split_line(stores: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_cli(["data", "info", str(stores["jhmdb1"])], capsys)
    assert "splits: train 433, test 176" in out


def test_data_cli_needs_no_torch() -> None:
    code = ("import sys; from skelmtl import cli; rc = cli.main(['data', 'list-formats']); "
            "assert rc == 0 and 'torch' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_list_formats(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run_cli(["data", "list-formats"], capsys)
    assert rc == 0
    for name in ("mp_folder", "asl16", "fphab", "msr_action3d", "jhmdb", "ntu", "shrec", "dhg",
                 "recording"):
        assert name in READERS and f"\n{name} " in "\n" + out


@pytest.mark.parametrize("folder,fmt", [
    ("volleyball_referee", "mp_folder"), ("asl16", "asl16"), ("fpha", "fphab"),
    ("msr_action3d", "msr_action3d"), ("jhmdb", "jhmdb")])
def test_detect_real(shared_data: Path, folder: str, fmt: str) -> None:
    assert detect_format(shared_data / folder) == fmt


def test_experiment_store_specs_convert() -> None:
    """configs/experiments/mtl_vs_stl.yaml names formats and options this CLI accepts."""
    from trainer.experiment import load_experiment

    repo = Path(__file__).resolve().parents[1]
    exp = load_experiment(repo / "configs" / "experiments" / "mtl_vs_stl.yaml")
    parser = __import__("argparse").ArgumentParser()
    from trainer.datasets import cli as dcli

    dcli.add_arguments(parser)
    for spec in exp.stores.values():
        args = parser.parse_args(["convert", spec.src, "dst", "--format", spec.format,
                                  *spec.options])
        assert args.format in READERS
        if args.split_protocol is not None:
            assert args.split_protocol in READERS[args.format].protocols


# ---------------------------------------------------------------------- NTU fixture
def test_ntu_fixture(tmp_path: Path) -> None:
    log = ReadLog()
    clips = {c.clip_id: c for c in read_dataset(FIXTURES / "ntu", "ntu", log=log)}
    assert sorted(clips) == ["S001C001P001R001A001", "S002C002P003R002A050"]
    assert [Path(f).name for f, _ in log.skipped] == ["S001C003P002R001A002.skeleton"]
    a = clips["S001C001P001R001A001"]
    assert (len(a), a.label, a.subject, a.split, a.task) == (4, "A001", "P001", "train", "action")
    li = MP75.index("left_index")
    assert a.mask[:, li].tolist() == [True, True, True, True]  # hand tip -> index
    # Kinect joint 7 (left hand centre) is not mapped, so its tracking state changes nothing;
    # hand tip (21) stays tracked. Layout: left shoulder on the image's right, head up.
    assert (a.frames[:, L_SHOULDER, 0] > a.frames[:, R_SHOULDER, 0]).all()
    assert (a.frames[:, NOSE, 1] < a.frames[:, L_HIP, 1]).all()
    b = clips["S002C002P003R002A050"]
    # Leading empty frame dropped; the waving body (222) kept; absent in its frame 3.
    assert len(b) == 4 and b.split == "test"
    assert b.mask.any(1).tolist() == [True, True, False, True]
    _, bodies = parse_ntu_skeleton(FIXTURES / "ntu" / "S002C002P003R002A050.skeleton")
    assert main_body(bodies) == "222"
    # Cross-view: camera 1 test, camera 2 train.
    xv = {c.clip_id: c.split for c in read_dataset(FIXTURES / "ntu", "ntu",
                                                    ReadOptions(split_protocol="xview"))}
    assert xv == {"S001C001P001R001A001": "test", "S002C002P003R002A050": "train"}


def test_ntu_untracked_joint_is_masked(tmp_path: Path) -> None:
    lines = (FIXTURES / "ntu" / "S001C001P001R001A001.skeleton").read_text().splitlines()
    # frame 0: lines[0]=count, [1]=bodies, [2]=info, [3]="25", joints at [4..28]; joint 4
    # (left shoulder) -> state 0.
    parts = lines[4 + 4].split()
    lines[4 + 4] = " ".join(parts[:-1] + ["0"])
    d = tmp_path / "ntu"
    d.mkdir()
    (d / "S001C001P001R001A001.skeleton").write_text("\n".join(lines))
    (c,) = read_dataset(d, "ntu")
    assert c.mask[:, L_SHOULDER].tolist() == [False, True, True, True]
    assert c.frames[0, L_SHOULDER].tolist() == [0.0, 0.0, 0.0]


# --------------------------------------------------------------- SHREC / DHG fixture
def test_shrec_official_lists() -> None:
    log = ReadLog()
    clips = list(read_dataset(FIXTURES / "shrec17", "shrec", log=log))
    assert len(clips) == 7 and len(log.skipped) == 1
    assert Counter(c.split for c in clips) == {"train": 4, "test": 3}
    assert {c.label for c in clips} == {"grab", "tap"}
    c = next(c for c in clips if c.clip_id == "gesture_1/finger_1/subject_1/essai_1")
    assert len(c) == 5 and c.dims == 3 and c.fps == 30.0
    # 21 of 22 joints map (palm dropped) into the right-hand slot only.
    assert not c.mask[:, :RIGHT_HAND0].any() and c.mask[:, RIGHT_HAND0:].all()
    # y flipped: fingertips (higher in the world) are above the wrist in image terms.
    assert (c.frames[:, RIGHT_HAND0 + 12, 1] < c.frames[:, RIGHT_HAND0, 1]).all()


def test_dhg_loso_and_28_classes() -> None:
    clips = list(read_dataset(FIXTURES / "shrec17", "dhg",
                              ReadOptions(split_protocol="loso:2", classes="28")))
    assert len(clips) == 8
    assert {c.subject for c in clips if c.split == "test"} == {"2"}
    assert {c.label for c in clips} == {"grab.one_finger", "grab.whole_hand",
                                        "tap.one_finger", "tap.whole_hand"}


def test_detect_fixtures(tmp_path: Path) -> None:
    assert detect_format(FIXTURES / "ntu") == "ntu"
    assert detect_format(FIXTURES / "shrec17") == "shrec"


# ------------------------------------------------------------------------- recordings
def test_recording_folder_to_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    for label in ("wave", "stop"):
        for k in range(5):
            t = 6 + k
            save_recording(tmp_path / "rec" / label / f"take{k}.landmarks.npz", Recording(
                frames=rng.normal(size=(t, NUM_JOINTS, 3)).astype(np.float32),
                mask=np.ones((t, NUM_JOINTS), bool),
                timestamps_ms=np.arange(t) * 33.0, meta={"fps": 30.0}))
    rc, out, _ = run_cli(["data", "convert", str(tmp_path / "rec"), str(tmp_path / "st")], capsys)
    assert rc == 0 and "10 clips / 2 classes" in out
    s = ClipStore(tmp_path / "st")
    assert sorted(set(s.labels())) == ["stop", "wave"]
    assert Counter(s.column("split")) == {"train": 8, "test": 2}
    i = s.column("clip_id").index("wave/take3.landmarks.npz")
    assert len(s[i]) == 9 and s[i].fps == 30.0


# ------------------------------------------------------------------ splits and options
def test_hash_split_deterministic_stratified() -> None:
    groups = {c: [f"{c}/{i}" for i in range(10)] for c in "ab"}
    a = hash_split(groups, 0, 0.2)
    assert a == hash_split({k: v[::-1] for k, v in groups.items()}, 0, 0.2)  # order-free
    assert Counter((k[0], v) for k, v in a.items()) == {("a", "train"): 8, ("a", "test"): 2,
                                                        ("b", "train"): 8, ("b", "test"): 2}
    assert a != hash_split(groups, 1, 0.2)


def test_unknown_protocol_and_classes() -> None:
    with pytest.raises(DatasetError, match="'msr_action3d' has no split protocol 'xview'"):
        read_dataset(FIXTURES, "msr_action3d", ReadOptions(split_protocol="xview"))
    with pytest.raises(DatasetError, match="'ntu' takes no --classes 28"):
        read_dataset(FIXTURES / "ntu", "ntu", ReadOptions(classes="28"))


# ------------------------------------------------------------------------- bad input
def _mp_folder(root: Path, n: int = 258, frames: int = 3) -> Path:
    for cls in ("a", "b"):
        for seq in ("0", "1"):
            d = root / cls / seq
            d.mkdir(parents=True)
            for t in range(frames):
                np.save(d / f"{t}.npy", np.full(n, 0.5))
    return root


def test_mp_folder_small_ok(tmp_path: Path) -> None:
    clips = list(read_dataset(_mp_folder(tmp_path / "mp"), "mp_folder"))
    assert len(clips) == 4 and clips[0].frames.shape == (3, NUM_JOINTS, 3)
    assert clips[0].mask.all()


def _errors(tmp_path: Path) -> list[tuple[str, Path, str, str]]:
    """(case, src, format, expected message regex); built lazily per test."""
    cases = []
    # mp_folder: wrong vector length
    r = _mp_folder(tmp_path / "len")
    np.save(r / "a" / "0" / "1.npy", np.zeros(100))
    cases.append(("wrong length", r, "mp_folder",
                  r"a/0/1\.npy: frame vector has shape \(100,\); expected one of"))
    # mp_folder: truncated .npy
    r = _mp_folder(tmp_path / "trunc")
    p = r / "b" / "1" / "2.npy"
    p.write_bytes(p.read_bytes()[:100])
    cases.append(("truncated npy", r, "mp_folder", r"b/1/2\.npy: unreadable or truncated \.npy"))
    # mp_folder: NaN
    r = _mp_folder(tmp_path / "nan")
    v = np.full(258, 0.5)
    v[7] = np.nan
    np.save(r / "a" / "1" / "0.npy", v)
    cases.append(("nan", r, "mp_folder", r"a/1/0\.npy: NaN or infinite"))
    # MSR: truncated (a frame with 13 joints)
    d = tmp_path / "msr"
    d.mkdir()
    (d / "a01_s01_e01_skeleton3D.txt").write_text("0.1 0.2 2.0 1\n" * 33)
    cases.append(("msr truncated", d, "msr_action3d",
                  r"a01_s01_e01_skeleton3D\.txt: 33 lines is not a whole number of 20-joint"))
    # MSR: wrong column count, line named
    d = tmp_path / "msr2"
    d.mkdir()
    (d / "a01_s01_e01_skeleton3D.txt").write_text("0.1 0.2 2.0 1\n" * 5 + "0.1 0.2\n")
    cases.append(("msr columns", d, "msr_action3d",
                  r"a01_s01_e01_skeleton3D\.txt: line 6: 2 values, expected 4"))
    # F-PHAB: a line cut short
    d = tmp_path / "fphab" / "Subject_1" / "open_milk" / "1"
    d.mkdir(parents=True)
    row = "0000 " + " ".join(["1.5"] * 63)
    (d / "skeleton.txt").write_text(row + "\n" + row[:80] + "\n")
    cases.append(("fphab truncated", tmp_path / "fphab", "fphab",
                  r"Subject_1/open_milk/1/skeleton\.txt: line 2: \d+ values, expected 64"))
    # F-PHAB: not a number
    d = tmp_path / "fphab2" / "Subject_1" / "open_milk" / "1"
    d.mkdir(parents=True)
    (d / "skeleton.txt").write_text(row + "\n" + row.replace("1.5", "x1", 1) + "\n")
    cases.append(("fphab nan", tmp_path / "fphab2", "fphab",
                  r"skeleton\.txt: line 2: not a number"))
    # NTU: truncated in the middle of a body
    d = tmp_path / "ntu"
    d.mkdir()
    text = (FIXTURES / "ntu" / "S001C001P001R001A001.skeleton").read_text().splitlines()
    (d / "S001C001P001R001A001.skeleton").write_text("\n".join(text[:40]))
    cases.append(("ntu truncated", d, "ntu",
                  r"S001C001P001R001A001\.skeleton: file ends at line 40 while reading joint"))
    # JHMDB: corrupt npz
    d = tmp_path / "jhmdb"
    d.mkdir()
    (d / "jhmdb_split1_train.npz").write_bytes(b"PK\x03\x04 not really a zip")
    cases.append(("jhmdb corrupt", d, "jhmdb", r"jhmdb_split1_train\.npz: unreadable or truncated"))
    # asl16: wrong arrays
    p = tmp_path / "x.npz"
    np.savez(p, X=np.zeros((2, 3, 158)), y=np.array(["a", "b"]))
    cases.append(("asl16 arrays", p, "asl16", r"x\.npz: missing arrays \['split'\]"))
    # Missing folders
    for fmt in ("mp_folder", "fphab", "msr_action3d", "jhmdb", "ntu", "shrec", "recording"):
        cases.append((f"missing {fmt}", tmp_path / "nowhere", fmt, r"nowhere: no such folder"))
    return cases


def test_bad_input_messages(tmp_path: Path) -> None:
    for case, src, fmt, pattern in _errors(tmp_path):
        with pytest.raises(DatasetError, match=pattern):
            list(read_dataset(src, fmt))
        assert case


def test_cli_error_is_one_line_and_leaves_no_store(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    r = _mp_folder(tmp_path / "mp")
    np.save(r / "b" / "1" / "1.npy", np.zeros(7))
    dst = tmp_path / "out"
    rc, out, err = run_cli(["data", "convert", str(r), str(dst), "--format", "mp_folder"], capsys)
    assert rc == 2
    assert err.startswith("skelmtl data: error: ") and "b/1/1.npy" in err
    assert len(err.strip().splitlines()) == 1
    assert not dst.exists() and list(tmp_path.glob(".out*")) == []
    rc, _, err = run_cli(["data", "convert", str(tmp_path / "nowhere"), str(dst)], capsys)
    assert rc == 2 and "nowhere: no such file or folder" in err
    rc, _, err = run_cli(["data", "info", str(tmp_path / "nowhere")], capsys)
    assert rc == 2 and "not a clip store" in err


def test_convert_refuses_existing_then_overwrites(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    r = _mp_folder(tmp_path / "mp")
    dst = tmp_path / "st"
    write_store(read_dataset(r, "mp_folder"), dst)
    rc, _, err = run_cli(["data", "convert", str(r), str(dst), "--format", "mp_folder"], capsys)
    assert rc == 2 and "already exists (pass --overwrite" in err
    rc, out, _ = run_cli(["data", "convert", str(r), str(dst), "--overwrite", "--task", "sign"],
                         capsys)
    assert rc == 0 and ClipStore(dst).task_names == ["sign"]


# ------------------------------------------------------ splits by sequence, subject, list
def _mp_sessions(root: Path) -> Path:
    """Three classes recorded by four people, two takes each: <class>/<who>_<take>/."""
    for cls in ("wave", "stop", "point"):
        for who in ("ann", "bob", "cy", "dee"):
            for take in (0, 1):
                d = root / cls / f"{who}_{take}"
                d.mkdir(parents=True)
                for t in range(2):
                    np.save(d / f"{t}.npy", np.full(258, 0.5))
    return root


def test_mp_folder_splits_by_subject_and_by_sequence(tmp_path: Path) -> None:
    root = _mp_sessions(tmp_path / "mp")
    clips = list(read_dataset(root, "mp_folder", ReadOptions(split_protocol="subject",
                                                             test_fraction=0.25)))
    assert len(clips) == 24
    assert {c.subject for c in clips} == {"ann", "bob", "cy", "dee"}
    by_subject: dict[str, set[str]] = {}
    for c in clips:
        by_subject.setdefault(c.subject, set()).add(c.split)
    # Every person is on one side only; one of four people is the test set.
    assert all(len(v) == 1 for v in by_subject.values())
    assert sorted(s for v in by_subject.values() for s in v) == ["test", "train", "train",
                                                                 "train"]
    assert Counter(c.split for c in clips) == {"train": 18, "test": 6}
    seq = list(read_dataset(root, "mp_folder", ReadOptions(split_protocol="sequence",
                                                           test_fraction=0.25)))
    by_seq: dict[str, set[str]] = {}
    for c in seq:
        by_seq.setdefault(c.clip_id.split("/")[1], set()).add(c.split)
    assert len(by_seq) == 8 and all(len(v) == 1 for v in by_seq.values())
    assert Counter(c.split for c in seq) == {"train": 18, "test": 6}  # 2 of 8 names
    other = list(read_dataset(root, "mp_folder", ReadOptions(split_protocol="sequence",
                                                             test_fraction=0.25, seed=3)))
    assert [c.split for c in other] != [c.split for c in seq]


def test_mp_folder_subject_needs_a_prefix(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"a/0: the sequence name has no '<subject>_'.*"
                                           r"list:FILE"):
        list(read_dataset(_mp_folder(tmp_path / "mp"), "mp_folder",
                          ReadOptions(split_protocol="subject")))


def test_split_list_file_for_any_reader(tmp_path: Path) -> None:
    root = _mp_sessions(tmp_path / "mp")
    lst = tmp_path / "splits.txt"
    lst.write_text("# who goes where\nann test\nbob, val\nwave/cy_0 test  # one take\n"
                   "* train\n")
    clips = {c.clip_id: c.split for c in read_dataset(
        root, "mp_folder", ReadOptions(split_protocol=f"list:{lst}"))}
    assert clips["wave/cy_0"] == "test" and clips["point/cy_0"] == "train"
    assert {clips[f"{c}/ann_{k}"] for c in ("wave", "stop", "point") for k in (0, 1)} == {"test"}
    assert {clips[f"{c}/bob_{k}"] for c in ("wave", "stop", "point") for k in (0, 1)} == {"val"}
    assert Counter(clips.values()) == {"train": 11, "test": 7, "val": 6}
    # Sequence names of the NTU fixture are its file stems; subjects P001..P003.
    lst.write_text("P001 test\nS002C002P003R002A050 train\nP009 test\n")
    log = ReadLog()
    ntu = {c.subject: c.split for c in read_dataset(
        FIXTURES / "ntu", "ntu", ReadOptions(split_protocol=f"list:{lst}"), log)}
    assert ntu == {"P001": "test", "P003": "train"}  # the official xsub split is the reverse
    assert log.notes[-1] == f"split: list {lst}; 1 entries matched no clip (e.g. ['P009'])"


def test_split_list_errors_name_file_and_line(tmp_path: Path) -> None:
    root = _mp_sessions(tmp_path / "mp")
    lst = tmp_path / "s.txt"
    for text, msg in [("ann tset\n", r"s\.txt:1: unknown split 'tset'"),
                      ("ann test\nann train\n", r"s\.txt:2: 'ann' listed as 'test' and 'train'"),
                      ("ann\n", r"s\.txt:1: expected 'ID SPLIT'"),
                      ("# nothing\n", r"s\.txt: the split list names no clips"),
                      ("ann test\n", r"s\.txt: names neither clip 'point/bob_0'")]:
        lst.write_text(text)
        with pytest.raises(DatasetError, match=msg):
            list(read_dataset(root, "mp_folder", ReadOptions(split_protocol=f"list:{lst}")))
    with pytest.raises(DatasetError, match=r"missing\.txt: cannot read the split list"):
        list(read_dataset(root, "mp_folder",
                          ReadOptions(split_protocol=f"list:{tmp_path / 'missing.txt'}")))


def test_readers_with_subjects_split_by_them(tmp_path: Path) -> None:
    clips = list(read_dataset(FIXTURES / "ntu", "ntu", ReadOptions(split_protocol="subject",
                                                                   test_fraction=0.5)))
    assert sorted(c.subject for c in clips) == ["P001", "P003"]
    assert Counter(c.split for c in clips) == {"train": 1, "test": 1}
    with pytest.raises(DatasetError, match="'jhmdb' has no split protocol 'subject'"):
        read_dataset(tmp_path, "jhmdb", ReadOptions(split_protocol="subject"))


def test_failed_autodetect_names_the_readers_and_the_python_path(tmp_path: Path) -> None:
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "x.csv").write_text("1,2\n")
    with pytest.raises(DatasetError) as e:
        detect_format(tmp_path / "odd")
    msg = str(e.value)
    assert "\n" not in msg and "mp_folder" in msg and "ntu" in msg
    assert "edge.core.clipstore.write_store" in msg and "SourceLayout.to_mp75" in msg


def test_convert_with_a_split_list_records_it(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    root = _mp_sessions(tmp_path / "mp")
    lst = tmp_path / "splits.txt"
    lst.write_text("dee test\n* train\n")
    rc, out, _ = run_cli(["data", "convert", str(root), str(tmp_path / "st"),
                          "--split-protocol", f"list:{lst}"], capsys)
    assert rc == 0, out
    s = ClipStore(tmp_path / "st")
    assert Counter(s.column("split")) == {"train": 18, "test": 6}
    assert {sub for sub, sp in zip(s.column("subject"), s.column("split"))
            if sp == "test"} == {"dee"}
    info = json.loads((tmp_path / "st" / "meta.json").read_text())["info"]
    assert info["split_protocol"] == f"list:{lst}"
    assert f"split: list {lst}" in info["notes"]
