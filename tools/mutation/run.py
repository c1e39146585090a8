# ruff: noqa: INP001, T201 - scripts, not a package; a command line prints
"""Mutation testing of the pure modules: mutmut over function bodies, then the constants pass.

Usage (from the repository root; tox -e mutation runs it)::

    python tools/mutation/run.py [MODULE ...] [--workers N] [--fail-under PCT]

MODULE is a name from modules.py (config, phone, templates, errors, redact,
verify.policy, verify.keys, verify.numbers); all of them by default. Each module runs in its own
scratch copy of the repository under .mutation/<module>/, with a generated
[tool.mutmut] that mutates that module only and selects that module's own tests,
so a mutant counts as killed only if the module's own tests notice it.

mutmut runs with its fork server and an import-only warm-up (preload.txt, third
party only): each mutant's worker imports the package and the test modules after
the mutant is chosen, so objects built at import (module tables, class-level
fixtures, module-level connectors in tests) are built by the mutant, not
inherited from a clean import.

The score of each module is printed by report.py, with equivalents.md excluded.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import constants
import report
from modules import BY_NAME, MODULES, TARGET, Module

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SCRATCH = ROOT / ".mutation"
IGNORED = shutil.ignore_patterns("__pycache__", ".hypothesis", ".pytest_cache", "*.pyc")


def _pyproject(module: Module) -> str:
    """The repository's pyproject.toml with a [tool.mutmut] for ``module`` alone."""
    lines = (ROOT / "pyproject.toml").read_text(encoding="utf-8").splitlines()
    kept: list[str] = []
    skipping = False
    for line in lines:
        if line.startswith("["):
            skipping = line.strip() == "[tool.mutmut]"
        if not skipping:
            kept.append(line)
    settings = {
        "source_paths": ["src"],
        "only_mutate": [module.source],
        "pytest_add_cli_args_test_selection": [
            *module.tests,
            *(arg for test in module.deselect for arg in ("--deselect", test)),
        ],
        "pytest_add_cli_args": [
            "-p",
            "no:cacheprovider",
            "--hypothesis-seed=0",
            # A failed assert fails the same without pytest's rewriting, which would
            # otherwise re-parse every test module and the package in each worker.
            "--assert=plain",
            # preload.txt imports pytest-mock and hypothesis before pytest starts.
            "-W",
            "ignore::pytest.PytestAssertRewriteWarning",
            # Calls made at import count for every test (warm/mutation_import_calls.py).
            "-p",
            "mutation_import_calls",
        ],
        "process_isolation": "forkserver",
        "forkserver_warmup": "import",
        "preload_modules_file": str(HERE / "preload.txt"),
        "use_git_change_detection": False,
    }
    body = "\n".join(f"{key} = {json.dumps(value)}" for key, value in settings.items())
    return "\n".join(kept) + "\n\n[tool.mutmut]\n" + body + "\n"


def prepare(module: Module) -> Path:
    """A fresh scratch copy of src, tests and pyproject.toml for ``module``."""
    workdir = SCRATCH / module.name
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    shutil.copytree(ROOT / "src", workdir / "src", ignore=IGNORED)
    shutil.copytree(ROOT / "tests", workdir / "tests", ignore=IGNORED)
    (workdir / "pyproject.toml").write_text(_pyproject(module), encoding="utf-8")
    return workdir


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["ALIBABA_CLOUD_ECS_METADATA_DISABLED"] = "true"
    # Only the folder of preload.txt's last module and of the pytest plugin: the package
    # under test comes from the scratch copy that mutmut puts first on sys.path.
    env["PYTHONPATH"] = str(HERE / "warm")
    return env


def run_mutmut(
    module: Module, workdir: Path, workers: int, names: list[str] | None = None
) -> dict[str, object]:
    """Run mutmut in ``workdir`` (only ``names`` if given); return verdicts and survivors' diffs."""
    mutmut = Path(sys.executable).with_name("mutmut")
    log = workdir / "mutmut.log"
    with log.open("w", encoding="utf-8") as out:
        status = subprocess.run(  # noqa: S603 - fixed arguments
            [str(mutmut), "run", "--max-children", str(workers), *(names or [])],
            cwd=workdir,
            env=_environment(),
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        ).returncode
    meta = workdir / "mutants" / f"{module.source}.meta"
    if status != 0 or not meta.exists():
        sys.exit(f"mutmut failed on {module.name} (status {status}); see {log}")
    from mutmut.stats import status_by_exit_code  # noqa: PLC0415

    codes = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
    if names is not None:
        codes = {name: codes[name] for name in names}
    # 255: the worker's test run raised, as when the mutant breaks the import of a test
    # module (pytest then cannot find the selected tests). mutmut files it under timeout;
    # here it is "crashed", a kill, unless every mutant crashed: that is a broken setup.
    verdicts = {
        name: "crashed" if code == 255 else status_by_exit_code[code]  # noqa: PLR2004
        for name, code in codes.items()
    }
    if verdicts and set(verdicts.values()) == {"crashed"}:
        sys.exit(f"every mutant of {module.name} crashed its test run: see {log}")
    diffs = {}
    for name, verdict in verdicts.items():
        if verdict not in report.KILLED:
            diffs[name] = subprocess.run(  # noqa: S603 - fixed arguments
                [str(mutmut), "show", name],
                cwd=workdir,
                env=_environment(),
                capture_output=True,
                text=True,
                check=False,
            ).stdout
    return {"verdicts": verdicts, "diffs": diffs}


