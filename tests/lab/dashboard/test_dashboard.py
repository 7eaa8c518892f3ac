"""The dashboard on a real hub: controls drive real load workers, faults move what receivers
measure, the frame panel decodes a real connection, and stopping leaves nothing behind.

No timing assertions: waits are bounded conditions, and effects are compared with wide
margins (a rate of 10 against a rate of 80; 200 ms of added round trip against none).
"""

from __future__ import annotations

import statistics
from typing import Any

import pytest

from wslab.foundation.errors import ConfigError
from wslab.hub import Hub
from wslab.lab import Dashboard, open_dashboard
from wslab.lab.dashboard import dashboard as dashboard_module
from wslab.lab.dashboard.panels import FramePanel


def _since(dash: Dashboard, name: str, t: float) -> list[float]:
    series = dash.series(name)
    return [v for ts, v in series.items() if ts >= t and v == v]


def _now(dash: Dashboard) -> float:
    import time

    return time.time() - dash.t0


async def test_open_dashboard_shows_a_hub_and_stop_leaves_nothing(hub: Hub, running: Any,
                                                                  until: Any) -> None:
    before = running()
    dash = await open_dashboard(hub, display=False, interval=0.1)
    assert isinstance(dash, Dashboard) and dash.started
    assert await until(lambda: dash.snapshot()["images"] >= 1)  # a figure came back as a PNG
    assert dash.views[0].panel.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    snap = dash.snapshot()
    assert snap["connections"] == 0 and snap["store_up"] is True
    assert "connections: 0" in dash.views[0].panel.header.value
    await dash.stop()
    assert dash.stopped
    assert await until(lambda: running() == before), running()


async def test_an_idle_hub_is_not_redrawn(hub: Hub, until: Any) -> None:
    dash = await open_dashboard(hub, display=False, interval=0.05)
    try:
        assert await until(lambda: dash.sampler.ticks >= 20)
        counts = dash.snapshot()["redraws"][hub.hub_id]
        # Nothing changes on an idle hub: a couple of first drawings, then only skips.
        assert counts["skipped_unchanged"] >= 10
        assert counts["draws"] <= 5
    finally:
        await dash.stop()


@pytest.mark.slow
async def test_the_rate_control_changes_the_load_generators_rate(hub: Hub, until: Any) -> None:
    dash = await open_dashboard(hub, display=False, interval=0.25)
    try:
        dash.set_clients(4)
        dash.set_rate(10)
        await dash.settled()
        run = dash.views[0].load.run
        assert run is not None and run.spec.rate == 10 and run.spec.clients == 4
        assert await until(lambda: dash.snapshot()["connections"] == 4)
        assert await until(lambda: len(_since(dash, "sent_per_s", 0)) >= 3)
        t = _now(dash)
        assert await until(lambda: len(_since(dash, "sent_per_s", t)) >= 3)
        slow = statistics.median(_since(dash, "sent_per_s", t))

        dash.set_rate(80)
        await dash.settled()
        assert dash.views[0].load.run.spec.rate == 80
        assert dash.views[0].load.starts == 2
        t = _now(dash) + 1.0  # past the restart
        assert await until(lambda: len(_since(dash, "sent_per_s", t)) >= 3)
        fast = statistics.median(_since(dash, "sent_per_s", t))
        assert slow < 20 < 40 < fast  # 10/s against 80/s, counted at the load workers
        assert dash.snapshot()["load"]["rate"] == 80
        assert dash.controls.rate.value == 80  # the widget follows the plain method
        with pytest.raises(ValueError, match="positive"):
            dash.set_rate(-5)
        with pytest.raises(ValueError, match="clients"):
            dash.set_clients(10_000)
    finally:
        await dash.stop()


@pytest.mark.slow
async def test_added_latency_shows_in_the_receivers_latency(hub: Hub, until: Any) -> None:
    dash = await open_dashboard(hub, display=False, interval=0.25)
    try:
        dash.set_load(clients=3, rate=30)
        await dash.settled()
        assert await until(lambda: len(_since(dash, "latency_p50_ms", 0)) >= 3)
        t = _now(dash)
        assert await until(lambda: len(_since(dash, "latency_p50_ms", t)) >= 2)
        quiet = statistics.median(_since(dash, "latency_p50_ms", t))

        dash.faults.latency(0.1)  # each way: a message goes up and comes back down, +200 ms
        assert dash.snapshot()["faults"]["latency"] == 0.1
        assert dash.controls.latency.value == 100  # the slider follows the plain method
        t = _now(dash) + 1.5
        assert await until(lambda: len(_since(dash, "latency_p50_ms", t)) >= 3)
        slowed = statistics.median(_since(dash, "latency_p50_ms", t))
        assert slowed - quiet > 100, (quiet, slowed)
    finally:
        await dash.stop()


