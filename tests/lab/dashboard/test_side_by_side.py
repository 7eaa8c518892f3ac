"""Several hubs in one dashboard: a hub in this loop, one in a thread, one reached by URL."""

from __future__ import annotations

import asyncio
from typing import Any

from wslab.client import ChatClient
from wslab.hub import Hub
from wslab.lab import open_dashboard


async def test_three_kinds_of_hub_side_by_side(hub: Hub, unique_name: str, running: Any,
                                               until: Any) -> None:
    await asyncio.to_thread(lambda: None)  # the loop's own executor thread is not a leak
    before = running()
    threaded = await asyncio.to_thread(Hub.start_in_thread, port=0, auth_required=False,
                                       broker=f"memory://{unique_name}-t")
    remote = await Hub.start(port=0, auth_required=False, broker=f"memory://{unique_name}-r")
    try:
        dash = await open_dashboard([hub, threaded, remote.url], display=False, interval=0.1)
        clients = [await ChatClient(threaded.ws_url).connect(),
                   await ChatClient(remote.ws_url).connect(),
                   await ChatClient(remote.ws_url).connect()]
        try:
            assert len(dash.widget.children[1].children) == 3  # one column per hub
            assert await until(lambda: [r["connections"] for r in dash.snapshot()["hubs"]]
                               == [0, 1, 2])
            assert dash.to_dataframe()["connections"].tolist() == [0, 1, 2]
            with_figures = lambda: all(v.panel.images for v in dash.views)  # noqa: E731
            assert await until(with_figures)
        finally:
            for client in clients:
                await client.close()
            await dash.stop()
    finally:
        await remote.stop()
        await asyncio.to_thread(threaded.stop)
    assert await until(lambda: running() == before), running()


async def test_stopping_a_threaded_hub_stops_its_dashboard(unique_name: str, running: Any,
                                                           until: Any) -> None:
    await asyncio.to_thread(lambda: None)  # the loop's own executor thread is not a leak
    before = running()
    threaded = await asyncio.to_thread(Hub.start_in_thread, port=0, auth_required=False,
                                       broker=f"memory://{unique_name}")
    dash = await open_dashboard(threaded, display=False, interval=0.1)
    await asyncio.to_thread(threaded.stop)
    assert await until(lambda: dash.stopped)
    await dash.stop_task
    assert await until(lambda: running() == before), running()
