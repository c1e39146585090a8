# ruff: noqa: INP001 - loaded by name with -p, not a package
"""A pytest plugin for mutmut's stats run: calls made at import count for each test.

mutmut runs a mutant only against the tests that called the mutated function. A
call made at import, such as a class-level ``redactor = Redactor(...)`` or a
module-level ``KEY = Key(...)``, happens before any test starts, so mutmut would
credit it to whichever test ran first, and the tests that use the object would
never see the mutant. Each worker imports the test modules afresh (see
preload.txt), so such objects are built by the mutant: every selected test of
the module can observe it, and is run against it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mutmut.state import state

if TYPE_CHECKING:
    import pytest


def pytest_collection_finish(session: pytest.Session) -> None:
    """Credit the calls made during collection to every collected test."""
    calls = state()._stats  # noqa: SLF001 - mutmut keeps the calls of the current test here
    if not calls:
        return
    tests = {item.nodeid.removeprefix("mutants/") for item in session.items}
    for function in calls:
        state().tests_by_mangled_function_name[function] |= tests
    calls.clear()
