"""The dependency rule of docs/architecture.md: edge never imports torch, trainer or
calibration; calibration never imports torch or trainer; heavy libraries load lazily.

Two checks per rule: importing every module of the room in a fresh interpreter leaves the
forbidden packages out of ``sys.modules`` (what a Jetson without torch experiences), and
no ``import`` statement anywhere in the room's source names them, not even inside a
function (so the rule holds on every code path, not only at import time).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# room -> packages it must never import
FORBIDDEN = {
    "edge": ("torch", "trainer", "calibration"),
    "calibration": ("torch", "trainer"),
}
# Optional heavy libraries: imported inside the functions that need them, so that
# `import edge.x` (and `skelmtl --help`) stays fast and works without them.
LAZY = ("onnxruntime", "onnx", "mediapipe", "cv2", "tensorrt", "pycuda", "zmq", "matplotlib")

_IMPORT_ALL = """
import importlib, json, pkgutil, sys
room = importlib.import_module(sys.argv[1])
names = [sys.argv[1]] + [m.name for m in pkgutil.walk_packages(room.__path__, sys.argv[1] + ".")]
for name in names:
    importlib.import_module(name)
print(json.dumps({"modules": names,
                  "loaded": sorted({k.split(".")[0] for k in sys.modules})}))
"""


def _import_room(room: str) -> dict[str, list[str]]:
    p = subprocess.run([sys.executable, "-c", _IMPORT_ALL, room], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"importing the modules of {room}/ failed:\n{p.stderr[-3000:]}"
    result: dict[str, list[str]] = json.loads(p.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("room", sorted(FORBIDDEN))
def test_importing_a_room_loads_nothing_forbidden(room: str) -> None:
    result = _import_room(room)
    assert len(result["modules"]) > 3, result["modules"]
    bad = sorted(set(FORBIDDEN[room]) & set(result["loaded"]))
    assert not bad, f"importing every module of {room}/ loaded {bad}"


def test_edge_imports_heavy_libraries_lazily() -> None:
    loaded = set(_import_room("edge")["loaded"])
    eager = sorted(loaded & set(LAZY))
    assert not eager, (f"importing edge/ loaded {eager}; import them inside the functions "
                       "that need them")


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("room", sorted(FORBIDDEN))
def test_no_import_statement_names_a_forbidden_package(room: str) -> None:
    files = sorted((REPO / room).rglob("*.py"))
    assert files
    offenders = {str(f.relative_to(REPO)): sorted(_imported_roots(f) & set(FORBIDDEN[room]))
                 for f in files}
    offenders = {f: bad for f, bad in offenders.items() if bad}
    assert not offenders, f"{room}/ must not import {FORBIDDEN[room]}: {offenders}"


def test_import_scan_sees_imports_inside_functions(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text("import numpy as np\n\ndef f():\n    from trainer.models import x\n"
                   "    import torch.nn\n    from . import sibling\n")
    assert _imported_roots(src) == {"numpy", "trainer", "torch"}
