#!/usr/bin/env python3
"""Issue 16's restructure of edge/ into sub-packages, as one re-runnable sweep.

Usage: python tools/restructure.py [--check]

Everything follows from :data:`MOVES`, one table of ``old module -> new module``:

1. each new sub-package gets its ``__init__.py``, a paragraph saying what lives there and
   what it may import (:data:`PACKAGES`); a package that exists already gets a "May
   import" paragraph at the end of its docstring (:data:`PARAGRAPHS`);
2. each module (or package) is moved with ``git mv`` (a plain rename when git does not
   track it yet); a source that is absent is skipped, so the table may name modules that
   other branches are still writing;
3. every reference in the project's text files is rewritten: dotted names (imports,
   ``mock.patch`` targets, ``"module:Class"`` strings, ``-m module`` command lines,
   setup.cfg entry points, logger names), ``from edge import x`` (split when its names
   move to different places), and paths (``edge/stream.py``) in docs, Dockerfile.jetson,
   the Makefile and shell scripts;
4. a few functions change module (:data:`DEF_MOVES`: the command of ``skelmtl extract``
   split from its library), taking their imports along;
5. ruff sorts the imports that the renames put out of order, and drops those left unused.

Running it again changes nothing (the new names match none of the old ones); ``--check``
exits 1 if it would change something. CHANGELOG.md, reports/ and runs/ are records of what
was, and are left as they are.
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# old dotted module -> new dotted module. A package (a folder) moves with everything in it.
MOVES: list[tuple[str, str]] = [
    # core: the data and its files, shared by every room
    ("edge.layout", "edge.core.layout"),
    ("edge.preprocess", "edge.core.preprocess"),
    ("edge.clipstore", "edge.core.clipstore"),
    ("edge.recording", "edge.core.recording"),
    ("edge.atomic", "edge.core.atomic"),
    ("edge.npyfile", "edge.core.npyfile"),
    ("edge.metadata", "edge.core.metadata"),
    ("edge.events", "edge.core.events"),
    ("edge.errors", "edge.core.errors"),
    # backends: model files run (edge.backends stays where it is, and gains qdq)
    ("edge.qdq", "edge.backends.qdq"),
    # frontend: pictures -> landmarks
    ("edge.sources", "edge.frontend.sources"),
    ("edge.landmarks", "edge.frontend.landmarks"),
    ("edge.model_files", "edge.frontend.model_files"),
    ("edge.frontend_policy", "edge.frontend.policy"),
    ("edge.frontend_onnx", "edge.frontend.onnx_landmarks"),
    ("edge.extract", "edge.frontend.extract"),
    # runtime: landmarks -> events
    ("edge.stream", "edge.runtime.stream"),
    ("edge.router", "edge.runtime.router"),
    ("edge.pipeline", "edge.runtime.pipeline"),
    ("edge.publish", "edge.runtime.publish"),
    ("edge.overlay", "edge.runtime.overlay"),
    # engine: TensorRT engine files without TensorRT
    ("edge.engine_header", "edge.engine.header"),
    ("edge.engine_cache", "edge.engine.cache"),
    # commands: arguments and printing over the library (extract's command is split off by
    # hand after this sweep: edge/commands/extract.py over edge.frontend.extract)
    ("edge.run", "edge.commands.run"),
    ("edge.demo", "edge.commands.demo"),
    ("edge.runner", "edge.commands.runner"),
    # the command line on top of every room
    ("edge.cli", "skelmtl.cli"),
]

# New packages: folder -> the opening paragraph of its __init__.py.
PACKAGES: dict[str, str] = {
    "edge/core": '''\
The data and its files: the mp75 skeleton (layout), THE preprocessing, the clip store,
landmark recordings, model metadata, events, atomic writes, the npy checks and
SkelmtlError. Everything else in skelmtl builds on these.

May import: numpy and the standard library only, and nothing else of edge, so that a
trainer, a calibration step or a reader of a clip store needs nothing more.
''',
    "edge/frontend": '''\
Pictures to landmarks: frame sources (video, camera, images, RTSP, replayed recordings),
the MediaPipe landmark front end and where its model files come from, the task-driven
policy that decides which stages run on a frame, the ONNX landmark front end, and the
extraction of many videos into a clip store (worker processes, resumable).

May import: edge.core, and edge.backends (the ONNX front end runs its models through
one); mediapipe, OpenCV and onnxruntime inside the functions that need them.
''',
    "edge/runtime": '''\
Landmarks to events: the streaming parts (rate converter, ring buffer, schedule,
smoothing, hysteresis), the task router, the Pipeline that ties the front end, a backend
and these together (the public API), and its outputs (publishers and the overlay video).

May import: edge.core, edge.engine, edge.backends, edge.frontend; pyzmq and OpenCV inside
the functions that need them.
''',
    "edge/engine": '''\
TensorRT engine files, with no TensorRT at import: the engine file format (a metadata
header in front of the serialized plan, read without TensorRT) and the Jetson container's
engine cache (one engine per GPU, L4T, TensorRT, precision and model). Building an engine
is calibration.engine (run here as ``skelmtl build-engine`` in a child process); running
one is edge.backends.tensorrt.

May import: edge.core.
''',
    "edge/commands": '''\
The commands of edge: ``skelmtl run``, ``demo`` and ``extract`` (each
``add_arguments(parser)`` and ``main(args)``: arguments and printing over library
functions), and runner, how one command runs as a process (logging, signals, exit
status) for skelmtl.cli and ``python -m``. ``skelmtl bench`` is edge.bench's.

May import: everything in edge.
''',
}

# Packages that exist already: a paragraph added at the end of their docstring.
PARAGRAPHS: dict[str, str] = {
    "edge/backends": '''\
May import: edge.core and edge.engine (an engine file's header); onnxruntime, onnx,
TensorRT, pycuda and cuda-python inside the functions that need them. The PyTorch
backend is the trainer's, found through the ``skelmtl.backends`` entry point, never
imported.
''',
    "edge/bench": '''\
May import: every part of edge except commands (core, frontend, engine, backends,
runtime, assets); onnxruntime, mediapipe, OpenCV, TensorRT and matplotlib inside the
functions that need them.
''',
}

# Top-level functions that change module, after the moves (new names): source module,
# names, destination module, and the destination's docstring if it has to be created
# ("{usage}" is the first line of the source's docstring). Their imports go with them; the
# source and every reference follow.
DEF_MOVES: list[tuple[str, tuple[str, ...], str, str]] = [
    # a library function of the front end, not of `skelmtl run`
    ("edge.commands.run", ("front_end_options",), "edge.frontend.landmarks", ""),
    # `skelmtl extract` thin over edge.frontend.extract
    ("edge.frontend.extract", ("add_arguments", "main"), "edge.commands.extract",
     "{usage}\n\n``skelmtl extract``: the arguments of :func:`edge.frontend.extract.run_extract`,\n"
     "which does the work (worker processes, the resumable work folder, the atomic store).\n"),
]

# Files whose text is rewritten: by suffix or by name; records are left alone.
TEXT_SUFFIXES = {".py", ".md", ".cfg", ".toml", ".sh", ".txt", ".yaml", ".yml", ".ini"}
TEXT_NAMES = {"Makefile", "Dockerfile.jetson", ".dockerignore", ".gitignore"}
SKIP_PREFIXES = ("runs/", "reports/", "CHANGELOG.md", "tools/restructure.py")


def _path(module: str) -> Path:
    return REPO / Path(*module.split("."))


def _source(module: str) -> Path | None:
    """The file or folder of ``module``, or None when it is absent."""
    base = _path(module)
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base
    return None


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, check=True, capture_output=True,
                          text=True).stdout


def _tracked(path: Path) -> bool:
    return bool(_git("ls-files", "--", str(path.relative_to(REPO))).strip())


def write_packages(changed: list[str], check: bool) -> None:
    for folder, text in PACKAGES.items():
        init = REPO / folder / "__init__.py"
        body = f'"""{text.rstrip()}\n"""\n'
        if init.is_file() and init.read_text() == body:
            continue
        changed.append(str(init.relative_to(REPO)))
        if not check:
            init.parent.mkdir(parents=True, exist_ok=True)
            init.write_text(body)


def add_paragraphs(changed: list[str], check: bool) -> None:
    """Append each PARAGRAPHS entry to its package's docstring, once."""
    for folder, text in PARAGRAPHS.items():
        init = REPO / folder / "__init__.py"
        if not init.is_file():
            continue
        src = init.read_text()
        tree = ast.parse(src)
        doc = tree.body[0] if tree.body else None
        if not (isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant)
                and isinstance(doc.value.value, str)):
            raise SystemExit(f"restructure: {init} has no docstring to add to")
        if text.splitlines()[0] in doc.value.value:
            continue
        changed.append(str(init.relative_to(REPO)))
        if check:
            continue
        lines = src.splitlines(keepends=True)
        end = (doc.end_lineno or 1) - 1
        if lines[end].strip() in ('"""', "'''"):  # closing quotes on their own line
            lines.insert(end, "\n" + text)
        else:
            quote = lines[end].rstrip()[-3:]
            body = lines[end].rstrip()[:-3]
            lines[end] = body + "\n\n" + text + quote + "\n"
        init.write_text("".join(lines))


