"""Controlling a load run from a notebook: progress bars, stop, wait, dead workers, reaping."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from wslab.hub import Hub
from wslab.lab.loadgen import LoadError, LoadRun, run_load, start_load


async def first_tick(run: LoadRun, ticks: list[object]) -> None:
    while not ticks and not run.done:
        await asyncio.sleep(0.05)


def alive(pid: int) -> bool:
    """True while ``pid`` is a live process (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# -- progress --------------------------------------------------------------------------------------


async def test_text_progress_counts_up_to_the_planned_messages(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    run = start_load(hub, clients=2, rate=20, duration=2.5, workers=1, progress="text")
    assert run.progress is not None and run.progress.kind == "text"
    values = []
    while not run.done:
        values.append(run.progress.value)
        await asyncio.sleep(0.1)
    await run
    lines = capsys.readouterr().err.split("\r")
    assert run.progress.value == run.progress.total == 50
    assert any(0 < v < 50 for v in values)  # it moved while the run went on
    assert values == sorted(values)
    assert lines[-1].strip() == "load: 50/50 messages sent (100%), done"


async def test_widget_progress_updates_while_the_run_goes_on(hub: Hub) -> None:
    ipywidgets = pytest.importorskip("ipywidgets")
    run = start_load(hub, clients=2, rate=20, duration=2.5, workers=1, progress="widget")
    assert run.progress is not None
    bar = run.progress.bar
    assert isinstance(bar, ipywidgets.IntProgress) and bar.max == 50
    values: list[int] = []
    bar.observe(lambda change: values.append(change["new"]), names="value")
    result = await run
    assert len(values) >= 2 and values == sorted(values)  # one update per second, upwards
    assert values[-1] == bar.max == len(result.sends)
    assert bar.bar_style == "success"


async def test_a_long_run_gets_a_bar_unless_someone_reads_its_snapshots(hub: Hub) -> None:
    quiet = start_load(hub, clients=1, rate=5, duration=3, workers=1)
    long = start_load(hub, clients=1, rate=5, duration=60, workers=1)
    streamed = start_load(hub, clients=1, rate=5, duration=60, workers=1, on_tick=print)
    assert quiet.progress is None and streamed.progress is None
    assert long.progress is not None
    for run in (quiet, long, streamed):
        run.stop()
    for run in (quiet, long, streamed):
        await run.wait(30)


# -- stop, wait, done ------------------------------------------------------------------------------


async def test_stop_ends_a_long_run(hub: Hub) -> None:
    ticks: list[object] = []
    run = start_load(hub, clients=2, rate=10, duration=60, workers=1, on_tick=ticks.append)
    await first_tick(run, ticks)
    assert not run.done
    run.stop()
    result = await run.wait(20)
    assert run.done
    assert result.stopped and 0 < len(result.sends) < 600


async def test_stop_while_connecting_ends_the_run_before_any_send(hub: Hub) -> None:
    run = start_load(hub, clients=20, rate=10, duration=60, workers=1, ramp=60)
    while run.connected < 1:
        await asyncio.sleep(0.05)
    run.stop()
    result = await run.wait(20)
    assert result.stopped and len(result.sends) == 0


async def test_wait_gives_up_with_the_run_still_going(hub: Hub) -> None:
    run = start_load(hub, clients=1, rate=5, duration=60, workers=1)
    with pytest.raises(LoadError, match=r"timeout=0\.5"):
        await run.wait(0.5)
    assert not run.done
    run.stop()
    assert (await run.wait(20)).stopped


# -- a worker that dies ----------------------------------------------------------------------------


@pytest.mark.parametrize("when", ["connecting", "sending"])
async def test_a_worker_killed_mid_run_is_an_error(hub: Hub, when: str) -> None:
    ticks: list[object] = []
    # The ramp keeps worker 1 connecting for a while; the ticks say the run is sending.
    run = start_load(hub, clients=4, rate=10, duration=60, workers=2, on_tick=ticks.append,
                     ramp=30 if when == "connecting" else 0)  # fmt: skip
    if when == "connecting":
        while run.connected < 1:
            await asyncio.sleep(0.02)
    else:
        await first_tick(run, ticks)
    os.kill(run.pids[1], signal.SIGKILL)
    with pytest.raises(LoadError) as caught:
        await run.wait(30)
    assert str(caught.value) == "load worker 1 died (killed by SIGKILL)"
    assert not any(alive(pid) for pid in run.pids)


# -- nothing outlives the kernel -------------------------------------------------------------------

KERNEL = r"""
import asyncio, json, sys
from wslab.lab.loadgen import start_load

async def main():
    url, tokens, how = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    ticks = []
    run = start_load(url, clients=2, rate=10, duration=60, workers=2, tokens=tokens,
                     on_tick=ticks.append)
    while not ticks:
        await asyncio.sleep(0.05)
    print(json.dumps(run.pids), flush=True)
    if how == "killed":
        await asyncio.sleep(3600)  # until the test kills this process with SIGKILL
    # "exit": the interpreter ends with the run going (a kernel shut down mid-run)

asyncio.run(main())
"""


@pytest.mark.parametrize("how", ["exit", "killed"])
async def test_no_worker_outlives_its_kernel(hub: Hub, tmp_path: Path, how: str) -> None:
    script = tmp_path / "kernel.py"
    script.write_text(KERNEL)
    tokens = json.dumps([hub.token("load0"), hub.token("load1")])
    kernel = await asyncio.create_subprocess_exec(
        sys.executable, str(script), hub.ws_url, tokens, how, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert kernel.stdout is not None
        pids = json.loads(await asyncio.wait_for(kernel.stdout.readline(), 60))
        assert len(pids) == 2 and all(alive(pid) for pid in pids)
        if how == "killed":
            kernel.send_signal(signal.SIGKILL)
        await asyncio.wait_for(kernel.wait(), 30)
        deadline = time.monotonic() + 30
        while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert not any(alive(pid) for pid in pids), "a load worker outlived its kernel"
    finally:
        if kernel.returncode is None:
            kernel.kill()
            await kernel.wait()


async def test_a_run_with_every_worker_ending_cleanly_leaves_none(hub: Hub) -> None:
    result = await run_load(hub, clients=3, rate=30, messages=6, workers=3)
    assert len(result.acks) == 6
    assert multiprocessing.active_children() == []
