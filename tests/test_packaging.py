"""What ``pip install wslab`` and ``conda env create`` give a user, checked against pyproject.toml.

- ``environment.yml`` names every dependency of the core, ``lab`` and ``test`` extras (``test``
  pulls in ``lab`` and ``scale``) under conda-forge's name, with the same version bounds, and
  nothing pyproject no longer asks for: the two files cannot drift apart.
- The licence and the project's links are in the metadata.
- A wheel built from this checkout (no network: no build isolation, the running environment's
  setuptools) holds the course and the licence, and once installed in a fresh virtual environment
  its ``wslab lab --list``, run far from the checkout, lists the course from the package data.
"""

from __future__ import annotations

import os
import re
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
ENVIRONMENT = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
CHAPTERS = sorted(path.name for path in (ROOT / "notebooks").glob("*.ipynb"))

#: PyPI name -> conda-forge name, where they differ.
CONDA_NAMES = {
    "prometheus-client": "prometheus_client",
    "redis": "redis-py",
    "playwright": "playwright-python",
}
#: What a PyPI extra brings in, which conda-forge packages separately (unversioned there).
EXTRA_PACKAGES = {("pyjwt", "crypto"): ("cryptography",)}
#: environment.yml entries that are the environment itself, not a dependency of wslab.
NOT_DEPENDENCIES = {"python", "pip"}


def pyproject_requirements(extras: tuple[str, ...] = ("lab", "test")) -> list[Requirement]:
    """The core dependencies and those of ``extras``, with ``wslab[...]`` expanded in place."""
    project = PYPROJECT["project"]
    optional = project["optional-dependencies"]
    found: list[Requirement] = []
    pending = [*project["dependencies"], *(d for extra in extras for d in optional[extra])]
    expanded: set[str] = set(extras)
    while pending:
        requirement = Requirement(pending.pop(0))
        if canonicalize_name(requirement.name) == "wslab":
            for extra in sorted(requirement.extras - expanded):
                expanded.add(extra)
                pending.extend(optional[extra])
            continue
        found.append(requirement)
    return found


def expected_conda_entries() -> dict[str, tuple[str, SpecifierSet]]:
    """conda-forge name -> (PyPI name, the version bounds environment.yml must give it)."""
    expected: dict[str, tuple[str, SpecifierSet]] = {}
    for requirement in pyproject_requirements():
        name = canonicalize_name(requirement.name)
        expected[CONDA_NAMES.get(name, name)] = (name, requirement.specifier)
        for extra in requirement.extras:
            for package in EXTRA_PACKAGES.get((name, extra), ()):
                expected[package] = (package, SpecifierSet())
    return expected


def parse_conda_spec(spec: str) -> tuple[str, SpecifierSet]:
    """``"websockets>=15"`` -> ``("websockets", SpecifierSet(">=15"))`` (conda's simple specs)."""
    match = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(.*?)\s*", spec)
    assert match, f"environment.yml: cannot read {spec!r}"
    return match[1].lower(), SpecifierSet(match[2].replace(" ", ""))


def environment_entries() -> tuple[dict[str, SpecifierSet], dict[str, SpecifierSet]]:
    """environment.yml's conda packages and its pip: packages (the editable checkout left out)."""
    conda: dict[str, SpecifierSet] = {}
    pip: dict[str, SpecifierSet] = {}
    for entry in ENVIRONMENT["dependencies"]:
        if isinstance(entry, dict):
            for line in entry.get("pip", []):
                if line.startswith(("-e ", "--editable", ".")):
                    continue  # wslab itself, from this checkout
                requirement = Requirement(line)
                pip[canonicalize_name(requirement.name)] = requirement.specifier
            continue
        name, specifier = parse_conda_spec(str(entry))
        assert name not in conda, f"environment.yml lists {name} twice"
        conda[name] = specifier
    return conda, pip


# -- environment.yml ---------------------------------------------------------------------------------


def test_environment_yml_uses_conda_forge() -> None:
    assert ENVIRONMENT["channels"] == ["conda-forge"]
    assert ENVIRONMENT["name"] == "wslab"


def test_environment_yml_has_every_pyproject_dependency_and_nothing_stale() -> None:
    conda, pip = environment_entries()
    expected = expected_conda_entries()

    missing = sorted(c for c, (pypi, _) in expected.items() if c not in conda and pypi not in pip)
    stale_conda = sorted(set(conda) - set(expected) - NOT_DEPENDENCIES)
    stale_pip = sorted(set(pip) - {pypi for pypi, _ in expected.values()})
    twice = sorted(pypi for c, (pypi, _) in expected.items() if c in conda and pypi in pip)
    assert missing == [], f"pyproject dependencies missing from environment.yml: {missing}"
    assert stale_conda == [], f"environment.yml lists what pyproject does not: {stale_conda}"
    assert stale_pip == [], f"environment.yml's pip: section is stale: {stale_pip}"
    assert twice == [], f"environment.yml lists these for conda and for pip: {twice}"


