"""``MemoryBroker`` and ``MemoryBus``: the broker for hubs in one process (``memory://``).

It keeps the whole contract of :mod:`wslab.integration.broker` (which re-exports both
classes), wire format included, and needs nothing installed; ``simulate_outage()`` shows the
hub's degraded mode without Redis.
"""

from __future__ import annotations

import weakref
from typing import Any

from wslab.foundation.errors import DependencyError
from wslab.integration.broker_base import BrokerBase
from wslab.integration.broker_contract import (
    DEFAULT_MAX_CHANNELS,
    DEFAULT_MAX_ERRORS,
    DEFAULT_PREFIX,
    DEFAULT_QUEUE_SIZE,
    Handler,
)

__all__ = ["MemoryBroker", "MemoryBus"]


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

    def _publish(self, full_channel: str, data: bytes, origin: MemoryBroker | None = None) -> None:
        for broker in tuple(self._brokers):
            broker._receive(full_channel, data, origin)

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

    @property
    def alone(self) -> bool:
        """True while this broker, healthy and not echoing its own messages, is alone on its bus.

        A lone hub on an in-process bus (``wslab serve`` on the default ``memory://``) has no
        one to tell: what it would publish reaches no other hub, so the hub need not encode it.
        """
        return (
            self._outage is None
            and not self.echo_own
            and self._started
            and not self._closed
            and len(self.bus._brokers) == 1
        )

    async def publish(self, channel: str, payload: dict[str, Any]) -> None:
        """Hand the message to every broker on the bus; :class:`DependencyError` if not running."""
        self.publish_nowait(channel, payload)

    def publish_nowait(self, channel: str, payload: dict[str, Any]) -> None:
        """:meth:`publish` without the coroutine: the bus is in this process, nothing to wait for.

        A hub publishes every message it accepts; calling this instead of scheduling
        :meth:`publish` as a task saves a task and a turn of the loop per message.
        """
        if not self._started or self._closed:
            raise DependencyError("broker is not running")
        if self._outage is not None:
            raise DependencyError(f"broker is down: {self._outage}")
        _, data = self._next_message(channel, payload)
        self._published += 1
        self.bus._publish(self._full_channel(channel), data, self)

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

    def _receive(self, full_channel: str, data: bytes, origin: MemoryBroker | None = None) -> None:
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
        if origin is self and not self.echo_own:
            # Our own message back: counted as BrokerBase._dispatch would count it, then
            # skipped without decoding it (the hub delivered it locally already).
            for _ in range(exact + len(prefixes)):
                self._count_received(channel, len(data))
                self._received += 1
                self._own_skipped += 1
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
