"""The dependency rule of docs/architecture.md, as tests.

Rooms: ``skelmtl`` (the command line, on top) may import every room; ``trainer`` and
``calibration`` import ``edge``; ``edge`` imports only itself, and inside ``edge`` each
sub-package only the parts below it (:data:`EDGE_PARTS`). Third-party: edge never imports
torch, calibration neither; heavy libraries load lazily.

A dependency is not only an ``import`` statement: a module name in a string (an
``importlib.import_module`` argument, a ``"module:Class"`` table, a ``mock.patch``
target), a child process (``python -m module``, ``skelmtl COMMAND``), and an entry-point
group the code looks up (whose targets setup.cfg names) each count. Every dependency that
crosses the rule is listed in :data:`ALLOWED_SEAMS`, with why; anything else fails,
naming ``file:line``.

Two more checks per forbidden package: importing every module of the room in a fresh
interpreter leaves it out of ``sys.modules`` (what a Jetson without torch experiences),
and no ``import`` statement anywhere in the room's source names it, not even inside a
function.
"""

from __future__ import annotations

import ast
import configparser
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOMS = ("skelmtl", "edge", "trainer", "calibration")

# room -> the rooms it may depend on (itself included)
MAY_DEPEND = {
    "skelmtl": set(ROOMS),
    "trainer": {"trainer", "edge"},
    "calibration": {"calibration", "edge"},
    "edge": {"edge"},
}
# Inside edge: part -> the parts it may depend on. "edge" is the package itself (its
# __version__); assets holds the bundled files.
EDGE_PARTS = {
    "edge": {"edge"},
    "edge.core": {"edge", "edge.core"},
    "edge.assets": {"edge", "edge.core", "edge.assets"},
    "edge.engine": {"edge", "edge.core", "edge.engine"},
    "edge.backends": {"edge", "edge.core", "edge.engine", "edge.backends"},
    "edge.frontend": {"edge", "edge.core", "edge.backends", "edge.frontend"},
    "edge.runtime": {"edge", "edge.core", "edge.engine", "edge.backends", "edge.frontend",
                     "edge.runtime"},
    "edge.bench": {"edge", "edge.core", "edge.assets", "edge.engine", "edge.backends",
                   "edge.frontend", "edge.runtime", "edge.bench"},
    "edge.commands": {"edge", "edge.core", "edge.assets", "edge.engine", "edge.backends",
                      "edge.frontend", "edge.runtime", "edge.commands"},
}


@dataclass(frozen=True)
class Seam:
    """A dependency that crosses the rule on purpose.

    Attributes:
        source: the module that depends (dotted name).
        target: the module it reaches (dotted name).
        kind: ``import``, ``string``, ``subprocess`` or ``entry point``.
        why: the reason, as docs/architecture.md gives it.
    """

    source: str
    target: str
    kind: str
    why: str


ALLOWED_SEAMS = (
    Seam("edge.engine.cache", "skelmtl.cli", "subprocess",
         "the Jetson container builds a missing engine by running `skelmtl build-engine`"),
    Seam("edge.engine.cache", "calibration.engine", "subprocess",
         "... which is calibration's engine builder, in a child process"),
    Seam("edge.backends", "trainer.backend", "entry point",
         "the PyTorch backend, registered under skelmtl.backends, found by name"),
    Seam("trainer.accuracy", "calibration.quantize", "import",
         "the accuracy table's INT8 rows are quantized by calibration"),
    Seam("trainer.accuracy", "skelmtl.cli", "subprocess",
         "the accuracy table converts datasets with `skelmtl data convert`"),
    Seam("trainer.tuning", "skelmtl.cli", "subprocess",
         "each tuning variant trains in its own `skelmtl train` process"),
)

# A module path in a string: a room and at least one dot (the bare name "skelmtl" is
# the product's name in messages and metadata).
_DOTTED = re.compile(rf"(?:{'|'.join(ROOMS)})(?:\.\w+)+(?::[\w.]+)?")
_PROCESS_CALLS = {"run", "Popen", "call", "check_call", "check_output", "execv", "execvp",
                  "execvpe", "spawnv", "create_subprocess_exec"}


@dataclass(frozen=True)
class Dependency:
    """One place where a module reaches another: ``file:line``, the target and how."""

    file: str
    line: int
    source: str
    target: str
    kind: str


def module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve(name: str, root: Path = REPO) -> str | None:
    """The longest prefix of dotted ``name`` that is a module of the tree, or None."""
    parts = name.split(":")[0].split(".")
    while parts:
        base = root.joinpath(*parts)
        if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
            return ".".join(parts)
        parts.pop()
    return None