def move_modules(changed: list[str], check: bool) -> None:
    for old, new in MOVES:
        src = _source(old)
        if src is None:
            continue
        dst = _path(new).with_suffix(".py") if src.suffix == ".py" else _path(new)
        if dst.exists():
            raise SystemExit(f"restructure: both {src} and {dst} exist; merge them by hand")
        changed.append(f"{src.relative_to(REPO)} -> {dst.relative_to(REPO)}")
        if check:
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if _tracked(src):
            _git("mv", str(src.relative_to(REPO)), str(dst.relative_to(REPO)))
        else:
            src.rename(dst)
        for cache in dst.parent.rglob("__pycache__") if dst.is_dir() else ():
            subprocess.run(["rm", "-rf", str(cache)], check=True)


def _dotted_pattern() -> tuple[re.Pattern[str], dict[str, str]]:
    table = dict(MOVES)
    names = sorted(table, key=len, reverse=True)
    # Not inside a longer dotted name or word on either side (edge.run != edge.runner).
    alt = "|".join(re.escape(n) for n in names)
    return re.compile(rf"(?<![\w.])({alt})(?![\w])"), table


def _is_package(old: str, new: str) -> bool:
    return any((_path(m) / "__init__.py").is_file() for m in (old, new))


def _path_pattern() -> tuple[re.Pattern[str], dict[str, str]]:
    table: dict[str, str] = {}
    alts: list[str] = []
    for old, new in sorted(MOVES, key=lambda m: len(m[0]), reverse=True):
        o, n = old.replace(".", "/"), new.replace(".", "/")
        table[o + ".py"] = n + ".py"
        alts.append(re.escape(o + ".py") + r"(?![\w])")
        if _is_package(old, new):  # the folder, with or without its slash
            table[o] = n
            alts.append(re.escape(o) + r"(?![\w.])")
    # Not the tail of a longer path (foo/edge/x.py), but ./edge/x.py and ../edge/x.py are.
    return re.compile(rf"(?<![\w-])(?<!\w/)({'|'.join(alts)})"), table


