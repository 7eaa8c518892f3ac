"""Open loop against closed loop under a pause, and a sweep that finds a limited hub's knee."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pandas as pd
import pytest

from wslab.hub import Hub
from wslab.lab.faults import TcpProxy
from wslab.lab.loadgen import LoadResult, SweepFrame, run_load, start_load, sweep


@pytest.fixture
async def proxy(hub: Hub) -> AsyncIterator[TcpProxy]:
    proxy = await TcpProxy("127.0.0.1", hub.port).start()
    try:
        yield proxy
    finally:
        await proxy.stop()


async def paused_run(hub: Hub, url: str, mode: str, pause: object) -> LoadResult:
    """One sender at 20 msg/s for 3 s; ``pause`` is applied once, after the first second."""
    ticks: list[object] = []
    run = start_load(url, clients=2, senders=1, rate=20, duration=3, workers=1, mode=mode,
                     token_factory=hub.token, on_tick=ticks.append)  # fmt: skip
    while not ticks and not run.done:
        await asyncio.sleep(0.02)
    await pause()  # type: ignore[operator]
    return await run.wait(60)


def slow_share(result: LoadResult) -> float:
    """The share of deliveries charged with at least a third of the run's worst latency."""
    lat = result.deliveries["latency"]
    return float((lat >= lat.max() / 3).mean())


async def test_open_loop_charges_a_stalled_link_to_every_message_the_closed_loop_hides(
    hub: Hub, proxy: TcpProxy
) -> None:
    """The link stops for 1 s. Open loop: every message due in that second waits and says so.
    Closed loop: the sender waits for its ack, so one message carries the pause and the ones
    after it are sent late and timed from then (coordinated omission)."""

    async def stall() -> None:
        proxy.stall()
        await asyncio.sleep(1.0)
        proxy.unstall()

    url = proxy.url_for(hub.ws_url)
    results = {mode: await paused_run(hub, url, mode, stall) for mode in ("open", "closed")}
    means = {mode: r.deliveries["latency"].mean() for mode, r in results.items()}
    assert means["open"] > 2 * means["closed"], means
    assert slow_share(results["open"]) > 3 * slow_share(results["closed"])
    # The closed loop sent no more than the open one: it fell behind the offered rate.
    assert len(results["closed"].sends) <= len(results["open"].sends)


async def test_open_loop_charges_a_paused_hub_to_every_message(hub: Hub) -> None:
    """The hub's own event loop stops for 0.5 s (the hub process paused)."""

    async def freeze() -> None:
        time.sleep(0.5)  # blocks the loop the hub runs in: the hub stops answering

    results = {mode: await paused_run(hub, hub.ws_url, mode, freeze) for mode in ("open", "closed")}
    means = {mode: r.deliveries["latency"].mean() for mode, r in results.items()}
    assert means["open"] > 2 * means["closed"], means


async def test_sweep_finds_no_knee_at_low_rates(hub: Hub) -> None:
    frame = await sweep(hub, rates=[10, 20], clients=2, duration=1, workers=1, p99_ms=1000)
    assert isinstance(frame, SweepFrame)
    assert list(frame["offered_rate"]) == [10, 20]
    assert frame["kept_up"].all() and not frame["knee"].any()
    assert frame.knee is None


@pytest.mark.parametrize("rates", [[], [10, -1], "10"])
async def test_sweep_refuses_bad_rates(hub: Hub, rates: object) -> None:
    with pytest.raises(ValueError, match="rates"):
        await sweep(hub, rates=rates, clients=2, duration=1)  # type: ignore[arg-type]


@pytest.mark.slow
async def test_sweep_finds_the_knee_of_a_bandwidth_capped_hub(hub: Hub, proxy: TcpProxy) -> None:
    """Behind a link capped to carry about 25 messages/s of this load, 5 and 10 msg/s keep up
    and 100 is the knee: far enough either side that a busy machine cannot move it."""
    url = proxy.url_for(hub.ws_url)
    common = {"clients": 2, "workers": 1, "token_factory": hub.token, "drain": 1.0}
    before = proxy.bytes_down
    probe = await run_load(url, rate=20, messages=40, **common)
    per_message = (proxy.bytes_down - before) / len(probe.sends)  # its acks and deliveries
    proxy.set_bandwidth(25 * per_message, direction="down")
    frame = await sweep(url, rates=[5, 10, 100, 200], duration=2, p99_ms=1000, **common)
    assert frame.knee == 100, frame[["offered_rate", "p99_ms", "delivered_ratio", "kept_up"]]
    assert list(frame["kept_up"]) == [True, True, False, False]
    assert frame.loc[frame["knee"], "offered_rate"].tolist() == [100]
    assert isinstance(frame, pd.DataFrame)


async def test_a_worker_of_listeners_waits_out_a_stalled_hub_for_the_others_messages(
    hub: Hub,
) -> None:
    """Worker 1 holds only listeners: its own sends are done at the start. The hub stops for
    1 s mid-run; the messages sent after the stall still reach its listeners."""
    ticks: list[object] = []
    run = start_load(hub, clients=4, senders=1, rate=20, duration=3, workers=2,
                     on_tick=ticks.append)  # fmt: skip
    while not ticks and not run.done:
        await asyncio.sleep(0.02)
    time.sleep(1.0)  # blocks the loop the hub runs in
    result = await run.wait(60)
    sent = len(result.sends)
    assert sent > 20
    assert len(result.acks) == sent
    assert len(result.deliveries) == 4 * sent  # every listener, the listener-only worker's too