def entry_point_groups(root: Path = REPO) -> dict[str, list[str]]:
    """setup.cfg's entry-point groups -> the modules their entries name."""
    cfg = configparser.ConfigParser()
    cfg.read(root / "setup.cfg")
    groups: dict[str, list[str]] = {}
    for group, value in cfg["options.entry_points"].items():
        targets = [line.partition("=")[2].strip() for line in value.splitlines() if "=" in line]
        groups[group] = [t.split(":")[0] for t in targets]
    return groups


def commands(root: Path = REPO) -> dict[str, str]:
    """skelmtl's COMMANDS (name -> module), read from skelmtl/cli.py without importing it."""
    tree = ast.parse((root / "skelmtl" / "cli.py").read_text())
    for node in ast.walk(tree):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and node.target.id == "COMMANDS" and node.value is not None):
            table = ast.literal_eval(node.value)
            return {k: v[0] for k, v in table.items()}
    raise AssertionError("skelmtl/cli.py has no COMMANDS table")


def dependencies(path: Path, root: Path = REPO, groups: dict[str, list[str]] | None = None,
                 cmds: dict[str, str] | None = None) -> list[Dependency]:
    """Every place where the module at ``path`` reaches a module of the tree."""
    groups = entry_point_groups(root) if groups is None else groups
    cmds = commands(root) if cmds is None else cmds
    rel, source = path.relative_to(root).as_posix(), module_name(path, root)
    package = source if path.name == "__init__.py" else source.rpartition(".")[0]
    out: list[Dependency] = []

    def add(line: int, name: str, kind: str) -> None:
        target = resolve(name, root)
        if target is not None:
            out.append(Dependency(rel, line, source, target, kind))

    tree = ast.parse(path.read_text(), str(path))
    # Lists that reach a process call, directly or through a name: `skelmtl CMD` there is
    # a child process (elsewhere, e.g. a report's "command" field, it is only text).
    process_names: set[str] = set()
    process_lists: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and (
                getattr(node.func, "attr", None) in _PROCESS_CALLS
                or getattr(node.func, "id", None) in _PROCESS_CALLS):
            first = node.args[0]
            if isinstance(first, ast.Name):
                process_names.add(first.id)
            elif isinstance(first, (ast.List, ast.Tuple)):
                process_lists.add(id(first))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and isinstance(node.value, (ast.List, ast.Tuple))
                and any(isinstance(t, ast.Name) and t.id in process_names for t in node.targets)):
            process_lists.add(id(node.value))
    counted: set[int] = set()  # a `-m MODULE` word, counted as a process, not as a string

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                add(node.lineno, a.name, "import")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*up, *([base] if base else [])])
            for a in node.names:  # `from edge import x`: x may be a module
                add(node.lineno, f"{base}.{a.name}" if resolve(f"{base}.{a.name}", root)
                    == f"{base}.{a.name}" else base, "import")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            target = resolve(node.value, root) if _DOTTED.fullmatch(node.value) else None
            # A module below a room's top ("skelmtl.backends" is a group, not a module).
            if target and "." in target and id(node) not in counted and node.value not in groups:
                add(node.lineno, node.value, "string")
            for module in groups.get(node.value, ()):
                add(node.lineno, module, "entry point")
        elif isinstance(node, (ast.List, ast.Tuple)):
            words = [e.value if isinstance(e, ast.Constant) and isinstance(e.value, str)
                     else None for e in node.elts]
            for i, w in enumerate(words):
                nxt = words[i + 1] if i + 1 < len(words) else None
                if w == "-m" and nxt:  # python -m MODULE [COMMAND]
                    counted.add(id(node.elts[i + 1]))
                    add(node.lineno, nxt, "subprocess")
                    cmd = words[i + 2] if i + 2 < len(words) else None
                    if nxt.split(".")[0] == "skelmtl" and cmd in cmds:
                        add(node.lineno, cmds[cmd], "subprocess")
                elif (w == "skelmtl" and i == 0 and nxt in cmds
                      and id(node) in process_lists):  # the console script
                    add(node.lineno, "skelmtl.cli", "subprocess")
                    add(node.lineno, cmds[nxt], "subprocess")
    return out


def part(module: str) -> str:
    """The room of ``module``, or inside edge its sub-package (``edge.core``, ...)."""
    room, _, rest = module.partition(".")
    if room != "edge" or not rest:
        return room
    sub = f"edge.{rest.split('.')[0]}"
    return sub if sub in EDGE_PARTS else "edge"


def violations(deps: list[Dependency], seams: tuple[Seam, ...] = ALLOWED_SEAMS) -> list[str]:
    allowed = {(s.source, s.target, s.kind) for s in seams}
    bad = []
    for d in deps:
        src, tgt = part(d.source), part(d.target)
        room = src.split(".")[0]
        ok = tgt.split(".")[0] in MAY_DEPEND[room] and (room != "edge" or tgt in EDGE_PARTS.get(src, {src}))
        if not ok and (d.source, d.target, d.kind) not in allowed:
            may = sorted(EDGE_PARTS[src]) if room == "edge" and tgt.startswith("edge") else sorted(MAY_DEPEND[room])
            bad.append(f"{d.file}:{d.line}: {d.kind} -> {d.target} ({src} may depend on {', '.join(may)} only)")
    return bad