_FROM_EDGE = re.compile(r"^(?P<indent>[ \t]*)from edge import (?P<names>[^(\\\n#]+?)(?P<tail>[ \t]*(#.*)?)$",
                        re.M)


def _split_from_edge(m: re.Match[str], table: dict[str, str]) -> str:
    """``from edge import a, b as c`` -> one line per destination package."""
    groups: dict[str, list[str]] = {}
    for item in (s.strip() for s in m.group("names").split(",")):
        name = item.split(" as ")[0].strip()
        new = table.get(f"edge.{name}", f"edge.{name}")
        pkg, _, leaf = new.rpartition(".")
        groups.setdefault(pkg, []).append(leaf + item[len(name):])
    lines = [f"{m.group('indent')}from {pkg} import {', '.join(items)}"
             for pkg, items in groups.items()]
    lines[-1] += m.group("tail")
    return "\n".join(lines)


# One name imported inside a line (a `python -c` program in a string): `from edge import cli;`
_FROM_EDGE_INLINE = re.compile(r"(?<![\w.])from edge import (\w+)(?![\w.]|\s*,)")


def _inline_from_edge(m: re.Match[str], table: dict[str, str]) -> str:
    pkg, _, leaf = table.get(f"edge.{m.group(1)}", f"edge.{m.group(1)}").rpartition(".")
    return f"from {pkg} import {leaf}"


