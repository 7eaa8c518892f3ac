"""Publish/subscribe between hubs: the ``Broker`` protocol and ``MemoryBroker``.

Brokers are built from a URL by :func:`wslab.integration.backends.open_broker`.

When several hubs share the work (processes, machines, or just three hubs in one notebook
kernel), a chat message that arrives at one hub must reach the clients of every hub. Each hub
publishes what it accepts on a channel (one per room) and subscribes to the channels of the
rooms its clients are in. This module is the contract every broker keeps, plus the in-process
broker that needs nothing installed; :mod:`wslab.integration.redis_broker` is the same contract
over Redis.

The contract, as the tests in ``tests/integration/test_broker.py`` check it on every broker:

- **Messages** are :class:`BrokerMessage` values: ``channel``, ``payload`` (a JSON object),
  ``origin_hub`` (the publisher's ``hub_id``) and ``origin_seq``, which counts 1, 2, 3... per
  (origin hub, channel). A receiver that remembers the last ``origin_seq`` per (origin, channel)
  sees a duplicate (seq not above the last) or a gap (seq jumps) at once, and can send its
  clients to ``chat:history since_seq`` to recover.
- **Exactly once per subscriber**: a published message is delivered once to every handler
  subscribed to its channel on every broker attached to the same bus or server, however many
  times that handler was subscribed.
- **A hub's own publishes are skipped once, here**: the transport hands a publisher its own
  messages back (Redis does, and so does the bus), but the hub has delivered them locally
  already. With ``echo_own=False`` (the default) the broker drops a message whose
  ``origin_hub`` is its own ``hub_id`` before any handler sees it, and counts it in
  ``status()["own_skipped"]``; no handler repeats the check. ``echo_own=True`` keeps the broker
  symmetric (every handler gets every message, its own included), which makes a one-hub setup
  observable end to end.
- **Order**: messages of one publisher on one channel arrive in the order they were published.
- **Delivery is decoupled from publishing**: each (channel, handler) subscription has its own
  bounded queue and delivery task. A slow handler never blocks a publisher or another handler.
  *At the bound the new message is dropped and counted* in ``status()["dropped"]``; receivers see
  the gap in ``origin_seq`` and recover from history.
- **Handler errors are isolated**: an exception in a handler is logged with its traceback,
  counted (``handler_errors``) and kept in a bounded list of recent errors
  (``status()["recent_errors"]``); the delivery task goes on with the next message.
- **Prefix subscriptions**: ``subscribe_prefix(prefix, handler)`` delivers every channel whose
  name starts with ``prefix`` (Redis ``PSUBSCRIBE prefix*``). It is the catch-all a hub falls
  back to when it would otherwise hold too many channel subscriptions. A channel that matches
  both an exact and a prefix subscription of one handler is delivered to it once per
  subscription (as Redis does); the receiver drops the second copy by ``origin_seq``.
- **Only subscribed traffic is received**: ``status()["received"]`` and
  ``status()["received_by_family"]`` (messages and bytes per channel family, the part of the
  name before the first ``:``) count what reached this broker through its subscriptions.
- **Health**: ``healthy`` is False while the broker cannot reach its peers. ``publish`` then
  raises :class:`~wslab.foundation.errors.DependencyError` at once, so the hub keeps serving its
  local clients. Callbacks registered with ``on_state_change`` are called with
  ``(healthy, reason)`` on every change after ``start()``.

Handlers are ``async def handler(msg: BrokerMessage) -> None`` (a plain function works too).
Handlers were chosen over an ``async for`` subscription object because the broker must keep
delivering while the hub does other work, and a handler lets the broker own the queue, its bound
and its error accounting in one place.

Example — three hubs in one kernel::

    bus = MemoryBus()
    brokers = [MemoryBroker(bus, hub_id=name) for name in ("a", "b", "c")]
    for b in brokers:
        await b.start()
        await b.subscribe("room:lobby", on_message)
    await brokers[0].publish("room:lobby", {"content": "hi"})   # reaches a, b and c once
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import uuid
import weakref
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from wslab.foundation.errors import ConfigError, DependencyError, ValidationError

__all__ = [
    "DEFAULT_PREFIX",
    "DEFAULT_QUEUE_SIZE",
    "Broker",
    "BrokerBase",
    "BrokerMessage",
    "Handler",
    "MemoryBroker",
    "MemoryBus",
    "StateCallback",
]

logger = logging.getLogger(__name__)

#: Prepended to every channel name on the bus or server, so that several applications (or test
#: runs) can share one Redis without seeing each other's traffic.
DEFAULT_PREFIX = "wslab:"
#: Bound of each subscription's delivery queue (messages); beyond it new messages are dropped.
DEFAULT_QUEUE_SIZE = 4096
#: How many recent handler / callback errors ``status()`` keeps (oldest forgotten first).
DEFAULT_MAX_ERRORS = 20
#: How many channels' publish counters are remembered (least recently published forgotten).
DEFAULT_MAX_CHANNELS = 10_000
#: How many channel families ``status()["received_by_family"]`` tells apart (the rest: "other").
MAX_FAMILIES = 32

WIRE_VERSION = 1


@dataclass(frozen=True)
class BrokerMessage:
    """One message on a broker channel.

    ``origin_seq`` is 1, 2, 3... per (``origin_hub``, ``channel``): a receiver detects
    duplicates and gaps by comparing it with the last one it saw from that origin.
    """

    channel: str
    payload: dict[str, Any]
    origin_hub: str
    origin_seq: int

    def encode(self) -> bytes:
        """The wire format (UTF-8 JSON). The channel travels beside it, not inside it.

        Raises :class:`ValidationError` if the payload is not a JSON-serializable object.
        """
        if not isinstance(self.payload, dict):
            raise ValidationError(
                f"broker payload must be a dict, not {type(self.payload).__name__}"
            )
        try:
            text = json.dumps(
                {
                    "v": WIRE_VERSION,
                    "origin_hub": self.origin_hub,
                    "origin_seq": self.origin_seq,
                    "payload": self.payload,
                },
                separators=(",", ":"),
                ensure_ascii=False,
                allow_nan=False,
            )
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"broker payload is not JSON-serializable: {exc}") from None
        return text.encode("utf-8")

    @classmethod
    def decode(cls, channel: str, data: bytes | str) -> BrokerMessage:
        """Parse the wire format received on ``channel``; :class:`ValidationError` if malformed."""
        try:
            obj = json.loads(data)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ValidationError(f"broker message is not JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise ValidationError("broker message is not a JSON object")
        origin_hub = obj.get("origin_hub")
        origin_seq = obj.get("origin_seq")
        payload = obj.get("payload")
        if not isinstance(origin_hub, str) or not origin_hub:
            raise ValidationError("broker message has no origin_hub")
        # bool is an int subclass; a True seq would be a forged message.
        if not isinstance(origin_seq, int) or isinstance(origin_seq, bool) or origin_seq < 1:
            raise ValidationError("broker message has no valid origin_seq")
        if not isinstance(payload, dict):
            raise ValidationError("broker message payload is not an object")
        return cls(channel=channel, payload=payload, origin_hub=origin_hub, origin_seq=origin_seq)


#: A subscriber: called once per message, in order, from the subscription's delivery task.
Handler = Callable[[BrokerMessage], Awaitable[None]]
#: Called with ``(healthy, reason)`` on every health change; may be sync or async.
StateCallback = Callable[[bool, str], Any]


@runtime_checkable
class Broker(Protocol):
    """What the hub needs from a broker: publish, subscribe, and honest health reporting."""

    @property
    def hub_id(self) -> str:
        """The id this broker stamps on what it publishes (``BrokerMessage.origin_hub``)."""
        ...

    @property
    def healthy(self) -> bool:
        """True while messages can be published and received."""
        ...

    async def start(self) -> None:
        """Connect; raises :class:`DependencyError` if the peers cannot be reached at all."""
        ...

    async def close(self) -> None:
        """Stop every task and connection; queued, undelivered messages are discarded."""
        ...

    async def publish(self, channel: str, payload: dict[str, Any]) -> None:
        """Send ``payload`` to every subscriber of ``channel``; :class:`DependencyError` if down."""
        ...

    async def subscribe(self, channel: str, handler: Handler) -> None:
        """Call ``handler`` for every message on ``channel`` (a repeated subscribe is a no-op)."""
        ...

    async def unsubscribe(self, channel: str, handler: Handler) -> None:
        """Stop calling ``handler`` for ``channel``; queued messages for it are discarded."""
        ...

    async def subscribe_prefix(self, prefix: str, handler: Handler) -> None:
        """Call ``handler`` for every message on every channel starting with ``prefix``."""
        ...

    async def unsubscribe_prefix(self, prefix: str, handler: Handler) -> None:
        """Undo :meth:`subscribe_prefix`; queued messages for it are discarded."""
        ...

    def progress(self, channel: str, handler: Handler, *, prefix: bool = False) -> tuple[int, int]:
        """``(handled, pending)`` of one subscription; ``(0, 0)`` if there is none."""
        ...

    def on_state_change(self, callback: StateCallback) -> Callable[[], None]:
        """Register ``callback(healthy, reason)``; returns a function that unregisters it."""
        ...

    def status(self) -> dict[str, Any]:
        """Counters and state: connected, reconnects, last_error, dropped, ..."""
        ...


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

    The delivery task exists only while there is something to deliver: an idle subscription is
    a deque and a few fields, because a hub holds one per local user and per room.
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
        self.queue: deque[BrokerMessage] = deque()
        self.maxsize = queue_size
        self.active = True
        self.running_handler = False
        self.handled = 0
        self.task: asyncio.Task[None] | None = None

    def offer(self, msg: BrokerMessage) -> bool:
        """Queue ``msg`` without waiting; False (and the message dropped) if the queue is full."""
        if not self.active:
            return True  # retired: discarded, as unsubscribing promises
        if len(self.queue) >= self.maxsize:
            return False
        self.queue.append(msg)
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
        self.queue.clear()
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
        return (sub.handled, len(sub.queue) + sub.running_handler)

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


class MemoryBus:
    """The in-process "server" that connects :class:`MemoryBroker` instances.

    Brokers attach on ``start()`` and detach on ``close()``; a message published on the bus is
    handed, in publish order, to every attached broker (the publisher included). The bus holds
    no messages itself: each broker queues what it receives for its own handlers.
    """

    def __init__(self, name: str = "") -> None:
        self.name = name
        # dict for stable (attach-order) iteration; holds only started, unclosed brokers.
        self._brokers: dict[MemoryBroker, None] = {}

    @classmethod
    def named(cls, name: str = "") -> MemoryBus:
        """The process-wide bus called ``name`` (``""`` is the default bus of ``memory://``).

        A named bus lives as long as some broker (or other code) holds it; a later call with the
        same name while it lives returns the same bus.
        """
        bus = _NAMED_BUSES.get(name)
        if bus is None:
            bus = cls(name)
            _NAMED_BUSES[name] = bus
        return bus

    @property
    def brokers(self) -> tuple[MemoryBroker, ...]:
        """The brokers attached now."""
        return tuple(self._brokers)

    def _attach(self, broker: MemoryBroker) -> None:
        self._brokers[broker] = None

    def _detach(self, broker: MemoryBroker) -> None:
        self._brokers.pop(broker, None)

    def _publish(self, full_channel: str, data: bytes) -> None:
        for broker in tuple(self._brokers):
            broker._receive(full_channel, data)

    def __repr__(self) -> str:
        return f"MemoryBus(name={self.name!r}, brokers={len(self._brokers)})"


# The buses behind memory://NAME URLs. Weak: a bus no broker uses any more is forgotten.
_NAMED_BUSES: weakref.WeakValueDictionary[str, MemoryBus] = weakref.WeakValueDictionary()


class MemoryBroker(BrokerBase):
    """A broker for hubs in one process, connected through a shared :class:`MemoryBus`.

    It keeps the whole contract of :class:`Broker`, including the wire format: every message is
    encoded to JSON on publish and decoded by each receiving broker, so a payload that would not
    survive Redis fails here too, and each hub gets its own copy of the payload.

    ``simulate_outage()`` / ``end_outage()`` cut this broker off the bus and reconnect it, so
    the hub's degraded mode can be shown and tested without Redis.
    """

    kind = "memory"

    def __init__(
        self,
        bus: MemoryBus | None = None,
        hub_id: str | None = None,
        *,
        prefix: str = DEFAULT_PREFIX,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        max_errors: int = DEFAULT_MAX_ERRORS,
        max_channels: int = DEFAULT_MAX_CHANNELS,
        echo_own: bool = False,
    ) -> None:
        super().__init__(
            hub_id,
            prefix=prefix,
            queue_size=queue_size,
            max_errors=max_errors,
            max_channels=max_channels,
            echo_own=echo_own,
        )
        self.bus = bus if bus is not None else MemoryBus.named("")
        self._outage: str | None = None

    async def start(self) -> None:
        """Attach to the bus; from now on messages on subscribed channels are delivered."""
        if self._closed:
            raise DependencyError("broker is closed")
        if self._started:
            return
        self._started = True
        self.bus._attach(self)
        # No callbacks for the initial state: they report changes after start().
        self._healthy = self._outage is None

    async def close(self) -> None:
        """Detach from the bus and stop every delivery task. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._healthy = False
        self.bus._detach(self)
        await self._stop_subscriptions()

    async def publish(self, channel: str, payload: dict[str, Any]) -> None:
        """Hand the message to every broker on the bus; :class:`DependencyError` if not running."""
        if not self._started or self._closed:
            raise DependencyError("broker is not running")
        if self._outage is not None:
            raise DependencyError(f"broker is down: {self._outage}")
        _, data = self._next_message(channel, payload)
        self._published += 1
        self.bus._publish(self._full_channel(channel), data)

    async def subscribe(self, channel: str, handler: Handler) -> None:
        """Deliver every later message on ``channel`` to ``handler`` (repeats are no-ops)."""
        self._add_subscription(channel, handler)

    async def unsubscribe(self, channel: str, handler: Handler) -> None:
        """Stop delivering ``channel`` to ``handler``; unknown pairs are ignored."""
        self._remove_subscription(channel, handler)

    async def subscribe_prefix(self, prefix: str, handler: Handler) -> None:
        """Deliver every later message on a channel starting with ``prefix`` to ``handler``."""
        self._add_subscription(prefix, handler, prefix=True)

    async def unsubscribe_prefix(self, prefix: str, handler: Handler) -> None:
        """Stop delivering ``prefix``'s channels to ``handler``; unknown pairs are ignored."""
        self._remove_subscription(prefix, handler, prefix=True)

    def _receive(self, full_channel: str, data: bytes) -> None:
        if self._closed:
            return
        channel = self._short_channel(full_channel)
        if channel is None:
            return
        # Like a server, the bus hands this broker only what it subscribed to: one copy per
        # matching subscription (exact, then each prefix), as Redis sends message and pmessage.
        exact = channel in self._subs
        prefixes = self._matching_prefixes(channel) if self._prefix_subs else []
        if not exact and not prefixes:
            return
        if self._outage is not None:
            # Like a real outage the message never reaches this hub; unlike Redis, we can count it.
            self._dropped += 1
            return
        if exact:
            self._dispatch_raw(full_channel, data)
        for prefix in prefixes:
            self._dispatch_raw(full_channel, data, prefix)

    async def simulate_outage(self, reason: str = "simulated outage") -> None:
        """Act as if the bus became unreachable: unhealthy, publish fails, nothing is received."""
        self._outage = reason
        self._last_error = reason
        if self._started and not self._closed:
            await self._set_healthy(False, reason)

    async def end_outage(self) -> None:
        """End a simulated outage: healthy again, counted as a reconnect."""
        if self._outage is None:
            return
        self._outage = None
        if self._started and not self._closed:
            self._reconnects += 1
            await self._set_healthy(True, "outage ended")

    def status(self) -> dict[str, Any]:
        """See :meth:`BrokerBase.status`; adds the bus name."""
        status = super().status()
        status["bus"] = self.bus.name
        return status

    def __repr__(self) -> str:
        return f"MemoryBroker(hub_id={self.hub_id!r}, bus={self.bus.name!r})"