def test_environment_yml_has_pyprojects_version_bounds() -> None:
    conda, pip = environment_entries()
    wrong = {}
    for name, (pypi, specifier) in expected_conda_entries().items():
        listed = conda.get(name, pip.get(pypi))
        if listed is not None and listed != specifier:
            wrong[name] = (str(listed), str(specifier))
    assert wrong == {}, (
        f"environment.yml's bounds differ from pyproject's (yml, pyproject): {wrong}"
    )


def test_environment_yml_python_is_requires_python() -> None:
    conda, _ = environment_entries()
    assert conda["python"] == SpecifierSet(PYPROJECT["project"]["requires-python"])


def test_the_name_map_only_names_real_dependencies() -> None:
    """A map entry for a dependency that has gone would hide nothing, but is a lie to readers."""
    names = {canonicalize_name(r.name) for r in pyproject_requirements()}
    assert set(CONDA_NAMES) <= names
    assert {name for name, _ in EXTRA_PACKAGES} <= names


# -- metadata ----------------------------------------------------------------------------------------


def test_the_licence_is_mit_in_a_spdx_field_with_its_file() -> None:
    project = PYPROJECT["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "wslab contributors" in text
    assert not any(c.startswith("License ::") for c in project.get("classifiers", []))
    requires = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]
    setuptools = next(r for r in requires if r.name == "setuptools")
    assert "76.9" not in setuptools.specifier and "77" in setuptools.specifier  # PEP 639 support


def test_the_project_links_point_to_the_repository() -> None:
    urls = PYPROJECT["project"]["urls"]
    assert set(urls) == {"Homepage", "Documentation", "Source", "Issues"}
    assert all(url.startswith("https://github.com/wslab/wslab") for url in urls.values())
    assert urls["Issues"] == "https://github.com/wslab/wslab/issues"


# -- the wheel ---------------------------------------------------------------------------------------

#: What a checkout may hold that is not the source: never copied into the build tree.
JUNK = shutil.ignore_patterns(
    ".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache",
    ".hypothesis", ".ipynb_checkpoints", "wslab-course", "*.so", "*.db", "*.db-*",
)  # fmt: skip


def run(
    command: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` to completion; a failure shows what it printed."""
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=cwd, env=env)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of this checkout (the build leaves nothing in the checkout)."""
    from importlib.metadata import version

    from packaging.version import Version

    if Version(version("setuptools")) < Version("77"):
        pytest.fail("setuptools>=77 is a test dependency: pip install -e '.[test]'")
    where = tmp_path_factory.mktemp("wheel")
    shutil.copytree(ROOT, where / "src", ignore=JUNK)
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--wheel-dir", str(where / "dist"), str(where / "src")],
    )  # fmt: skip
    (built,) = (where / "dist").glob("wslab-*.whl")
    return built


@pytest.mark.slow
def test_the_wheel_holds_the_course_and_the_licence(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (info,) = {name.split("/")[0] for name in names if ".dist-info/" in name}
        metadata = archive.read(f"{info}/METADATA").decode()
    assert {f"wslab/_notebooks/{name}" for name in CHAPTERS} <= names
    assert not {name for name in names if name.startswith(("notebooks/", "tests/"))}
    assert {"wslab/web/index.html", "wslab/py.typed", "wslab/course.py"} <= names
    assert f"{info}/licenses/LICENSE" in names
    assert "License-Expression: MIT" in metadata.splitlines()
    assert "Project-URL: Source, https://github.com/wslab/wslab" in metadata.splitlines()


@pytest.mark.slow
def test_the_installed_wheel_lists_the_course(wheel: Path, tmp_path: Path) -> None:
    """``wslab lab --list`` from a fresh venv with the wheel: the package data, not the checkout."""
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    # The dependencies come from the running environment, which may itself be a venv (then
    # --system-site-packages would reach the base interpreter's, not these). A plain path in a
    # .pth file adds the folder but runs none of its .pth files, so an editable install of wslab
    # there stays out.
    purelib = run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
    ).stdout.strip()
    ours = [*site.getsitepackages(), sysconfig.get_paths()["purelib"]]
    Path(purelib, "_wslab_test_deps.pth").write_text("\n".join(dict.fromkeys(ours)) + "\n")
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", str(wheel)])  # fmt: skip

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["HOME"] = str(elsewhere)
    script = venv / ("Scripts/wslab.exe" if os.name == "nt" else "bin/wslab")
    result = run([str(script), "lab", "--list"], cwd=elsewhere, env=env)

    installed = Path(purelib, "wslab", "_notebooks")
    lines = result.stdout.splitlines()
    assert lines[0] == f"The wslab course: {len(CHAPTERS)} notebooks in {installed.resolve()}"
    assert [line.split()[0] for line in lines[1:]] == CHAPTERS
    assert list(elsewhere.iterdir()) == []  # listing copies nothing
