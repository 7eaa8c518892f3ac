"""``wslab bench``: run the benchmark suite of a wslab checkout, or a named part of it.

The benchmarks are the scripts ``benchmarks/bench_*.py`` of the repository (they are not part of
the installed package: each compares wslab against a baseline on the machine it runs on, so
they belong with the source). A benchmark is named by its file without ``bench_`` and ``.py``:
``wslab bench echo crosshub`` runs ``bench_echo.py`` and ``bench_crosshub.py``; no name runs
them all, in alphabetical order. Each runs in its own process with this Python and the
checkout first on ``PYTHONPATH``, its table printed as it comes; a summary line per benchmark
follows. ``--quick`` passes ``--quick`` on (a smoke run: tiny sizes, seconds); a benchmark that
has no such size is skipped then, and said so.

Where is the suite? ``--dir``, else ``./benchmarks``, else the ``benchmarks/`` beside the
imported ``wslab`` package (an editable install of a checkout). Anything else is a
:class:`~wslab.foundation.errors.ConfigError` that says so, never a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from wslab.foundation.errors import ConfigError

__all__ = ["Benchmark", "find_suite", "run_suite", "select"]

PREFIX = "bench_"


@dataclass(frozen=True)
class Benchmark:
    """One script of the suite: ``name`` is ``echo`` for ``benchmarks/bench_echo.py``."""

    name: str
    path: Path

    @property
    def has_quick(self) -> bool:
        """Whether the script offers a ``--quick`` size (it declares the flag)."""
        try:
            return '"--quick"' in self.path.read_text(encoding="utf-8")
        except OSError:
            return False


def find_suite(directory: str | os.PathLike[str] | None = None) -> Path:
    """The ``benchmarks/`` folder to run, or a :class:`ConfigError` saying where it looked."""
    if directory is not None:
        folder = Path(directory)
        if not folder.is_dir() or not any(folder.glob(f"{PREFIX}*.py")):
            raise ConfigError(f"--dir {directory}: no {PREFIX}*.py scripts there")
        return folder
    here = Path.cwd() / "benchmarks"
    beside = Path(__file__).resolve().parent.parent / "benchmarks"
    for folder in (here, beside):
        if folder.is_dir() and any(folder.glob(f"{PREFIX}*.py")):
            return folder
    raise ConfigError(
        "no benchmarks/ folder found: the benchmark suite lives in a wslab checkout, not in the "
        "installed package. Run `wslab bench` from the repository's root, or pass --dir "
        "PATH/TO/benchmarks"
    )


def discover(folder: Path) -> list[Benchmark]:
    """Every ``bench_*.py`` of ``folder``, by name."""
    return [
        Benchmark(path.stem[len(PREFIX) :], path) for path in sorted(folder.glob(f"{PREFIX}*.py"))
    ]


def select(suite: list[Benchmark], names: Sequence[str]) -> list[Benchmark]:
    """The benchmarks named (all when none is), in the order given; unknown names are an error."""
    if not names:
        return suite
    by_name = {b.name: b for b in suite}
    unknown = [n for n in names if n.removeprefix(PREFIX).removesuffix(".py") not in by_name]
    if unknown:
        raise ConfigError(
            f"no benchmark named {', '.join(unknown)}; the suite has: {', '.join(by_name)}"
        )
    chosen: list[Benchmark] = []
    for name in names:
        benchmark = by_name[name.removeprefix(PREFIX).removesuffix(".py")]
        if benchmark not in chosen:
            chosen.append(benchmark)
    return chosen


def run_suite(
    names: Sequence[str] = (),
    *,
    quick: bool = False,
    directory: str | os.PathLike[str] | None = None,
) -> int:
    """Run the chosen benchmarks one after another; 0 if every one that ran succeeded, else 1."""
    folder = find_suite(directory)
    chosen = select(discover(folder), names)
    root = folder.resolve().parent
    env = dict(os.environ)
    # The checkout's own wslab, whatever is installed.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    summary: list[str] = []
    failed = False
    for benchmark in chosen:
        if quick and not benchmark.has_quick:
            summary.append(f"  {benchmark.name:12} skipped (has no --quick size; run it by name)")
            continue
        command = [sys.executable, str(benchmark.path), *(["--quick"] if quick else [])]
        shown = " ".join(["python", str(benchmark.path.relative_to(root)), *command[2:]])
        print(f"== {benchmark.name}: {shown}", flush=True)
        started = time.monotonic()
        status = subprocess.call(command, cwd=root, env=env)
        took = time.monotonic() - started
        verdict = "ok" if status == 0 else f"FAILED (exit {status})"
        failed = failed or status != 0
        summary.append(f"  {benchmark.name:12} {verdict} in {took:.1f} s")
        print(flush=True)
    print("wslab bench:" + (" --quick" if quick else ""))
    print("\n".join(summary), flush=True)
    return 1 if failed else 0
