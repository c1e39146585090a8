# ruff: noqa: INP001 - scripts, not a package
"""The hand pass over constants, which mutmut leaves alone (it mutates function bodies only).

Every literal in a module-level assignment (tables, regexes, limits, messages) and
every plain literal class attribute (``default_code = "InvalidConfig"``) becomes one
mutant: a string is wrapped in ``XX``, a number grows by one, a bool flips. Each
mutant is written into a scratch copy of the package and the module's own tests run
against it, in a process forked after the mutant is written, so that everything the
module builds at import is built from the mutant.

Type aliases, ``__all__``, ``TypeVar`` calls, f-strings and comprehensions are left
out: they are types, the public surface, or derived from literals already mutated.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


@dataclass(frozen=True)
class ConstantMutant:
    """One mutated literal: ``name`` is stable while the constant keeps its literals."""

    name: str
    line: int
    original: str
    mutated: str
    start: tuple[int, int]
    end: tuple[int, int]


_COMPREHENSIONS = (ast.DictComp, ast.ListComp, ast.SetComp, ast.GeneratorExp)


def _skip(value: ast.expr) -> bool:
    if isinstance(value, ast.Subscript):  # Literal[...], Annotated[...], tuple[...]: types
        return True
    return isinstance(value, ast.Call) and getattr(value.func, "id", None) == "TypeVar"


def _leaves(value: ast.expr) -> list[ast.Constant]:
    """The literals of ``value``, outside f-strings, type subscripts and comprehensions."""
    found: list[ast.Constant] = []

    def walk(node: ast.AST) -> None:
        if isinstance(node, (ast.JoinedStr, ast.Subscript, *_COMPREHENSIONS)):
            return
        if isinstance(node, ast.Constant):
            if isinstance(node.value, (str, bool, int, float)):
                found.append(node)
            return
        for child in ast.iter_child_nodes(node):
            walk(child)

    walk(value)
    return found


def _mutate(value: object) -> str | None:
    if isinstance(value, bool):
        return repr(not value)
    if isinstance(value, (int, float)):
        return repr(value + 1)
    if isinstance(value, str):
        return repr(f"XX{value}XX")
    return None


def _targets(tree: ast.Module) -> list[tuple[str, ast.expr]]:
    """(name, value) of each module-level assignment and literal class attribute."""
    found: list[tuple[str, ast.expr]] = []
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)]
            if not names or "__all__" in names or _skip(node.value):
                continue
            found.append((names[0], node.value))
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if (
                    isinstance(item, (ast.Assign, ast.AnnAssign))
                    and isinstance(item.value, ast.Constant)
                    and isinstance(item.value.value, (str, bool, int, float))
                ):
                    target = item.targets[0] if isinstance(item, ast.Assign) else item.target
                    if isinstance(target, ast.Name):
                        found.append((f"{node.name}.{target.id}", item.value))
    return found


def mutants(source: str) -> list[ConstantMutant]:
    """Every constant mutant of a module's source."""
    tree = ast.parse(source)
    result: list[ConstantMutant] = []
    for name, value in _targets(tree):
        for index, leaf in enumerate(_leaves(value)):
            mutated = _mutate(leaf.value)
            if mutated is None or leaf.end_lineno is None or leaf.end_col_offset is None:
                continue
            result.append(
                ConstantMutant(
                    name=f"{name}#{index}",
                    line=leaf.lineno,
                    original=repr(leaf.value),
                    mutated=mutated,
                    start=(leaf.lineno, leaf.col_offset),
                    end=(leaf.end_lineno, leaf.end_col_offset),
                )
            )
    return result


def apply(source: str, mutant: ConstantMutant) -> str:
    """The source with ``mutant``'s literal replaced (offsets are UTF-8 byte columns)."""
    lines = source.encode().splitlines(keepends=True)
    (start_line, start_col), (end_line, end_col) = mutant.start, mutant.end
    before = b"".join(lines[: start_line - 1]) + lines[start_line - 1][:start_col]
    after = lines[end_line - 1][end_col:] + b"".join(lines[end_line:])
    return (before + mutant.mutated.encode() + after).decode()


def preload(path: Path) -> None:
    """Import the third-party modules listed in ``path`` once, before any fork."""
    for line in path.read_text(encoding="utf-8").splitlines():
        name = line.strip()
        if name and not name.startswith("#"):
            with contextlib.suppress(ImportError):
                importlib.import_module(name)


def run_tests(workdir: Path, tests: tuple[str, ...] | list[str], timeout: float) -> int:
    """Run ``tests`` in a forked child that imports the package from ``workdir/src``.

    Returns pytest's exit status, or -1 when the child ran past ``timeout``.
    """
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 3
        try:
            os.chdir(workdir)
            sys.path.insert(0, str(workdir / "src"))
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            import pytest  # noqa: PLC0415

            code = int(
                pytest.main(
                    [
                        "-x",
                        "-q",
                        "-p",
                        "no:cacheprovider",
                        "--hypothesis-seed=0",
                        "--assert=plain",
                        "-W",
                        "ignore::pytest.PytestAssertRewriteWarning",
                        "--rootdir=.",
                        *tests,
                    ]
                )
            )
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return -1
