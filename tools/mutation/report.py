# ruff: noqa: INP001, T201 - scripts, not a package; a command line prints
"""The mutation score per module, from the results run.py left in .mutation/<module>/.

Usage: python tools/mutation/report.py [MODULE ...] [--fail-under PCT]

Score = killed / (all mutants - equivalents), where killed counts mutmut's
"killed" and "timeout", a mutant that crashed its test run (it broke
the import of a test module) and the constants pass's failing runs. A mutant with no
test of its module that reaches it counts as a survivor. An equivalent is
excluded only while equivalents.md names it with the same change (the line
mutmut's diff adds, or the constant's "old -> new"): a stale entry is reported,
not applied.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from modules import BY_NAME, MODULES, TARGET

HERE = Path(__file__).resolve().parent
SCRATCH = HERE.parent.parent / ".mutation"
KILLED = {"killed", "timeout", "crashed", "caught by type check"}


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().strip("`")).strip()


def equivalents() -> dict[str, tuple[str, str]]:
    """Mutant name -> (its change, the reason), from equivalents.md's table rows."""
    found = {}
    for line in (HERE / "equivalents.md").read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[1].startswith("`"):  # noqa: PLR2004 - module|mutant|change|why
            found[_normal(cells[1])] = (_normal(cells[2]), cells[3])
    return found


def change(diff: str) -> str:
    """The line a mutant's diff adds (mutmut), or the constant's 'old -> new'."""
    if diff.startswith("line "):
        return _normal(diff.split(": ", 1)[1])
    added = [
        line[1:]
        for line in diff.splitlines()
        if line.startswith("+") and not line.startswith("+++")
    ]
    return _normal(" ".join(added))


def score(name: str, known: dict[str, tuple[str, str]]) -> dict[str, object] | None:
    """The counts and survivors of one module, or None when it has not been run."""
    path = SCRATCH / name / "result.json"
    if not path.exists():
        return None
    result = json.loads(path.read_text(encoding="utf-8"))
    verdicts: dict[str, str] = result["verdicts"]
    diffs: dict[str, str] = result["diffs"]
    killed = sum(verdict in KILLED for verdict in verdicts.values())
    excluded, survivors, stale = [], [], []
    for mutant, verdict in sorted(verdicts.items()):
        if verdict in KILLED:
            continue
        entry = known.get(mutant)
        if entry is not None and entry[0] == change(diffs.get(mutant, "")):
            excluded.append(mutant)
            continue
        if entry is not None:
            stale.append(mutant)
        survivors.append((mutant, verdict, diffs.get(mutant, "")))
    counted = len(verdicts) - len(excluded)
    return {
        "total": len(verdicts),
        "killed": killed,
        "equivalent": len(excluded),
        "score": 100.0 * killed / counted if counted else 100.0,
        "survivors": survivors,
        "stale": stale,
        "seconds": result.get("seconds"),
    }


def main(names: list[str], fail_under: float) -> int:
    """Print the table and every survivor; 1 when a module scores below ``fail_under``."""
    known = equivalents()
    rows = [(name, score(name, known)) for name in names]
    status = 0
    for name, row in rows:
        if row is None:
            continue
        for mutant, verdict, diff in row["survivors"]:  # type: ignore[attr-defined]
            print(f"\n--- {name}: {mutant} ({verdict})\n{diff.strip()}")
        for mutant in row["stale"]:  # type: ignore[attr-defined]
            print(f"\n!!! equivalents.md entry for {mutant} no longer matches its change")
    print(f"\n{'module':<15}{'mutants':>8}{'killed':>8}{'equiv':>7}{'score':>8}{'time':>7}")
    for name, row in rows:
        if row is None:
            print(f"{name:<15}  (not run)")
            status = 1
            continue
        low = row["score"] < fail_under  # type: ignore[operator]
        status |= low
        below = f"  < {fail_under}" if low else ""
        print(
            f"{name:<15}{row['total']:>8}{row['killed']:>8}{row['equivalent']:>7}"
            f"{row['score']:>7.1f}%{row['seconds'] or 0:>6}s{below}"
        )
    return status


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", metavar="MODULE")
    parser.add_argument("--fail-under", type=float, default=TARGET)
    parser.add_argument(
        "--rows", action="store_true", help="print the survivors as rows for equivalents.md"
    )
    args = parser.parse_args()
    if args.rows:
        known = equivalents()
        for name in args.modules:
            row = score(name, known)
            for mutant, _, diff in row["survivors"] if row else []:  # type: ignore[attr-defined]
                print(f"| {name} | `{mutant}` | `{change(diff)}` | ? |")
        sys.exit(0)
    unknown = set(args.modules) - set(BY_NAME)
    if unknown:
        sys.exit(f"unknown modules: {', '.join(sorted(unknown))}")
    sys.exit(main(args.modules or [module.name for module in MODULES], args.fail_under))
