"""Authentication end to end: the three ways a token may arrive, refusals (4001), expiry and
refresh, the Origin check and the endpoint path (HTTP statuses at the handshake)."""

from __future__ import annotations

import asyncio

import pytest

from wslab.foundation.codes import CloseCode
from wslab.foundation.errors import HandshakeError
from wslab.hub import Hub
from wslab.integration.auth import issue_token

from .conftest import Connect, RawClient, StartHub, both_engines, open_client

pytestmark = pytest.mark.timeout(60)


async def refused(client: RawClient) -> None:
    """The hub closed ``client`` with 4001 without ever greeting it."""
    assert await client.closed_with() == CloseCode.AUTHENTICATION_FAILED
    assert client.of_type("system:connected") == []
    await client.close()


@both_engines
@pytest.mark.parametrize("via", ["header", "message", "query"])
async def test_each_way_of_presenting_a_token(hub: Hub, client_for: Connect, via: str) -> None:
    alice = await client_for(hub, "alice", via=via)
    assert alice.hello["user_id"] == "alice"
    assert hub.chat.sessions[alice.connection_id].auth_method == via
    reply = await alice.request({"type": "chat:message", "content": f"via {via}"})
    assert reply["type"] == "ack"


async def test_header_wins_over_query(hub: Hub) -> None:
    url = f"{hub.ws_url}?token=garbage"
    client = await open_client(url, hub.token("alice"), via="header")
    assert client.hello["user_id"] == "alice"
    await client.close()


@both_engines
@pytest.mark.parametrize("via", ["header", "message", "query"])
async def test_a_bad_token_is_closed_with_4001(hub: Hub, via: str) -> None:
    client = await open_client(hub.ws_url, "not.a.jwt", via=via, greet=False)
    await refused(client)


async def test_a_token_signed_with_another_secret_is_refused(hub: Hub) -> None:
    forged = issue_token("some-other-secret-that-is-long-enough", "alice", roles=("admin",))
    await refused(await open_client(hub.ws_url, forged, greet=False))


async def test_an_expired_token_is_refused(hub: Hub) -> None:
    await refused(await open_client(hub.ws_url, hub.token("alice", ttl=-10), greet=False))


@both_engines
async def test_a_first_message_other_than_auth_is_closed_with_4001(hub: Hub) -> None:
    client = await open_client(hub.ws_url, greet=False)
    await client.send({"type": "chat:message", "content": "let me in"})
    await refused(client)


@both_engines
async def test_no_auth_message_in_time_is_closed_with_4001(start_hub: StartHub) -> None:
    hub = await start_hub(auth_timeout=0.3)
    client = await open_client(hub.ws_url, greet=False)
    await refused(client)


async def test_auth_again_after_authenticating_is_an_error(hub: Hub, client_for: Connect) -> None:
    alice = await client_for(hub, "alice")
    reply = await alice.request({"type": "auth", "token": hub.token("alice")})
    assert reply["type"] == "error"
    assert not alice.closed


@both_engines
async def test_expiring_token_warned_refreshed_or_closed(hub: Hub, client_for: Connect) -> None:
    # Two connections with short-lived tokens: one refreshes in time, the other does not.
    keeps = await client_for(hub, "alice", ttl=2)
    lapses = await client_for(hub, "bob", ttl=2)

    warning = await keeps.expect("auth:expiring")
    assert 0 <= warning["expires_in"] <= 3
    refreshed = await keeps.request(
        {"type": "auth:refresh", "token": hub.token("alice", username="Alice", ttl=60)}
    )
    assert refreshed["type"] == "auth:refreshed"
    assert refreshed["expires_in"] > 30

    assert (await lapses.expect("auth:expiring"))["expires_in"] <= 3
    assert await lapses.closed_with() == CloseCode.AUTHENTICATION_FAILED
    # the original expiry is past: the refreshed connection still works
    reply = await keeps.request({"type": "chat:message", "content": "still here"})
    assert reply["type"] == "ack"
    assert not keeps.closed


async def test_refresh_with_someone_elses_token_closes(hub: Hub, client_for: Connect) -> None:
    alice = await client_for(hub, "alice")
    await alice.send({"type": "auth:refresh", "token": hub.token("mallory")})
    assert await alice.closed_with() == CloseCode.AUTHENTICATION_FAILED


async def test_refresh_with_a_bad_token_closes(hub: Hub, client_for: Connect) -> None:
    alice = await client_for(hub, "alice")
    await alice.send({"type": "auth:refresh", "token": "not.a.jwt"})
    assert await alice.closed_with() == CloseCode.AUTHENTICATION_FAILED


@both_engines
async def test_disallowed_origin_gets_403(start_hub: StartHub) -> None:
    hub = await start_hub(allowed_origins=("http://chat.example.org",))
    token = hub.token("alice")
    with pytest.raises(HandshakeError) as info:
        await open_client(hub.ws_url, token, origin="http://evil.example.com")
    assert info.value.status == 403
    client = await open_client(hub.ws_url, token, origin="http://chat.example.org")
    assert client.hello["user_id"] == "alice"
    await client.close()
    assert (await hub.health())["status"] == "ok"


@both_engines
async def test_wrong_path_gets_404(hub: Hub) -> None:
    with pytest.raises(HandshakeError) as info:
        await open_client(hub.url.replace("http", "ws") + "/elsewhere", hub.token("alice"))
    assert info.value.status == 404


async def test_without_auth_everyone_is_a_guest(start_hub: StartHub) -> None:
    hub = await start_hub(auth_required=False)
    first = await open_client(hub.ws_url, name="one")
    second = await open_client(hub.ws_url, name="two")
    assert first.hello["user_id"].startswith("guest-")
    assert first.hello["user_id"] != second.hello["user_id"]
    ack = await first.request({"type": "chat:message", "content": "hello from a guest"})
    assert ack["type"] == "ack"
    assert (await second.expect("chat:message"))["from_user"] == first.hello["user_id"]
    with pytest.raises(Exception, match="without authentication"):
        hub.token("alice")
    for client in (first, second):
        await client.close()


async def test_connection_closed_while_authenticating_is_forgotten(start_hub: StartHub) -> None:
    hub = await start_hub(auth_timeout=5)
    client = await open_client(hub.ws_url, greet=False)
    await client.close()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while hub.server.connections and loop.time() < deadline:
        await asyncio.sleep(0.01)
    assert not hub.server.connections
    assert len(hub.connections) == 0
