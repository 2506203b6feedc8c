"""Bad inputs, one surface at a time (issue 15): each case asserts the exact one-line
message, the exit status 2 (on the command line) and that the inputs are intact after.

Surfaces: a clip store's files (``skelmtl data info`` and ``ClipStore``), where a store may
be written (``data convert``, ``extract``, ``write_store``), ``skelmtl run``'s outputs and
model, the frames the Pipeline API takes, and the model metadata the runtime trusts.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.core.clipstore import Clip, ClipStore, StoreError, clean_stale, write_store
from edge.core.recording import Recording, save_recording
from skelmtl.cli import main

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = ROOT / "edge" / "assets" / "model"
CLIP = ROOT / "edge" / "assets" / "clips" / "00_DbHit.landmarks.npz"


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------
def snapshot(*roots: Path) -> dict[str, str]:
    """Every file and folder under ``roots`` -> a hash of its bytes ("dir" for folders)."""
    out: dict[str, str] = {}
    for root in roots:
        if root.is_file():
            out[str(root)] = hashlib.sha1(root.read_bytes()).hexdigest()
            continue
        for dirpath, _, filenames in os.walk(root):
            out[dirpath] = "dir"
            for f in filenames:
                p = Path(dirpath) / f
                out[str(p)] = hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "?"
    return out


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def _clips(n: int = 3) -> list[Clip]:
    rng = np.random.default_rng(0)
    return [Clip(rng.random((4 + i, 75, 3), dtype=np.float32), np.ones((4 + i, 75), bool),
                 "ab"[i % 2], "gesture", clip_id=f"c{i}") for i in range(n)]


@pytest.fixture(scope="module")
def good_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_store(_clips(), tmp_path_factory.mktemp("good") / "store")


@pytest.fixture()
def store(good_store: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "store"
    shutil.copytree(good_store, dst)
    return dst


# --------------------------------------------------------------------------------------
# 1. a store's meta.json
# --------------------------------------------------------------------------------------
def _j(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def _with(**kw: Any) -> Callable[[dict[str, Any]], bytes]:
    return lambda m: _j({**m, **kw})


def _without(*keys: str) -> Callable[[dict[str, Any]], bytes]:
    return lambda m: _j({k: v for k, v in m.items() if k not in keys})


def _column(col: str, value: Any) -> Callable[[dict[str, Any]], bytes]:
    def f(m: dict[str, Any]) -> bytes:
        clips = dict(m["clips"])
        if value is _MISSING:
            del clips[col]
        else:
            clips[col] = value
        return _j({**m, "clips": clips})
    return f


_MISSING = object()
_COLUMNS = ("clip_id", "subject", "split", "source", "dataset", "fps")
_NEEDS_MAP = "tasks must map each task to a non-empty list of distinct label names"


def _json_error(raw: bytes) -> str:
    try:
        json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as e:
        return f"corrupt JSON ({e})"
    raise AssertionError("valid JSON")


META_CASES: list[tuple[str, Callable[[dict[str, Any]], bytes], str]] = [
    ("list", lambda m: _j([m]), "{meta}: expected a JSON object, got list"),
    ("string", lambda m: _j("store"), "{meta}: expected a JSON object, got str"),
    ("number", lambda m: _j(1), "{meta}: expected a JSON object, got int"),
    ("null", lambda m: _j(None), "{meta}: expected a JSON object, got NoneType"),
    ("bool", lambda m: _j(True), "{meta}: expected a JSON object, got bool"),
    ("latin-1", lambda m: "{\"dims\": \"d\u00e9j\u00e0\"}".encode("latin-1"),
     "{meta}: not UTF-8 text"),
    ("utf-16", lambda m: json.dumps(m).encode("utf-16"), "{meta}: not UTF-8 text"),
    ("binary", lambda m: b"\x80\x81\xfe\xff", "{meta}: not UTF-8 text"),
    ("empty", lambda m: b"", "{meta}: " + _json_error(b"")),
    ("truncated", lambda m: _j(m)[:40], "{meta}: TRUNC"),  # message: where the cut fell
    ("brace", lambda m: b"{", "{meta}: " + _json_error(b"{")),
    ("nested", lambda m: b"[" * 100_000, "{meta}: " + _json_error(b"[" * 100_000)),
    ("no format", _without("format"), "{store}: store format None, this package reads 1"),
    ("format 2", _with(format=2), "{store}: store format 2, this package reads 1"),
    ("format text", _with(format="1"), "{store}: store format '1', this package reads 1"),
    ("no layout", _without("layout"), "{store}: layout None, expected 'mp75'"),
    ("layout coco", _with(layout="coco"), "{store}: layout 'coco', expected 'mp75'"),
    ("no dims", _without("dims"), "{meta}: missing key(s) ['dims']"),
    ("no tasks", _without("tasks"), "{meta}: missing key(s) ['tasks']"),
    ("no num_clips", _without("num_clips"), "{meta}: missing key(s) ['num_clips']"),
    ("no clips", _without("clips"), "{meta}: missing key(s) ['clips']"),
    ("two missing", _without("dims", "clips"), "{meta}: missing key(s) ['dims', 'clips']"),
    ("num_clips -1", _with(num_clips=-1),
     "{meta}: num_clips must be a non-negative integer, got -1"),
    ("num_clips text", _with(num_clips="3"),
     "{meta}: num_clips must be a non-negative integer, got '3'"),
    ("num_clips float", _with(num_clips=3.0),
     "{meta}: num_clips must be a non-negative integer, got 3.0"),
    ("num_clips bool", _with(num_clips=True),
     "{meta}: num_clips must be a non-negative integer, got True"),
    ("num_clips null", _with(num_clips=None),
     "{meta}: num_clips must be a non-negative integer, got None"),
    ("num_clips 2", _with(num_clips=2), "{meta}: clips.clip_id must be a list of 2 entries"),
    ("num_clips 4", _with(num_clips=4), "{meta}: clips.clip_id must be a list of 4 entries"),
    ("dims 4", _with(dims=4), "{meta}: dims must be 2 or 3, got 4"),
    ("dims 1", _with(dims=1), "{meta}: dims must be 2 or 3, got 1"),
    ("dims text", _with(dims="3"), "{meta}: dims must be 2 or 3, got '3'"),
    ("dims bool", _with(dims=True), "{meta}: dims must be 2 or 3, got True"),
    ("dims float", _with(dims=3.0), "{meta}: dims must be 2 or 3, got 3.0"),
    ("dims null", _with(dims=None), "{meta}: dims must be 2 or 3, got None"),
    ("tasks list", _with(tasks=["gesture"]), "{meta}: " + _NEEDS_MAP),
    ("tasks empty", _with(tasks={}), "{meta}: " + _NEEDS_MAP),
    ("tasks null", _with(tasks=None), "{meta}: " + _NEEDS_MAP),
    ("labels empty", _with(tasks={"gesture": []}), "{meta}: " + _NEEDS_MAP),
    ("labels text", _with(tasks={"gesture": "ab"}), "{meta}: " + _NEEDS_MAP),
    ("label number", _with(tasks={"gesture": ["a", 1]}), "{meta}: " + _NEEDS_MAP),
    ("label null", _with(tasks={"gesture": ["a", None]}), "{meta}: " + _NEEDS_MAP),
    ("labels dict", _with(tasks={"gesture": {"a": 0}}), "{meta}: " + _NEEDS_MAP),
    ("label twice", _with(tasks={"gesture": ["a", "a"]}), "{meta}: " + _NEEDS_MAP),
    ("label empty", _with(tasks={"gesture": ["a", ""]}), "{meta}: " + _NEEDS_MAP),
    ("clips list", _with(clips=[]), "{meta}: clips must be an object of per-clip lists"),
    ("clips text", _with(clips="c0"), "{meta}: clips must be an object of per-clip lists"),
    ("clips null", _with(clips=None), "{meta}: clips must be an object of per-clip lists"),
    *[(f"no clips.{c}", _column(c, _MISSING), f"{{meta}}: clips.{c} must be a list of 3 entries")
      for c in _COLUMNS],
    *[(f"short clips.{c}", _column(c, ["x", "y"]),
       f"{{meta}}: clips.{c} must be a list of 3 entries") for c in _COLUMNS],
    *[(f"clips.{c} text", _column(c, "xyz"), f"{{meta}}: clips.{c} must be a list of 3 entries")
      for c in _COLUMNS],
    *[(f"clips.{c}[1] a number", _column(c, ["x", 5, "z"]),
       f"{{meta}}: clips.{c}[1] = 5 is not text") for c in _COLUMNS if c != "fps"],
    *[(f"clips.{c}[0] null", _column(c, [None, "y", "z"]),
       f"{{meta}}: clips.{c}[0] = None is not text") for c in _COLUMNS if c != "fps"],
    ("clips.fps text", _column("fps", [30.0, "30", 30.0]),
     "{meta}: clips.fps[1] = '30' is not a finite number >= 0"),
    ("clips.fps negative", _column("fps", [30.0, 30.0, -1]),
     "{meta}: clips.fps[2] = -1 is not a finite number >= 0"),
    ("clips.fps bool", _column("fps", [True, 30.0, 30.0]),
     "{meta}: clips.fps[0] = True is not a finite number >= 0"),
    ("clips.fps null", _column("fps", [None, 30.0, 30.0]),
     "{meta}: clips.fps[0] = None is not a finite number >= 0"),
    ("clips.fps huge", lambda m: _column("fps", [0.0, 0.0, 0.0])(m).replace(
        b"[0.0, 0.0, 0.0]", b"[0.0, 1e999, 0.0]"),
     "{meta}: clips.fps[1] = inf is not a finite number >= 0"),
    ("info list", _with(info=[]), "{meta}: info must be an object"),
    ("info text", _with(info="x"), "{meta}: info must be an object"),
]


def _expected(msg: str, store: Path, raw: bytes) -> str:
    if msg == "{meta}: TRUNC":
        msg = "{meta}: " + _json_error(raw)
    return msg.format(meta=store / "meta.json", store=store)


@pytest.mark.parametrize("surface", ["cli", "api"])
@pytest.mark.parametrize("name,mutate,message", META_CASES, ids=[c[0] for c in META_CASES])
def test_malformed_meta_json(store: Path, surface: str, name: str,
                             mutate: Callable[[dict[str, Any]], bytes], message: str,
                             capsys: pytest.CaptureFixture[str]) -> None:
    meta = json.loads((store / "meta.json").read_text())
    raw = mutate(meta)
    (store / "meta.json").write_bytes(raw)
    before = snapshot(store)
    want = _expected(message, store, raw)
    if surface == "cli":
        rc, out, err = run_cli(["data", "info", str(store)], capsys)
        assert (rc, out, err) == (2, "", f"skelmtl data: error: {want}\n")
    else:
        with pytest.raises(StoreError) as e:
            ClipStore(store)
        assert str(e.value) == want
    assert snapshot(store) == before


# --------------------------------------------------------------------------------------
# 2. a store's arrays
# --------------------------------------------------------------------------------------
def _save(name: str, make: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], None]:
    def f(store: Path) -> None:
        a = np.load(store / name)
        np.save(store / name, make(a))
    return f


def _remove(name: str) -> Callable[[Path], None]:
    return lambda store: (store / name).unlink()


def _pickled(name: str) -> Callable[[Path], None]:
    def f(store: Path) -> None:
        a = np.load(store / name)
        np.save(store / name, np.asarray(list(a), dtype=object), allow_pickle=True)
    return f


def _truncate(name: str) -> Callable[[Path], None]:
    def f(store: Path) -> None:
        raw = (store / name).read_bytes()
        (store / name).write_bytes(raw[: len(raw) // 2])
    return f


def _huge_header(name: str, shape: tuple[int, ...]) -> Callable[[Path], None]:
    """Rewrite ``name``'s header to claim ``shape``, keeping its few bytes of data."""
    def f(store: Path) -> None:
        a = np.load(store / name)
        with open(store / name, "wb") as out:
            np.lib.format.write_array_header_1_0(out, {
                "descr": np.lib.format.dtype_to_descr(a.dtype), "fortran_order": False,
                "shape": shape})
            out.write(a.tobytes())
    return f