def rewrite(text: str) -> str:
    dotted, dtable = _dotted_pattern()
    paths, ptable = _path_pattern()
    text = _FROM_EDGE.sub(lambda m: _split_from_edge(m, dtable), text)
    text = _FROM_EDGE_INLINE.sub(lambda m: _inline_from_edge(m, dtable), text)
    text = dotted.sub(lambda m: dtable[m.group(1)], text)
    return paths.sub(lambda m: ptable[m.group(1)], text)


def text_files() -> list[Path]:
    listed = _git("ls-files", "--cached", "--others", "--exclude-standard").splitlines()
    out = []
    for rel in sorted(set(listed)):
        p = REPO / rel
        if rel.startswith(SKIP_PREFIXES) or not p.is_file():
            continue
        if p.suffix in TEXT_SUFFIXES or p.name in TEXT_NAMES:
            out.append(p)
    return out


def rewrite_files(changed: list[str], check: bool) -> list[Path]:
    touched = []
    for p in text_files():
        old = p.read_text()
        new = rewrite(old)
        if new != old:
            changed.append(str(p.relative_to(REPO)))
            touched.append(p)
            if not check:
                p.write_text(new)
    return touched


def sort_imports(files: list[Path]) -> None:
    py = [str(p.relative_to(REPO)) for p in files if p.suffix == ".py"]
    if py:
        ruff = Path(sys.executable).with_name("ruff")
        subprocess.run([str(ruff) if ruff.exists() else "ruff", "check", "--quiet",
                        "--select", "I,F401", "--fix", *sorted(set(py))], cwd=REPO,
                       check=False)


def _bindings(tree: ast.Module) -> dict[str, ast.stmt]:
    """Module-level name -> the statement that binds it (def, class, assignment, import)."""
    out: dict[str, ast.stmt] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out[node.name] = node
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for a in node.names:
                out[(a.asname or a.name).split(".")[0]] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for tgt in targets:
                if isinstance(tgt, ast.Name):
                    out[tgt.id] = node
    return out


def _import_line(node: ast.stmt, name: str) -> str:
    """The import statement that binds ``name`` alone, as ``node`` does."""
    if isinstance(node, ast.Import):
        a = next(a for a in node.names if (a.asname or a.name).split(".")[0] == name)
        return f"import {a.name}" + (f" as {a.asname}" if a.asname else "")
    assert isinstance(node, ast.ImportFrom)
    a = next(a for a in node.names if (a.asname or a.name) == name)
    return f"from {node.module} import {a.name}" + (f" as {a.asname}" if a.asname else "")


def _insert_imports(src: str, lines: list[str]) -> str:
    """``src`` with ``lines`` after its last top-level import (or its docstring)."""
    tree = ast.parse(src)
    after = 0
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)) or (
                node is tree.body[0] and isinstance(node, ast.Expr)):
            after = node.end_lineno or after
    text = src.splitlines(keepends=True)
    return "".join(text[:after]) + "".join(f"{line}\n" for line in lines) + "".join(text[after:])


