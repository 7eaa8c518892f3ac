"""The load generator against a real hub: open loop, patterns, readiness, streaming, bad input."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from wslab.hub import Hub
from wslab.lab.faults import TcpProxy
from wslab.lab.loadgen import LoadError, run_load, start_load


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
    assert {t["worker"] for t in ticks} == {0, 1}
    assert result.connect_seconds > 0


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


async def test_sending_starts_once_every_join_is_acked(hub: Hub) -> None:
    """Through a link that takes 0.3 s each way, a join's ack needs 0.6 s: a run that waited a
    fixed moment before sending would miss members; waiting for the acks misses none."""
    proxy = await TcpProxy("127.0.0.1", hub.port).start()
    try:
        proxy.set_latency(0.3)
        result = await run_load(proxy.url_for(hub.ws_url), clients=6, rate=60, messages=6,
                                workers=2, token_factory=hub.token, connect_timeout=20)
    finally:
        await proxy.stop()
    assert len(result.sends) == 6
    assert len(result.deliveries) == 6 * 6  # every member was in the room for the first message


async def test_snapshots_stream_while_the_run_goes_on(hub: Hub) -> None:
    run = start_load(hub, clients=2, rate=20, duration=2.5, workers=2, record=False)
    seen = []
    async for snapshot in run:
        assert not run.done or seen  # the first snapshot comes while the run is going
        seen.append(snapshot)
    result = await run
    assert len(seen) >= 4  # two workers, two seconds and more
    assert {"worker", "time_ns", "sent", "acked", "delivered", "p50_ms", "p99_ms"} <= set(seen[0])
    assert sum(s["sent"] for s in seen) == 50
    assert sum(s["delivered"] for s in seen) == 100
    assert len(result.sends) == len(result.deliveries) == 0  # record=False keeps nothing


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"clients": 0, "rate": 10, "duration": 1}, "clients"),
        ({"clients": 1, "rate": -5, "duration": 1}, "rate"),
        ({"clients": 1, "rate": "fast", "duration": 1}, "rate"),
        ({"clients": 1, "rate": 5}, "duration"),
        ({"clients": 1, "rate": 5, "duration": 1, "pattern": "everywhere"}, "pattern"),
        ({"clients": 1, "rate": 5, "duration": 1, "ramp": -1}, "ramp"),
        ({"clients": 2, "rate": 5, "duration": 1, "workers": 3}, "workers"),
        ({"clients": 1, "rate": 5, "duration": 1, "mode": "half"}, "mode"),
        ({"clients": 1, "rate": 5, "duration": 1, "speed": 2}, "speed"),
        ({"clients": 1, "rate": 5, "duration": 1, "progress": "loud"}, "progress"),
        ({"clients": 10_001, "rate": 5, "duration": 1}, "clients"),
    ],
)
async def test_bad_input_is_one_line_naming_the_parameter(
    hub: Hub, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        await run_load(hub, **kwargs)
    assert "\n" not in str(caught.value)


async def test_an_unreachable_hub_is_an_error(hub: Hub) -> None:
    with pytest.raises(LoadError, match="unreachable") as caught:
        await run_load("ws://127.0.0.1:9/ws", clients=1, rate=5, duration=1)
    assert "\n" not in str(caught.value)
    run = start_load("ws://127.0.0.1:9/ws", clients=1, rate=5, duration=1)
    with pytest.raises(LoadError, match="unreachable"):
        async for _ in run.stream():  # a dashboard reading the stream hears of it too
            pass


async def test_a_hub_that_accepts_but_never_answers_is_an_error(hub: Hub) -> None:
    proxy = await TcpProxy("127.0.0.1", hub.port).start()
    try:
        proxy.partition()  # TCP connects; the upgrade never gets an answer
        with pytest.raises(LoadError, match="connect_timeout=1"):
            await run_load(proxy.url_for(hub.ws_url), clients=2, rate=5, duration=1,
                           workers=1, token_factory=hub.token, connect_timeout=1)
    finally:
        await proxy.stop()


async def test_messages_the_hub_refuses_are_counted_and_quoted(tmp_path: Path) -> None:
    # A hub that takes one message per second per client: the rest are refused, not acked.
    strict = await Hub.start(port=0, database=f"sqlite:///{tmp_path / 'strict.db'}",
                             rate_messages_per_second=1, rate_burst=1)  # fmt: skip
    try:
        result = await run_load(strict, clients=1, rate=20, messages=4, workers=1)
    finally:
        await strict.stop()
    summary = result.summary()
    assert summary["refused"] == result.refused >= 1
    assert summary["acked"] + summary["refused"] == 4
    assert result.errors and "RATE_LIMITED" in result.errors[0]


async def test_refused_authentication_is_an_error(hub: Hub) -> None:
    with pytest.raises(LoadError, match=r"worker 0.*4001"):
        await run_load(hub, clients=1, rate=5, duration=1, workers=1, tokens=["not-a-token"])


@pytest.mark.slow
async def test_a_thousand_connections_across_two_workers(hub: Hub) -> None:
    # Readiness is progress-based, so a loaded machine makes this slower, not a failure; the
    # drain waits up to 10 s of quiet for the last acks (it ends early once all are in).
    result = await run_load(
        hub, clients=1000, rate=50, duration=2, workers=2, pattern="many_rooms", rooms=100,
        ramp=1.0, drain=10,
    )
    summary = result.summary()
    assert summary["acked"] == summary["sent"] > 0
    assert summary["delivered"] == summary["sent"] * 10