async def test_frame_panel_decodes_a_real_connection(hub: Hub, running: Any,
                                                     until: Any) -> None:
    before = running()
    dash = await open_dashboard(hub, display=False, interval=0.1, frames=True)
    stream = dash.views[0].watch.stream
    try:
        assert await until(lambda: any("system:connected" in (f.get("text") or "")
                                       for f in stream.recent))
        assert [s for _, s, _ in stream.states] == ["CONNECTING", "OPEN"]
        ways = {f["direction"] for f in stream.recent}
        assert ways == {"client → hub", "hub → client"}  # both directions, decoded
        assert all(f["masked"] for f in stream.recent if f["direction"] == "client → hub")
        # The heartbeat's pings and pongs pass between compressed chat frames, and are never
        # compressed themselves (RFC 7692: control frames are not).
        assert await until(lambda: {"PING", "PONG"} <= {f["opcode"] for f in stream.recent})
        assert any(f["compressed"] for f in stream.recent if f["opcode"] == "TEXT")
        control = [f for f in stream.recent if f["opcode"] in ("PING", "PONG", "CLOSE")]
        assert control and not any(f["compressed"] for f in control)
        panel = dash.views[0].frame_panel
        # The live panel shows the newest rows only: a joiner's presence:snapshot per room and
        # the pings soon push system:connected out of them, so the panel is checked against
        # what the stream holds now, and its renderer over the whole stream for the decoding.
        assert await until(lambda: f"{stream.seen_frames} frames seen" in panel.html.value)
        assert "system:connected" in FramePanel(stream, rows=len(stream.recent)).render()
        await dash.views[0].watch.client.close()
        assert await until(lambda: [s for _, s, _ in stream.states][-1] == "CLOSED")
        assert "CLOSING" in [s for _, s, _ in stream.states]
        assert len(stream.recent) <= stream.recent.maxlen
    finally:
        await dash.stop()
    assert await until(lambda: running() == before), running()  # the watched client, its proxy and their tasks are gone


async def test_store_switch_takes_the_store_down_and_back(hub: Hub, until: Any) -> None:
    from wslab.client import ChatClient

    dash = await open_dashboard(hub, display=False, interval=0.1)
    client = await ChatClient(hub.ws_url, rooms=("r",)).connect()
    try:
        await dash.faults.stop_store()
        assert await hub.store.ping() is False
        with pytest.raises(Exception):  # noqa: B017 -- degraded: stored later, not acked now
            await client.send_message("while the store is down", room="r")
        assert await until(lambda: dash.snapshot()["store_up"] is False)
        await dash.faults.start_store()
        assert await hub.store.ping() is True
        with pytest.raises(ConfigError, match="no load"):
            dash.faults.freeze_client()
    finally:
        await client.close()
        await dash.stop()


async def test_a_second_dashboard_replaces_the_first(hub: Hub, running: Any, until: Any) -> None:
    before = running()
    first = await open_dashboard(hub, display=False)
    second = open_dashboard(hub, display=False)
    second.set_clients(2)  # asked before it runs: waits for its proxy, then starts
    await second
    try:
        assert first.stopped and not second.stopped
        assert [second] == dashboard_module._OPEN
        await second.settled()
        assert await until(lambda: second.snapshot()["connections"] == 2)
    finally:
        await second.stop()
    assert await until(lambda: running() == before), running()


@pytest.mark.slow
async def test_stopping_the_hub_stops_its_dashboard(tmp_path: Any, unique_name: str,
                                                    hub_settings: dict[str, Any],
                                                    running: Any, until: Any) -> None:
    before = running()
    hub = await Hub.start(database=f"sqlite:///{tmp_path / 'c.db'}",
                          broker=f"memory://{unique_name}", **hub_settings)
    dash = await open_dashboard(hub, display=False, interval=0.1)
    dash.set_clients(2)
    await dash.settled()
    assert await until(lambda: dash.snapshot()["connections"] == 2)
    await hub.stop()
    assert await until(lambda: dash.stopped)
    await dash.stop_task
    assert await until(lambda: running() == before), running()  # no task, thread or load/renderer process left


def test_open_dashboard_needs_a_running_loop() -> None:
    with pytest.raises(ConfigError, match="running event loop"):
        open_dashboard("http://127.0.0.1:1/")
