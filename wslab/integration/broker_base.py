"""``BrokerBase``: the machinery every broker shares, whatever carries its messages.

Subscriptions and their bounded delivery queues (one task per (channel, handler), so a slow
handler blocks nobody), the per-channel ``origin_seq`` counters (bounded, never repeating a
number), the receive counters per channel family, the skipping of a hub's own messages
(``echo_own``), handler-error isolation and health callbacks. :class:`~wslab.integration.
memory_broker.MemoryBroker` and :class:`~wslab.integration.redis_broker.RedisBroker` add only
their transport. The contract is described in :mod:`wslab.integration.broker`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from wslab.foundation.errors import ConfigError, ValidationError
from wslab.integration.broker_contract import (
    DEFAULT_MAX_CHANNELS,
    DEFAULT_MAX_ERRORS,
    DEFAULT_PREFIX,
    DEFAULT_QUEUE_SIZE,
    MAX_FAMILIES,
    BrokerMessage,
    Handler,
    StateCallback,
)

__all__ = ["BrokerBase"]

# The broker's log name is the contract module's, whichever module the line comes from.
logger = logging.getLogger("wslab.integration.broker")


class _SeqCounter:
    """``origin_seq`` per channel, remembering at most ``max_channels`` channels.

    At the bound the least recently published channel is forgotten. So that a forgotten
    channel never repeats a number (which a receiver would take for a duplicate), every channel
    starts counting above the highest number ever forgotten: a receiver sees a gap instead, and
    recovers from history. Nothing is forgotten below the bound.
    """

    def __init__(self, max_channels: int) -> None:
        if max_channels < 1:
            raise ConfigError("max_channels must be at least 1")
        self._max = max_channels
        self._last: OrderedDict[str, int] = OrderedDict()
        self._floor = 0

    def peek(self, channel: str) -> int:
        """The number the next message on ``channel`` gets."""
        return self._last.get(channel, self._floor) + 1

    def commit(self, channel: str, seq: int) -> None:
        """Record that ``seq`` was used on ``channel``."""
        self._last[channel] = seq
        self._last.move_to_end(channel)
        while len(self._last) > self._max:
            _, forgotten = self._last.popitem(last=False)
            self._floor = max(self._floor, forgotten)


class _Subscription:
    """One (channel, handler) pair: a bounded queue and the task that drains it in order.

    The delivery task and the queue exist only while there is something to deliver: an idle
    subscription is a few fields, because a hub holds one per local user and per room (an empty
    deque alone is over 600 bytes).
    """

    __slots__ = (
        "active",
        "channel",
        "handled",
        "handler",
        "maxsize",
        "owner",
        "queue",
        "running_handler",
        "task",
    )

    def __init__(self, owner: BrokerBase, channel: str, handler: Handler, queue_size: int) -> None:
        self.owner = owner
        self.channel = channel
        self.handler = handler
        self.queue: deque[BrokerMessage] | None = None
        self.maxsize = queue_size
        self.active = True
        self.running_handler = False
        self.handled = 0
        self.task: asyncio.Task[None] | None = None

    def offer(self, msg: BrokerMessage) -> bool:
        """Queue ``msg`` without waiting; False (and the message dropped) if the queue is full."""
        if not self.active:
            return True  # retired: discarded, as unsubscribing promises
        queue = self.queue
        if len(queue or ()) >= self.maxsize:
            return False
        if queue is None:
            queue = self.queue = deque()
        queue.append(msg)
        if self.task is None or self.task.done():
            # One task at a time: it ends only once the queue is empty (checked with no await
            # in between), so order is kept across restarts.
            self.task = asyncio.get_running_loop().create_task(
                self._deliver(), name=f"wslab-broker-deliver:{self.owner.hub_id}:{self.channel}"
            )
        return True

    async def _deliver(self) -> None:
        while self.active and self.queue:
            msg = self.queue.popleft()
            if not self.queue:
                self.queue = None  # drained: give the buffer back
            self.running_handler = True
            try:
                result = self.handler(msg)
                if inspect.isawaitable(result):
                    await result
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # One bad message or handler bug must not end delivery for the channel.
                self.owner._record_handler_error(self.channel, exc)
            else:
                self.owner._delivered += 1
            finally:
                self.running_handler = False
                self.handled += 1

    def stop(self) -> asyncio.Task[None] | None:
        """Stop delivering. A handler that is running is left to finish its message."""
        self.active = False
        self.queue = None
        task = self.task
        if task is not None and not self.running_handler:
            task.cancel()
        return task


class BrokerBase:
    """Machinery every broker shares: subscriptions and their queues, counters, state callbacks.

    A concrete broker implements ``start``, ``close``, ``publish`` and the transport-side of
    ``subscribe``/``unsubscribe``, and hands every received message to :meth:`_dispatch`.
    """

    kind = "base"

    def __init__(
        self,
        hub_id: str | None = None,
        *,
        prefix: str = DEFAULT_PREFIX,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        max_errors: int = DEFAULT_MAX_ERRORS,
        max_channels: int = DEFAULT_MAX_CHANNELS,
        echo_own: bool = False,
    ) -> None:
        if hub_id is None:
            hub_id = f"hub-{uuid.uuid4().hex[:8]}"
        if not isinstance(hub_id, str) or not hub_id:
            raise ConfigError("hub_id must be a non-empty string")
        if not isinstance(prefix, str):
            raise ConfigError("broker prefix must be a string")
        if queue_size < 1:
            raise ConfigError("broker queue_size must be at least 1")
        if max_errors < 1:
            raise ConfigError("broker max_errors must be at least 1")
        self._hub_id = hub_id
        self.prefix = prefix
        self.queue_size = queue_size
        # False: this hub's own publishes never reach its handlers (it delivered them locally).
        self.echo_own = bool(echo_own)
        self._subs: dict[str, dict[Handler, _Subscription]] = {}
        # Prefix subscriptions: channel prefix -> handlers (the catch-all of a channel family).
        self._prefix_subs: dict[str, dict[Handler, _Subscription]] = {}
        # family -> [messages, bytes] received through subscriptions; at most MAX_FAMILIES keys.
        self._families: dict[str, list[int]] = {}
        # Subscriptions stopped while their handler was running; awaited at close().
        self._stopping: set[asyncio.Task[None]] = set()
        self._callbacks: list[StateCallback] = []
        self._seq = _SeqCounter(max_channels)
        self._recent_errors: deque[dict[str, str]] = deque(maxlen=max_errors)
        self._healthy = False
        self._started = False
        self._closed = False
        self._last_error: str | None = None
        self._published = 0
        self._received = 0
        self._delivered = 0
        self._dropped = 0
        self._handler_errors = 0
        self._callback_errors = 0
        self._malformed = 0
        self._own_skipped = 0
        self._reconnects = 0

    # -- public surface shared by every broker -----------------------------------------------

    @property
    def hub_id(self) -> str:
        """The id stamped on published messages as ``origin_hub``."""
        return self._hub_id

    @property
    def healthy(self) -> bool:
        """True while the broker can publish and receive."""
        return self._healthy

    @property
    def alone(self) -> bool:
        """True when nothing published now could reach another hub: publishing may be skipped.

        Never for a network broker (another hub may subscribe at any moment); an in-process
        broker knows its bus.
        """
        return False

    @property
    def channels(self) -> frozenset[str]:
        """The channels with at least one subscribed handler."""
        return frozenset(self._subs)

    @property
    def prefixes(self) -> frozenset[str]:
        """The channel prefixes with at least one subscribed handler."""
        return frozenset(self._prefix_subs)

    def on_state_change(self, callback: StateCallback) -> Callable[[], None]:
        """Call ``callback(healthy, reason)`` on each health change; returns an unregister function.

        Callbacks run in the broker's own task, one after the other; an async callback is
        awaited, so keep it short (schedule longer work). Errors are logged and counted.
        """
        self._callbacks.append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._callbacks.remove(callback)

        return remove

    def status(self) -> dict[str, Any]:
        """A snapshot of state and counters (plain data, ready for JSON or a DataFrame row)."""
        return {
            "kind": self.kind,
            "hub_id": self._hub_id,
            "connected": self._healthy,
            "started": self._started and not self._closed,
            "reconnects": self._reconnects,
            "last_error": self._last_error,
            "published": self._published,
            "received": self._received,
            "delivered": self._delivered,
            "dropped": self._dropped,
            "handler_errors": self._handler_errors,
            "callback_errors": self._callback_errors,
            "malformed": self._malformed,
            "own_skipped": self._own_skipped,
            "channels": len(self._subs),
            "prefixes": len(self._prefix_subs),
            "subscriptions": sum(len(h) for h in self._subs.values())
            + sum(len(h) for h in self._prefix_subs.values()),
            "received_by_family": {
                family: {"messages": counts[0], "bytes": counts[1]}
                for family, counts in self._families.items()
            },
            "recent_errors": list(self._recent_errors),
        }

    # -- helpers for subclasses --------------------------------------------------------------

    def _full_channel(self, channel: str) -> str:
        return self.prefix + channel

    def _short_channel(self, full: str) -> str | None:
        """The channel name without the prefix, or None if it is not one of ours."""
        if not full.startswith(self.prefix):
            return None
        return full[len(self.prefix) :]

    @staticmethod
    def _check_channel(channel: str) -> None:
        if not isinstance(channel, str) or not channel:
            raise ValidationError("broker channel must be a non-empty string")

    def _add_subscription(self, channel: str, handler: Handler, *, prefix: bool = False) -> bool:
        """Register ``handler`` on ``channel``; True if the channel had no handler before.

        With ``prefix=True``, ``channel`` is a prefix and the registration a prefix one.
        """
        self._check_channel(channel)
        if not callable(handler):
            raise ValidationError("broker handler must be callable")
        table = self._prefix_subs if prefix else self._subs
        handlers = table.get(channel)
        is_new_channel = handlers is None
        if handlers is None:
            handlers = table[channel] = {}
        if handler not in handlers:
            name = channel + "*" if prefix else channel
            handlers[handler] = _Subscription(self, name, handler, self.queue_size)
        return is_new_channel

    def _remove_subscription(self, channel: str, handler: Handler, *, prefix: bool = False) -> bool:
        """Unregister ``handler``; True if ``channel`` has no handler left."""
        table = self._prefix_subs if prefix else self._subs
        handlers = table.get(channel)
        if handlers is None:
            return False
        sub = handlers.pop(handler, None)
        if sub is not None:
            self._retire(sub)
        if handlers:
            return False
        del table[channel]
        return True

    def progress(self, channel: str, handler: Handler, *, prefix: bool = False) -> tuple[int, int]:
        """``(handled, pending)`` of one subscription; ``(0, 0)`` if there is none.

        ``handled`` counts the messages its handler has finished with (failed ones included),
        ``pending`` those it still holds (queued or being handled). A caller replacing one
        subscription by another waits until ``handled`` reaches ``handled + pending`` as read
        when the new one became active: unsubscribing discards the queue.
        """
        table = self._prefix_subs if prefix else self._subs
        sub = table.get(channel, {}).get(handler)
        if sub is None:
            return (0, 0)
        return (sub.handled, len(sub.queue or ()) + sub.running_handler)

    def _matching_prefixes(self, channel: str) -> list[str]:
        """The subscribed prefixes ``channel`` starts with."""
        return [p for p in self._prefix_subs if channel.startswith(p)]

    def _count_received(self, channel: str, size: int) -> None:
        family = channel.partition(":")[0]
        counts = self._families.get(family)
        if counts is None:
            if len(self._families) >= MAX_FAMILIES:
                family = "other"
            counts = self._families.setdefault(family, [0, 0])
        counts[0] += 1
        counts[1] += size

    def _retire(self, sub: _Subscription) -> None:
        task = sub.stop()
        if task is not None and not task.done():
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    def _dispatch(self, msg: BrokerMessage, prefix: str | None = None) -> None:
        """Queue ``msg`` for every handler of its channel (dropping and counting at the bound).

        With ``prefix``, the message came through that prefix subscription instead.
        """
        self._received += 1
        if not self.echo_own and msg.origin_hub == self._hub_id:
            self._own_skipped += 1
            return
        table = self._subs if prefix is None else self._prefix_subs
        for sub in tuple(table.get(msg.channel if prefix is None else prefix, {}).values()):
            if not sub.offer(msg):
                self._dropped += 1

    def _dispatch_raw(
        self, full_channel: str, data: bytes | str, prefix: str | None = None
    ) -> None:
        """Decode a message as it came off the wire and dispatch it; malformed ones are counted.

        ``prefix`` names the prefix subscription it came through (None: the exact channel).
        """
        channel = self._short_channel(full_channel)
        if channel is None:
            return
        self._count_received(channel, len(data))
        try:
            msg = BrokerMessage.decode(channel, data)
        except ValidationError as exc:
            # Someone else's traffic on our prefix, or a bug in a publisher: never fatal.
            self._malformed += 1
            self._remember_error("malformed", channel, exc)
            logger.warning("broker %s: malformed message on %r: %s", self._hub_id, channel, exc)
            return
        self._dispatch(msg, prefix)

    def _next_message(self, channel: str, payload: dict[str, Any]) -> tuple[BrokerMessage, bytes]:
        """Stamp and encode the next message on ``channel`` (the seq is used only if it encodes)."""
        self._check_channel(channel)
        msg = BrokerMessage(channel, payload, self._hub_id, self._seq.peek(channel))
        data = msg.encode()
        self._seq.commit(channel, msg.origin_seq)
        return msg, data

    def _remember_error(self, where: str, channel: str | None, exc: BaseException) -> None:
        self._recent_errors.append(
            {"where": where, "channel": channel or "", "error": f"{type(exc).__name__}: {exc}"}
        )

    def _record_handler_error(self, channel: str, exc: Exception) -> None:
        self._handler_errors += 1
        self._remember_error("handler", channel, exc)
        logger.error("broker %s: handler for %r failed", self._hub_id, channel, exc_info=exc)

    async def _set_healthy(self, healthy: bool, reason: str) -> None:
        """Record the new state and, if it changed, tell every state callback."""
        if healthy == self._healthy:
            return
        self._healthy = healthy
        if healthy:
            logger.info("broker %s: healthy (%s)", self._hub_id, reason)
        else:
            logger.warning("broker %s: unhealthy (%s)", self._hub_id, reason)
        for callback in tuple(self._callbacks):
            try:
                result = callback(healthy, reason)
                if inspect.isawaitable(result):
                    await result
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._callback_errors += 1
                self._remember_error("state_callback", None, exc)
                logger.error("broker %s: state callback failed", self._hub_id, exc_info=exc)

    async def _stop_subscriptions(self) -> None:
        """Cancel every delivery task and wait for them (used by close)."""
        tasks: list[asyncio.Task[None]] = []
        for handlers in (*self._subs.values(), *self._prefix_subs.values()):
            for sub in handlers.values():
                sub.active = False
                if sub.task is not None:
                    tasks.append(sub.task)
        tasks.extend(self._stopping)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        # Keep the registrations: a broker is not restarted after close, but status() stays true.
        self._stopping.clear()


