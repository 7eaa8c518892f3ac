"""The dashboard's sources read real hubs: in the loop, in a thread, and through /metrics."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from wslab.client import ChatClient
from wslab.foundation.errors import ConfigError
from wslab.hub import Hub
from wslab.lab.dashboard.sampler import HubSeries, Sampler
from wslab.lab.dashboard.sources import RemoteSource, parse_metrics, source_for


async def test_sampler_reads_real_metrics_while_clients_connect(hub: Hub, until: Any) -> None:
    source = source_for(hub)
    view = HubSeries(source, maxlen=50, rate_window=1.0, t0=0.0)
    sampler = Sampler([view], interval=0.05)
    await sampler.tick()
    assert view.latest is not None and view.latest.connections == 0
    clients = [await ChatClient(hub.ws_url, rooms=("r",)).connect() for _ in range(3)]
    try:
        await sampler.tick()
        assert view.series["connections"].last == 3
        await clients[0].send_message("hello", room="r")
        await until(lambda: hub.metrics.get("websocket_messages_total").value(direction="out")
                    >= 3)
        await sampler.tick()
        assert view.latest.messages_in >= 1
        assert view.latest.messages_out >= 3  # the one message reached the three members
        assert view.latest.queue_max == 0 and view.latest.queue_total == 0
        assert view.latest.store_up is True and view.latest.broker_up is True
        # The heartbeat pings every 0.5 s in these tests: an RTT arrives.
        sampler.start()
        assert await until(lambda: "rtt_p50_ms" in view.series)
    finally:
        await sampler.stop()
        for client in clients:
            await client.close()
    await sampler.tick()
    assert view.series["connections"].last == 0
    assert any(key.endswith("1000") for key in view.latest.close_codes)


async def test_remote_source_parses_a_real_hubs_metrics(hub: Hub, until: Any) -> None:
    source = RemoteSource(hub.url)
    client = await ChatClient(hub.ws_url, rooms=("r",)).connect()
    try:
        await client.send_message("over the wire", room="r")
        await until(lambda: hub.metrics.get("websocket_messages_total").value(direction="in")
                    >= 1)
        reading = await source.read()
        text = await source.fetch()
    finally:
        await client.close()
    assert reading.error is None
    assert reading.connections == 1
    assert reading.messages_in >= 1
    assert reading.store_up is True and reading.broker_up is True
    assert reading.queue_max == 0
    assert "wslab_outgoing_queued_messages" in text
    assert parse_metrics(text).connections == reading.connections


async def test_remote_source_reports_an_unreachable_hub_without_raising() -> None:
    source = RemoteSource("http://127.0.0.1:9/", timeout=0.5)
    reading = await source.read()
    assert reading.error is not None


def test_sources_refuse_what_they_cannot_watch() -> None:
    with pytest.raises(ConfigError, match="http://"):
        source_for("ftp://example.org")
    with pytest.raises(ConfigError, match="watches a Hub"):
        source_for(42)


async def test_threaded_hub_is_read_on_its_own_loop(unique_name: str) -> None:
    threaded = await asyncio.to_thread(
        Hub.start_in_thread, port=0, auth_required=False, broker=f"memory://{unique_name}"
    )
    try:
        source = source_for(threaded)
        client = await ChatClient(threaded.ws_url).connect()
        try:
            reading = await source.read()
        finally:
            await client.close()
        assert reading.connections == 1
        assert source.running
    finally:
        await asyncio.to_thread(threaded.stop)
    assert not source.running