def run_constants(
    module: Module, workdir: Path, names: set[str] | None = None
) -> dict[str, object]:
    """The constants pass over ``module`` (only ``names`` if given), in a copy of its package."""
    copy = workdir / "constants"
    if names is None:
        shutil.copytree(workdir / "src", copy / "src")
        shutil.copy(workdir / "pyproject.toml", copy / "pyproject.toml")
    shutil.rmtree(copy / "tests", ignore_errors=True)
    shutil.copytree(workdir / "tests", copy / "tests")
    target = copy / module.source
    source = target.read_text(encoding="utf-8")
    sys.path.insert(0, str(HERE / "warm"))
    constants.preload(HERE / "preload.txt")
    started = time.monotonic()
    clean = constants.run_tests(copy, module.tests, timeout=600)
    if clean != 0:
        sys.exit(f"the tests of {module.name} fail without any mutant (status {clean})")
    timeout = max(30.0, 10 * (time.monotonic() - started))
    verdicts: dict[str, str] = {}
    diffs: dict[str, str] = {}
    try:
        for mutant in constants.mutants(source):
            if names is not None and f"const:{mutant.name}" not in names:
                continue
            target.write_text(constants.apply(source, mutant), encoding="utf-8")
            # A .pyc records the source's size and mtime in seconds: "40" -> "41" written
            # within the same second would otherwise import the previous mutant.
            for cached in (target.parent / "__pycache__").glob(f"{target.stem}.*"):
                cached.unlink()
            status = constants.run_tests(copy, module.tests, timeout)
            verdict = "survived" if status == 0 else "timeout" if status == -1 else "killed"
            verdicts[f"const:{mutant.name}"] = verdict
            diffs[f"const:{mutant.name}"] = (
                f"line {mutant.line}: {mutant.original} -> {mutant.mutated}"
            )
    finally:
        target.write_text(source, encoding="utf-8")
        for cached in (target.parent / "__pycache__").glob(f"{target.stem}.*"):
            cached.unlink()
    return {"verdicts": verdicts, "diffs": diffs}


def recheck(module: Module, workers: int) -> None:
    """Run the survivors of the last run of ``module`` again, with the current tests."""
    workdir = SCRATCH / module.name
    previous = json.loads((workdir / "result.json").read_text(encoding="utf-8"))
    if (ROOT / module.source).read_bytes() != (workdir / module.source).read_bytes():
        sys.exit(f"{module.source} changed since its last run: run it in full")
    started = time.monotonic()
    print(f"== {module.name}: the last run's survivors, with the current tests", flush=True)
    shutil.rmtree(workdir / "tests")
    shutil.copytree(ROOT / "tests", workdir / "tests", ignore=IGNORED)
    # The current settings: mutmut then collects its stats again if they changed.
    (workdir / "pyproject.toml").write_text(_pyproject(module), encoding="utf-8")
    left = [name for name, verdict in previous["verdicts"].items() if verdict not in report.KILLED]
    names = [name for name in left if not name.startswith("const:")]
    if names:
        result = run_mutmut(module, workdir, workers, names)
        previous["verdicts"].update(result["verdicts"])
        previous["diffs"] = {**previous["diffs"], **result["diffs"]}  # type: ignore[dict-item]
    consts = {name for name in left if name.startswith("const:")}
    if consts:
        result = run_constants(module, workdir, consts)
        previous["verdicts"].update(result["verdicts"])
    previous["rechecked_seconds"] = round(time.monotonic() - started)
    (workdir / "result.json").write_text(json.dumps(previous, indent=1), encoding="utf-8")


def main() -> int:
    """Run the modules named on the command line (all by default); print the scores."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", choices=[[], *BY_NAME], metavar="MODULE")
    parser.add_argument("--workers", type=int, default=1, help="mutmut workers (default 1)")
    parser.add_argument("--fail-under", type=float, default=TARGET)
    parser.add_argument("--skip-constants", action="store_true")
    parser.add_argument(
        "--recheck",
        action="store_true",
        help="run only the last run's survivors again, against the current tests "
        "(the module's source must be unchanged)",
    )
    args = parser.parse_args()
    chosen = [BY_NAME[name] for name in args.modules] or list(MODULES)
    for module in chosen:
        if args.recheck:
            recheck(module, args.workers)
            continue
        started = time.monotonic()
        print(f"== {module.name}: {module.source} with {' '.join(module.tests)}", flush=True)
        workdir = prepare(module)
        result = run_mutmut(module, workdir, args.workers)
        if not args.skip_constants:
            consts = run_constants(module, workdir)
            result["verdicts"].update(consts["verdicts"])  # type: ignore[attr-defined]
            result["diffs"].update(consts["diffs"])  # type: ignore[attr-defined]
        result["seconds"] = round(time.monotonic() - started)
        (workdir / "result.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
        print(f"   done in {result['seconds']} s", flush=True)
    return report.main([module.name for module in chosen], args.fail_under)


if __name__ == "__main__":
    sys.exit(main())