def move_definitions(changed: list[str], check: bool) -> list[Path]:
    """Carry each DEF_MOVES function to its new module with the imports it needs."""
    touched: list[Path] = []
    for source, names, dest, doc in DEF_MOVES:
        spath, dpath = _path(source).with_suffix(".py"), _path(dest).with_suffix(".py")
        if not spath.is_file():
            continue
        src = spath.read_text()
        tree = ast.parse(src)
        defs = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                and n.name in names]
        if not defs:
            continue
        changed.append(f"{source}.{{{','.join(n.name for n in defs)}}} -> {dest}")
        if check:
            continue
        bound = _bindings(tree)
        lines = src.splitlines(keepends=True)
        spans = [((n.decorator_list[0].lineno if n.decorator_list else n.lineno) - 1,
                  n.end_lineno or n.lineno) for n in defs]
        moved = "\n\n".join("".join(lines[a:b]).rstrip() + "\n" for a, b in spans)
        used = {x.id for n in defs for x in ast.walk(n) if isinstance(x, ast.Name)}
        have = _bindings(ast.parse(dpath.read_text())) if dpath.is_file() else {}
        imports = []
        for name in sorted(used):
            node = bound.get(name)
            if node is None or name in names or name in have:
                continue
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                imports.append(_import_line(node, name))
            else:
                imports.append(f"from {source} import {name}")
        for a, b in sorted(spans, reverse=True):
            del lines[a:b]
        rest = "".join(lines)
        still = {x.id for x in ast.walk(ast.parse(rest)) if isinstance(x, ast.Name)}
        back = [f"from {dest} import {n.name}" for n in defs if n.name in still]
        spath.write_text(_insert_imports(rest, back) if back else rest)
        if dpath.is_file():
            target = dpath.read_text().rstrip() + "\n\n\n" + moved
        else:
            first = (ast.get_docstring(tree) or "").splitlines()[0]
            target = ('"""' + doc.format(usage=first) + '"""\n\n'
                      "from __future__ import annotations\n\n" + moved)
        dpath.write_text(_insert_imports(target, imports) if imports else target)
        # Every reference follows: `from SOURCE import NAME` and SOURCE.NAME.
        for p in text_files():
            old = p.read_text()
            new = old
            for n in defs:
                new = re.sub(rf"^([ \t]*)from {re.escape(source)} import {n.name}$",
                             rf"\1from {dest} import {n.name}", new, flags=re.M)
                new = re.sub(rf"(?<![\w.]){re.escape(source)}\.{n.name}(?!\w)", f"{dest}.{n.name}", new)
            if new != old:
                p.write_text(new)
                touched.append(p)
        touched += [spath, dpath]
    # COMMANDS names the module that now has main.
    cli = REPO / "skelmtl" / "cli.py"
    if cli.is_file() and not check:
        for source, names, dest, _ in DEF_MOVES:
            if "main" in names and _source(dest) is not None:
                text = cli.read_text()
                new = text.replace(f'("{source}", ', f'("{dest}", ')
                if new != text:
                    cli.write_text(new)
                    touched.append(cli)
    return touched


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tools/restructure.py", description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if it would")
    args = p.parse_args(argv)
    changed: list[str] = []
    write_packages(changed, args.check)
    move_modules(changed, args.check)
    add_paragraphs(changed, args.check)
    touched = rewrite_files(changed, args.check)
    touched += move_definitions(changed, args.check)
    if not args.check:
        sort_imports(touched + [REPO / f / "__init__.py" for f in PACKAGES])
    for c in changed:
        print(("would change " if args.check else "") + c)
    return 1 if (args.check and changed) else 0


if __name__ == "__main__":
    sys.exit(main())
