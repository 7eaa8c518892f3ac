"""The lazily exported names of wslab.lab's packages: each one resolves, none hides a submodule."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

PACKAGES = ("wslab.lab", "wslab.lab.loadgen", "wslab.lab.dashboard")


@pytest.mark.parametrize("name", PACKAGES)
def test_every_export_resolves_to_what_its_module_defines(name: str) -> None:
    package = importlib.import_module(name)
    for export, module in package._EXPORTS.items():
        assert getattr(package, export) is getattr(
            importlib.import_module(module, name), export
        ), export
    assert set(package.__all__) <= set(dir(package))


@pytest.mark.parametrize("name", PACKAGES)
def test_no_export_shares_its_name_with_a_submodule(name: str) -> None:
    # Importing a submodule binds its name on the package: an export of that name would then
    # be the module, not the function, depending on what happened to be imported first.
    package = importlib.import_module(name)
    submodules = {info.name for info in pkgutil.iter_modules(package.__path__)}
    assert not submodules & set(package._EXPORTS)
