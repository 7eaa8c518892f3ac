"""The :class:`~wslab.integration.broker.Broker` contract over Redis publish/subscribe.

Hubs in several processes or machines share rooms through one Redis server. The ``redis``
package (``pip install wslab[scale]``) is imported only when a ``RedisBroker`` is built, so the
rest of wslab works without it.

How it works:

- Two connections. A *subscriber* connection, owned by one supervisor task, sends
  ``SUBSCRIBE``/``UNSUBSCRIBE`` and reads messages; a *publisher* client sends ``PUBLISH``.
  Publishes go one at a time under a lock, so that the numbering (``origin_seq``) and the order
  on the wire agree: messages of one hub on one channel arrive in order.
- Channel names on the server are ``prefix + channel`` (``"wslab:"`` by default; tests use a
  unique prefix so runs on a shared server never see each other).
- Health: the supervisor reads with a short timeout and, when the line has been quiet for
  ``ping_interval`` seconds, sends ``PING``; no answer within ``op_timeout`` counts as a lost
  connection (this catches a dead network path that never delivers an EOF).
- On a lost connection: ``healthy`` becomes False and the state callbacks are told; ``publish``
  raises :class:`DependencyError` at once; the supervisor reconnects with exponential backoff
  and full jitter (``backoff_min`` .. ``backoff_max``), subscribes to every channel again, waits
  for the server to confirm, and only then reports healthy. Messages published while a hub was
  cut off are lost to it (Redis pub/sub keeps nothing): the hub sends its clients to
  ``chat:history since_seq``.
- ``subscribe_prefix(prefix)`` is ``PSUBSCRIBE`` on the prefix (glob characters escaped) plus
  ``*``: the catch-all a hub falls back to above its subscription budget. Sharded pub/sub
  (``SSUBSCRIBE``, Redis 7) has no pattern form and only pays off on a Redis Cluster, so plain
  ``SUBSCRIBE`` on one connection is used.
- ``subscribe`` returns once Redis confirmed the subscription (or at once while the broker is
  down: the channel is recorded and subscribed on reconnect).

redis-py's own retries are switched off (``Retry(NoBackoff(), 0)``): reconnecting silently
inside a command would hide outages and resubscribe behind the broker's back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from wslab.foundation.errors import ConfigError, DependencyError
from wslab.infrastructure.backoff import FullJitterBackoff
from wslab.infrastructure.urls import redact_url

from .broker_base import BrokerBase
from .broker_contract import (
    DEFAULT_MAX_CHANNELS,
    DEFAULT_MAX_ERRORS,
    DEFAULT_PREFIX,
    DEFAULT_QUEUE_SIZE,
    Handler,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.connection import AbstractConnection

__all__ = ["RedisBroker"]

logger = logging.getLogger(__name__)


# Characters Redis glob patterns give a meaning to; escaped in a prefix subscription's pattern.
_GLOB_SPECIAL = frozenset("*?[]\\^")
# Marks a pattern in the confirmation table, which otherwise holds channel names.
_PATTERN_KEY = "\0p:"


class _ConnectionLost(Exception):
    """The subscriber connection stopped answering (internal: turned into a reconnect)."""


def _redis_errors() -> tuple[type[BaseException], ...]:
    """What a failed Redis operation raises: redis-py's errors, socket errors, timeouts.

    Built on first use so that importing this module does not import redis.
    """
    from redis.exceptions import RedisError

    return (RedisError, OSError, asyncio.TimeoutError, _ConnectionLost)


class RedisBroker(BrokerBase):
    """A broker over Redis pub/sub, for hubs in several processes or on several machines.

    ``url`` is ``redis://[user:password@]host:port/db``, ``rediss://...`` (TLS) or
    ``unix:///path/redis.sock?db=0``. The broker is not connected until ``await start()``,
    which raises :class:`DependencyError` if Redis cannot be reached; after that, outages are
    survived (see the module docstring).
    """

    kind = "redis"

    def __init__(
        self,
        url: str,
        hub_id: str | None = None,
        *,
        prefix: str = DEFAULT_PREFIX,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        max_errors: int = DEFAULT_MAX_ERRORS,
        max_channels: int = DEFAULT_MAX_CHANNELS,
        echo_own: bool = False,
        op_timeout: float = 2.0,
        ping_interval: float = 5.0,
        backoff_min: float = 0.1,
        backoff_max: float = 5.0,
    ) -> None:
        super().__init__(
            hub_id,
            prefix=prefix,
            queue_size=queue_size,
            max_errors=max_errors,
            max_channels=max_channels,
            echo_own=echo_own,
        )
        if urlsplit(url).scheme.lower() not in ("redis", "rediss", "unix"):
            raise ConfigError("RedisBroker needs a redis://, rediss:// or unix:// URL")
        if op_timeout <= 0 or ping_interval <= 0:
            raise ConfigError("op_timeout and ping_interval must be positive")
        try:
            import redis.asyncio  # noqa: F401
        except ImportError:
            raise ConfigError(
                "the Redis broker needs the 'redis' package: pip install 'wslab[scale]'"
            ) from None
        self.url = url
        self.op_timeout = op_timeout
        self.ping_interval = ping_interval
        self.backoff = FullJitterBackoff(backoff_min, backoff_max)
        self._errors = _redis_errors()
        self._client: Redis | None = None
        self._conn: AbstractConnection | None = None
        self._supervisor: asyncio.Task[None] | None = None
        # Guards every command on the subscriber connection and swapping it.
        self._sub_lock = asyncio.Lock()
        # Keeps seq numbering and wire order the same (see the module docstring).
        self._pub_lock = asyncio.Lock()
        # full channel name (or _PATTERN_KEY + pattern) -> future resolved when Redis confirms
        # the SUBSCRIBE (PSUBSCRIBE).
        self._confirm: dict[str, asyncio.Future[None]] = {}
        # Redis pattern -> the channel prefix it stands for (the prefix subscriptions).
        self._patterns: dict[str, str] = {}
        self._connect_attempts = 0
        self._publish_errors = 0

    # -- lifetime ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, subscribe to the channels registered so far and start the supervisor."""
        if self._closed:
            raise DependencyError("broker is closed")
        if self._started:
            return
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self._client = Redis.from_url(
            self.url,
            retry=Retry(NoBackoff(), 0),
            socket_timeout=self.op_timeout,
            socket_connect_timeout=self.op_timeout,
            # Publishes are serialized, so one connection is in use at a time; the second one
            # covers a reconnect racing with an in-flight publish.
            max_connections=2,
            client_name=self._client_name("pub"),
            # RESP2 everywhere: pub/sub replies are plain arrays on every server version, and
            # no out-of-band push frames can arrive on the subscriber connection.
            protocol=2,
        )
        try:
            conn = await self._connect()
        except BaseException as exc:
            await self._close_client()
            if isinstance(exc, self._errors):
                self._last_error = _describe(exc)
                raise DependencyError(
                    f"cannot reach the Redis broker at {redact_url(self.url)}: {_describe(exc)}"
                ) from exc
            raise
        self._started = True
        self._healthy = True  # the initial state; callbacks report changes from here on
        self._supervisor = asyncio.get_running_loop().create_task(
            self._supervise(conn), name=f"wslab-broker-redis:{self.hub_id}"
        )
        self._supervisor.add_done_callback(self._supervisor_done)

    def _supervisor_done(self, task: asyncio.Task[None]) -> None:
        # The supervisor only ends by cancellation; anything else is a bug that must be seen.
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._healthy = False
            self._last_error = f"supervisor failed: {_describe(exc)}"
            logger.error("broker %s: supervisor stopped", self.hub_id, exc_info=exc)

    async def close(self) -> None:
        """Stop the supervisor, close both connections and every delivery task. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._healthy = False
        if self._supervisor is not None:
            self._supervisor.cancel()
            # gather: the supervisor's own end (cancelled, or a bug already logged by
            # _supervisor_done) is collected, while a cancellation of close() itself propagates.
            await asyncio.gather(self._supervisor, return_exceptions=True)
            self._supervisor = None
        async with self._sub_lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            await _disconnect(conn)
        for fut in self._confirm.values():
            # Wake waiters normally: cancelling would look like their own cancellation.
            if not fut.done():
                fut.set_result(None)
        self._confirm.clear()
        await self._close_client()
        await self._stop_subscriptions()

    async def _close_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            # Bounded: closing politely must not hang on a peer that stopped answering.
            with contextlib.suppress(*self._errors):
                await asyncio.wait_for(client.aclose(), self.op_timeout)

    def _client_name(self, role: str) -> str:
        """``CLIENT SETNAME`` for our connections, so ``CLIENT LIST`` shows whose they are.

        Redis refuses spaces and control characters in names; they become ``_``.
        """
        safe = "".join(
            ch if ch.isascii() and ch.isprintable() and ch != " " else "_" for ch in self.hub_id
        )
        return f"wslab-broker-{role}:{safe}"

    # -- publish / subscribe -------------------------------------------------------------------

    async def publish(self, channel: str, payload: dict[str, Any]) -> None:
        """PUBLISH to ``prefix + channel``; :class:`DependencyError` when down or on failure.

        Never waits longer than ``op_timeout`` in all (queueing behind earlier publishes
        included), so the hub can go on serving its local clients.
        """
        if not self._started or self._closed:
            raise DependencyError("broker is not running")
        if not self._healthy:
            raise DependencyError(f"broker is down: {self._last_error or 'reconnecting'}")
        self._check_channel(channel)
        try:
            await asyncio.wait_for(self._publish_locked(channel, payload), self.op_timeout)
        except DependencyError:
            raise
        except self._errors as exc:
            self._publish_errors += 1
            self._last_error = _describe(exc)
            raise DependencyError(f"publish failed: {_describe(exc)}") from exc
        self._published += 1

    async def _publish_locked(self, channel: str, payload: dict[str, Any]) -> None:
        async with self._pub_lock:
            if not self._healthy or self._client is None:
                raise DependencyError(f"broker is down: {self._last_error or 'reconnecting'}")
            _, data = self._next_message(channel, payload)
            await self._client.publish(self._full_channel(channel), data)

    async def subscribe(self, channel: str, handler: Handler) -> None:
        """Deliver ``channel`` to ``handler``; returns once Redis confirmed (or at once if down)."""
        new_channel = self._add_subscription(channel, handler)
        full = self._full_channel(channel)
        await self._join(full, full, "SUBSCRIBE", new=new_channel)

    async def _join(self, key: str, target: str, command: str, *, new: bool) -> None:
        """Send ``command target`` if ``new`` and wait (bounded) for Redis's confirmation.

        ``key`` names the confirmation future, shared by every waiter for the same channel or
        pattern. While Redis is unreachable the subscription stays recorded and the supervisor
        sends it on (re)connect.
        """
        fut = self._confirm.get(key)
        if new:
            async with self._sub_lock:
                conn = self._conn
                if conn is None or not conn.is_connected:
                    return  # recorded: the supervisor subscribes on (re)connect
                fut = self._confirm.get(key)
                if fut is None:
                    fut = self._confirm[key] = asyncio.get_running_loop().create_future()
                try:
                    await conn.send_command(command, target)
                except self._errors as exc:
                    # The supervisor sees the same failure on its next read and reconnects.
                    self._last_error = _describe(exc)
                    return
        if fut is None:
            return
        try:
            # shield: the future is shared by every waiter for this channel; a waiter that
            # times out must not cancel it for the others.
            await asyncio.wait_for(asyncio.shield(fut), self.op_timeout)
        except asyncio.TimeoutError:
            # Still registered: the supervisor subscribes it again on the next reconnect.
            logger.info("broker %s: %s %s not confirmed yet", self.hub_id, command, target)

    async def unsubscribe(self, channel: str, handler: Handler) -> None:
        """Stop delivering ``channel`` to ``handler``; the last one leaves the Redis channel."""
        if not self._remove_subscription(channel, handler):
            return
        await self._leave(self._full_channel(channel), "UNSUBSCRIBE")

    async def subscribe_prefix(self, prefix: str, handler: Handler) -> None:
        """Deliver every channel starting with ``prefix`` to ``handler`` (``PSUBSCRIBE``)."""
        new_pattern = self._add_subscription(prefix, handler, prefix=True)
        pattern = self._pattern(prefix)
        self._patterns[pattern] = prefix
        await self._join(_PATTERN_KEY + pattern, pattern, "PSUBSCRIBE", new=new_pattern)

    async def unsubscribe_prefix(self, prefix: str, handler: Handler) -> None:
        """Undo :meth:`subscribe_prefix`; the last handler leaves the Redis pattern."""
        if not self._remove_subscription(prefix, handler, prefix=True):
            return
        pattern = self._pattern(prefix)
        self._patterns.pop(pattern, None)
        await self._leave(pattern, "PUNSUBSCRIBE", key=_PATTERN_KEY + pattern)

    async def _leave(self, name: str, command: str, key: str | None = None) -> None:
        """Send ``UNSUBSCRIBE``/``PUNSUBSCRIBE`` for a channel or pattern nobody wants now."""
        fut = self._confirm.pop(key or name, None)
        if fut is not None and not fut.done():
            fut.set_result(None)  # nobody needs to wait for a channel that is gone
        async with self._sub_lock:
            conn = self._conn
            if conn is None or not conn.is_connected:
                return  # not resubscribed on reconnect, since it is no longer registered
            try:
                await conn.send_command(command, name)
            except self._errors as exc:
                self._last_error = _describe(exc)

    def _pattern(self, prefix: str) -> str:
        """The Redis glob pattern matching every channel that starts with ``prefix``."""
        full = self._full_channel(prefix)
        return "".join("\\" + ch if ch in _GLOB_SPECIAL else ch for ch in full) + "*"

    # -- the supervisor ------------------------------------------------------------------------

    async def _connect(self) -> AbstractConnection:
        """Open the subscriber connection, subscribe every channel and check the publisher.

        Returns only when Redis confirmed every subscription, so a message published after the
        broker reports healthy cannot slip past a subscription still in flight.
        """
        assert self._client is not None
        self._connect_attempts += 1
        pool = self._client.connection_pool
        kwargs = dict(pool.connection_kwargs)
        kwargs["client_name"] = self._client_name("sub")
        conn = pool.connection_class(**kwargs)
        try:
            await asyncio.wait_for(conn.connect(), self.op_timeout)
            async with self._sub_lock:
                channels = {self._full_channel(c) for c in self._subs}
                patterns = {self._pattern(p) for p in self._prefix_subs}
                if channels:
                    await conn.send_command("SUBSCRIBE", *sorted(channels))
                if patterns:
                    await conn.send_command("PSUBSCRIBE", *sorted(patterns))
                wanted = channels | {_PATTERN_KEY + p for p in patterns}
                self._conn = conn
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.op_timeout
            while wanted:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise _ConnectionLost("SUBSCRIBE was not confirmed in time")
                reply = await conn.read_response(timeout=remaining, push_request=True)
                if reply is not None:
                    confirmed = self._handle_reply(reply)
                    if confirmed is not None:
                        wanted.discard(confirmed)
            await asyncio.wait_for(self._client.ping(), self.op_timeout)
        except BaseException:
            async with self._sub_lock:
                if self._conn is conn:
                    self._conn = None
            await _disconnect(conn)
            raise
        return conn

    async def _supervise(self, conn: AbstractConnection) -> None:
        """Read until the connection breaks, then reconnect with backoff; forever, until close."""
        while True:
            reason = await self._read_until_lost(conn)
            async with self._sub_lock:
                if self._conn is conn:
                    self._conn = None
            await _disconnect(conn)
            self._last_error = reason
            await self._set_healthy(False, reason)
            conn = await self._reconnect()
            self._reconnects += 1
            await self._set_healthy(True, "reconnected")

    async def _reconnect(self) -> AbstractConnection:
        attempt = 0
        while True:
            attempt += 1
            await asyncio.sleep(self.backoff.delay(attempt))
            try:
                return await self._connect()
            except self._errors as exc:
                self._last_error = _describe(exc)
                logger.info(
                    "broker %s: reconnect attempt %d failed: %s",
                    self.hub_id,
                    attempt,
                    self._last_error,
                )
            except Exception as exc:
                # Not an outage but a bug; keep trying (the hub stays degraded) and say so.
                self._last_error = _describe(exc)
                logger.exception("broker %s: reconnect attempt %d failed", self.hub_id, attempt)

    async def _read_until_lost(self, conn: AbstractConnection) -> str:
        """Dispatch messages and keep the line checked; return why the connection was lost."""
        loop = asyncio.get_running_loop()
        poll = min(1.0, self.ping_interval, self.op_timeout)
        last_rx = loop.time()
        ping_sent: float | None = None
        try:
            while True:
                reply = await conn.read_response(timeout=poll, push_request=True)
                now = loop.time()
                if reply is not None:
                    last_rx = now
                    ping_sent = None
                    self._handle_reply(reply)
                    continue
                if ping_sent is not None:
                    if now - ping_sent > self.op_timeout:
                        raise _ConnectionLost(f"no answer to PING within {self.op_timeout} s")
                elif now - last_rx >= self.ping_interval:
                    async with self._sub_lock:
                        await conn.send_command("PING")
                    ping_sent = now
        except asyncio.CancelledError:
            raise
        except self._errors as exc:
            return _describe(exc)
        except Exception as exc:
            # A bug, not an outage: say so loudly, then recover the same way.
            logger.exception("broker %s: reader failed", self.hub_id)
            return f"reader failed: {_describe(exc)}"

    def _handle_reply(self, reply: Any) -> str | None:
        """Act on one reply of the subscriber connection; returns a confirmed channel, if any."""
        if isinstance(reply, (bytes, str)):
            return None  # "PONG" outside subscribed mode
        if not isinstance(reply, list) or not reply:
            return None
        kind = _text(reply[0])
        if kind == "message" and len(reply) == 3:
            self._dispatch_raw(_text(reply[1]), reply[2])
        elif kind == "pmessage" and len(reply) == 4:
            prefix = self._patterns.get(_text(reply[1]))
            if prefix is not None:
                self._dispatch_raw(_text(reply[2]), reply[3], prefix)
        elif kind in ("subscribe", "psubscribe") and len(reply) >= 2:
            full = _text(reply[1])
            if kind == "psubscribe":
                full = _PATTERN_KEY + full
            fut = self._confirm.pop(full, None)
            if fut is not None and not fut.done():
                fut.set_result(None)
            return full
        return None  # unsubscribe confirmations and PONGs need nothing

    # -- observation ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """See :meth:`BrokerBase.status`; adds the URL (password hidden) and Redis counters."""
        status = super().status()
        status.update(
            url=redact_url(self.url),
            prefix=self.prefix,
            connect_attempts=self._connect_attempts,
            publish_errors=self._publish_errors,
        )
        return status

    def __repr__(self) -> str:
        return f"RedisBroker(url={redact_url(self.url)!r}, hub_id={self.hub_id!r})"


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def _disconnect(conn: AbstractConnection) -> None:
    """Close a connection without waiting on a peer that may never answer."""
    with contextlib.suppress(Exception):
        await conn.disconnect(nowait=True)