def _np_error(store: Path, name: str, mmap: bool) -> str:
    """numpy's own words for the file, as the store's message quotes them."""
    try:
        np.load(store / name, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        return f"{store}: unreadable array {name} ({e})"
    except Exception:  # a zip that np.load took for an .npz
        return f"{store}: unreadable array {name} (not a .npy file)"
    raise AssertionError("loads")


ARRAY_CASES: list[tuple[str, Callable[[Path], None], str]] = [
    ("label too big", _save("label.npy", lambda a: np.array([0, 1, 5], a.dtype)),
     "{store}: label.npy index 5 of clip 2 is outside its task's 2 labels"),
    ("label negative", _save("label.npy", lambda a: np.array([-1, 1, 0], a.dtype)),
     "{store}: label.npy index -1 of clip 0 is outside its task's 2 labels"),
    ("label = n labels", _save("label.npy", lambda a: np.array([0, 2, 0], a.dtype)),
     "{store}: label.npy index 2 of clip 1 is outside its task's 2 labels"),
    ("task too big", _save("task.npy", lambda a: np.array([0, 0, 1], a.dtype)),
     "{store}: task.npy has indices outside 0..0"),
    ("task negative", _save("task.npy", lambda a: np.array([0, -3, 0], a.dtype)),
     "{store}: task.npy has indices outside 0..0"),
    ("offsets not from 0", _save("offsets.npy", lambda a: a + 1),
     "{store}: arrays disagree with meta.json (truncated store?)"),
    ("offsets start 1", _save("offsets.npy", lambda a: np.r_[1, a[1:]].astype(a.dtype)),
     "{store}: offsets.npy must start at 0 and increase (every clip has frames)"),
    ("empty clip", _save("offsets.npy", lambda a: np.r_[a[:2], a[1], a[3]].astype(a.dtype)),
     "{store}: offsets.npy must start at 0 and increase (every clip has frames)"),
    ("offsets short", _save("offsets.npy", lambda a: a[:-1]),
     "{store}: arrays disagree with meta.json (truncated store?)"),
    ("labels short", _save("label.npy", lambda a: a[:-1]),
     "{store}: arrays disagree with meta.json (truncated store?)"),
    ("tasks short", _save("task.npy", lambda a: a[:-1]),
     "{store}: arrays disagree with meta.json (truncated store?)"),
    ("frames short", _save("frames.npy", lambda a: a[:-1]),
     "{store}: mask.npy must be bool (14, 75), got bool (15, 75)"),
    ("label float", _save("label.npy", lambda a: a.astype(np.float64)),
     "{store}: label.npy must be a 1-D integer array, got float64 (3,)"),
    ("offsets float", _save("offsets.npy", lambda a: a.astype(np.float32)),
     "{store}: offsets.npy must be a 1-D integer array, got float32 (4,)"),
    ("task 2-D", _save("task.npy", lambda a: a[:, None]),
     "{store}: task.npy must be a 1-D integer array, got int16 (3, 1)"),
    ("frames 2D in 3D store", _save("frames.npy", lambda a: a[..., :2]),
     "{store}: frames.npy must be float (T, 75, 3), got float32 (15, 75, 2)"),
    ("frames int", _save("frames.npy", lambda a: a.astype(np.int32)),
     "{store}: frames.npy must be float (T, 75, 3), got int32 (15, 75, 3)"),
    ("frames complex", _save("frames.npy", lambda a: a.astype(np.complex64)),
     "{store}: frames.npy must be float (T, 75, 3), got complex64 (15, 75, 3)"),
    ("frames text", _save("frames.npy", lambda a: a.astype("U4")),
     "{store}: frames.npy must be float (T, 75, 3), got <U4 (15, 75, 3)"),
    ("frames 2-D", _save("frames.npy", lambda a: a.reshape(15, -1)),
     "{store}: frames.npy must be float (T, 75, 3), got float32 (15, 225)"),
    ("mask float", _save("mask.npy", lambda a: a.astype(np.float32)),
     "{store}: mask.npy must be bool (15, 75), got float32 (15, 75)"),
    ("mask short", _save("mask.npy", lambda a: a[:-2]),
     "{store}: mask.npy must be bool (15, 75), got bool (13, 75)"),
    ("no frames.npy", _remove("frames.npy"), "NPERR frames.npy mmap"),
    ("no label.npy", _remove("label.npy"), "NPERR label.npy"),
    ("pickled labels", _pickled("label.npy"), "NPERR label.npy"),
    ("pickled offsets", _pickled("offsets.npy"), "NPERR offsets.npy"),
    ("truncated frames", _truncate("frames.npy"),
     "{store}: frames.npy holds 6686 bytes of data, its header promises 13500 (float32 "
     "(15, 75, 3); truncated or corrupt)"),
    ("label header claims 10^12", _huge_header("label.npy", (10 ** 12,)),
     "{store}: label.npy holds 12 bytes of data, its header promises 4000000000000 (int32 "
     "(1000000000000,); truncated or corrupt)"),
    ("offsets header claims 10^9 x 10^9", _huge_header("offsets.npy", (10 ** 9, 10 ** 9)),
     "{store}: offsets.npy holds 32 bytes of data, its header promises "
     "8000000000000000000 (int64 (1000000000, 1000000000); truncated or corrupt)"),
    ("frames with extra bytes", lambda s: (s / "frames.npy").write_bytes(
        (s / "frames.npy").read_bytes() + b"\0" * 8),
     "{store}: frames.npy holds 13508 bytes of data, its header promises 13500 (float32 "
     "(15, 75, 3); truncated or corrupt)"),
    ("truncated task", _truncate("task.npy"), "NPERR task.npy"),
    ("label a zip header", lambda s: (s / "label.npy").write_bytes(b"PK\x03\x04 not npy"),
     "{store}: unreadable array label.npy (File is not a zip file)"),
    ("label an npz", lambda s: np.savez(s / "label.npy.npz", a=np.zeros(3))
     or os.replace(s / "label.npy.npz", s / "label.npy"),
     "{store}: unreadable array label.npy (not a .npy file)"),
]


@pytest.mark.parametrize("surface", ["cli", "api"])
@pytest.mark.parametrize("name,mutate,message", ARRAY_CASES, ids=[c[0] for c in ARRAY_CASES])
def test_malformed_store_arrays(store: Path, surface: str, name: str,
                                mutate: Callable[[Path], None], message: str,
                                capsys: pytest.CaptureFixture[str]) -> None:
    mutate(store)
    before = snapshot(store)
    if message.startswith("NPERR"):
        parts = message.split()
        want = _np_error(store, parts[1], mmap=len(parts) > 2)
    else:
        want = message.format(store=store)
    if surface == "cli":
        rc, out, err = run_cli(["data", "info", str(store)], capsys)
        assert (rc, out, err) == (2, "", f"skelmtl data: error: {want}\n")
    else:
        with pytest.raises(StoreError) as e:
            ClipStore(store)
        assert str(e.value) == want
    assert snapshot(store) == before


@pytest.mark.parametrize("flags,message", [
    (["--png", "{tmp}"], "{tmp}: is a folder; --png takes a file name"),
    (["--png", "{tmp}/afile/x.png"], "{tmp}/afile/x.png: {tmp}/afile is not a folder"),
    (["--png", "{store}/frames.npy"], "{store}/frames.npy: --png may not write into the store "
     "{store}"),
    (["--png", "{store}/strip.png"], "{store}/strip.png: --png may not write into the store "
     "{store}"),
    (["--png", "{tmp}/x.png", "--frames", "0"], "--frames must be >= 1, got 0"),
    (["--png", "{tmp}/x.png", "--frames", "-3"], "--frames must be >= 1, got -3"),
    (["--png", "{tmp}/x.png", "--clip", "3"], "{store}: no clip 3 (store has 3)"),
    (["--png", "{tmp}/x.png", "--clip", "-4"], "{store}: no clip -4 (store has 3)"),
])
def test_data_info_png_checked_first(good_store: Path, tmp_path: Path, flags: list[str],
                                     message: str, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "afile").write_text("mine")
    before = snapshot(tmp_path, good_store)
    rc, out, err = run_cli(["data", "info", str(good_store),
                            *[f.format(tmp=tmp_path, store=good_store) for f in flags]], capsys)
    message = message.format(tmp=tmp_path, store=good_store)
    assert (rc, out, err) == (2, "", f"skelmtl data: error: {message}\n")
    assert snapshot(tmp_path, good_store) == before


@pytest.mark.parametrize("what", ["missing", "file", "empty folder", "meta.json folder"])
def test_not_a_store(tmp_path: Path, what: str, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "x"
    if what == "file":
        p.write_text("hello")
    elif what == "empty folder":
        p.mkdir()
    elif what == "meta.json folder":
        (p / "meta.json").mkdir(parents=True)
    before = snapshot(tmp_path)
    rc, out, err = run_cli(["data", "info", str(p)], capsys)
    assert (rc, out, err) == (2, "", f"skelmtl data: error: {p}: not a clip store (no "
                                     f"meta.json)\n")
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------------------
# 3. where a store may be written: data convert, extract, write_store
# --------------------------------------------------------------------------------------
def _recordings(root: Path) -> Path:
    """A ``recording`` dataset: two labels, two landmark files each."""
    for lab in ("wave", "clap"):
        for i in range(2):
            f = np.full((6, 75, 3), 0.5, np.float32)
            save_recording(root / lab / f"{i}.landmarks.npz",
                           Recording(f, np.ones((6, 75), bool), np.arange(6) * 50.0,
                                     {"fps": 20.0}))
    return root


_NOT_STORE = ("{dst}: not a clip store (no meta.json of store format 1); --overwrite only "
              "replaces a clip store written by skelmtl")
_NOT_STORE_FILE = ("{dst}: not a clip store (--overwrite only replaces a clip store written "
                   "by skelmtl)")


def _dst_cases() -> list[tuple[str, Callable[[Path, Path], Path], list[str], str]]:
    """(name, make(tmp, src) -> dst, extra flags, message)."""
    def user_folder(tmp: Path, src: Path) -> Path:
        (tmp / "mine").mkdir()
        (tmp / "mine" / "thesis.tex").write_text("years of work")
        return tmp / "mine"

    def user_file(tmp: Path, src: Path) -> Path:
        (tmp / "notes.txt").write_text("keep me")
        return tmp / "notes.txt"

    def foreign_meta(fmt: Any) -> Callable[[Path, Path], Path]:
        def f(tmp: Path, src: Path) -> Path:
            (tmp / "other").mkdir()
            (tmp / "other" / "meta.json").write_text(json.dumps(fmt))
            (tmp / "other" / "data.bin").write_bytes(b"\x00" * 10)
            return tmp / "other"
        return f

    def link_to_store(tmp: Path, src: Path) -> Path:
        write_store(_clips(2), tmp / "real")
        (tmp / "link").symlink_to(tmp / "real")
        return tmp / "link"

    def store_no_flag(tmp: Path, src: Path) -> Path:
        return write_store(_clips(2), tmp / "old")

    def under_a_file(tmp: Path, src: Path) -> Path:
        (tmp / "notes.txt").write_text("keep me")
        return tmp / "notes.txt" / "st"

    return [
        ("output under a file", under_a_file, [], "{dst}: {parent} is a file, not a folder"),
        ("output is the input", lambda t, s: s, ["--overwrite"],
         "{dst}: the output is the input {src}; choose an output outside the input"),
        ("output is the input, no flag", lambda t, s: s, [],
         "{dst}: the output is the input {src}; choose an output outside the input"),
        ("output is the input via ..", lambda t, s: s / "wave" / "..", ["--overwrite"],
         "{dst}: the output is the input {src}; choose an output outside the input"),
        ("output contains the input", lambda t, s: s.parent, ["--overwrite"],
         "{dst}: the output contains the input {src}; choose an output outside the input"),
        ("output is /", lambda t, s: Path("/"), ["--overwrite"],
         "{dst}: the output contains the input {src}; choose an output outside the input"),
        ("user folder", user_folder, ["--overwrite"], _NOT_STORE),
        ("user folder, no flag", user_folder, [],
         "{dst}: already exists (pass --overwrite to replace it)"),
        ("user file", user_file, ["--overwrite"], _NOT_STORE_FILE),
        ("symlink to a store", link_to_store, ["--overwrite"], _NOT_STORE_FILE),
        ("meta.json of format 2", foreign_meta({"format": 2, "layout": "mp75"}),
         ["--overwrite"], _NOT_STORE),
        ("meta.json of another layout", foreign_meta({"format": 1, "layout": "coco"}),
         ["--overwrite"], _NOT_STORE),
        ("meta.json a list", foreign_meta([1]), ["--overwrite"], _NOT_STORE),
        ("store, no flag", store_no_flag, [],
         "{dst}: already exists (pass --overwrite to replace it)"),
    ]


DST_CASES = _dst_cases()


@pytest.mark.parametrize("command", ["convert", "extract", "write_store"])
@pytest.mark.parametrize("name,make,flags,message", DST_CASES, ids=[c[0] for c in DST_CASES])
def test_output_never_replaces_what_the_user_has(
        tmp_path: Path, command: str, name: str, make: Callable[[Path, Path], Path],
        flags: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    src = _recordings(tmp_path / "data")
    dst = make(tmp_path, src)
    watched = [tmp_path]
    before = snapshot(*watched)
    want = message.format(dst=dst, src=src, parent=dst.parent)
    if command == "convert":
        rc, out, err = run_cli(["data", "convert", str(src), str(dst), "--format",
                                "recording", *flags], capsys)
        assert (rc, out, err) == (2, "", f"skelmtl data: error: {want}\n")
    elif command == "extract":
        rc, out, err = run_cli(["extract", str(src), "-o", str(dst), "--no-progress",
                                "--workers", "1", *flags], capsys)
        assert (rc, out, err) == (2, "", f"skelmtl extract: error: {want}\n")
    else:
        with pytest.raises(StoreError) as e:
            write_store(_clips(2), dst, overwrite=bool(flags), inputs=[src])
        assert str(e.value) == want
    assert snapshot(*watched) == before


def test_overwrite_replaces_a_store_and_cleans_a_killed_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """What --overwrite is for still works; leftovers of a killed writer go away."""
    src = _recordings(tmp_path / "data")
    dst = write_store(_clips(2), tmp_path / "st")
    dead = 2 ** 22 + 12345  # above the default pid_max: no such process
    stale = tmp_path / f".st.tmp-{dead}-abcd"
    (stale / "frames.raw").parent.mkdir()
    (stale / "frames.raw").write_bytes(b"\x00" * 100)
    alive = tmp_path / f".st.tmp-{os.getpid()}-live"
    alive.mkdir()
    rc, _, err = run_cli(["data", "convert", str(src), str(dst), "--format", "recording",
                          "--overwrite"], capsys)
    assert rc == 0, err
    assert len(ClipStore(dst)) == 4
    assert not stale.exists() and alive.exists()  # a live writer's folder is not touched
    assert sorted(p.name for p in tmp_path.iterdir()) == [alive.name, "data", "st"]


def test_a_store_parked_by_a_killed_writer_is_restored(tmp_path: Path) -> None:
    dst = tmp_path / "st"
    write_store(_clips(2), tmp_path / "tmpstore")
    parked = tmp_path / f".st.old-{2 ** 22 + 777}"
    os.replace(tmp_path / "tmpstore", parked)
    assert clean_stale(dst) == []
    assert len(ClipStore(dst)) == 2 and not parked.exists()


# --------------------------------------------------------------------------------------
# 4. skelmtl run: outputs, model and source checked before the run
# --------------------------------------------------------------------------------------
def _run_argv(tmp: Path, *extra: str, model: Path = MODEL_DIR, source: Path = CLIP
              ) -> list[str]:
    return ["run", "--model", str(model), "--source", str(source), "--quiet", *extra]


RUN_OUTPUT_CASES: list[tuple[str, list[str], str]] = [
    ("--stats into a missing folder", ["--stats", "{tmp}/nope/s.json"],
     "{tmp}/nope/s.json: folder {tmp}/nope does not exist (--stats)"),
    ("--stats is a folder", ["--stats", "{tmp}/outdir"],
     "{tmp}/outdir: is a folder; --stats takes a file name"),
    ("--jsonl into a missing folder", ["--jsonl", "{tmp}/nope/e.jsonl"],
     "{tmp}/nope/e.jsonl: folder {tmp}/nope does not exist (--jsonl)"),
    ("--jsonl is a folder", ["--jsonl", "{tmp}/outdir"],
     "{tmp}/outdir: is a folder; --jsonl takes a file name"),
    ("--overlay into a missing folder", ["--overlay", "{tmp}/nope/o.mp4"],
     "{tmp}/nope/o.mp4: folder {tmp}/nope does not exist (--overlay)"),
    ("--overlay is a folder", ["--overlay", "{tmp}/outdir"],
     "{tmp}/outdir: is a folder; --overlay takes a file name"),
    ("--stats under a file", ["--stats", "{tmp}/afile/s.json"],
     "{tmp}/afile/s.json: folder {tmp}/afile does not exist (--stats)"),
    ("--jsonl under a file", ["--jsonl", "{tmp}/afile/e.jsonl"],
     "{tmp}/afile/e.jsonl: folder {tmp}/afile does not exist (--jsonl)"),
]


@pytest.mark.parametrize("name,flags,message", RUN_OUTPUT_CASES,
                         ids=[c[0] for c in RUN_OUTPUT_CASES])
def test_run_outputs_are_checked_first(tmp_path: Path, name: str, flags: list[str],
                                       message: str, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("onnxruntime")
    (tmp_path / "outdir").mkdir()
    (tmp_path / "outdir" / "keep.txt").write_text("mine")
    (tmp_path / "afile").write_text("mine")
    before = snapshot(tmp_path, MODEL_DIR, CLIP)
    argv = _run_argv(tmp_path, *[f.format(tmp=tmp_path) for f in flags])
    rc, out, err = run_cli(argv, capsys)
    assert (rc, out, err) == (2, "", f"skelmtl run: error: {message.format(tmp=tmp_path)}\n")
    assert snapshot(tmp_path, MODEL_DIR, CLIP) == before


RUN_OPTION_CASES: list[tuple[str, list[str], str]] = [
    ("--model ,", ["--model", ","], "--model ',': no model file given"),
    ("--model empty", ["--model", ""], "--model '': no model file given"),
    ("--source empty", ["--source", ""], "--source is empty; give a file, folder, camera or URL"),
    ("--max-frames -1", ["--max-frames", "-1"],
     "--max-frames must be >= 0 (0: the whole source), got -1"),
    ("--threads -2", ["--threads", "-2"],
     "--threads must be >= 0 (0: the library's default), got -2"),
    ("--min-duration nan", ["--min-duration", "nan"],
     "min_duration must be a finite number >= 0, got nan"),
    ("--min-duration inf", ["--min-duration", "inf"],
     "min_duration must be a finite number >= 0, got inf"),
    ("--min-duration -1", ["--min-duration", "-1"],
     "min_duration must be a finite number >= 0, got -1.0"),
    ("--alpha nan", ["--alpha", "nan"], "alpha must be in (0, 1], got nan"),
    ("--alpha 0", ["--alpha", "0"], "alpha must be in (0, 1], got 0.0"),
    ("--enter nan", ["--enter", "nan"], "need 0 <= exit <= enter <= 1, got exit=0.4, enter=nan"),
    ("--exit above --enter", ["--exit", "0.7"],
     "need 0 <= exit <= enter <= 1, got exit=0.7, enter=0.6"),
    ("--stride 0", ["--stride", "0"], "stride must be >= 1, got 0"),
    ("unknown --ignore-label", ["--ignore-label", "Nothingg"],
     "{model}: ignore_labels ['Nothingg'] are not labels of this model; it has ['DbHit', "
     "'Nothing', 'OutofB', 'Substi', 'catch', 'clap', 'golf', 'jump', 'pick', 'pointL', "
     "'pointR', 'pour', 'pullup', 'push', 'run', 'sit', 'stand', 'throw', 'walk', 'wave']"),
    ("--task unknown", ["--task", "dance"],
     "task 'dance' is not in this model; it has ['action', 'gesture'] (or use 'auto')"),
    ("--backend unknown", ["--backend", "cuda"],
     "unknown backend 'cuda'; available: ['onnxruntime', 'tensorrt', 'torch']"),
    ("--publish bad port", ["--publish", "zmq://:99999"],
     "'zmq://:99999': port '99999' is not a number in 1..65535"),
    ("--publish no scheme", ["--publish", "events.txt"],
     "'events.txt': not a publisher spec; use '-', jsonl:PATH, zmq+tcp://HOST:PORT, "
     "zmq+ipc:///PATH or udp://HOST:PORT"),
]


@pytest.mark.parametrize("name,flags,message", RUN_OPTION_CASES,
                         ids=[c[0] for c in RUN_OPTION_CASES])
def test_run_options_are_checked(tmp_path: Path, name: str, flags: list[str], message: str,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("onnxruntime")
    before = snapshot(tmp_path, MODEL_DIR, CLIP)
    rc, out, err = run_cli(_run_argv(tmp_path, *flags), capsys)
    want = message.format(model=MODEL_DIR / "model.int8.onnx")
    assert (rc, out, err) == (2, "", f"skelmtl run: error: {want}\n")
    assert snapshot(tmp_path, MODEL_DIR, CLIP) == before


def _edited_model(tmp: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    onnx = pytest.importorskip("onnx")
    from edge.core.metadata import META_KEY

    m = onnx.load(str(MODEL_DIR / "model.onnx"))
    for p in m.metadata_props:
        if p.key == META_KEY:
            meta = json.loads(p.value)
            edit(meta)
            p.value = json.dumps(meta)
    out = tmp / "model.onnx"
    onnx.save(m, str(out))
    return out


def _labels(task: str, labels: list[Any]) -> Callable[[dict[str, Any]], None]:
    def f(meta: dict[str, Any]) -> None:
        meta["labels"][task] = labels
    return f


_GESTURES = ["DbHit", "Nothing", "OutofB", "Substi", "pointL", "pointR"]
MODEL_CASES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("a gesture label fewer", _labels("gesture", _GESTURES[:-1]),
     "{model}: output logits_gesture has width 6 but the metadata lists 5 labels of task "
     "'gesture'"),
    ("a gesture label more", _labels("gesture", [*_GESTURES, "extra"]),
     "{model}: output logits_gesture has width 6 but the metadata lists 7 labels of task "
     "'gesture'"),
    ("one action label", _labels("action", ["only"]),
     "{model}: output logits_action has width 14 but the metadata lists 1 labels of task "
     "'action'"),
    *[(f"{what} label", _labels("gesture", [*_GESTURES[:-1], value]),
       "{model}: malformed metadata (labels of task 'gesture' must be a non-empty list of "
       f"distinct, non-empty names, got {[*_GESTURES[:-1], value]!r})")
      for what, value in (("null", None), ("empty", ""), ("number", 7), ("duplicate", "DbHit"),
                          ("list", ["a"]))],
    ("labels a string", lambda m: m.__setitem__("labels", "x"),
     "{model}: malformed metadata (labels must map each task to its label names, got str)"),
    ("labels a list", lambda m: m.__setitem__("labels", ["a"]),
     "{model}: malformed metadata (labels must map each task to its label names, got list)"),
    ("no labels", lambda m: m.pop("labels"),
     "{model}: malformed metadata (labels must map each task to its label names, got "
     "NoneType)"),
    ("labels of a task empty", _labels("gesture", []),
     "{model}: malformed metadata (labels of task 'gesture' must be a non-empty list of "
     "distinct, non-empty names, got [])"),
    ("tasks null", lambda m: m.__setitem__("tasks", None),
     "{model}: malformed metadata (tasks must be a non-empty list of distinct names, got "
     "None)"),
    ("tasks a string", lambda m: m.__setitem__("tasks", "gesture"),
     "{model}: malformed metadata (tasks must be a non-empty list of distinct names, got "
     "'gesture')"),
    ("tasks twice", lambda m: m.__setitem__("tasks", ["gesture", "gesture"]),
     "{model}: malformed metadata (tasks must be a non-empty list of distinct names, got "
     "['gesture', 'gesture'])"),
    ("graph_tasks unknown", lambda m: m.__setitem__("graph_tasks", ["dance"]),
     "{model}: malformed metadata (graph_tasks must list tasks of the model, got ['dance'])"),
    ("has_task_head text", lambda m: m.__setitem__("has_task_head", "yes"),
     "{model}: malformed metadata (has_task_head must be true or false, got 'yes')"),
    ("stride text", lambda m: m.__setitem__("stride", "4"),
     "{model}: malformed metadata (stride must be an integer, got '4')"),
    ("stride float", lambda m: m.__setitem__("stride", 4.0),
     "{model}: malformed metadata (stride must be an integer, got 4.0)"),
    ("preprocess null", lambda m: m.__setitem__("preprocess", None),
     "{model}: malformed metadata (preprocess must be an object, got NoneType)"),
    ("preprocess a list", lambda m: m.__setitem__("preprocess", [1]),
     "{model}: malformed metadata (preprocess must be an object, got list)"),
    ("model_args a list", lambda m: m.__setitem__("model_args", [1]),
     "{model}: malformed metadata (model_args must be an object, got list)"),
]


@pytest.mark.parametrize("name,edit,message", MODEL_CASES, ids=[c[0] for c in MODEL_CASES])
def test_model_metadata_must_match_the_graph(tmp_path: Path, name: str,
                                             edit: Callable[[dict[str, Any]], None],
                                             message: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("onnxruntime")
    model = _edited_model(tmp_path, edit)
    before = snapshot(tmp_path, CLIP)
    rc, out, err = run_cli(_run_argv(tmp_path, model=model), capsys)
    assert (rc, out, err) == (2, "", f"skelmtl run: error: {message.format(model=model)}\n")
    assert snapshot(tmp_path, CLIP) == before


# --------------------------------------------------------------------------------------
# 5. frames given to the Pipeline API
# --------------------------------------------------------------------------------------
_J = np.full((75, 3), 0.5, np.float32)
_M = np.ones(75, bool)

FRAME_CASES: list[tuple[str, Any, str]] = [
    ("text joints", (_J.astype(str), _M, 0.0),
     "frame joints must be real numbers, got dtype <U32"),
    ("bytes joints", (_J.astype("S8"), _M, 0.0),
     "frame joints must be real numbers, got dtype |S8"),
    ("complex joints", (_J.astype(np.complex64), _M, 0.0),
     "frame joints must be real numbers, got dtype complex64"),
    ("object joints", (_J.astype(object), _M, 0.0),
     "frame joints must be real numbers, got dtype object"),
    ("text mask", (_J, _M.astype(str), 0.0), "frame mask must be real numbers, got dtype <U5"),
    ("complex mask", (_J, _M.astype(complex), 0.0),
     "frame mask must be real numbers, got dtype complex128"),
    ("ragged joints", ([[0.5, 0.5], [0.5]], _M, 0.0),
     "frame joints is not an array (setting an array element with a sequence. The requested "
     "array has an inhomogeneous shape after 1 dimensions. The detected shape was (2,) + "
     "inhomogeneous part.)"),
    ("text time", (_J, _M, "0.5"), "frame time t must be a real number, got str '0.5'"),
    ("bytes time", (_J, _M, b"1"), "frame time t must be a real number, got bytes b'1'"),
    ("complex time", (_J, _M, 1j), "frame time t must be a real number, got complex 1j"),
    ("numpy complex time", (_J, _M, np.complex64(1)),
     "frame time t must be a real number, got complex64 np.complex64(1+0j)"
     if np.__version__ >= "2" else
     "frame time t must be a real number, got complex64 (1+0j)"),
    ("list time", (_J, _M, [0.0]), "frame time t must be a real number, got list [0.0]"),
    ("none time", (_J, _M, None), "frame time t must be a real number, got NoneType None"),
    ("joints 74", (_J[:74], _M, 0.0), "frame joints must be (75, C), got (74, 3)"),
    ("joints 1-D", (_J.ravel(), _M, 0.0), "frame joints must be (75, C), got (225,)"),
    ("mask 2-D", (_J, _M[:, None], 0.0), "frame mask must be (75,), got (75, 1)"),
    ("2 coordinates", (_J[:, :1], _M, 0.0),
     "the model uses 2D joints, the frame has 1 coordinates"),
    ("not a frame", "frame", "a frame is an object with t/joints/mask or a tuple (joints, "
     "mask, t); got str"),
    ("pair", (_J, _M), "a frame is an object with t/joints/mask or a tuple (joints, mask, "
     "t); got tuple"),
]


@pytest.fixture(scope="module")
def pipe() -> Any:
    pytest.importorskip("onnxruntime")
    from edge.runtime.pipeline import Pipeline

    with Pipeline.from_model(MODEL_DIR / "model.onnx") as p:
        yield p


@pytest.mark.parametrize("name,frame,message", FRAME_CASES, ids=[c[0] for c in FRAME_CASES])
def test_bad_frames_are_refused(pipe: Any, name: str, frame: Any, message: str) -> None:
    from edge.runtime.stream import FrameError

    pipe.reset()
    kept = None if isinstance(frame, str) else [np.array(x, copy=True) if isinstance(
        x, np.ndarray) else x for x in frame]
    with pytest.raises(FrameError) as e:
        pipe.push(frame)
    assert str(e.value) == message
    assert pipe.frames == 0  # nothing entered the stream
    if kept is not None:  # the caller's arrays are not changed
        for a, b in zip(kept, frame):
            if isinstance(a, np.ndarray):
                np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("value,invalid", [
    (np.nan, 1), (np.inf, 1), (-np.inf, 1), (3e38, 1), (1e30, 1), (-2e4, 1), (1e4, 0),
    (-1e4, 0), (0.5, 0)])
def test_landmarks_out_of_range_count_as_missing(pipe: Any, value: float, invalid: int) -> None:
    """One joint at 3e38 must not decide a window: it is masked and counted."""
    pipe.reset()
    joints = _J.copy()
    joints[0, 1] = value
    for i in range(3):
        pipe.push((joints, _M, i / 30))
    assert pipe.stats()["invalid_joints"] == 3 * invalid
    assert pipe.buffer.last(1)[1][0, 0] == (invalid == 0)
    assert np.isfinite(pipe.buffer.last(3)[0]).all()


@pytest.mark.parametrize("t", [np.nan, np.inf, -np.inf])
def test_nan_times_keep_events_readable(pipe: Any, t: float) -> None:
    from edge.core.events import Event

    pipe.reset()
    events = pipe.push((_J, _M, 0.25)) + pipe.push((_J, _M, t)) + pipe.finish()
    assert pipe.stats()["invalid_times"] == 1
    for ev in events:  # JSON keeps 6 decimals: read back, the event writes the same line
        back = Event.from_dict(json.loads(ev.to_json()))
        assert back.to_json() == ev.to_json() and back.t == ev.t  # "t" is never null
    assert events[-1].t == 0.25


# --------------------------------------------------------------------------------------
# 6. text or complex numbers, or headers that promise more than the file has, in datasets
# --------------------------------------------------------------------------------------
def _mp_data(root: Path, frame: np.ndarray) -> Path:
    for cls in ("a", "b"):
        for seq in ("0", "1"):
            d = root / cls / seq
            d.mkdir(parents=True)
            for t in range(3):
                np.save(d / f"{t}.npy", frame, allow_pickle=True)
    return root


def _rec_data(root: Path, frames: np.ndarray, mask: Any = None, ts: Any = None) -> Path:
    d = root / "wave"
    d.mkdir(parents=True)
    np.savez(d / "0.landmarks.npz", frames=frames,
             mask=np.ones((6, 75), bool) if mask is None else mask,
             timestamps_ms=np.arange(6.0) if ts is None else ts,
             meta=json.dumps({"format": 1, "layout": "mp75", "fps": 20.0}))
    return root


_V = np.full(258, 0.5)
_F = np.full((6, 75, 3), 0.5)
READER_CASES: list[tuple[str, str, Callable[[Path], Path], str]] = [
    ("mp text", "mp_folder", lambda r: _mp_data(r, _V.astype(str)),
     "{src}/a/0/0.npy: the frame vector must hold real numbers, got dtype <U32"),
    ("mp bytes", "mp_folder", lambda r: _mp_data(r, _V.astype("S3")),
     "{src}/a/0/0.npy: the frame vector must hold real numbers, got dtype |S3"),
    ("mp complex", "mp_folder", lambda r: _mp_data(r, _V.astype(complex)),
     "{src}/a/0/0.npy: the frame vector must hold real numbers, got dtype complex128"),
    ("mp object", "mp_folder", lambda r: _mp_data(r, _V.astype(object)),
     "{src}/a/0/0.npy: unreadable or truncated .npy (Object arrays cannot be loaded when "
     "allow_pickle=False)"),
    ("recording text", "recording", lambda r: _rec_data(r, _F.astype(str)),
     "{src}/wave/0.landmarks.npz: frames must hold real numbers, got dtype <U32"),
    ("recording complex", "recording", lambda r: _rec_data(r, _F.astype(np.complex64)),
     "{src}/wave/0.landmarks.npz: frames must hold real numbers, got dtype complex64"),
    ("recording text mask", "recording",
     lambda r: _rec_data(r, _F, mask=np.ones((6, 75)).astype(str)),
     "{src}/wave/0.landmarks.npz: mask must hold real numbers, got dtype <U32"),
    ("recording complex times", "recording",
     lambda r: _rec_data(r, _F, ts=np.arange(6.0) + 0j),
     "{src}/wave/0.landmarks.npz: timestamps_ms must hold real numbers, got dtype "
     "complex128"),
]


def _claim(path: Path, name: str, shape: tuple[int, ...], data: bytes) -> None:
    """Write an .npy whose header claims ``shape`` but holds ``data``."""
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False,
                                               "shape": shape})
    path.write_bytes(buf.getvalue() + data)


def _npz_claim(root: Path) -> Path:
    """An asl16 file whose X header claims 10^6 x 10^6 x 258 doubles."""
    import io
    import zipfile

    root.mkdir(parents=True)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False,
                                               "shape": (10 ** 6, 10 ** 6, 258)})
    with zipfile.ZipFile(root / "asl16_x.npz", "w") as z:
        z.writestr("X.npy", buf.getvalue() + b"\0" * 64)
        for k in ("y", "split"):
            b2 = io.BytesIO()
            np.save(b2, np.zeros(1))
            z.writestr(f"{k}.npy", b2.getvalue())
    return root


def _mp_claim(root: Path) -> Path:
    _mp_data(root, _V)
    _claim(root / "a" / "0" / "1.npy", "x", (10 ** 12,), b"\0" * 16)
    return root


READER_CASES += [
    ("mp header claims 10^12", "mp_folder", _mp_claim,
     "{src}/a/0/1.npy: holds 16 bytes of data, its header promises 8000000000000 (float64 "
     "(1000000000000,); truncated or corrupt)"),
    ("asl16 header claims 2e15 bytes", "asl16", _npz_claim,
     "{src}/asl16_x.npz: X holds 64 bytes of data, its header promises "
     "2064000000000000 (float64 (1000000, 1000000, 258); truncated or corrupt)"),
]


@pytest.mark.parametrize("name,fmt,make,message", READER_CASES,
                         ids=[c[0] for c in READER_CASES])
def test_bad_arrays_in_datasets(tmp_path: Path, name: str, fmt: str,
                                             make: Callable[[Path], Path], message: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    src = make(tmp_path / "src")
    before = snapshot(tmp_path)
    rc, out, err = run_cli(["data", "convert", str(src), str(tmp_path / "out"), "--format",
                            fmt], capsys)
    assert (rc, out, err) == (2, "", f"skelmtl data: error: {message.format(src=src)}\n")
    assert snapshot(tmp_path) == before  # no store, no temporary folder


# --------------------------------------------------------------------------------------
# 6b. the runtime's own recordings: load_recording and skelmtl run --source
# --------------------------------------------------------------------------------------
def _recording_file(path: Path, **arrays: Any) -> Path:
    """A recording with ``arrays`` replacing the good ones (object arrays are pickled)."""
    good: dict[str, Any] = {"frames": np.full((6, 75, 3), 0.5, np.float32),
                            "mask": np.ones((6, 75), bool), "timestamps_ms": np.arange(6.0),
                            "meta": np.asarray(json.dumps({"format": 1, "layout": "mp75"}))}
    np.savez(path, **{**good, **arrays})
    return path


def _npy(a: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _recording_claiming(path: Path) -> Path:
    """A recording whose frames header claims 10^9 frames, with 64 bytes of data."""
    import io
    import zipfile

    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "<f4", "fortran_order": False,
                                                "shape": (10 ** 9, 75, 3)})
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("frames.npy", head.getvalue() + b"\0" * 64)
        z.writestr("mask.npy", _npy(np.ones((6, 75), bool)))
        z.writestr("timestamps_ms.npy", _npy(np.arange(6.0)))
        z.writestr("meta.npy", _npy(np.asarray(json.dumps({"format": 1, "layout": "mp75"}))))
    return path


def _recording_inflating(path: Path) -> Path:
    """A compressed recording whose zip directory claims 4 GB for the frames entry."""
    import struct
    import zipfile

    good = {"frames": np.full((6, 75, 3), 0.5, np.float32), "mask": np.ones((6, 75), bool),
            "timestamps_ms": np.arange(6.0),
            "meta": np.asarray(json.dumps({"format": 1, "layout": "mp75"}))}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for k, v in good.items():
            z.writestr(f"{k}.npy", _npy(v))
    raw = bytearray(path.read_bytes())
    # The central directory entry of frames.npy (written first): uncompressed size at +24.
    at = raw.index(b"PK\x01\x02")
    assert raw[at + 46: at + 56] == b"frames.npy"
    raw[at + 24: at + 28] = struct.pack("<I", 0xFFFFFFF0)
    path.write_bytes(bytes(raw))
    return path


def _stored(path: Path) -> int:
    import zipfile

    with zipfile.ZipFile(path) as z:
        return z.getinfo("frames.npy").compress_size


RECORDING_CASES: list[tuple[str, Callable[[Path], Path], str]] = [
    ("frames text", lambda p: _recording_file(p, frames=np.full((6, 75, 3), 0.5).astype(str)),
     "{path}: frames must hold real numbers, got dtype <U32"),
    ("frames bytes", lambda p: _recording_file(p, frames=np.full((6, 75, 3), 1).astype("S3")),
     "{path}: frames must hold real numbers, got dtype |S3"),
    ("frames complex", lambda p: _recording_file(p, frames=np.full((6, 75, 3), 0.5 + 1j)),
     "{path}: frames must hold real numbers, got dtype complex128"),
    ("frames object", lambda p: _recording_file(
        p, frames=np.full((6, 75, 3), 0.5).astype(object)),
     "{path}: frames must hold real numbers, got dtype object"),
    ("mask text", lambda p: _recording_file(p, mask=np.ones((6, 75)).astype(str)),
     "{path}: mask must hold real numbers, got dtype <U32"),
    ("mask object", lambda p: _recording_file(p, mask=np.ones((6, 75), bool).astype(object)),
     "{path}: mask must hold real numbers, got dtype object"),
    ("mask complex", lambda p: _recording_file(p, mask=np.ones((6, 75), np.complex64)),
     "{path}: mask must hold real numbers, got dtype complex64"),
    ("timestamps text", lambda p: _recording_file(p, timestamps_ms=np.arange(6).astype(str)),
     "{path}: timestamps_ms must hold real numbers, got dtype <U21"),
    ("frames header claims 10^9 frames", _recording_claiming,
     "{path}: frames holds 64 bytes of data, its header promises 900000000000 (float32 "
     "(1000000000, 75, 3); truncated or corrupt)"),
    ("zip entry claims 4 GB", _recording_inflating,
     "{path}: frames claims 4294967280 bytes from {stored} stored bytes (truncated or "
     "corrupt)"),
]


@pytest.mark.parametrize("surface", ["cli", "api"])
@pytest.mark.parametrize("name,make,message", RECORDING_CASES,
                         ids=[c[0] for c in RECORDING_CASES])
def test_bad_arrays_in_recordings(tmp_path: Path, surface: str, name: str,
                                  make: Callable[[Path], Path], message: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    from edge.core.recording import RecordingError, load_recording

    path = make(tmp_path / "bad.landmarks.npz")
    want = message.format(path=path, stored=_stored(path))
    before = snapshot(tmp_path, MODEL_DIR)
    if surface == "api":
        with pytest.raises(RecordingError) as e:
            load_recording(path)
        assert str(e.value) == want
    else:
        pytest.importorskip("onnxruntime")
        rc, out, err = run_cli(_run_argv(tmp_path, source=path), capsys)
        assert (rc, out, err) == (2, "", f"skelmtl run: error: {want}\n")
    assert snapshot(tmp_path, MODEL_DIR) == before

# --------------------------------------------------------------------------------------
# 7. a full disk; a reader that went away
# --------------------------------------------------------------------------------------
def test_full_disk_during_convert_leaves_nothing(tmp_path: Path, monkeypatch: Any,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import errno

    import edge.core.clipstore

    src = _recordings(tmp_path / "data")
    dst = write_store(_clips(2), tmp_path / "st")
    before = snapshot(tmp_path)

    def full(raw: Path, npy: Path, *a: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(npy))

    monkeypatch.setattr(edge.core.clipstore, "_raw_to_npy", full)
    rc, out, err = run_cli(["data", "convert", str(src), str(dst), "--format", "recording",
                            "--overwrite"], capsys)
    assert (rc, out, err) == (2, "", f"skelmtl data: error: {dst}: cannot write the store: "
                                     f"no space left on device\n")
    assert snapshot(tmp_path) == before  # the old store intact, no temporary folder


def test_file_size_limit_during_convert_is_one_line(tmp_path: Path) -> None:
    """A real write failure (RLIMIT_FSIZE: EFBIG), no privileges needed."""
    resource = pytest.importorskip("resource")
    import signal
    import subprocess
    import sys

    src = _recordings(tmp_path / "data")
    dst = tmp_path / "st"

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of dying
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    r = subprocess.run([sys.executable, "-m", "skelmtl.cli", "data", "convert", str(src),
                        str(dst), "--format", "recording"], cwd=ROOT, capture_output=True,
                       text=True, preexec_fn=limit, timeout=120)
    assert (r.returncode, r.stdout, r.stderr) == (
        2, "", f"skelmtl data: error: {dst}: cannot write the store: File too large\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_full_disk_during_jsonl_is_one_line(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """/dev/full answers every write with ENOSPC: a real full disk, no privileges needed."""
    pytest.importorskip("onnxruntime")
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    (tmp_path / "ev.jsonl").symlink_to("/dev/full")
    rc, out, err = run_cli(_run_argv(tmp_path, "--jsonl", str(tmp_path / "ev.jsonl")), capsys)
    assert (rc, out) == (2, "")
    assert err == (f"skelmtl run: error: {tmp_path / 'ev.jsonl'}: write failed: No space "
                   f"left on device\n")


def test_full_disk_during_stats_is_one_line(tmp_path: Path, monkeypatch: Any,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("onnxruntime")
    import errno

    import edge.commands.run

    def full(path: Any, data: Any, **kw: Any) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(edge.commands.run, "atomic_write", full)
    stats = tmp_path / "s.json"
    rc, out, err = run_cli(_run_argv(tmp_path, "--stats", str(stats)), capsys)
    assert (rc, out) == (2, "")
    assert err.splitlines()[-1] == (f"skelmtl run: error: {stats}: cannot write --stats: No "
                                    f"space left on device")
    assert list(tmp_path.iterdir()) == []


def test_data_info_into_a_closed_pipe_is_quiet(good_store: Path) -> None:
    import subprocess
    import sys

    r, w = os.pipe()
    os.close(r)  # the reader (`head`) is gone before the first write
    try:
        p = subprocess.run([sys.executable, "-m", "skelmtl.cli", "data", "info", "--json",
                            str(good_store)], cwd=ROOT, stdout=w, stderr=subprocess.PIPE,
                           text=True, timeout=120)
    finally:
        os.close(w)
    assert (p.returncode, p.stderr) == (141, "")


EXTRACT_OPTION_CASES: list[tuple[str, list[str], str]] = [
    ("empty task", ["--task", ""], "--task must not be empty"),
    ("empty label", ["--label-from", ""], "--label-from must be 'parent' or a label, got ''"),
    ("test fraction nan", ["--test-fraction", "nan"],
     "--test-fraction must be in [0, 1), got nan"),
    ("test fraction 1", ["--test-fraction", "1"], "--test-fraction must be in [0, 1), got 1.0"),
    ("test fraction -0.5", ["--test-fraction", "-0.5"],
     "--test-fraction must be in [0, 1), got -0.5"),
    ("every 0", ["--every", "0"], "--every and --workers must be at least 1"),
    ("workers 0", ["--workers", "0"], "--every and --workers must be at least 1"),
    ("save landmarks into a file", ["--save-landmarks", "{tmp}/afile"],
     "{tmp}/afile: --save-landmarks takes a folder; this is a file"),
    ("work dir inside the input", ["--work-dir", "{src}/wave"],
     "{src}/wave: the work folder may not be, hold or lie inside the input {src}"),
    ("work dir is the input", ["--work-dir", "{src}"],
     "{src}: the work folder may not be, hold or lie inside the input {src}"),
    ("work dir holds the input", ["--work-dir", "{tmp}"],
     "{tmp}: the work folder may not be, hold or lie inside the input {src}"),
    ("work dir is a file", ["--work-dir", "{tmp}/afile"],
     "{tmp}/afile: the work folder is a file"),
    ("store inside the input", ["-o", "{src}/out"],
     "{src}/.out.work: the work folder may not be, hold or lie inside the input {src} (it "
     "is the default, beside the store: write the store outside the input, or pass "
     "--work-dir)"),
]


@pytest.mark.parametrize("name,flags,message", EXTRACT_OPTION_CASES,
                         ids=[c[0] for c in EXTRACT_OPTION_CASES])
def test_extract_options_are_checked_first(tmp_path: Path, name: str, flags: list[str],
                                           message: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    src = _recordings(tmp_path / "data")
    (tmp_path / "afile").write_text("mine")
    before = snapshot(tmp_path)
    fill = {"tmp": tmp_path, "src": src}
    rc, out, err = run_cli(["extract", str(src), "-o", str(tmp_path / "out"), "--no-progress",
                            *[f.format(**fill) for f in flags]], capsys)
    assert (rc, out, err) == (2, "", f"skelmtl extract: error: {message.format(**fill)}\n")
    assert snapshot(tmp_path) == before


def _far(value: float) -> np.ndarray:
    """Four frames at 0.5 with joint 3's x at ``value``."""
    f = np.full((4, 75, 3), 0.5, np.float32)
    f[:, 3, 0] = value
    return f


def _clip(**kw: Any) -> Clip:
    base = dict(frames=np.full((4, 75, 3), 0.5, np.float32), mask=np.ones((4, 75), bool),
                label="a", task="gesture", clip_id="c0")
    return Clip(**{**base, **kw})


CLIP_CASES: list[tuple[str, Clip, str]] = [
    ("text frames", _clip(frames=np.full((4, 75, 3), "0.5")),
     "c0: frames must hold real numbers, got dtype <U3"),
    ("complex frames", _clip(frames=np.full((4, 75, 3), 0.5 + 1j)),
     "c0: frames must hold real numbers, got dtype complex128"),
    ("object frames", _clip(frames=np.full((4, 75, 3), 0.5, dtype=object)),
     "c0: frames must hold real numbers, got dtype object"),
    ("float mask", _clip(mask=np.ones((4, 75))),
     "c0: mask must be bool, got dtype float64"),
    ("list frames", _clip(frames=[[0.5]]),
     "c0: frames and mask must be numpy arrays, got list and ndarray"),
    ("NaN at a present joint", _clip(frames=np.full((4, 75, 3), np.nan, np.float32)),
     "c0: non-finite coordinates at present joints"),
    ("no frames", _clip(frames=np.zeros((0, 75, 3), np.float32), mask=np.zeros((0, 75), bool)),
     "c0: clip has no frames"),
    ("74 joints", _clip(frames=np.zeros((4, 74, 3), np.float32)),
     "c0: frames must be (T, 75, 2|3), got (4, 74, 3)"),
    ("mask shape", _clip(mask=np.ones((3, 75), bool)),
     "c0: mask shape (3, 75) does not match frames (4, 75)"),
    ("empty label", _clip(label=""), "c0: clip needs a label and a task"),
    ("one joint at 1e30", _clip(frames=_far(1e30)),
     "c0: a present joint has a coordinate of 1e+30, beyond +-10000 (not a landmark; mask "
     "it)"),
    ("one joint at -2e4", _clip(frames=_far(-2e4)),
     "c0: a present joint has a coordinate of 2e+04, beyond +-10000 (not a landmark; mask "
     "it)"),
    ("numeric label", _clip(label=3), "c0: label and task must be text, got 3 and 'gesture'"),
]


@pytest.mark.parametrize("name,clip,message", CLIP_CASES, ids=[c[0] for c in CLIP_CASES])
def test_write_store_refuses_bad_clips(tmp_path: Path, name: str, clip: Clip,
                                       message: str) -> None:
    with pytest.raises(StoreError) as e:
        write_store([_clips(1)[0], clip], tmp_path / "st")
    assert str(e.value) == message
    assert list(tmp_path.iterdir()) == []  # nothing half-written


SAME_PATH_CASES: list[tuple[str, list[str], str]] = [
    ("--jsonl onto the source", ["--jsonl", "{src}"], "{src}: --jsonl would overwrite the "
     "--source input"),
    ("--overlay onto the source", ["--overlay", "{src}"],
     "{src}: --overlay would overwrite the --source input"),
    ("--stats onto the source", ["--stats", "{src}"],
     "{src}: --stats would overwrite the --source input"),
    ("--stats onto the model", ["--stats", "{model}"],
     "{model}: --stats would overwrite the --model input"),
    ("--overlay onto a file of the model folder", ["--overlay", "{models}/model_card.md"],
     "{models}/model_card.md: --overlay would overwrite the --model input"),
    ("--stats onto the folder's INT8 model", ["--stats", "{models}/model.int8.onnx"],
     "{models}/model.int8.onnx: --stats would overwrite the --model input"),
    ("--jsonl and --stats alike", ["--jsonl", "{tmp}/x.json", "--stats", "{tmp}/x.json"],
     "{tmp}/x.json: given to both --jsonl and --stats"),
    ("--overlay and --jsonl alike", ["--overlay", "{tmp}/o.mp4", "--jsonl", "{tmp}/o.mp4"],
     "{tmp}/o.mp4: given to both --jsonl and --overlay"),
]


@pytest.mark.parametrize("name,flags,message", SAME_PATH_CASES,
                         ids=[c[0] for c in SAME_PATH_CASES])
def test_run_never_writes_over_its_inputs(tmp_path: Path, name: str, flags: list[str],
                                          message: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("onnxruntime")
    models = tmp_path / "models"
    shutil.copytree(MODEL_DIR, models)
    src = tmp_path / "clip.landmarks.npz"
    shutil.copy(CLIP, src)
    fill = {"tmp": tmp_path, "src": src, "model": models / "model.onnx", "models": models}
    model = models if "{models}" in " ".join(flags) else models / "model.onnx"
    before = snapshot(tmp_path)
    rc, out, err = run_cli(_run_argv(tmp_path, *[f.format(**fill) for f in flags],
                                     model=model, source=src), capsys)
    assert (rc, out, err) == (2, "", f"skelmtl run: error: {message.format(**fill)}\n")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("flag", ["--jsonl", "--overlay", "--stats"])
def test_run_never_writes_over_a_recording_of_its_source_folder(
        tmp_path: Path, flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("onnxruntime")
    clips = tmp_path / "clips"
    clips.mkdir()
    shutil.copy(CLIP, clips / "00.landmarks.npz")
    target = clips / "00.landmarks.npz"
    before = snapshot(tmp_path)
    rc, out, err = run_cli(_run_argv(tmp_path, flag, str(target), model=MODEL_DIR / "model.onnx",
                                     source=clips), capsys)
    assert (rc, out, err) == (2, "", f"skelmtl run: error: {target}: {flag} would overwrite a "
                                     f"file of the --source folder {clips}\n")
    assert snapshot(tmp_path) == before


def test_a_backend_whose_widths_disagree_fails_at_its_first_window() -> None:
    """TensorRT and torch graphs cannot show their widths at load: the first window does."""
    pytest.importorskip("onnxruntime")
    from edge.backends import load_backend
    from edge.backends.base import Backend, BackendError
    from edge.runtime.pipeline import Pipeline

    real = load_backend(MODEL_DIR / "model.onnx", "onnxruntime")

    class Narrow(Backend):
        name, meta, path = "narrow", real.meta, Path("narrow.engine")

        def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
            return {k: v[:, :-1] if k == "logits_gesture" else v
                    for k, v in real.infer(x).items()}

    pipe = Pipeline(Narrow(), task="gesture")
    with pytest.raises(BackendError) as e:
        for i in range(pipe.window):
            pipe.push((_J, _M, i / 30))
    assert str(e.value) == ("narrow.engine: output logits_gesture has width 5 but the "
                            "metadata lists 6 labels of task 'gesture'")
    real.close()


_GOOD_EVENT = ('{"schema":"skelmtl.event/1","kind":"state","t":0.0,"frame":0,"task":null,'
               '"label":null,"confidence":null,"start":null,"end":null,"state":"tracking",'
               '"dropped":0,"reason":null}')
JSONL_CASES: list[tuple[str, bytes, str]] = [
    ("a list", b"[1]", "an event is a JSON object, got list"),
    ("null", b"null", "an event is a JSON object, got NoneType"),
    ("a number", b"3", "an event is a JSON object, got int"),
    ("not UTF-8", b"\xff\xfe{}", "not UTF-8 text"),
    ("null label in a begin", _GOOD_EVENT.replace('"kind":"state"', '"kind":"begin"').replace(
        '"task":null', '"task":"gesture"').replace('"confidence":null', '"confidence":0.9')
     .replace('"start":null', '"start":0.0').encode(), "begin event without ['label']"),
    ("null t", _GOOD_EVENT.replace('"t":0.0', '"t":null').encode(),
     "field 't' = None is not int/float"),
    ("NaN t", _GOOD_EVENT.replace('"t":0.0', '"t":NaN').encode(),
     "field 't' = nan is not a finite number"),
    ("confidence 2", _GOOD_EVENT.replace('"confidence":null', '"confidence":2').encode(),
     "confidence 2 outside [0, 1]"),
    ("unknown kind", _GOOD_EVENT.replace('"kind":"state"', '"kind":"boom"').encode(),
     "unknown kind 'boom'; known ('begin', 'end', 'state', 'drop', 'stream')"),
    ("wrong schema", _GOOD_EVENT.replace("event/1", "event/9").encode(),
     "schema 'skelmtl.event/9', this package reads 'skelmtl.event/1'"),
    ("truncated line", _GOOD_EVENT[:30].encode(),
     "Invalid control character at: line 1 column 31 (char 30)"),
    ("Infinity confidence", _GOOD_EVENT.replace('"confidence":null',
                                                '"confidence":Infinity').encode(),
     "field 'confidence' = inf is not a finite number"),
]


@pytest.mark.parametrize("name,line,message", JSONL_CASES, ids=[c[0] for c in JSONL_CASES])
def test_read_jsonl_names_the_line(tmp_path: Path, name: str, line: bytes,
                                   message: str) -> None:
    from edge.core.events import EventError, read_jsonl

    f = tmp_path / "ev.jsonl"
    f.write_bytes(_GOOD_EVENT.encode() + b"\n\n" + line + b"\n")
    before = snapshot(f)
    with pytest.raises(EventError) as e:
        list(read_jsonl(f))
    assert str(e.value) == f"{f}:3: {message}"
    assert snapshot(f) == before


def test_a_killed_writers_temporary_is_removed_by_the_next_write(tmp_path: Path) -> None:
    from edge.core.atomic import atomic_write

    p = tmp_path / "best.json"
    dead = tmp_path / f".best.json.{2 ** 22 + 99}-abc.tmp"  # above pid_max: no such process
    live = tmp_path / f".best.json.{os.getpid()}-xyz.tmp"  # a writer still at work
    other = tmp_path / ".other.json.1-abc.tmp"
    for f in (dead, live, other):
        f.write_text("partial")
    atomic_write(p, "whole")
    assert sorted(f.name for f in tmp_path.iterdir()) == sorted(
        [p.name, live.name, other.name])


def test_atomic_write_never_replaces_a_folder(tmp_path: Path) -> None:
    from edge.core.atomic import atomic_write

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    before = snapshot(tmp_path)
    with pytest.raises(IsADirectoryError) as e:
        atomic_write(tmp_path / "out", "x")
    assert str(e.value) == f"[Errno 21] is a folder, not a file: '{tmp_path / 'out'}'"
    assert snapshot(tmp_path) == before


_ROOT_USER = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.mark.skipif(_ROOT_USER, reason="root writes into read-only folders")
def test_read_only_folders_are_one_line(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    src = _recordings(tmp_path / "data")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        rc, out, err = run_cli(["data", "convert", str(src), str(ro / "st"), "--format",
                                "recording"], capsys)
        assert (rc, out, err) == (2, "", f"skelmtl data: error: {ro / 'st'}: folder {ro} is "
                                         f"not writable\n")
        pytest.importorskip("onnxruntime")
        rc, out, err = run_cli(_run_argv(tmp_path, "--stats", str(ro / "s.json")), capsys)
        assert (rc, out, err) == (2, "", f"skelmtl run: error: {ro / 's.json'}: folder {ro} "
                                         f"is not writable (--stats)\n")
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_permission_denied_while_writing_a_store_is_one_line(
        tmp_path: Path, monkeypatch: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """The same failure injected, so that it is tested under root too."""
    import errno
    import tempfile

    import edge.core.clipstore

    src = _recordings(tmp_path / "data")
    dst = tmp_path / "st"

    def denied(*a: Any, **kw: Any) -> str:
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path))

    monkeypatch.setattr(edge.core.clipstore.tempfile, "mkdtemp", denied)
    before = snapshot(tmp_path)
    rc, out, err = run_cli(["data", "convert", str(src), str(dst), "--format", "recording"],
                           capsys)
    assert (rc, out, err) == (2, "", f"skelmtl data: error: {dst}: cannot write the store: "
                                     f"Permission denied\n")
    assert snapshot(tmp_path) == before
    assert tempfile.mkdtemp is denied  # patched for this test only



@pytest.mark.parametrize("argv,message", [
    (["data", "convert", "", "{tmp}/out"], "skelmtl data: error: SRC is empty; give a path"),
    (["data", "convert", "{tmp}/data", ""], "skelmtl data: error: DST is empty; give a path"),
    (["data", "convert", " ", "{tmp}/out"], "skelmtl data: error: SRC is empty; give a path"),
    (["data", "info", ""], "skelmtl data: error: STORE is empty; give a path"),
    (["extract", "", "-o", "{tmp}/out"],
     "skelmtl extract: error: an input or the output is an empty path"),
    (["extract", "{tmp}/data", "-o", ""],
     "skelmtl extract: error: an input or the output is an empty path"),
])
def test_empty_paths_are_not_the_current_folder(tmp_path: Path, argv: list[str], message: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    _recordings(tmp_path / "data")
    before = snapshot(tmp_path)
    rc, out, err = run_cli([a.format(tmp=tmp_path) for a in argv], capsys)
    assert (rc, out, err) == (2, "", message + "\n")
    assert snapshot(tmp_path) == before
