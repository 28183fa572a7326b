"""Every exception Freshet defines derives from the one root, ``FreshetError``.

Parsed, not imported (the same walk as the layer test): a class is an exception when a
base is a built-in exception or another project exception; each must reach
``FreshetError`` through project classes.
"""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

from tests.test_layers import LAYERS, ROOT, modules

BUILTIN = {n for n, v in vars(builtins).items() if isinstance(v, type)
           and issubclass(v, BaseException)}


def exception_classes(root: Path = ROOT) -> dict[str, tuple[list[str], str]]:
    """Class name -> (base names, file:line) for every exception class in the tree."""
    classes = {}
    for path in modules(root, LAYERS).values():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                bases = [b.id if isinstance(b, ast.Name) else getattr(b, "attr", "")
                         for b in node.bases]
                where = f"{path.relative_to(root).as_posix()}:{node.lineno}"
                classes[node.name] = (bases, where)
    exceptions: dict[str, tuple[list[str], str]] = {}
    grew = True
    while grew:  # a class is an exception when a base is one
        grew = False
        for name, (bases, where) in classes.items():
            if name not in exceptions and any(b in BUILTIN or b in exceptions for b in bases):
                exceptions[name] = (bases, where)
                grew = True
    return exceptions


def outside_the_root(exceptions: dict[str, tuple[list[str], str]]) -> list[str]:
    def rooted(name: str, seen: frozenset[str] = frozenset()) -> bool:
        if name == "FreshetError":
            return True
        bases = exceptions.get(name, ([], ""))[0]
        return any(b not in seen and rooted(b, seen | {name}) for b in bases)

    return sorted(f"{w}: {n}" for n, (_, w) in exceptions.items() if not rooted(n))


def test_every_exception_derives_from_freshet_error() -> None:
    bad = outside_the_root(exception_classes())
    assert not bad, "exceptions not under freshet.errors.FreshetError:\n  " + "\n  ".join(bad)


def test_the_check_finds_a_stray_exception(tmp_path: Path) -> None:
    (tmp_path / "ps").mkdir()
    (tmp_path / "ps" / "__init__.py").write_text("")
    (tmp_path / "ps" / "a.py").write_text(
        "class FreshetError(Exception): ...\nclass Good(FreshetError, ValueError): ...\n"
        "class Child(Good): ...\nclass Stray(RuntimeError): ...\nclass Plain: ...\n")
    assert outside_the_root(exception_classes(tmp_path)) == ["ps/a.py:4: Stray"]
