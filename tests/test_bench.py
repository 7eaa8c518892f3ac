"""``wslab bench``: the suite runs, in smoke sizes, and prints its tables; mistakes are one line.

The benchmarks' timings are never asserted (they depend on the machine): a smoke run only proves
each benchmark still runs end to end against real servers and prints the rows and finite ratios
its docs promise, so the suite cannot rot between the runs that measure.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import need_service, port_open

ROOT = Path(__file__).resolve().parents[1]


def wslab_bench(
    *args: str, cwd: Path = ROOT, pythonpath: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run(
        [sys.executable, "-m", "wslab.cli", "bench", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def finite(text: str) -> float:
    value = float(text.rstrip("x"))
    assert math.isfinite(value), text
    return value


def test_quick_echo_prints_every_server_and_size_with_finite_ratios() -> None:
    result = wslab_bench("--quick", "echo")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    servers = ["wslab", "websockets", "bare-ws"]
    if importlib.util.find_spec("picows") is not None:
        servers.append("picows")
    for size in ("64 B", "64 KiB"):
        for server in servers:
            row = re.search(
                rf"^{size}\s+{server}\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)$", out, re.M
            )
            assert row, f"no {size} {server} row in:\n{out}"
            assert all(finite(x) > 0 for x in row.groups())
        verdict = re.search(rf"^{size}: wslab / websockets engine = (\S+) round trips/s", out, re.M)
        assert verdict and finite(verdict.group(1)) > 0
    assert re.search(r"^\s+echo\s+ok in", out, re.M)


@pytest.mark.services
@pytest.mark.slow
def test_quick_crosshub_compares_two_hubs_over_redis_with_one() -> None:
    need_service(port_open("127.0.0.1", 6379), "Redis is not running on 127.0.0.1:6379")
    result = wslab_bench("--quick", "crosshub")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for mode in ("one hub", "two hubs"):
        row = re.search(rf"^{mode}\s+(\S+)\s+(\S+)\s+(\S+)%\s+(\S+)\s+(\S+)$", out, re.M)
        assert row, f"no {mode} row in:\n{out}"
        p50, p99, delivered, cpu = (finite(x) for x in row.groups()[:4])
        assert [finite(x) for x in row.group(5).split(",")]  # one p99 per round
        assert 0 < p50 <= p99 and cpu > 0
        assert delivered == 100.0  # nothing lost on the way, across Redis too
    ratio = re.search(r"^two hubs / one hub: p50 (\S+), p99 (\S+) ", out, re.M)
    assert ratio and finite(ratio.group(1)) > 0 and finite(ratio.group(2)) > 0


def test_quick_skips_a_benchmark_without_a_quick_size_and_runs_the_others(tmp_path: Path) -> None:
    suite = tmp_path / "benchmarks"
    suite.mkdir()
    (suite / "bench_small.py").write_text(
        "import sys\nassert sys.argv[1:] == ['--quick']  # declares \"--quick\"\nprint('small table')\n"
    )
    (suite / "bench_large.py").write_text("print('a long run')\n")
    (suite / "bench_broken.py").write_text('raise SystemExit(3)  # "--quick"\n')

    result = wslab_bench("--quick", "--dir", str(suite))
    assert result.returncode == 1  # bench_broken failed
    assert "small table" in result.stdout and "a long run" not in result.stdout
    assert re.search(r"^\s+large\s+skipped \(has no --quick size", result.stdout, re.M)
    assert re.search(r"^\s+broken\s+FAILED \(exit 3\)", result.stdout, re.M)

    named = wslab_bench("small", "--dir", str(suite))
    assert named.returncode == 1  # without --quick the script's own assertion fails: no flag passed
    ok = wslab_bench("large", "--dir", str(suite))
    assert ok.returncode == 0 and "a long run" in ok.stdout


def test_an_unknown_name_lists_the_suite() -> None:
    result = wslab_bench("nope")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]  # one line, no traceback
    assert "no benchmark named nope" in result.stderr and "echo" in result.stderr


def test_outside_a_checkout_it_says_where_the_suite_lives(tmp_path: Path) -> None:
    # An installed wslab: the package alone, away from the repository, run from elsewhere.
    site = tmp_path / "site"
    shutil.copytree(ROOT / "wslab", site / "wslab", ignore=shutil.ignore_patterns("__pycache__"))
    work = tmp_path / "work"
    work.mkdir()
    result = wslab_bench("--quick", cwd=work, pythonpath=site)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "no benchmarks/ folder found" in result.stderr
    assert "--dir" in result.stderr

    missing = wslab_bench("--dir", str(work / "nowhere"), cwd=work, pythonpath=site)
    assert missing.returncode == 2 and "no bench_*.py scripts there" in missing.stderr
