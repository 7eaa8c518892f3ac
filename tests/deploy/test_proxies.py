"""Two hubs on PostgreSQL and Redis behind the real HAProxy and nginx, with the shipped configs.

What ``docs/deployment.md`` promises, over real sockets through the real proxy:

- clients spread over the hubs (``leastconn`` / ``least_conn``: the second client lands on the
  other hub, as each one's ``system:connected`` ``server`` says) and chat with each other;
- ``/healthz`` answers through the proxy;
- a hub that stops closes its clients with 1001; they reconnect through the proxy to the other
  hub and keep chatting, and the proxy takes the stopped hub out of rotation;
- the hub's own page is admitted through the proxy (Host passed on), other origins are refused;
  the page and ``/healthz`` are public, ``/metrics`` is not;
- HAProxy's health check takes a hub whose ``/healthz`` says 503 out of rotation, and puts it
  back once it answers 200 again (open-source nginx cannot poll ``/healthz``: the docs say so).

Redis is shared with other runs: the hubs get a broker prefix of this test's own.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.application.conftest import WAIT, StartHub, healthz, open_client, postgres_url
from tests.conftest import need_service
from tests.deploy.proxies import KINDS, Proxy, proxy_binary, start_proxy
from wslab.client import ChatClient, ChatMessage, Disconnected, Reconnected
from wslab.foundation.codes import CloseCode
from wslab.foundation.errors import InvalidHandshakeResponse
from wslab.hub import Hub
from wslab.infrastructure.engines.wslab import connect
from wslab.testing import http_request, wait_until

pytestmark = [pytest.mark.services, pytest.mark.timeout(60)]

#: The public origin the deployment's pages are served from (in the hubs' allow-list).
PUBLIC_ORIGIN = "https://chat.example.org"

StartProxy = Callable[[Sequence[Hub]], Proxy]


@pytest.fixture(params=KINDS)
def proxy_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def start_proxies(proxy_kind: str, tmp_path: Path) -> Iterator[StartProxy]:
    """``start([hub_a, hub_b])``: the proxy of this test's kind in front of the hubs.

    Every proxy started is stopped at the end of the test, its workers included.
    """
    binary = proxy_binary(proxy_kind)
    need_service(
        binary is not None, f"{proxy_kind} is not installed (apt-get install {proxy_kind})"
    )
    assert binary is not None
    started: list[Proxy] = []

    def start(hubs: Sequence[Hub]) -> Proxy:
        backends = [f"127.0.0.1:{hub.port}" for hub in hubs]
        proxy = start_proxy(proxy_kind, binary, backends, tmp_path / proxy_kind)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


@pytest.fixture
async def shared_hubs(
    start_hub: StartHub, postgres_dsn: str, pg_schema: str, redis_url: str, unique_name: str
) -> list[Hub]:
    """Two hubs sharing one PostgreSQL schema and one Redis, configured as the docs say."""
    settings: dict[str, Any] = {
        "database": postgres_url(postgres_dsn, pg_schema),
        "broker": redis_url,
        "broker_prefix": f"{unique_name}:",
        "allowed_origins": (PUBLIC_ORIGIN,),
        # Behind a proxy every client has the proxy's address: the per-IP limits are the
        # proxy's job, the hub's own are raised to its whole capacity (docs/deployment.md).
        "max_connections_per_ip": 10_000,
        "connections_per_ip_per_minute": 100_000,
    }
    return [await start_hub(**settings), await start_hub(**settings)]


@pytest.fixture
async def chat_clients() -> AsyncIterator[Callable[..., Any]]:
    """``await chat(url, hub, "alice", room)``: a connected ChatClient, closed at the end."""
    clients: list[ChatClient] = []

    async def make(url: str, hub: Hub, user: str, room: str) -> ChatClient:
        client = ChatClient(
            url,
            token=hub.token(user, username=user.title()),
            rooms=(room,),
            backoff_initial=0.05,
            backoff_max=0.5,
            request_timeout=WAIT,
        )
        clients.append(client)
        return await client.connect()

    yield make
    for client in clients:
        with contextlib.suppress(Exception):
            await client.close()


async def says(client: ChatClient, content: str, room: str) -> ChatMessage:
    """The chat message with ``content`` as ``client`` receives it."""
    return await client.next_event(ChatMessage, timeout=WAIT, where=lambda m: m.content == content)


def server_of(client: ChatClient) -> str:
    assert client.connection_info is not None
    return client.connection_info.server


async def test_clients_spread_chat_and_fail_over_through_the_proxy(
    shared_hubs: list[Hub],
    start_proxies: StartProxy,
    chat_clients: Callable[..., Any],
    unique_name: str,
) -> None:
    hub_a = shared_hubs[0]  # tokens of either hub are good on both (one secret)
    proxy = start_proxies(shared_hubs)
    room = unique_name
    alice = await chat_clients(proxy.ws_url, hub_a, "alice", room)
    bob = await chat_clients(proxy.ws_url, hub_a, "bob", room)
    by_id = {hub.hub_id: hub for hub in shared_hubs}
    assert {server_of(alice), server_of(bob)} == set(by_id), "both landed on one hub"

    # They chat across the two hubs, through the proxy.
    await alice.send_message("hello bob", room=room)
    assert (await says(bob, "hello bob", room)).from_user == "alice"
    await bob.send_message("hi alice", room=room)
    assert (await says(alice, "hi alice", room)).from_user == "bob"

    health = await healthz(proxy.url)
    assert health["status"] == "ok" and health["hub_id"] in by_id

    # alice's hub stops (what SIGTERM does to `wslab serve`): 1001, and she comes back
    # through the proxy on the other hub.
    gone, survivor = by_id[server_of(alice)], by_id[server_of(bob)]
    await gone.stop()
    dropped = await alice.next_event(Disconnected, timeout=WAIT)
    assert dropped.code == CloseCode.GOING_AWAY and dropped.will_reconnect
    await alice.next_event(Reconnected, timeout=WAIT)
    assert server_of(alice) == survivor.hub_id

    await alice.send_message("still here", room=room)
    assert (await says(bob, "still here", room)).from_user == "alice"
    await bob.send_message("welcome back", room=room)
    assert (await says(alice, "welcome back", room)).from_user == "bob"

    # The proxy has taken the stopped hub out: new clients all land on the survivor.
    gone_address = f"127.0.0.1:{gone.port}"
    await wait_until(lambda: proxy.took_out(gone_address), f"{proxy.kind} dropping {gone_address}")
    for name in ("carol", "dave"):
        late = await chat_clients(proxy.ws_url, survivor, name, room)
        assert server_of(late) == survivor.hub_id
    assert (await healthz(proxy.url))["hub_id"] == survivor.hub_id


async def test_origin_checks_and_public_paths_through_the_proxy(
    shared_hubs: list[Hub], start_proxies: StartProxy
) -> None:
    proxy = start_proxies(shared_hubs)
    token = shared_hubs[0].token("alice")
    # The hub's own page, served through the proxy: same host as the request, admitted.
    # The public origin from the allow-list: admitted.
    for origin in (proxy.url, PUBLIC_ORIGIN):
        client = await open_client(proxy.ws_url, token, origin=origin, name=origin)
        await client.close()
    # Anyone else's page: refused during the handshake, through the proxy.
    with pytest.raises(InvalidHandshakeResponse) as refused:
        await connect(proxy.ws_url, origin="https://evil.example", open_timeout=WAIT)
    assert refused.value.status == 403
    # The page and /healthz are public; /metrics stays on the private network.
    assert (await http_request(proxy.url, "/", timeout=WAIT)).status == 200
    assert (await http_request(proxy.url, "/metrics", timeout=WAIT)).status == 403
    assert (await http_request(shared_hubs[0].url, "/metrics", timeout=WAIT)).status == 200


@pytest.mark.parametrize("proxy_kind", ["haproxy"])
async def test_haproxy_takes_a_degraded_hub_out_of_rotation(
    shared_hubs: list[Hub], start_proxies: StartProxy, chat_clients: Callable[..., Any]
) -> None:
    hub_a, hub_b = shared_hubs
    proxy = start_proxies(shared_hubs)
    address_a = f"127.0.0.1:{hub_a.port}"
    await hub_a.store.close()  # PostgreSQL gone for hub A: its /healthz says 503
    assert (await healthz(hub_a.url))["status"] == "degraded"
    await wait_until(lambda: proxy.took_out(address_a), "HAProxy marking hub1 DOWN")

    # Every new client goes to hub B, although hub A still accepts connections.
    for name in ("alice", "bob", "carol"):
        client = await chat_clients(proxy.ws_url, hub_b, name, "lobby")
        assert server_of(client) == hub_b.hub_id
    assert (await healthz(proxy.url))["hub_id"] == hub_b.hub_id

    await hub_a.store.open()  # back: two good answers and hub A is in rotation again
    await wait_until(lambda: proxy.put_back(address_a), "HAProxy marking hub1 UP")
    # leastconn: hub A has no clients, hub B three, so the next one goes to A.
    dave = await chat_clients(proxy.ws_url, hub_b, "dave", "lobby")
    assert server_of(dave) == hub_a.hub_id
