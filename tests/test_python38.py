"""edge/ and calibration/ stay importable on Python 3.8, JetPack 5's only Python with
TensorRT bindings (the JetPack 5 image runs them there; trainer/ needs torch, so 3.10+).

What this proves and what it does not: these checks are static, so they run on any Python;
``make test-py38`` runs the whole suite on a real 3.8 (docs/jetson.md says when it last did).
``vermin`` finds syntax, modules, functions and keyword arguments newer than 3.8 from the
AST; it cannot know the type of ``x`` in ``x.removesuffix(...)``, so the methods it misses
are listed here by name. Annotations are only safe because every module defers them
(``from __future__ import annotations``), which is checked too. The third-party versions
that exist for Python 3.8 on aarch64 (numpy 1.24, onnxruntime 1.16, onnx 1.16, mediapipe
0.10.9) are run by ``make test-oldest`` and ``make test-py38``.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROOMS = ("skelmtl", "edge", "calibration")
FILES = sorted(p for room in ROOMS for p in (ROOT / room).rglob("*.py"))

# Methods added after 3.8 whose receiver type vermin cannot infer.
NEWER_METHODS = {
    "removeprefix": "3.9", "removesuffix": "3.9",          # str, bytes
    "is_relative_to": "3.9", "with_stem": "3.9", "readlink": "3.9",
    "hardlink_to": "3.10",                                 # pathlib.Path
    "bit_count": "3.10",                                   # int
    "select": "3.10",                                      # importlib.metadata EntryPoints
}
ALLOWED = {("edge/backends/__init__.py", "select")}  # guarded by hasattr for 3.8/3.9


def _rel(p: Path) -> str:
    return p.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("path", FILES, ids=_rel)
def test_no_method_newer_than_38(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    bad = [f"line {n.lineno}: .{n.func.attr}() needs Python {NEWER_METHODS[n.func.attr]}"
           for n in ast.walk(tree)
           if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
           and n.func.attr in NEWER_METHODS and (_rel(path), n.func.attr) not in ALLOWED]
    assert not bad, f"{_rel(path)}: " + "; ".join(bad)


@pytest.mark.parametrize("path", FILES, ids=_rel)
def test_annotations_are_deferred(path: Path) -> None:
    """``list[int]`` or ``X | None`` in an annotation fails at import on 3.8 unless deferred."""
    tree = ast.parse(path.read_text(), str(path))
    annotated = any(isinstance(n, ast.AnnAssign) or (
        isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
        and (n.returns is not None or any(a.annotation is not None for a in ast.walk(n.args)
                                          if isinstance(a, ast.arg)))) for n in ast.walk(tree))
    future = any(isinstance(n, ast.ImportFrom) and n.module == "__future__"
                 and any(a.name == "annotations" for a in n.names) for n in tree.body)
    assert future or not annotated, f"{_rel(path)}: add 'from __future__ import annotations'"


# Generics that only subscript at run time from 3.9 (PEP 585); deferred annotations hide
# them, but not a module-level alias, a cast() or a default evaluated at import.
BUILTIN_GENERICS = {"list", "dict", "tuple", "set", "frozenset", "type"}


def _evaluated(tree: ast.Module) -> list[ast.AST]:
    """The expressions a module evaluates at import outside annotations: assignments'
    values and bare expressions in module and class bodies, and class bases."""
    out: list[ast.AST] = [b for n in ast.walk(tree) if isinstance(n, ast.ClassDef) for b in n.bases]
    bodies = [tree.body] + [n.body for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    for body in bodies:
        for st in body:
            if isinstance(st, (ast.Assign, ast.AnnAssign)) and st.value is not None:
                out.append(st.value)
            elif isinstance(st, ast.Expr):
                out.append(st.value)
    return out


@pytest.mark.parametrize("path", FILES, ids=_rel)
def test_no_runtime_generic_subscript_newer_than_38(path: Path) -> None:
    """``Alias = collections.abc.Callable[[str], None]`` or ``list[int]`` outside an
    annotation raises TypeError on import under 3.8: use ``typing``'s names there."""
    tree = ast.parse(path.read_text(), str(path))
    from_abc = {a.asname or a.name for n in ast.walk(tree)
                if isinstance(n, ast.ImportFrom) and n.module == "collections.abc"
                for a in n.names}
    bad = []
    for expr in _evaluated(tree):
        for n in ast.walk(expr):
            if not isinstance(n, ast.Subscript):
                continue
            v = n.value
            name = v.id if isinstance(v, ast.Name) else None
            abc_attr = (isinstance(v, ast.Attribute) and isinstance(v.value, ast.Attribute)
                        and v.value.attr == "abc")
            if name in BUILTIN_GENERICS or name in from_abc or abc_attr:
                bad.append(f"line {n.lineno}: {ast.unparse(n)[:60]}")
    assert not bad, f"{_rel(path)}: subscripted at import, needs Python 3.9: " + "; ".join(bad)


def test_vermin_finds_nothing_newer_than_38() -> None:
    vermin = pytest.importorskip("vermin")
    bad = []
    for path in FILES:
        need = vermin.visit(path.read_text(), vermin.Config(), str(path)).minimum_versions()[1]
        if need is not None and tuple(need) > (3, 8):
            bad.append(f"{_rel(path)} needs Python {'.'.join(map(str, need))} "
                       f"(vermin -t=3.8- --violations {_rel(path)} says why)")
    assert not bad, "\n".join(bad)


def test_python_requires_is_38() -> None:
    """The distribution installs on 3.8 (the ``train`` extra's torch 2.13 needs 3.10)."""
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["options"]["python_requires"].strip() == ">=3.8"
