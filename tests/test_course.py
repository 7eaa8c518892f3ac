"""The course as a student gets it: ``wslab lab`` copies it once, keeps their edits, lists it, and
becomes JupyterLab, which a SIGTERM stops with nothing left behind.

The copying tests use the real notebooks of this checkout; the JupyterLab test runs the real
command in a fresh HOME and fresh Jupyter folders, on a free port, and follows its processes with
psutil.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from wslab import course
from wslab.foundation.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted(path.name for path in (ROOT / "notebooks").glob("*.ipynb"))


def clean_env(tmp_path: Path) -> dict[str, str]:
    """A new user's environment: fresh HOME and Jupyter folders, this checkout importable."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WSLAB_", "XDG_", "JUPYTER", "IPYTHON")) and k != "HOME"
    }
    home = tmp_path / "home"
    env.update(
        HOME=str(home),
        JUPYTER_CONFIG_DIR=str(home / "jupyter-config"),
        JUPYTER_DATA_DIR=str(home / "jupyter-data"),
        JUPYTER_RUNTIME_DIR=str(home / "jupyter-runtime"),
        IPYTHONDIR=str(home / "ipython"),
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
    )
    home.mkdir(exist_ok=True)
    return env


def run_wslab(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``wslab ARGS`` to completion, run from ``tmp_path``."""
    return subprocess.run(
        [sys.executable, "-m", "wslab.cli", *args],
        capture_output=True,
        text=True,
        env=clean_env(tmp_path),
        cwd=tmp_path,
        timeout=60,
    )


# -- where the course is ---------------------------------------------------------------------------


def test_a_checkout_reads_its_own_notebooks_folder() -> None:
    """The top-level notebooks/ is the one copy: no duplicate of it lives in the package."""
    assert CHAPTERS, "the checkout has no notebooks"
    assert course.find_course() == ROOT / "notebooks"
    assert not (ROOT / "wslab" / "_notebooks").exists()


def test_the_listing_names_every_chapter_in_order_with_its_title() -> None:
    listing = course.format_listing().splitlines()
    assert listing[0] == f"The wslab course: {len(CHAPTERS)} notebooks in {ROOT / 'notebooks'}"
    assert [line.split()[0] for line in listing[1:]] == CHAPTERS
    assert "A tour of wslab" in listing[1]  # the first heading of 00_tour.ipynb


def test_wslab_lab_list_prints_the_listing(tmp_path: Path) -> None:
    result = run_wslab(tmp_path, "lab", "--list")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.strip() == course.format_listing()
    assert not (tmp_path / course.DEFAULT_DIR).exists()  # listing copies nothing


# -- the working folder ----------------------------------------------------------------------------


def test_the_first_run_copies_the_whole_course(tmp_path: Path) -> None:
    report = course.prepare(tmp_path / "work")
    assert report.folder == tmp_path / "work"
    assert (report.copied, report.unchanged, report.edited) == (CHAPTERS, [], [])
    for name in CHAPTERS:
        assert (tmp_path / "work" / name).read_bytes() == (ROOT / "notebooks" / name).read_bytes()
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == CHAPTERS  # no leftovers
    assert report.lines()[1] == f"copied {len(CHAPTERS)} notebook(s): {', '.join(CHAPTERS)}"


def test_later_runs_keep_the_students_edits_and_bring_back_deleted_chapters(
    tmp_path: Path,
) -> None:
    work = tmp_path / "work"
    course.prepare(work)
    edited, deleted = CHAPTERS[1], CHAPTERS[2]
    mine = b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5, "note": "mine"}'
    (work / edited).write_bytes(mine)
    (work / deleted).unlink()
    (work / "my_notes.ipynb").write_bytes(mine)

    report = course.prepare(work)

    assert report.copied == [deleted]
    assert report.edited == [edited]
    assert sorted(report.unchanged) == sorted(set(CHAPTERS) - {edited, deleted})
    assert (work / edited).read_bytes() == mine  # never overwritten
    assert (work / "my_notes.ipynb").read_bytes() == mine  # not the course's: left alone
    assert (work / deleted).read_bytes() == (ROOT / "notebooks" / deleted).read_bytes()
    lines = report.lines()
    assert f"copied 1 notebook(s): {deleted}" in lines
    assert any(line.startswith(f"kept your edited {edited} (never overwritten") for line in lines)
    assert f"kept {len(CHAPTERS) - 2} notebook(s) already there, unchanged" in lines


def test_a_file_in_place_of_the_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "work").write_text("not a folder")
    with pytest.raises(ConfigError, match=r"--dir: .* exists and is not a folder"):
        course.prepare(tmp_path / "work")


def test_wslab_lab_gives_one_line_for_a_bad_dir(tmp_path: Path) -> None:
    pytest.importorskip("jupyterlab")  # without it, that is the one line
    (tmp_path / "work").write_text("not a folder")
    result = run_wslab(tmp_path, "lab", "--dir", "work")
    assert result.returncode == 2
    assert (
        result.stderr
        == f"wslab lab: error: --dir: {tmp_path / 'work'} exists and is not a folder\n"
    )


def test_the_command_is_jupyterlab_on_the_folder_with_the_users_options_last(
    tmp_path: Path,
) -> None:
    command = course.lab_command(tmp_path, ["--no-browser", "--ServerApp.root_dir=/elsewhere"])
    assert command[:4] == [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={tmp_path}"]
    assert command[-2:] == ["--no-browser", "--ServerApp.root_dir=/elsewhere"]  # theirs win


# -- wslab lab is JupyterLab ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http(url: str, body: dict[str, object] | None = None) -> object:
    """GET (or POST ``body`` as JSON to) ``url`` and decode the JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.timeout(180)
def test_sigterm_to_wslab_lab_stops_jupyterlab_and_its_kernel(tmp_path: Path) -> None:
    """The PID of ``wslab lab`` is JupyterLab's own (exec), so SIGTERM reaches it; it shuts its
    kernel down and exits, and no process of it is left."""
    pytest.importorskip("jupyterlab")
    psutil = pytest.importorskip("psutil")
    port = free_port()
    log = tmp_path / "lab.log"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "wslab.cli", "lab", "--dir", "course", "--",
            "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0", "--IdentityProvider.token=",
            "--ServerApp.disable_check_xsrf=True",
        ],
        stdout=log.open("ab"), stderr=subprocess.STDOUT, env=clean_env(tmp_path), cwd=tmp_path,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    family: list[psutil.Process] = []
    try:
        # Start-up of JupyterLab on a busy machine: the deadline is only an upper bound.
        deadline = time.monotonic() + 90
        listing = None
        while listing is None and process.poll() is None and time.monotonic() < deadline:
            try:
                listing = http(f"{base}/api/contents")
            except (OSError, ValueError):
                time.sleep(0.5)
        assert listing is not None, log.read_text()[-3000:]
        assert isinstance(listing, dict)
        assert sorted(item["name"] for item in listing["content"]) == CHAPTERS
        lab = psutil.Process(process.pid)
        assert lab.cmdline()[1:3] == ["-m", "jupyterlab"], "wslab lab did not exec JupyterLab"

        kernel = http(f"{base}/api/kernels", {"name": "python3"})
        assert isinstance(kernel, dict) and kernel.get("id"), kernel
        family = [lab, *lab.children(recursive=True)]
        assert len(family) > 1, "the kernel is not a child of JupyterLab"

        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        _, alive = psutil.wait_procs(family[1:], timeout=30)
        assert alive == [], f"left running after SIGTERM: {[p.cmdline() for p in alive]}"
        mentioning = [
            p.info["pid"]
            for p in psutil.process_iter(["pid", "cmdline"])
            if any(str(tmp_path) in part for part in p.info["cmdline"] or ())
        ]
        assert mentioning == [], "a process of this JupyterLab is still running"
    finally:
        for member in family[1:]:
            with contextlib.suppress(psutil.Error):
                member.kill()
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
