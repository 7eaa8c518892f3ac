"""The load generator against a real hub: open loop, patterns, bad input, reaping, a sweep."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from wslab.hub import Hub
from wslab.lab.loadgen import LoadError, run_load, start_load, sweep


@pytest.fixture
async def hub(tmp_path: Path, unique_name: str) -> AsyncIterator[Hub]:
    hub = await Hub.start(
        port=0,
        database=f"sqlite:///{tmp_path / 'chat.db'}",
        broker=f"memory://{unique_name}",
        connections_per_ip_per_minute=100_000,
        max_connections_per_ip=20_000,
        rate_messages_per_second=1000,
        rate_burst=1000,
    )
    try:
        yield hub
    finally:
        await hub.stop()
        # Every worker is reaped when the run ends, whatever happened.
        assert multiprocessing.active_children() == []
        assert _children() == []


def _children() -> list[int]:
    """Live child processes of this process, from /proc (no psutil)."""
    me = str(os.getpid())
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me and fields[0] != "Z" and not _is_resource_tracker(entry):
            found.append(int(entry))
    return found


def _is_resource_tracker(pid: str) -> bool:
    # multiprocessing's own long-lived helper, started once per interpreter: not a worker.
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"resource_tracker" in f.read()
    except OSError:
        return False


async def test_open_loop_delivers_every_message_to_every_member(hub: Hub) -> None:
    ticks: list[dict[str, object]] = []
    result = await run_load(hub, clients=4, rate=40, messages=40, workers=2, on_tick=ticks.append)
    summary = result.summary()
    assert summary["sent"] == 40 and summary["acked"] == 40
    assert summary["delivered"] == 40 * 4  # one room: every message reaches all four
    assert set(result.acks["ref"]) == set(result.sends["ref"])
    assert result.acks["seq"].sort_values().tolist() == list(range(1, 41))
    assert (result.deliveries["latency"] > 0).all()
    assert (result.deliveries["received"] >= result.deliveries["scheduled"]).all()
    assert result.per_second["delivered"].sum() == 160
    assert ticks and sum(int(t["sent"]) for t in ticks) == 40  # streamed while it ran


@pytest.mark.parametrize("compression", [False, True])
async def test_clients_offer_compression_only_when_asked(hub: Hub, compression: bool) -> None:
    ticks: list[object] = []
    run = start_load(hub, clients=3, rate=10, duration=60, on_tick=ticks.append,
                     compression=compression)  # fmt: skip
    while not ticks:  # every client is connected once the first tick comes
        await asyncio.sleep(0.05)
    negotiated = [row["extensions"] for row in hub.connections.rows()]
    run.stop()
    result = await asyncio.wait_for(run, 20)
    assert len(negotiated) == 3
    assert all((e is not None) is compression for e in negotiated), negotiated
    assert result.summary()["delivered"] > 0


@pytest.mark.parametrize("pattern", ["many_rooms", "direct", "mixed"])
async def test_patterns(hub: Hub, pattern: str) -> None:
    result = await run_load(
        hub, clients=4, rate=40, messages=20, workers=1, pattern=pattern, rooms=2
    )
    d = result.deliveries
    assert len(result.acks) == 20
    if pattern == "many_rooms":
        # two rooms of two members: each message reaches its room's two members only
        assert len(d) == 40 and set(d["room"]) == {"load0", "load1"}
    elif pattern == "direct":
        assert set(d["room"].str.startswith("dm:")) == {True}
        pairs = set(zip(d["sender"], d["receiver"], strict=True))
        assert ("load0", "load1") in pairs and ("load3", "load0") in pairs
    else:
        assert d["room"].str.startswith("dm:").any() and (~d["room"].str.startswith("dm:")).any()


async def test_latency_counts_from_the_scheduled_time(hub: Hub) -> None:
    """A hub stalled for 0.5 s: the open loop charges the stall to every message scheduled during
    it, the closed loop only to the one message in flight (coordinated omission)."""

    def stall(_: object) -> None:
        if not stalled:
            stalled.append(True)
            time.sleep(0.5)  # blocks the loop the hub runs in: the hub stops answering

    means = {}
    for mode in ("open", "closed"):
        stalled: list[bool] = []
        result = await run_load(
            hub, clients=2, senders=1, rate=20, duration=2.5, workers=1, mode=mode, on_tick=stall
        )
        assert stalled
        means[mode] = result.deliveries["latency"].mean()
    assert means["open"] > 2 * means["closed"]


async def test_bad_input_fails_fast(hub: Hub) -> None:
    with pytest.raises(ValueError, match="clients"):
        await run_load(hub, clients=0, rate=10, duration=1)
    with pytest.raises(ValueError, match="rate"):
        await run_load(hub, clients=1, rate=-5, duration=1)
    with pytest.raises(ValueError, match="duration"):
        await run_load(hub, clients=1, rate=5)
    with pytest.raises(ValueError, match="pattern"):
        await run_load(hub, clients=1, rate=5, duration=1, pattern="everywhere")
    with pytest.raises(LoadError, match="unreachable"):
        await run_load("ws://127.0.0.1:9/ws", clients=1, rate=5, duration=1)


async def test_refused_authentication_is_an_error(hub: Hub) -> None:
    with pytest.raises(LoadError, match="worker 0"):
        await run_load(hub, clients=1, rate=5, duration=1, workers=1, tokens=["not-a-token"])


async def test_a_worker_that_dies_is_an_error(hub: Hub) -> None:
    run = start_load(hub, clients=2, rate=10, duration=30, workers=2)
    while len(run._processes) < 2:
        await asyncio.sleep(0.02)
    run._processes[1].kill()
    with pytest.raises(LoadError, match="died"):
        await asyncio.wait_for(run, 20)


async def test_stop_ends_a_long_run(hub: Hub) -> None:
    ticks: list[object] = []
    run = start_load(hub, clients=2, rate=10, duration=60, workers=1, on_tick=ticks.append)
    while not ticks:
        await asyncio.sleep(0.05)
    run.stop()
    result = await asyncio.wait_for(run, 20)
    assert result.stopped and 0 < len(result.sends) < 600


async def test_sweep_finds_no_knee_at_low_rates(hub: Hub) -> None:
    frame = await sweep(hub, [10, 20], clients=2, duration=1, workers=1, p99_ms=1000)
    assert list(frame["offered_rate"]) == [10, 20]
    assert frame["kept_up"].all() and not frame["knee"].any()
    with pytest.raises(ValueError):
        await sweep(hub, [], clients=2, duration=1)


@pytest.mark.slow
async def test_a_thousand_connections_across_two_workers(hub: Hub) -> None:
    result = await run_load(
        hub, clients=1000, rate=50, duration=2, workers=2, pattern="many_rooms", rooms=100, ramp=1.0
    )
    summary = result.summary()
    assert summary["acked"] == summary["sent"] > 0
    assert summary["delivered"] == summary["sent"] * 10
