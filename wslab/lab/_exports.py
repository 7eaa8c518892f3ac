"""Names a package exports but imports only when first asked for (PEP 562).

A load worker or the dashboard's drawing process imports one submodule of :mod:`wslab.lab`;
eager re-exports in the packages' ``__init__`` would make each such process import pandas,
the checkers and more that it never uses (~0.8 s of start-up per process).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A ``__getattr__`` and a ``__dir__`` for ``package`` that import ``exports`` on demand.

    ``exports`` maps each exported name to the (relative) module that defines it.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        vars(sys.modules[package])[name] = value  # the next lookup is an ordinary one
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