def _all_dependencies() -> list[Dependency]:
    groups, cmds = entry_point_groups(), commands()
    return [d for room in ROOMS for f in sorted((REPO / room).rglob("*.py"))
            for d in dependencies(f, REPO, groups, cmds)]


def test_every_dependency_keeps_the_rule_or_is_an_allowed_seam() -> None:
    bad = violations(_all_dependencies())
    assert not bad, "dependencies that break docs/architecture.md's rule:\n" + "\n".join(bad)


def test_every_allowed_seam_is_still_used() -> None:
    used = {(d.source, d.target, d.kind) for d in _all_dependencies()}
    stale = [s for s in ALLOWED_SEAMS if (s.source, s.target, s.kind) not in used]
    assert not stale, f"seams no code uses any more; remove them: {stale}"


def test_every_edge_module_is_in_a_known_part() -> None:
    loose = [module_name(f) for f in sorted((REPO / "edge").rglob("*.py"))
             if part(module_name(f)) == "edge" and module_name(f) != "edge"]
    assert not loose, f"modules outside edge's sub-packages: {loose}"


def test_every_edge_part_opens_with_what_lives_there_and_what_it_may_import() -> None:
    for sub in sorted(EDGE_PARTS):
        init = REPO / Path(*sub.split(".")) / "__init__.py"
        if sub in ("edge", "edge.assets") or not init.is_file():
            continue
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "May import:" in doc, f"{init.relative_to(REPO)}: no 'May import:' paragraph"


def test_no_file_names_a_module_by_its_place_before_the_restructure() -> None:
    """tools/restructure.py --check: no import, string, command line or docs path of the
    tree still names a module where it was before issue 16's move (the flat edge/)."""
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    p = subprocess.run([sys.executable, str(REPO / "tools" / "restructure.py"), "--check"],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"old module paths; run tools/restructure.py:\n{p.stdout}{p.stderr}"


def test_the_scan_sees_strings_subprocesses_and_entry_points(tmp_path: Path) -> None:
    for pkg in ("edge", "edge/core", "trainer", "calibration", "skelmtl"):
        (tmp_path / pkg).mkdir(parents=True, exist_ok=True)
        (tmp_path / pkg / "__init__.py").write_text("")
    for mod in ("edge/core/layout", "trainer/backend", "calibration/engine", "skelmtl/cli"):
        (tmp_path / f"{mod}.py").write_text("")
    src = tmp_path / "edge" / "core" / "bad.py"
    src.write_text(
        "import importlib, subprocess, sys\n"
        "from . import layout\n"
        "def f():\n"
        "    importlib.import_module('trainer.backend')\n"
        "    subprocess.run([sys.executable, '-m', 'skelmtl.cli', 'build-engine'])\n"
        "    subprocess.run(('skelmtl', 'build-engine', 'x.onnx'))\n"
        "    return entry_points(group='skelmtl.backends'), 'calibration.engine:build'\n"
        "REPORTED = ['skelmtl', 'build-engine']  # text, not a process\n")
    deps = dependencies(src, tmp_path, {"skelmtl.backends": ["trainer.backend"]},
                        {"build-engine": "calibration.engine"})
    assert sorted((d.line, d.target, d.kind) for d in deps) == [
        (2, "edge.core.layout", "import"),
        (4, "trainer.backend", "string"),
        (5, "calibration.engine", "subprocess"),
        (5, "skelmtl.cli", "subprocess"),
        (6, "calibration.engine", "subprocess"),
        (6, "skelmtl.cli", "subprocess"),
        (7, "calibration.engine", "string"),
        (7, "trainer.backend", "entry point"),
    ]
    bad = violations(deps, seams=())
    assert len(bad) == 7 and bad[0].startswith("edge/core/bad.py:4: string -> trainer.backend")


# ------------------------------------------------- third-party packages, at run time ---

# room -> packages it must never import
FORBIDDEN = {
    "edge": ("torch", "trainer", "calibration", "skelmtl"),
    "calibration": ("torch", "trainer", "skelmtl"),
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


def test_the_command_line_imports_no_room_before_its_command_runs() -> None:
    code = ("import json, sys, skelmtl.cli; "
            "print(json.dumps(sorted({k.split('.')[0] for k in sys.modules})))")
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    loaded = set(json.loads(p.stdout))
    assert not loaded & {"trainer", "calibration", "torch", *LAZY}, sorted(loaded)


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
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
