"""The package's layout: wings by concept, no import circles, no module over 600 lines.

The import graph is read from the source with ``ast``, so that it sees every
arrow Python may follow: imports inside functions count, ``if TYPE_CHECKING:``
blocks do not (they never run), relative imports are resolved, and importing
``a.b`` is an arrow to ``a.b`` and to the package ``a`` whose ``__init__`` runs
first. A module's own enclosing packages are the exception: Python starts
running them before the module itself, so reaching a sibling through the
package re-runs nothing. Asking a package for a name (``from .. import X``)
still needs its ``__init__`` and is an arrow.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

import aliyun_sms_connector

ROOT = Path(aliyun_sms_connector.__file__).parent
NAME = "aliyun_sms_connector"
MAX_LINES = 600
MAX_TOP_LEVEL = 16

# What each wing must never import: the rules its __init__ docstring states.
# A prefix forbids the module and everything under it.
FORBIDDEN = {
    f"{NAME}._protocol": (
        f"{NAME}._http.transport",
        f"{NAME}._http.sync_driver",
        f"{NAME}._http.async_driver",
        f"{NAME}._connector",
        f"{NAME}._cli",
        f"{NAME}.emulator",
        f"{NAME}.verify",
    ),
    f"{NAME}._http": (
        f"{NAME}._protocol",
        f"{NAME}._connector",
        f"{NAME}._config",
        f"{NAME}._cli",
        f"{NAME}.emulator",
        f"{NAME}.verify",
    ),
    f"{NAME}.emulator": (
        f"{NAME}._protocol",
        f"{NAME}._connector",
        f"{NAME}._mas",
        f"{NAME}._cli",
        f"{NAME}.verify",
    ),
    f"{NAME}._cli": (f"{NAME}._protocol", f"{NAME}._http"),
    f"{NAME}._mas": (
        f"{NAME}._cli",
        f"{NAME}.emulator",
        f"{NAME}.verify",
    ),
    # The connector's public API only: no private module of the package.
    f"{NAME}.verify": (
        f"{NAME}._protocol",
        f"{NAME}._http",
        f"{NAME}._connector",
        f"{NAME}._cli",
        f"{NAME}.emulator",
        f"{NAME}._config",
        f"{NAME}._delivery",
        f"{NAME}._errors",
        f"{NAME}._phone",
        f"{NAME}._redact",
        f"{NAME}._templates",
        f"{NAME}._mas",
    ),
}


# -- reading the graph -------------------------------------------------------------


def module_name(path: Path, root: Path, name: str) -> str:
    """``root/_http/transport.py`` -> ``name._http.transport``; a package is its __init__."""
    parts = path.relative_to(root).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((name, *parts))


def is_type_checking(test: ast.expr) -> bool:
    """``if TYPE_CHECKING:`` or ``if typing.TYPE_CHECKING:``."""
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement that can run, at any depth, outside TYPE_CHECKING blocks."""
    found: list[ast.Import | ast.ImportFrom] = []

    def walk(node: ast.AST) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
            return
        if isinstance(node, ast.If) and is_type_checking(node.test):
            for child in node.orelse:
                walk(child)
            return
        for child in ast.iter_child_nodes(node):
            walk(child)

    walk(tree)
    return found


def lazy_names(tree: ast.Module) -> list[str]:
    """The modules a PEP 562 ``__getattr__`` loads, from the ``_WHERE`` table next to it.

    ``import_module`` takes a computed name, which no reading of imports can
    follow; the package's __init__ names its modules in ``_WHERE``.
    """
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "_WHERE" for t in node.targets)
            and isinstance(node.value, ast.Dict)
        ):
            return sorted({v.value for v in node.value.values if isinstance(v, ast.Constant)})
    return []


def enclosing_packages(importer: str, *, is_package: bool) -> set[str]:
    """The packages that enclose ``importer`` (itself, if a package): running before it runs."""
    parts = importer.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + (1 if is_package else 0))}


def base_of(node: ast.ImportFrom, here: str) -> str:
    """The module a ``from ... import`` names, with its dots resolved against ``here``."""
    if not node.level:
        return node.module or ""
    parts = here.split(".")
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join([*parts, *([node.module] if node.module else [])])


def reached(module: str, enclosing: set[str], *, asked_for_a_name: bool) -> set[str]:
    """The module, and every package on the way to it that is not running already."""
    pieces = module.split(".")
    found = {".".join(pieces[:i]) for i in range(1, len(pieces))} - enclosing
    if module not in enclosing or asked_for_a_name:
        found.add(module)
    return found


def arrows(
    source: str, importer: str, modules: set[str], *, is_package: bool
) -> set[tuple[str, str]]:
    """The arrows ``importer -> module`` among ``modules`` that ``source`` can follow."""
    tree = ast.parse(source)
    enclosing = enclosing_packages(importer, is_package=is_package)
    here = importer if is_package else importer.rpartition(".")[0]
    targets: set[str] = set()
    for node in import_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                targets |= reached(alias.name, enclosing, asked_for_a_name=False)
            continue
        base = base_of(node, here)
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            if submodule in modules:
                targets |= reached(submodule, enclosing, asked_for_a_name=False)
            else:
                targets |= reached(base, enclosing, asked_for_a_name=True)
    if is_package:
        for lazy in lazy_names(tree):
            targets |= reached(f"{importer}.{lazy}", enclosing, asked_for_a_name=False)
    return {(importer, target) for target in targets if target in modules and target != importer}


