"""Admission against a real hub: a per-IP cap on open connections, and monitoring that is never
locked out by the WebSocket budget of its address.
"""

from __future__ import annotations

import pytest

from wslab.foundation.errors import HandshakeError
from wslab.testing import http_request

from .conftest import Connect, StartHub, both_engines


@both_engines
async def test_per_ip_cap_refuses_the_next_connection_but_not_healthz(
    start_hub: StartHub, client_for: Connect
) -> None:
    hub = await start_hub(max_connections_per_ip=3)
    clients = [await client_for(hub, f"user{i}") for i in range(3)]
    with pytest.raises(HandshakeError) as info:
        await client_for(hub, "one-too-many")
    assert "429" in str(info.value) or getattr(info.value, "status", None) == 429
    assert (await http_request(hub.url, "/healthz")).status == 200
    assert (await http_request(hub.url, "/metrics")).status == 200
    # The ones admitted still chat, and a place freed is a place taken.
    reply = await clients[0].request({"type": "chat:message", "content": "still here"})
    assert reply["type"] == "ack"
    await clients[2].close()
    await client_for(hub, "next")


@both_engines
async def test_healthz_is_outside_the_connection_rate_budget(
    start_hub: StartHub, client_for: Connect
) -> None:
    hub = await start_hub(connections_per_ip_per_minute=2)
    await client_for(hub, "alice")
    await client_for(hub, "bob")
    with pytest.raises(HandshakeError):
        await client_for(hub, "carol")
    for _ in range(5):  # monitoring polls from the same address
        assert (await http_request(hub.url, "/healthz")).status == 200
