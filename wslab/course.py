"""The course's notebooks: where they are, a student's own copy of them, and JupyterLab on it.

``wslab lab`` is built from the pieces here:

- :func:`find_course` — the folder holding the course as shipped. In an installed wheel that is
  the package data ``wslab/_notebooks/`` (``setup.py`` maps the repository's top-level
  ``notebooks/`` there at build time, so the repository keeps the one copy); in a checkout it is
  that ``notebooks/`` folder itself.
- :func:`prepare` — the student's working folder (``./wslab-course`` unless ``--dir`` says
  otherwise): every course notebook *missing* from it is copied in, and a notebook already there
  is the student's and is never overwritten, even when the course's version has changed since
  (deleting the file brings the course's version back next time). The :class:`CopyReport` says
  which was which.
- :func:`lab_command` and :func:`become` — the ``python -m jupyterlab`` command line, and the
  ``exec`` that turns this process into JupyterLab: signals sent to ``wslab lab`` then reach
  JupyterLab itself (which shuts its kernels down on SIGTERM), and no orphan is left behind.

Nothing here needs more than the standard library and ``wslab.foundation``'s errors: listing
the course must work before JupyterLab, or any of the hub's dependencies, can be imported.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from wslab.foundation.errors import ConfigError, NotFoundError

__all__ = [
    "DEFAULT_DIR",
    "CopyReport",
    "Notebook",
    "become",
    "find_course",
    "format_listing",
    "lab_command",
    "notebooks",
    "prepare",
]

#: The working folder ``wslab lab`` copies the course into, relative to where it runs.
DEFAULT_DIR = "wslab-course"

_PACKAGE = Path(__file__).resolve().parent
#: Where the wheel puts the course (the package data ``wslab._notebooks``).
_INSTALLED = _PACKAGE / "_notebooks"
#: The repository's own folder, when wslab runs from a checkout (or an editable install of one).
_CHECKOUT = _PACKAGE.parent / "notebooks"


@dataclass(frozen=True)
class Notebook:
    """One chapter of the course: its file and the title its first heading gives it."""

    path: Path
    title: str

    @property
    def name(self) -> str:
        """The file name, which is what the working folder holds too."""
        return self.path.name


def find_course() -> Path:
    """The folder holding the course's notebooks as shipped: installed package data or checkout.

    Raises :class:`NotFoundError` when neither exists (a broken or partial installation).
    """
    if _has_notebooks(_INSTALLED):
        return _INSTALLED
    # A checkout is recognised by its pyproject.toml beside wslab/, so that an unrelated
    # "notebooks" folder next to site-packages is never mistaken for the course.
    if (_PACKAGE.parent / "pyproject.toml").is_file() and _has_notebooks(_CHECKOUT):
        return _CHECKOUT
    raise NotFoundError(
        f"the course's notebooks are not installed (looked in {_INSTALLED} and {_CHECKOUT}); "
        "reinstall wslab"
    )


def _has_notebooks(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob("*.ipynb"))


def notebooks(source: Path | None = None) -> list[Notebook]:
    """The course's notebooks in chapter order (their names sort that way: ``00_``, ``01_``...)."""
    folder = find_course() if source is None else source
    return [Notebook(path, _title(path)) for path in sorted(folder.glob("*.ipynb"))]


def _title(path: Path) -> str:
    """The first line of the first markdown cell, without its ``#``; "" when there is none."""
    try:
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError, AttributeError):
        return ""  # the listing must not fail on one unreadable file; opening it will say why
    for cell in cells:
        if isinstance(cell, dict) and cell.get("cell_type") == "markdown":
            source = cell.get("source", "")
            text = "".join(source) if isinstance(source, list) else str(source)
            for line in text.splitlines():
                if line.strip():
                    return line.strip().lstrip("#").strip()
            return ""
    return ""


def format_listing(source: Path | None = None) -> str:
    """The text of ``wslab lab --list``: each notebook's file name and title, in order."""
    folder = find_course() if source is None else source
    chapters = notebooks(folder)
    width = max((len(chapter.name) for chapter in chapters), default=0)
    lines = [f"The wslab course: {len(chapters)} notebooks in {folder}"]
    lines += [f"  {chapter.name:<{width}}  {chapter.title}".rstrip() for chapter in chapters]
    return "\n".join(lines)


@dataclass
class CopyReport:
    """What :func:`prepare` did to the working folder, file by file."""

    folder: Path
    copied: list[str] = field(default_factory=list)
    #: Already there and identical to the course's version.
    unchanged: list[str] = field(default_factory=list)
    #: Already there and different from the course's version: the student's edits, kept.
    edited: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """One line per kind of outcome, for the terminal."""
        lines = [f"working folder {self.folder}"]
        if self.copied:
            lines.append(f"copied {len(self.copied)} notebook(s): {', '.join(self.copied)}")
        if self.edited:
            lines.append(
                f"kept your edited {', '.join(self.edited)} "
                "(never overwritten; delete a file to get the course's version back)"
            )
        if self.unchanged:
            lines.append(f"kept {len(self.unchanged)} notebook(s) already there, unchanged")
        return lines


def prepare(folder: Path | str, source: Path | None = None) -> CopyReport:
    """Make ``folder`` the student's copy of the course: copy what is missing, keep the rest.

    Raises :class:`ConfigError` when ``folder`` exists and is not a folder; ``OSError`` when it
    cannot be created or written.
    """
    target = Path(folder).expanduser().resolve()
    if target.exists() and not target.is_dir():
        raise ConfigError(f"--dir: {target} exists and is not a folder")
    origin = find_course() if source is None else source
    target.mkdir(parents=True, exist_ok=True)
    report = CopyReport(target)
    for chapter in notebooks(origin):
        destination = target / chapter.name
        if destination.exists():
            same = _same_bytes(chapter.path, destination)
            (report.unchanged if same else report.edited).append(chapter.name)
            continue
        _copy_new(chapter.path, destination)
        report.copied.append(chapter.name)
    return report


def _same_bytes(a: Path, b: Path) -> bool:
    try:
        return a.stat().st_size == b.stat().st_size and a.read_bytes() == b.read_bytes()
    except OSError:
        return False  # unreadable: treat it as the student's, which keeps it untouched


def _copy_new(source: Path, destination: Path) -> None:
    """Copy through a temporary name, so an interrupted copy never leaves a half notebook that
    later runs would keep as the student's. Only the contents are copied: an installation's
    read-only mode must not make the student's copy read-only."""
    partial = destination.with_name(f".{destination.name}.partial")
    shutil.copyfile(source, partial)
    try:
        if destination.exists():  # appeared meanwhile: it is the student's
            return
        os.replace(partial, destination)
    finally:
        partial.unlink(missing_ok=True)


def lab_command(folder: Path, passed_on: Sequence[str] = ()) -> list[str]:
    """``python -m jupyterlab`` on ``folder``, with the caller's options last (so they win).

    ``-m jupyterlab`` rather than the ``jupyter`` launcher: the launcher looks ``jupyter-lab`` up
    on PATH, which may belong to another environment than this interpreter's.
    """
    options = list(passed_on)
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in options:
        # Containers and CI machines often run as root, where JupyterLab refuses to start.
        options.insert(0, "--allow-root")
    return [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={folder}", *options]


def become(command: Sequence[str]) -> NoReturn:
    """Replace this process with ``command`` (POSIX ``exec``): same PID, signals reach it.

    Windows has no ``exec`` that keeps the process, so there the command runs as a child and its
    exit status is this process's.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "nt":
        raise SystemExit(subprocess.call(list(command)))
    os.execv(command[0], list(command))
