"""The foundation stays pure: standard library only, no I/O modules, no higher wslab layer.

Two independent checks: an ``ast`` walk over every module of ``wslab.foundation`` (catches a
stray import on the day it is written, with the file and line), and the project's import-linter
contract run as CI runs it (``lint-imports`` from the repository root).
"""

from __future__ import annotations

import ast
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]  # tests/<this file>
FOUNDATION = REPO_ROOT / "wslab" / "foundation"
PACKAGE = "wslab.foundation"

# Standard-library modules that do I/O or run an event loop: the sans-I/O core must not need them.
IO_MODULES = {
    "asyncio",
    "socket",
    "ssl",
    "selectors",
    "select",
    "socketserver",
    "subprocess",
    "threading",
    "multiprocessing",
    "concurrent",
    "urllib.request",
    "http.client",
    "http.server",
}


def module_files() -> list[Path]:
    files = sorted(FOUNDATION.glob("*.py"))
    assert FOUNDATION / "protocol.py" in files  # the walk really sees the package
    return files


def imported_modules(path: Path) -> list[tuple[str, int]]:
    """Every module ``path`` imports, as absolute dotted names, with the line number."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = PACKAGE  # each module in the directory belongs to wslab.foundation
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                if node.level > len(parts):
                    found.append(("<beyond the top package>", node.lineno))
                    continue
                base = ".".join(parts[: len(parts) - node.level + 1])
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            found.append((name, node.lineno))
    return found


@pytest.mark.parametrize("path", module_files(), ids=lambda p: p.name)
def test_module_imports_only_the_standard_library_and_the_foundation(path: Path) -> None:
    problems = []
    for name, line in imported_modules(path):
        top = name.split(".")[0]
        if name == PACKAGE or name.startswith(PACKAGE + "."):
            continue
        if top in sys.stdlib_module_names and not any(
            name == m or name.startswith(m + ".") for m in IO_MODULES
        ):
            continue
        problems.append(f"{path.name}:{line} imports {name}")
    assert not problems, "\n".join(problems)


def test_the_import_walk_would_catch_a_violation(tmp_path: Path) -> None:
    """The checker itself: relative imports are resolved, and every bad kind is caught."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import asyncio\nfrom socket import socket\nimport websockets\n"
        "from .. import infrastructure\nfrom ..application import chat\n"
        "from .frames import Frame\nfrom . import codes\nimport struct\n"
    )
    assert imported_modules(sample) == [
        ("asyncio", 1),
        ("socket", 2),
        ("websockets", 3),
        ("wslab", 4),
        ("wslab.application", 5),
        ("wslab.foundation.frames", 6),
        ("wslab.foundation", 7),
        ("struct", 8),
    ]


def test_import_linter_contracts_hold() -> None:
    """``lint-imports`` (the layers contract in pyproject.toml) exits 0, as in CI."""
    exe = Path(sys.executable).with_name("lint-imports")
    command = str(exe) if exe.exists() else shutil.which("lint-imports")
    if command is None:
        pytest.skip("lint-imports (import-linter) is not installed")
    result = subprocess.run(
        [command, "--no-cache"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    missing = re.search(
        r"Missing layer in container '[\w.]+': module ([\w.]+) does not exist", output
    )
    if missing and importlib.util.find_spec(missing.group(1)) is None:
        # The contract names the top layer (hub, client, ...) before every module of it exists.
        pytest.skip(f"the layers contract names {missing.group(1)}, which does not exist yet")
    assert result.returncode == 0, output
