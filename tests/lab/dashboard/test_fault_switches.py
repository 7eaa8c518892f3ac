"""The fault switches on a real hub with real load: counted effects, no timing."""

from __future__ import annotations

from typing import Any

import pytest

from wslab.hub import Hub
from wslab.lab import open_dashboard

pytestmark = pytest.mark.slow


async def test_a_frozen_client_backs_up_its_queue_and_thaws(tmp_path: Any, unique_name: str,
                                                             hub_settings: dict[str, Any],
                                                             until: Any) -> None:
    # The heartbeat is slowed down so that only the growing queue ends this story: the frozen
    # clients would not answer pings, and the kernel's socket buffers hold megabytes first.
    settings = {**hub_settings, "ping_interval": 120.0, "pong_timeout": 120.0}
    hub = await Hub.start(database=f"sqlite:///{tmp_path / 'f.db'}",
                          broker=f"memory://{unique_name}", **settings)
    # Two workers: one is frozen, the other goes on sending to the frozen one's clients.
    dash = await open_dashboard(hub, display=False, interval=0.2, workers=2)
    try:
        dash.set_load(clients=4, rate=400, payload_size=4000)
        await dash.settled()
        assert await until(lambda: dash.snapshot()["connections"] == 4)
        assert await until(lambda: (dash.snapshot()["delivered_per_s"] or 0) > 0)
        pid = dash.faults.freeze_client()
        assert pid in dash.views[0].load.pids
        assert dash.controls.freeze.value is True
        # The frozen worker's clients stop reading: once the sockets' buffers are full, their
        # hub-side queues fill up (and the hub shows it).
        assert await until(lambda: (dash.snapshot()["queue_max"] or 0) > 0, timeout=120)
        dash.faults.thaw_client()
        assert dash.snapshot()["faults"]["frozen_pid"] is None
        # Thawed, the clients read again (or, had a queue overflowed, were closed with 1013).
        assert await until(lambda: dash.snapshot()["queue_max"] == 0, timeout=120)
    finally:
        await dash.stop()
        await hub.stop()


async def test_broker_blackhole_and_cut_switches(hub: Hub, until: Any) -> None:
    dash = await open_dashboard(hub, display=False, interval=0.1)
    try:
        await dash.faults.stop_broker()
        assert await until(lambda: dash.snapshot()["broker_up"] is False)
        await dash.faults.start_broker()
        assert await until(lambda: dash.snapshot()["broker_up"] is True)

        dash.set_clients(3)
        await dash.settled()
        assert await until(lambda: dash.snapshot()["connections"] == 3)
        dash.faults.blackhole()
        assert dash.views[0].proxy.blackholed
        dash.faults.blackhole(False)
        assert not dash.views[0].proxy.blackholed
        dash.faults.cut()  # every relayed connection is reset: the hub sees them go
        assert await until(lambda: dash.snapshot()["connections"] == 0)
        assert await until(lambda: any(k.startswith("in ") and v for k, v in
                                       dash.snapshot()["close_codes"].items()))
        with pytest.raises(Exception, match=r"rate must be"):
            dash.faults.bandwidth(-1)
    finally:
        await dash.stop()
