"""What an idle authenticated connection holds on the hub: no task, no upgrade headers.

Thousands of connections mostly sit idle, so the hub keeps as little per connection as it can
(docs/benchmarks.md, the memory row): once a session is open the connection is handed over to
the session loop and a task runs only while one of its messages is being handled; the upgrade
request's headers (the token among them) are released after authentication. These tests check
those properties, not a memory figure.
"""

from __future__ import annotations

import asyncio

from wslab.hub import Hub
from wslab.testing import wait_until

from .conftest import Connect

PER_CONNECTION = ("_run_handler", "_consume")


def connection_tasks() -> list[asyncio.Task[object]]:
    """The server's tasks that belong to one connection (a handler, a message being handled)."""
    return [
        task
        for task in asyncio.all_tasks()
        if getattr(task.get_coro(), "__name__", "") in PER_CONNECTION
    ]


async def test_an_idle_authenticated_connection_has_no_task(hub: Hub, client_for: Connect) -> None:
    clients = [await client_for(hub, name) for name in ("alice", "bob", "carol")]
    for client in clients:
        await client.expect("presence:snapshot")
    await wait_until(lambda: not connection_tasks(), "the handler tasks have ended")
    connections = list(hub.server.connections.values())
    assert len(connections) == 3
    assert all(connection.handed_over for connection in connections)


async def test_the_upgrade_headers_are_released_after_authentication(
    hub: Hub, client_for: Connect
) -> None:
    client = await client_for(hub, "alice")
    (connection,) = hub.server.connections.values()
    await wait_until(lambda: connection.handed_over, "the session is open")
    assert connection.headers.get("Authorization") is None
    assert len(connection.headers) == 0
    assert connection.query == {}
    assert connection.path == "/ws"  # what later steps still read stays
    assert connection.remote is not None
    assert client.hello["user_id"] == "alice"


async def test_a_handed_over_connection_handles_its_messages_in_order(
    hub: Hub, client_for: Connect
) -> None:
    alice = await client_for(hub, "alice")
    bob = await client_for(hub, "bob")
    await wait_until(lambda: not connection_tasks(), "the handler tasks have ended")
    # Sent back to back, so they queue while the first is handled: acks and deliveries keep
    # the order they were sent in, one message at a time.
    for i in range(20):
        await alice.send({"type": "chat:message", "room": "lobby", "content": f"m{i}", "ref": i})
    acks = [await alice.expect("ack", ref=i) for i in range(20)]
    assert [ack["seq"] for ack in acks] == sorted(ack["seq"] for ack in acks)
    got = [(await bob.expect("chat:message", content=f"m{i}"))["seq"] for i in range(20)]
    assert got == [ack["seq"] for ack in acks]
    # Handled: no task stays behind for either connection.
    await wait_until(lambda: not connection_tasks(), "the message tasks have ended")


async def test_a_closed_handed_over_connection_leaves_and_is_unlisted(
    hub: Hub, client_for: Connect
) -> None:
    alice = await client_for(hub, "alice")
    bob = await client_for(hub, "bob")
    await wait_until(lambda: not connection_tasks(), "the handler tasks have ended")
    await bob.close()
    await wait_until(lambda: len(hub.server.connections) == 1, "bob's connection is unlisted")
    listed = await alice.request({"type": "presence:list", "room": "lobby", "ref": "p"})
    assert [user["user_id"] for user in listed["users"]] == ["alice"]
    await wait_until(lambda: not connection_tasks(), "the close was handled")
