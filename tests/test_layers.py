"""Imports run down the layers and close no cycle. Modules are parsed, not imported: every
import at any depth (functions, ``TYPE_CHECKING``), in doctests, and ``import_module("x.")``.
Local imports count too, so none can hide a cycle (docs/architecture.md)."""

from __future__ import annotations

import ast
import doctest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# unit (dotted prefix; the longest that matches wins) -> rank: import own unit or lower only
LAYERS = {
    "freshet.errors": -1,  # the root exception: every package's errors derive from it
    "ps": 0,               # the library: tables, slots, optimizers, filters, their configs
    "udfs.models": 0,      # the dense models by kind: config checks kinds, serving runs them
    "freshet": 1,          # the ground: errors, config, topics, kafka, broker, jvm, flink
    "freshet.data": 2,     # datasets (MovieLens) and their model presets
    "freshet.produce": 3,  # event sources
    "udfs": 3,             # the trainer: what runs in the Flink workers
    "server": 3,           # the ranking server's feeds: loader, window, gate, impressions
    "jobs": 4,             # one entry point per process: join, train, replay, serve
    "experiments": 5,      # in-process experiments and tuning on the real trainer
    "freshet.app": 6,      # the roof: the CLI, submit, the demo
    "benchmarks": 6,
}


def unit(module: str, layers: dict[str, int]) -> str:
    parts = module.split(".")
    return next(".".join(parts[:i]) for i in range(len(parts), 0, -1)
                if ".".join(parts[:i]) in layers)


def modules(root: Path, layers: dict[str, int]) -> dict[str, Path]:
    found = {}
    for top in sorted({u.split(".")[0] for u in layers}):
        for path in sorted((root / top).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(tree: ast.AST, how: str = "top"):  # (module, names, line, how)
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.Import):
            yield from ((a.name, [], node.lineno, how) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module, [a.name for a in node.names], node.lineno, how
        elif isinstance(node, ast.Call) and node.args and getattr(
                node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "__import__"):
            arg = node.args[0]
            arg = arg.values[0] if isinstance(arg, ast.JoinedStr) and arg.values else arg
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                yield arg.value.rstrip("."), [], node.lineno, "dynamic"
        inner = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        yield from _imports(node, "local" if inner or how == "local" else how)


def edges(root: Path = ROOT, layers: dict[str, int] = LAYERS) -> list[tuple[str, str, str, str]]:
    """(importer, imported, path:line, how) for every import of a project module."""
    mods, out = modules(root, layers), []
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        found = list(_imports(tree))
        for node in ast.walk(tree):
            doc = isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and \
                ast.get_docstring(node, clean=False)
            for ex in doctest.DocTestParser().get_examples(doc or ""):
                line = node.body[0].lineno + ex.lineno
                found += [(m, n, line, "doctest") for m, n, _, _ in _imports(ast.parse(ex.source))]
        for name, names, line, how in found:
            targets = [f"{name}.{n}" for n in names if f"{name}.{n}" in mods]
            while not targets and name:
                targets, name = ([name] if name in mods else []), name.rpartition(".")[0]
            rel = f"{path.relative_to(root).as_posix()}:{line}"
            out += [(mod, t, rel, how) for t in targets if t != mod]
    return out


def upward(es: list, layers: dict[str, int] = LAYERS) -> list:
    return [e for e in es if unit(e[0], layers) != unit(e[1], layers)
            and layers[unit(e[1], layers)] >= layers[unit(e[0], layers)]]


def cycles(es: list) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for a, b, *_ in es:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index, low, stack, found = {}, {}, [], []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = stack[stack.index(v):]
            del stack[stack.index(v):]
            found.extend([sorted(comp)] if len(comp) > 1 else [])

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_package_has_a_layer() -> None:
    tops = {u.split(".")[0] for u in LAYERS} | {"tests"}
    stray = [p.name for p in ROOT.iterdir() if (p / "__init__.py").exists() and p.name not in tops]
    assert not stray, f"top-level packages with no row in LAYERS: {stray}"


def test_imports_run_down_the_layers() -> None:
    bad = upward(edges())
    assert not bad, "up or sideways (LAYERS):\n" + "\n".join(f"  {w}: {a} -> {b} ({h})"
                                                             for a, b, w, h in bad)


def test_no_import_cycles() -> None:
    assert not cycles(edges()), "import cycles (function-local imports included)"


def test_the_check_catches_planted_violations(tmp_path: Path) -> None:
    files = {"low/__init__.py": "", "high/__init__.py": "",
             "low/b.py": '"""\n>>> from high.c import f\n"""\ndef g():\n    from high import a\n',
             "high/a.py": "from low import b\nfrom high import c\n",
             "high/c.py": "def f():\n    from high import a\n"}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    es = edges(tmp_path, {"low": 0, "high": 1})
    assert {(w, h) for _, _, w, h in upward(es, {"low": 0, "high": 1})} == {
        ("low/b.py:2", "doctest"), ("low/b.py:5", "local")}
    assert cycles(es) == [["high.a", "high.c", "low.b"]]
