"""The live dashboard in a real JupyterLab, driven by Playwright on Debian's Chromium.

A JupyterLab server is started in a temporary folder holding one small notebook; the page
runs its first cell, which starts a hub in the kernel, opens the dashboard on it and starts
load clients. The test then reads the page's DOM: the connection count in the dashboard's
header and the figure's image must change while the clients connect and send — the widgets
really update in a front end, not only in the kernel. The second cell stops the dashboard
and the hub; the kernel and the server are then shut down and every process reaped.

Waits are Playwright's auto-retrying ``expect`` and polling with generous bounds: nothing here
measures time. ``WSLAB_DASHBOARD_SCREENSHOT=path`` also saves the live dashboard there (the
README's ``docs/img/dashboard.png`` is made that way).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("playwright")
pytest.importorskip("jupyterlab")
pytest.importorskip("ipywidgets")
from playwright.sync_api import Page, expect, sync_playwright

pytestmark = [pytest.mark.services, pytest.mark.slow]

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
WAIT_MS = 90_000  # a cold JupyterLab and kernel on a loaded machine are slow to come up
TOKEN = "wslab-dashboard-browser-test"
REPO = Path(__file__).resolve().parents[2]

START_CELL = """\
import asyncio
from wslab.hub import Hub
from wslab.lab import open_dashboard

hub = await Hub.start(port=0, auth_required=False, ping_interval=0.5,
                      connections_per_ip_per_minute=100_000, rate_messages_per_second=1000,
                      rate_burst=1000)
dash = open_dashboard(hub, frames=True, max_clients=50)
dash.set_load(clients=12, rate=60)
# Partway through, the network slows down: the latency panel shows the step.
asyncio.get_running_loop().call_later(8, dash.faults.latency, 0.04)
"""

STOP_CELL = """\
await dash.stop()
await hub.stop()
print("stopped", dash.stopped)
"""


def _notebook(path: Path) -> None:
    def cell(source: str) -> dict[str, Any]:
        return {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                "source": source.splitlines(keepends=True)}

    path.write_text(json.dumps({
        "cells": [cell(START_CELL), cell(STOP_CELL)],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                    "name": "python3"}},
        "nbformat": 4, "nbformat_minor": 5,
    }))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (from /proc; zombies are already dead)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(entry)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent]
        found += children
        frontier += children
    return found


@pytest.fixture
def jupyter_lab(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A JupyterLab server in ``tmp_path`` (with the notebook), stopped and reaped afterwards."""
    _notebook(tmp_path / "dashboard.ipynb")
    # No "get Jupyter news?" pop-up over the page.
    settings = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
        "JUPYTER_CONFIG_DIR": str(tmp_path / ".jupyter"), "JUPYTER_RUNTIME_DIR":
        str(tmp_path / ".runtime"), "MPLBACKEND": "Agg"}
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser",
               "--LabApp.expose_app_in_browser=True", f"--ServerApp.token={TOKEN}",
               f"--port={port}", "--ServerApp.port_retries=0", "--ip=127.0.0.1",
               f"--ServerApp.root_dir={tmp_path}", "--LabApp.news_url=",
               f"--LabApp.user_settings_dir={tmp_path / 'settings'}",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    log = open(tmp_path / "jupyter.log", "wb")  # noqa: SIM115 -- closed below
    server = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT_MS / 1000
        while True:
            if server.poll() is not None:
                pytest.fail("JupyterLab exited: " + (tmp_path / "jupyter.log").read_text()[-2000:])
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=2).read()
                break
            if time.monotonic() > deadline:
                pytest.fail("JupyterLab did not answer in time")
            time.sleep(0.3)
        yield {"base": base, "server": server, "dir": tmp_path}
    finally:
        below = _descendants(server.pid)
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)  # JupyterLab shuts its kernels down on SIGTERM
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(10)
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and [p for p in below if _alive(p)]:
            time.sleep(0.2)
        for pid in below:
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        left = [p for p in below if _alive(p)]
        assert not left, f"processes left behind by JupyterLab: {left}"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _kernel_idle(page: Page) -> None:
    page.wait_for_function(
        """() => {
            const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
            const k = w && w.sessionContext && w.sessionContext.session
                      && w.sessionContext.session.kernel;
            return k && k.status === 'idle';
        }""",
        timeout=WAIT_MS,
    )


def _run_cell(page: Page, index: int) -> None:
    page.evaluate(
        """async (index) => {
            const panel = window.jupyterapp.shell.currentWidget;
            panel.content.activeCellIndex = index;
            await window.jupyterapp.commands.execute('notebook:run-cell');
        }""",
        index,
    )


def _number(text: str) -> int:
    match = re.search(r"connections: ([\d,]+)", text)
    return int(match.group(1).replace(",", "")) if match else -1


def test_dashboard_updates_live_in_jupyterlab(chromium_path: str,
                                              jupyter_lab: dict[str, Any]) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1900})
            page.set_default_timeout(WAIT_MS)
            page.goto(f"{jupyter_lab['base']}/lab/tree/dashboard.ipynb?token={TOKEN}")
            page.wait_for_selector(".jp-Notebook .jp-Cell")
            _kernel_idle(page)
            _run_cell(page, 0)

            header = page.locator(".wslab-dash-connections").first
            expect(header).to_be_visible(timeout=WAIT_MS)
            first_count = _number(header.inner_text())
            plot = page.locator(".wslab-dash-plot img, img.wslab-dash-plot").first
            expect(plot).to_have_attribute("src", re.compile(r"^(blob:|data:)"), timeout=WAIT_MS)
            first_src = plot.get_attribute("src")

            # The load's twelve clients (and the dashboard's watched connection) arrive.
            expect(header).to_have_text(re.compile(r"connections: 13\b"), timeout=WAIT_MS)
            assert _number(header.inner_text()) != first_count
            # New figures keep coming while they send: the image is replaced, more than once.
            seen = {first_src}
            deadline = time.monotonic() + WAIT_MS / 1000
            while len(seen) < 4 and time.monotonic() < deadline:
                seen.add(plot.get_attribute("src"))
                page.wait_for_timeout(200)
            assert len(seen) >= 4, "the dashboard's figure did not change in the page"
            # Delivery latency measured at the receivers reached the page.
            expect(page.locator(".wslab-dash-header").first).to_contain_text(
                re.compile(r"latency p50 [\d.]+ ms"), timeout=WAIT_MS)
            expect(page.locator(".wslab-dash-frames").first).to_contain_text("chat:message")

            shot = os.environ.get("WSLAB_DASHBOARD_SCREENSHOT")
            if shot:
                page.wait_for_timeout(9000)  # past the added latency, so the step shows
                page.locator(".wslab-dashboard").first.screenshot(path=shot)

            _run_cell(page, 1)
            expect(page.locator(".jp-OutputArea-output").filter(has_text="stopped True")
                   ).to_be_visible(timeout=WAIT_MS)
            page.evaluate("() => window.jupyterapp.commands.execute('kernelmenu:shutdown')")
        finally:
            browser.close()
