"""``MessageRouter``: envelopes in, replies and error envelopes out, through middleware.

The contract (docs/protocol.md): invalid JSON, a non-object, a missing or non-string ``type``, a
bad ``ref`` or a binary message get ``INVALID_INPUT``; an unknown type gets ``NOT_FOUND``; an
unknown version is refused and a deprecated one answered with a ``warning``; a handler's
``WslabError`` keeps its code, anything else becomes a generic ``INTERNAL_ERROR`` (the traceback
goes to the log only); every reply and error carries the request's ``ref``. One bad message never
ends the connection — the end-to-end test proves that over a real socket.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from wslab.foundation.codes import ErrorCode
from wslab.foundation.errors import PermissionDeniedError, RateLimitedError, ValidationError
from wslab.infrastructure.connection import Connection
from wslab.infrastructure.engines import connect, serve
from wslab.infrastructure.router import (
    MessageRouter,
    Middleware,
    Reply,
    RoutedMessage,
    RouteHandler,
)

GUARD = 10.0


@pytest.fixture
async def connection() -> AsyncIterator[Connection]:
    """The server side of a real connection (the router only passes it through to handlers)."""
    accepted: asyncio.Queue[Connection] = asyncio.Queue(maxsize=1)

    async def hold(server_side: Connection) -> None:
        await accepted.put(server_side)
        await server_side.wait_closed()

    async with await serve(hold) as server:
        client = await connect(server.url)
        yield await asyncio.wait_for(accepted.get(), GUARD)
        client.abort()


async def echo(request: RoutedMessage) -> Reply:
    return {"type": "echo", "text": request.body.get("text")}


def router_with_echo(**options: Any) -> MessageRouter:
    router = MessageRouter(**options)
    router.add_route("echo", echo)
    return router


def error_of(reply: Reply) -> dict[str, Any]:
    """The ``error`` object of an error envelope (asserting that it is one)."""
    assert reply is not None and reply["type"] == "error"
    error = reply["error"]
    assert set(error) == {"code", "name", "message"}
    assert error["name"] == ErrorCode(error["code"]).name
    return error


# -- the envelope -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        '{"type": "echo"',  # truncated
        "",
        '{"type": "echo"} trailing',
        "[]",
        '[{"type": "echo"}]',
        "42",
        "3.5",
        '"a string"',
        "null",
        "true",
    ],
    ids=lambda raw: raw[:20] or "empty",
)
async def test_what_is_not_a_json_object_is_invalid_input(connection: Connection, raw: str) -> None:
    reply = await router_with_echo().dispatch(connection, raw)
    assert error_of(reply)["code"] == ErrorCode.INVALID_INPUT
    assert "ref" not in reply  # type: ignore[operator]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "no 'type'"),
        ({"type": None}, "no 'type'"),
        ({"type": 5}, "'type' must be a string"),
        ({"type": ["echo"]}, "'type' must be a string"),
        ({"type": {"name": "echo"}}, "'type' must be a string"),
    ],
)
async def test_a_missing_or_non_string_type_is_invalid_input(
    connection: Connection, body: dict[str, Any], fragment: str
) -> None:
    reply = await router_with_echo().dispatch(connection, json.dumps({**body, "ref": "r1"}))
    error = error_of(reply)
    assert error["code"] == ErrorCode.INVALID_INPUT
    assert fragment in error["message"]
    assert reply["ref"] == "r1"  # type: ignore[index]


async def test_an_unknown_type_is_not_found(connection: Connection) -> None:
    router = router_with_echo()
    reply = await router.dispatch(connection, '{"type": "chat:nope", "ref": 7}')
    error = error_of(reply)
    assert error["code"] == ErrorCode.NOT_FOUND and error["name"] == "NOT_FOUND"
    assert "chat:nope" in error["message"]
    assert reply["ref"] == 7  # type: ignore[index]
    # A huge type name is not echoed back whole.
    reply = await router.dispatch(connection, json.dumps({"type": "x" * 100_000}))
    assert len(error_of(reply)["message"]) < 200


@pytest.mark.parametrize("ref", [[1], {"id": 1}, 1.5, True, False])
async def test_a_ref_of_the_wrong_type_is_invalid_input(connection: Connection, ref: Any) -> None:
    reply = await router_with_echo().dispatch(connection, json.dumps({"type": "echo", "ref": ref}))
    error = error_of(reply)
    assert error["code"] == ErrorCode.INVALID_INPUT
    assert "ref" in error["message"]
    assert "ref" not in reply  # type: ignore[operator]


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"a":' * 100_000 + "1" + "}" * 100_000,
        '{"type": "echo", "text": ' + "[" * 100_000 + "]" * 100_000 + "}",
    ],
    ids=["arrays", "objects", "inside-a-valid-request"],
)
async def test_deeply_nested_json_is_invalid_input(connection: Connection, raw: str) -> None:
    reply = await router_with_echo().dispatch(connection, raw)
    assert error_of(reply)["code"] == ErrorCode.INVALID_INPUT


async def test_a_binary_message_is_invalid_input(connection: Connection) -> None:
    called: list[RoutedMessage] = []

    async def record(request: RoutedMessage) -> Reply:
        called.append(request)
        return {"type": "ok"}

    router = MessageRouter()
    router.add_route("echo", record)
    reply = await router.dispatch(connection, b'{"type": "echo"}')
    error = error_of(reply)
    assert error["code"] == ErrorCode.INVALID_INPUT
    assert "binary" in error["message"]
    assert called == []


async def test_a_request_reaches_its_handler_with_the_ref_echoed(connection: Connection) -> None:
    seen: list[RoutedMessage] = []
    router = MessageRouter()

    @router.route("room:join")
    async def join(request: RoutedMessage) -> Reply:
        seen.append(request)
        return {"type": "room:joined", "room": request.body["room"]}

    raw = '{"type": "room:join", "room": "lobby", "ref": "abc"}'
    assert await router.dispatch(connection, raw) == {
        "type": "room:joined",
        "room": "lobby",
        "ref": "abc",
    }
    (request,) = seen
    assert request.connection is connection
    assert (request.type, request.version, request.ref) == ("room:join", "1.0", "abc")
    assert request.raw_size == len(raw)
    assert router.types == {"room:join"}
    # Without a ref the reply has none; an integer ref comes back as an integer.
    assert await router.dispatch(connection, '{"type": "room:join", "room": "a"}') == {
        "type": "room:joined",
        "room": "a",
    }
    reply = await router.dispatch(connection, '{"type": "room:join", "room": "a", "ref": 0}')
    assert reply is not None and reply["ref"] == 0


async def test_a_handler_may_reply_nothing(connection: Connection) -> None:
    async def silent(request: RoutedMessage) -> Reply:
        return None

    router = MessageRouter()
    router.add_route("chat:typing", silent)
    assert await router.dispatch(connection, '{"type": "chat:typing", "ref": "r"}') is None


async def test_a_shared_reply_object_does_not_carry_one_requests_ref_into_another(
    connection: Connection,
) -> None:
    ok = {"type": "ok"}

    async def constant(request: RoutedMessage) -> Reply:
        return ok  # the same dict for every request

    router = MessageRouter()
    router.add_route("ping", constant)
    first = await router.dispatch(connection, '{"type": "ping", "ref": "first"}')
    second = await router.dispatch(connection, '{"type": "ping", "ref": "second"}')
    third = await router.dispatch(connection, '{"type": "ping"}')
    assert first == {"type": "ok", "ref": "first"}
    assert second == {"type": "ok", "ref": "second"}
    assert third == {"type": "ok"}
    assert ok == {"type": "ok"}


# -- versions ---------------------------------------------------------------------------------------


def versioned_router() -> MessageRouter:
    router = MessageRouter(
        current_version="2.0", deprecated_versions={"1.0": "version 1.0 is deprecated; use 2.0"}
    )
    router.add_route("echo", echo, versions=["1.0", "2.0"])

    async def reactions(request: RoutedMessage) -> Reply:
        return {"type": "chat:react", "version": request.version}

    router.add_route("chat:react", reactions, versions=["2.0"])  # new in 2.0
    return router


async def test_an_unknown_version_is_refused(connection: Connection) -> None:
    router = versioned_router()
    assert router.versions == {"1.0", "2.0"}
    reply = await router.dispatch(connection, '{"type": "echo", "version": "9.9", "ref": "v"}')
    error = error_of(reply)
    assert error["code"] == ErrorCode.INVALID_INPUT
    assert "9.9" in error["message"]
    assert reply["ref"] == "v"  # type: ignore[index]
    reply = await router.dispatch(connection, '{"type": "echo", "version": 2}')
    assert error_of(reply)["code"] == ErrorCode.INVALID_INPUT


async def test_a_deprecated_version_is_served_with_a_warning(connection: Connection) -> None:
    router = versioned_router()
    old = await router.dispatch(connection, '{"type": "echo", "version": "1.0", "text": "hi"}')
    assert old == {"type": "echo", "text": "hi", "warning": "version 1.0 is deprecated; use 2.0"}
    current = await router.dispatch(connection, '{"type": "echo", "version": "2.0", "text": "hi"}')
    assert current == {"type": "echo", "text": "hi"}
    default = await router.dispatch(connection, '{"type": "echo", "text": "hi"}')
    assert default == {"type": "echo", "text": "hi"}  # no version: the current one


async def test_a_route_registered_for_one_version_only(connection: Connection) -> None:
    router = versioned_router()
    reply = await router.dispatch(connection, '{"type": "chat:react", "ref": 1}')
    assert reply == {"type": "chat:react", "version": "2.0", "ref": 1}
    reply = await router.dispatch(connection, '{"type": "chat:react", "version": "1.0", "ref": 2}')
    assert error_of(reply)["code"] == ErrorCode.NOT_FOUND
    assert reply["ref"] == 2  # type: ignore[index]


# -- middleware -------------------------------------------------------------------------------------


async def test_middleware_runs_first_added_outermost(connection: Connection) -> None:
    trace: list[str] = []

    def tracer(name: str) -> Middleware:
        async def middleware(request: RoutedMessage, call_next: RouteHandler) -> Reply:
            trace.append(f"{name} in")
            request.context.setdefault("seen_by", []).append(name)
            reply = await call_next(request)
            trace.append(f"{name} out")
            assert reply is not None
            reply.setdefault("wrapped_by", []).append(name)
            return reply

        return middleware

    async def handler(request: RoutedMessage) -> Reply:
        trace.append("handler")
        return {"type": "done", "seen_by": list(request.context["seen_by"])}

    router = MessageRouter()
    router.add_route("do", handler)
    router.use(tracer("auth"))
    router.use(tracer("rate"))
    reply = await router.dispatch(connection, '{"type": "do", "ref": "m"}')
    assert trace == ["auth in", "rate in", "handler", "rate out", "auth out"]
    assert reply == {
        "type": "done",
        "seen_by": ["auth", "rate"],
        "wrapped_by": ["rate", "auth"],
        "ref": "m",
    }


async def test_middleware_can_short_circuit(connection: Connection) -> None:
    handled: list[str] = []

    async def handler(request: RoutedMessage) -> Reply:
        handled.append(request.type)
        return {"type": "handled"}

    async def cached(request: RoutedMessage, call_next: RouteHandler) -> Reply:
        if request.body.get("cached"):
            return {"type": "from-cache"}  # the handler is never called
        return await call_next(request)

    async def limiter(request: RoutedMessage, call_next: RouteHandler) -> Reply:
        if request.body.get("flood"):
            raise RateLimitedError("slow down")
        return await call_next(request)

    router = MessageRouter()
    router.add_route("get", handler)
    router.use(cached)
    router.use(limiter)
    reply = await router.dispatch(connection, '{"type": "get", "cached": true, "ref": 1}')
    assert reply == {"type": "from-cache", "ref": 1}
    reply = await router.dispatch(connection, '{"type": "get", "flood": true, "ref": 2}')
    error = error_of(reply)
    assert error == {"code": ErrorCode.RATE_LIMITED, "name": "RATE_LIMITED", "message": "slow down"}
    assert reply["ref"] == 2  # type: ignore[index]
    assert handled == []
    assert await router.dispatch(connection, '{"type": "get"}') == {"type": "handled"}
    assert handled == ["get"]


# -- handler failures -------------------------------------------------------------------------------


async def test_a_handler_wslab_error_keeps_its_code_and_message(connection: Connection) -> None:
    async def admin_only(request: RoutedMessage) -> Reply:
        raise PermissionDeniedError("admins only")

    async def picky(request: RoutedMessage) -> Reply:
        raise ValidationError("'content' must be 1..5000 characters")

    router = MessageRouter()
    router.add_route("admin:broadcast", admin_only)
    router.add_route("chat:message", picky)
    reply = await router.dispatch(connection, '{"type": "admin:broadcast", "ref": "a"}')
    assert reply == {
        "type": "error",
        "error": {"code": 3, "name": "PERMISSION_DENIED", "message": "admins only"},
        "ref": "a",
    }
    reply = await router.dispatch(connection, '{"type": "chat:message", "ref": "b"}')
    error = error_of(reply)
    assert error["code"] == ErrorCode.INVALID_INPUT
    assert error["message"] == "'content' must be 1..5000 characters"


async def test_a_crashing_handler_gets_a_generic_internal_error(
    connection: Connection, caplog: pytest.LogCaptureFixture
) -> None:
    async def crash(request: RoutedMessage) -> Reply:
        raise KeyError("/srv/wslab/secret/path.py: password=hunter2")

    router = MessageRouter()
    router.add_route("chat:message", crash)
    with caplog.at_level(logging.ERROR, logger="wslab.router"):
        reply = await router.dispatch(connection, '{"type": "chat:message", "ref": "x"}')
    error = error_of(reply)
    assert error["code"] == ErrorCode.INTERNAL_ERROR and error["name"] == "INTERNAL_ERROR"
    assert reply["ref"] == "x"  # type: ignore[index]
    text = json.dumps(reply)
    for leak in ("secret", "hunter2", "KeyError", "Traceback", ".py", "/srv"):
        assert leak not in text
    # The details are in the log, with the traceback.
    (record,) = [r for r in caplog.records if r.name == "wslab.router"]
    assert record.exc_info is not None and record.exc_info[0] is KeyError
    assert "Traceback" in caplog.text and "hunter2" in caplog.text


# -- end to end over a real socket ------------------------------------------------------------------


async def test_bad_messages_get_errors_and_the_connection_stays_open(engine: str) -> None:
    router = router_with_echo()

    async def handler(connection: Connection) -> None:
        async for raw in connection:
            reply = await router.dispatch(connection, raw)
            if reply is not None:
                await connection.send(json.dumps(reply))

    async with await serve(handler, engine=engine) as server:
        client = await connect(server.url, engine=engine)
        requests: list[str | bytes] = [
            "{oops",
            b"\x00\x01binary",
            "[1, 2, 3]",
            '{"ref": "no-type"}',
            '{"type": "nope", "ref": "unknown"}',
            "[" * 50_000 + "]" * 50_000,
            '{"type": "echo", "ref": "ok", "text": "still here"}',
        ]
        for request in requests:
            await client.send(request)
        replies = [json.loads(await asyncio.wait_for(client.recv(), GUARD)) for _ in requests]
        codes = [reply.get("error", {}).get("code") for reply in replies]
        assert codes == [1, 1, 1, 1, 2, 1, None]
        assert [reply.get("ref") for reply in replies] == [
            None, None, None, "no-type", "unknown", None, "ok"
        ]  # fmt: skip
        assert replies[-1] == {"type": "echo", "text": "still here", "ref": "ok"}
        assert not client.closed
        await client.close()


async def test_a_repeated_crash_logs_its_traceback_once(
    connection: Connection, caplog: pytest.LogCaptureFixture
) -> None:
    async def crash(request: RoutedMessage) -> Reply:
        raise KeyError("boom")

    router = MessageRouter()
    router.add_route("chat:message", crash)
    with caplog.at_level(logging.ERROR, logger="wslab.router"):
        for _ in range(50):
            reply = await router.dispatch(connection, '{"type": "chat:message"}')
            assert error_of(reply)["code"] == ErrorCode.INTERNAL_ERROR
    assert len([r for r in caplog.records if r.exc_info]) == 1
