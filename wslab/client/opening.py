"""Opening one connection to the hub: handshake, authentication, ``system:connected``.

:class:`Opener` is the part of :class:`~wslab.client.ChatClient` that makes one attempt —
the token travels as ``auth`` says (header, query or first message), a refusal becomes
:class:`AuthenticationError` (401, 4001) or :class:`PermissionDeniedError` (403, 4003) — and
parses what the hub sends. Whether and when to try again is the client's supervisor's call.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import Callable
from typing import Any

from wslab.foundation.codes import CloseCode, ErrorCode
from wslab.foundation.errors import (
    AuthenticationError,
    ConnectionClosed,
    InvalidHandshakeResponse,
    OperationTimeout,
    PermissionDeniedError,
)
from wslab.foundation.wire import AUTH, SYSTEM_CONNECTED
from wslab.infrastructure.connection import Connection
from wslab.infrastructure.engines import connect as engine_connect

from .inbox import Inbox
from .results import ClientStats

__all__ = ["Opener"]


class Opener:
    """Connection attempts to ``url`` on ``engine``; part of :class:`~wslab.client.ChatClient`.

    ``token`` is read at each attempt (a refresh replaces it); messages that come before
    ``system:connected`` go to ``dispatch``, so nothing the hub says is lost.
    """

    def __init__(
        self,
        *,
        url: str,
        auth: str,
        engine: str,
        timeout: float,
        token: Callable[[], str | None],
        stats: ClientStats,
        inbox: Inbox,
        dispatch: Callable[[dict[str, Any]], None],
    ) -> None:
        self.url = url
        self.auth = auth
        self.engine = engine
        self.timeout = timeout
        self.token = token
        self.stats = stats
        self.inbox = inbox
        self.dispatch = dispatch

    def target(self) -> tuple[str, list[tuple[str, str]]]:
        """The URL and headers of an attempt, with the token where ``auth`` puts it."""
        url, headers, token = self.url, [], self.token()
        if token is not None and self.auth == "header":
            headers.append(("Authorization", f"Bearer {token}"))
        elif token is not None and self.auth == "query":
            parts = urllib.parse.urlsplit(url)
            query = urllib.parse.parse_qsl(parts.query)
            query = [(k, v) for k, v in query if k != "token"] + [("token", token)]
            url = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
        return url, headers

    async def open(self) -> tuple[Connection, dict[str, Any]]:
        """One connection attempt: handshake, authentication, ``system:connected``."""
        url, headers = self.target()
        token = self.token()
        try:
            conn = await engine_connect(
                url, headers=headers, engine=self.engine, open_timeout=self.timeout
            )
        except InvalidHandshakeResponse as error:
            if error.status == 401:
                raise AuthenticationError(f"the hub refused the token: {error.message}") from error
            if error.status == 403:
                raise PermissionDeniedError(f"the hub refused us: {error.message}") from error
            raise
        try:
            if self.auth == "message" and token is not None:
                await conn.send(json.dumps({"type": AUTH, "token": token}))
                self.stats.sent += 1
            hello = await asyncio.wait_for(self._await_hello(conn), self.timeout)
        except asyncio.TimeoutError:
            conn.abort("no system:connected in time")
            raise OperationTimeout(f"no system:connected within {self.timeout}s") from None
        except ConnectionClosed as error:
            code = conn.close_code if conn.close_code is not None else error.received_code
            reason = conn.close_reason or error.reason
            if code == CloseCode.AUTHENTICATION_FAILED:
                raise AuthenticationError(reason or "authentication failed") from error
            if code == CloseCode.FORBIDDEN:
                raise PermissionDeniedError(reason or "forbidden") from error
            raise
        except BaseException:
            conn.abort("connect failed")
            raise
        return conn, hello

    async def _await_hello(self, conn: Connection) -> dict[str, Any]:
        while True:
            raw = await conn.recv()
            self.stats.received += 1
            message = self.parse(raw)
            if message is None:
                continue
            if message.get("type") == SYSTEM_CONNECTED:
                return message
            self.dispatch(message)  # anything earlier (a warning, an error) is still reported

    def parse(self, raw: str | bytes) -> dict[str, Any] | None:
        """A message from the hub as a dict; None (and an error event) if it is not JSON."""
        try:
            message = json.loads(raw)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            self.inbox.put_error(ErrorCode.INVALID_INPUT, "the hub sent a message that is not JSON")
            return None
        return message
