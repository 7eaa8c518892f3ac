"""The course under nbval: exercise checkers judge the package's solutions.

The notebooks are committed with stub answers (a student's starting point), which their checkers
answer with "Not yet". Under pytest the kernel of each notebook starts with
``WSLAB_INJECT_SOLUTIONS=1``, so every checker judges the solution in :mod:`wslab.lab.solutions`
instead and CI proves that each one accepts a right answer. The variable is set only while a
notebook's kernel starts, never for the rest of the session: the checkers' own tests must judge
the wrong answers they pass.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from wslab.lab.checkers.verdicts import INJECT_ENV


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    """Start a notebook's kernel (nbval does it in the first cell's setup) with the variable set."""
    if not str(item.fspath).endswith(".ipynb"):
        yield
        return
    before = os.environ.get(INJECT_ENV)
    os.environ[INJECT_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(INJECT_ENV, None)
        else:
            os.environ[INJECT_ENV] = before
