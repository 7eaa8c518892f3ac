"""A handler hands its connection over to a consumer and returns: no task while it is idle.

The server then runs a task for the connection only while messages wait, hands them to the
consumer in order and one at a time, and once the connection has closed calls ``finished``,
closes and unlists it — what the end of a handler does for a connection kept by its task.
"""

from __future__ import annotations

import asyncio

import pytest

from wslab.foundation.codes import CloseCode
from wslab.foundation.errors import ConnectionClosed
from wslab.infrastructure.connection import Connection, ConnectionLimits, Message
from wslab.infrastructure.engines import connect, serve
from wslab.infrastructure.server import Server
from wslab.testing import wait_until

pytestmark = pytest.mark.timeout(30)

WAIT = 5.0


class Recorder:
    """A consumer that answers each message after a turn of the loop, and notes what it saw."""

    def __init__(self, *, fail_on: str | None = None, stop_on: str | None = None) -> None:
        self.seen: list[Message] = []
        self.busy = 0
        self.most_busy = 0
        self.resumed_count = 0
        self.done: list[Connection] = []
        self.fail_on = fail_on
        self.stop_on = stop_on

    def resumed(self, connection: Connection) -> None:
        self.resumed_count += 1

    async def message(self, connection: Connection, message: Message) -> bool:
        self.busy += 1
        self.most_busy = max(self.most_busy, self.busy)
        try:
            await asyncio.sleep(0.001)  # a real await: the next message arrives meanwhile
            if message == self.fail_on:
                raise RuntimeError("the consumer failed")
            self.seen.append(message)
            connection.send_nowait(f"got {message}")
            return message != self.stop_on
        finally:
            self.busy -= 1

    async def finished(self, connection: Connection) -> None:
        await asyncio.sleep(0)
        self.done.append(connection)


def tasks_of(server: Server) -> set[asyncio.Task[object]]:
    return {task for task in server._tasks if not task.done()}


async def start(consumer: Recorder) -> tuple[Server, list[Connection]]:
    accepted: list[Connection] = []

    async def handler(connection: Connection) -> None:
        accepted.append(connection)
        assert connection.hand_over(consumer)

    server = await serve(handler, limits=ConnectionLimits(close_timeout=1.0))
    return server, accepted


async def read(client: Connection, n: int) -> list[Message]:
    return [await asyncio.wait_for(client.recv(), WAIT) for _ in range(n)]


async def test_an_idle_handed_over_connection_has_no_task() -> None:
    consumer = Recorder()
    server, accepted = await start(consumer)
    try:
        client = await connect(server.url)
        await wait_until(lambda: accepted and not tasks_of(server), "the handler has returned")
        (connection,) = accepted
        assert connection.handed_over and connection.state.name == "OPEN"
        await client.send("hello")
        assert await read(client, 1) == ["got hello"]
        await wait_until(lambda: not tasks_of(server), "the message's task has ended")
        assert server.connections == {connection.id: connection}
        await client.close()
    finally:
        await server.close()


async def test_messages_are_handled_in_order_one_at_a_time() -> None:
    consumer = Recorder()
    server, _ = await start(consumer)
    try:
        client = await connect(server.url)
        sent = [f"m{i}" for i in range(50)]
        for text in sent:
            client.send_nowait(text)
        assert await read(client, 50) == [f"got {text}" for text in sent]
        assert consumer.seen == sent
        assert consumer.most_busy == 1
        await client.close()
    finally:
        await server.close()


async def test_the_close_finishes_the_consumer_once_and_unlists_the_connection() -> None:
    consumer = Recorder()
    server, accepted = await start(consumer)
    try:
        client = await connect(server.url)
        await client.send("one")
        await read(client, 1)
        await client.close()
        await wait_until(lambda: not server.connections, "the connection is unlisted")
        assert consumer.done == accepted
        assert not accepted[0].handed_over
    finally:
        await server.close()


async def test_a_consumer_that_stops_closes_the_connection() -> None:
    consumer = Recorder(stop_on="bye")
    server, _ = await start(consumer)
    try:
        client = await connect(server.url)
        await client.send("bye")
        assert await read(client, 1) == ["got bye"]
        with pytest.raises(ConnectionClosed):
            await read(client, 1)
        assert client.close_code == CloseCode.NORMAL_CLOSURE
        await wait_until(lambda: len(consumer.done) == 1 and not server.connections)
    finally:
        await server.close()


async def test_a_failing_consumer_ends_its_connection_with_1011() -> None:
    consumer = Recorder(fail_on="boom")
    server, _ = await start(consumer)
    failures: list[BaseException] = []
    server.on_connection_error = lambda connection, error: failures.append(error)
    try:
        client = await connect(server.url)
        await client.send("boom")
        with pytest.raises(ConnectionClosed):
            await read(client, 1)
        assert client.close_code == CloseCode.INTERNAL_ERROR
        await wait_until(lambda: len(consumer.done) == 1 and not server.connections)
        assert [str(error) for error in failures] == ["the consumer failed"]
    finally:
        await server.close()


async def test_shutdown_waits_for_handed_over_connections_to_finish() -> None:
    consumer = Recorder()
    server, accepted = await start(consumer)
    client = await connect(server.url)
    await wait_until(lambda: accepted and not tasks_of(server), "the handler has returned")
    await server.close()
    assert consumer.done == accepted
    assert not server.connections
    await asyncio.wait_for(client.wait_closed(), WAIT)
    assert client.close_code == CloseCode.GOING_AWAY


async def test_where_there_is_no_server_to_run_tasks_nothing_is_handed_over() -> None:
    # A client's connection, and the websockets engine's (which keeps a task per connection
    # anyway), stay with recv().
    seen: list[bool] = []

    async def handler(connection: Connection) -> None:
        seen.append(connection.hand_over(Recorder()))
        async for message in connection:
            await connection.send(message)

    server = await serve(handler, engine="websockets")
    try:
        client = await connect(server.url)
        assert not client.hand_over(Recorder())
        await client.send("echo")
        assert await read(client, 1) == ["echo"]
        await client.close()
    finally:
        await server.close()
    assert seen == [False]
