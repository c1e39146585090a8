# ruff: noqa: INP001, T201 - a script, not a package; a command line prints
"""Pin every direct runtime dependency to the lower bound that pyproject.toml promises.

Usage (Python 3.11 or later, from the repository root; ``tox -e lowest`` runs both)::

    python tools/lowest_constraints.py --output FILE   # write pip constraints
    python tools/lowest_constraints.py --check         # the installed versions are those

The runtime dependencies are ``[project] dependencies`` plus every extra
except ``tests`` and ``docs`` (``redis``: RedisStore's driver). Each must carry a lower
bound (``>=`` or ``==``): a dependency without one promises every release
ever made, which nothing tests, so the script refuses it. The constraints
pin each to its bound exactly (``name==bound``); pip then resolves the test
tools and the transitive dependencies as usual, and fails if a pinned bound
cannot be installed with the rest.

``--check`` then compares the installed versions with the bounds, so that
an environment in which pip quietly ignored the constraints cannot pass for
the lowest one.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
# Extras that are tools for this repository, not features a user installs.
NOT_RUNTIME = {"docs", "tests"}


def lower_bounds(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, Version]:
    """Each direct runtime dependency's lowest allowed version, by canonical name."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    specs = list(project.get("dependencies", []))
    for extra, requirements in project.get("optional-dependencies", {}).items():
        if extra not in NOT_RUNTIME:
            specs.extend(requirements)
    bounds: dict[str, Version] = {}
    for spec in specs:
        requirement = Requirement(spec)
        lows = [
            Version(s.version) for s in requirement.specifier if s.operator in {">=", "==", "~="}
        ]
        if not lows:
            sys.exit(f"{spec!r} has no lower bound: give it one that the tests can hold")
        name = canonicalize_name(requirement.name)
        bounds[name] = max([*lows, bounds.get(name, lows[0])])
    return bounds


def main() -> None:
    """Write the constraints, or check the installed versions against them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--output", type=Path, help="write the constraints to this file")
    action.add_argument("--check", action="store_true", help="compare the installed versions")
    args = parser.parse_args()
    bounds = lower_bounds()
    if args.output is not None:
        args.output.write_text("".join(f"{name}=={low}\n" for name, low in bounds.items()))
        print(f"{args.output}: " + ", ".join(f"{name}=={low}" for name, low in bounds.items()))
        return
    wrong = []
    for name, low in bounds.items():
        try:
            installed = Version(version(name))
        except PackageNotFoundError:
            wrong.append(f"{name}: not installed, {low} expected")
            continue
        if installed != low:
            wrong.append(f"{name}: {installed} installed, {low} expected")
    if wrong:
        sys.exit("not the lowest versions:\n  " + "\n  ".join(wrong))
    print("lowest versions installed: " + ", ".join(f"{n} {version(n)}" for n in bounds))


if __name__ == "__main__":
    main()