def package_graph(root: Path = ROOT, name: str = NAME) -> dict[str, set[str]]:
    """Every module of the package under ``root``, with the modules it imports."""
    paths = {module_name(path, root, name): path for path in sorted(root.rglob("*.py"))}
    modules = set(paths)
    graph: dict[str, set[str]] = {module: set() for module in modules}
    for module, path in paths.items():
        source = path.read_text(encoding="utf-8")
        for _, target in arrows(source, module, modules, is_package=path.name == "__init__.py"):
            graph[module].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = stack[stack.index(node) :]
            del stack[stack.index(node) :]
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


# -- the graph reader reads what it should --------------------------------------------


def graph_of(tmp_path: Path, files: dict[str, str]) -> dict[str, set[str]]:
    for relative, source in files.items():
        path = tmp_path / "pkg" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    return package_graph(tmp_path / "pkg", "pkg")


class TestGraphReader:
    def test_an_import_inside_a_function_is_an_arrow(self, tmp_path):
        """A lazy import still closes a circle."""
        graph = graph_of(
            tmp_path,
            {
                "__init__.py": "",
                "a.py": "from .b import x\n",
                "b.py": "def f():\n    from .a import y\n",
            },
        )
        assert cycles(graph) == [["pkg.a", "pkg.b"]]

    def test_type_checking_imports_are_not_arrows(self, tmp_path):
        """What only type checkers read never runs; an else branch does."""
        graph = graph_of(
            tmp_path,
            {
                "__init__.py": "",
                "a.py": "from .b import x\n",
                "b.py": (
                    "import typing\nif typing.TYPE_CHECKING:\n    from .a import y\n"
                    "else:\n    from . import c\n"
                ),
                "c.py": "",
            },
        )
        assert graph["pkg.b"] == {"pkg.c"}
        assert cycles(graph) == []

    def test_relative_and_absolute_imports_resolve(self, tmp_path):
        """``..x``, ``from . import sub`` and ``import pkg.sub.mod`` all name their module."""
        graph = graph_of(
            tmp_path,
            {
                "__init__.py": "",
                "top.py": "import pkg.sub.mod\n",
                "sub/__init__.py": "",
                "sub/mod.py": "from ..top import t\nfrom . import other\n",
                "sub/other.py": "",
            },
        )
        assert graph["pkg.top"] == {"pkg.sub", "pkg.sub.mod"}
        assert graph["pkg.sub.mod"] == {"pkg.top", "pkg.sub.other"}

    def test_a_re_exporting_package_and_its_modules(self, tmp_path):
        """Reaching a sibling through the package is no arrow; asking the package for a name is."""
        files = {
            "__init__.py": "",
            "wing/__init__.py": "from ._a import A\n",
            "wing/_a.py": "from ._b import B\n",
            "wing/_b.py": "B = 1\n",
        }
        assert cycles(graph_of(tmp_path, files)) == []
        files["wing/_b.py"] = "from . import A\n"
        assert cycles(graph_of(tmp_path / "2", files)) == [
            ["pkg.wing", "pkg.wing._a", "pkg.wing._b"]
        ]

    def test_importing_a_submodule_runs_its_package(self, tmp_path):
        """From outside, ``pkg.wing._b`` is reached through the wing's __init__."""
        graph = graph_of(
            tmp_path,
            {
                "__init__.py": "",
                "base.py": "def f():\n    from .wing._b import B\n",
                "wing/__init__.py": "from ._a import A\n",
                "wing/_a.py": "from ..base import f\n",
                "wing/_b.py": "",
            },
        )
        assert cycles(graph) == [["pkg.base", "pkg.wing", "pkg.wing._a"]]

    def test_the_lazy_table_of_a_package_is_followed(self, tmp_path):
        """PEP 562: the modules named in ``_WHERE`` are arrows from the package."""
        graph = graph_of(
            tmp_path,
            {"__init__.py": "_WHERE = {'X': '_x'}\n", "_x.py": "from . import Y\n"},
        )
        assert graph["pkg"] == {"pkg._x"}
        assert cycles(graph) == [["pkg", "pkg._x"]]


# -- the rules ---------------------------------------------------------------------


def test_no_import_cycle():
    """No module reaches itself through imports, lazy ones included."""
    assert cycles(package_graph()) == []


@pytest.mark.parametrize("wing", sorted(FORBIDDEN))
def test_each_wing_keeps_to_its_imports(wing):
    """A wing never imports what its docstring says it must not."""
    graph = package_graph()
    broken = sorted(
        (module, target)
        for module, targets in graph.items()
        if module == wing or module.startswith(f"{wing}.")
        for target in targets
        for forbidden in FORBIDDEN[wing]
        if target == forbidden or target.startswith(f"{forbidden}.")
    )
    assert broken == []


def test_no_module_is_over_600_lines():
    """A module a reader can hold in mind: 600 lines at most."""
    lengths = {
        str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
        for path in ROOT.rglob("*.py")
    }
    assert {path: n for path, n in lengths.items() if n > MAX_LINES} == {}


def test_the_top_level_is_small_and_has_no_prefixed_families():
    """At most 16 modules and wings at the top; families live in wings, not name prefixes."""
    entries = sorted(
        path.stem if path.is_file() else path.name
        for path in ROOT.iterdir()
        if (path.suffix == ".py") or (path / "__init__.py").exists()
    )
    assert len(entries) <= MAX_TOP_LEVEL, entries
    assert [e for e in entries if e.startswith(("_emulator_", "_cli_"))] == []


WINGS = sorted(
    module_name(path, ROOT, NAME) for path in ROOT.rglob("__init__.py") if path.parent != ROOT
)


@pytest.mark.parametrize("wing", WINGS)
def test_each_wing_says_what_it_does(wing):
    """Every subpackage's __init__ opens with a docstring."""
    path = ROOT.joinpath(*wing.split(".")[1:], "__init__.py")
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    assert docstring
    if wing in FORBIDDEN:
        assert "never" in docstring
