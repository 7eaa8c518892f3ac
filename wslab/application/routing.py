"""Which broker channels this hub listens to: chat traffic routed per room and per user.

A hub needs another hub's room message only if one of its own clients is in that room, and a
direct message only if the addressee (or the sender, in another tab) is connected here. So room
traffic goes on one channel per room, ``room:<name>``, and direct messages on one channel per
user, ``user:<id>``; a hub subscribes to a channel while it has a local member (a connection in
the room, a connection of the user) and unsubscribes when the last one goes. Subscriptions are
reference counted: ten local members of a room cost one subscription.

Bounded: each family (rooms, users) holds at most ``limit`` channel subscriptions. Above it the
family falls back to one prefix subscription (``room:*``, ``PSUBSCRIBE`` on Redis) — the hub then
receives every room's traffic, as every hub did before per-room routing — and returns to
per-channel subscriptions when local membership drops to half the limit (hysteresis, so a hub
at the edge does not flap). The switch subscribes the new way first and drops the old one after,
so nothing published meanwhile is missed; the copies that arrive twice during the overlap are
dropped by ``origin_seq`` (:class:`SeqFilter`), and the old subscription is given the time to deliver
what it holds before it goes (unsubscribing discards its queue).

The join race, and what covers it: ``acquire`` returns once the broker confirmed the
subscription (Redis ``SUBSCRIBE`` reply; the in-process broker at once). The chat service awaits
it *before* it reads the room's ``latest_seq`` for the join ``ack`` (and, for a user channel,
before it sends ``system:connected``). A message another hub stores after that read was
published after the subscription was active, so it arrives live; everything up to
``latest_seq`` is in the store, where ``chat:history since_seq`` finds it. Nothing falls in
between. While the broker is down, ``acquire`` returns at once (the broker subscribes on
reconnect) and the reconnect's ``system:resync`` covers the gap, as before.

``mode="hub"`` keeps the old routing — every hub on the hub-wide ``rooms`` and ``direct``
channels — as the baseline benchmarks measure against. Every hub sharing a broker must use the
same mode (the hub's ``broker_routing`` setting, ``WSLAB_BROKER_ROUTING``; ``room`` by default).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from wslab.foundation.errors import ConfigError
from wslab.integration.broker import Broker, BrokerMessage

__all__ = [
    "DEFAULT_LIMIT",
    "DIRECT",
    "ROOMS",
    "ROOM_PREFIX",
    "USER_PREFIX",
    "BrokerRouting",
    "ChannelFamily",
    "SeqFilter",
    "room_channel",
    "user_channel",
    "user_of",
]

log = logging.getLogger("wslab.routing")

#: The hub-wide channels of ``mode="hub"`` (every hub receives every room's / user's traffic).
ROOMS, DIRECT = "rooms", "direct"
ROOM_PREFIX, USER_PREFIX = "room:", "user:"
#: The modes: ``room`` (per room and user, the default) or ``hub`` (hub-wide channels).
MODES = ("room", "hub")
#: Channel subscriptions per family before it falls back to its prefix subscription.
DEFAULT_LIMIT = 5_000
#: Message ids the duplicate filter remembers during an overlap.
DEFAULT_SEEN = 16_384
#: How long (s) the duplicate filter stays on after a switch, for copies still queued.
OVERLAP_GRACE = 5.0
#: How long (s) a switch waits for the old subscription to deliver what it holds.
DRAIN_TIMEOUT = 2.0

Handler = Callable[[BrokerMessage], Awaitable[None]]


def room_channel(room: str) -> str:
    """The broker channel of one room's messages and typing notices."""
    return ROOM_PREFIX + room


def user_channel(user_id: str) -> str:
    """The broker channel of the direct messages one user's connections should see."""
    return USER_PREFIX + user_id


def user_of(channel: str) -> str | None:
    """The user a per-user channel belongs to; None for any other channel."""
    return channel[len(USER_PREFIX) :] if channel.startswith(USER_PREFIX) else None


class SeqFilter:
    """Drops the second copy of a broker message, by (origin hub, channel, ``origin_seq``).

    Used only while a family has two subscriptions covering the same channel (a switch and a
    short grace after it): the two copies come through two queues, each in order but not in
    step, so the filter remembers exact ids rather than a high-water mark. It remembers the
    last ``max_ids`` ids; two copies are never further apart than two subscription queues
    (4,096 each by default), so the default keeps every pair it can meet. Outside an overlap it
    is cleared and unused: a hub restarted under the same id (its ``origin_seq`` starting at 1
    again) is never taken for a duplicate.
    """

    def __init__(self, max_ids: int = DEFAULT_SEEN) -> None:
        self._seen: OrderedDict[tuple[str, str, int], None] = OrderedDict()
        self._max = max_ids
        self.duplicates = 0

    def accept(self, msg: BrokerMessage) -> bool:
        """True the first time a message is seen; False (and counted) for a repeat."""
        key = (msg.origin_hub, msg.channel, msg.origin_seq)
        if key in self._seen:
            self.duplicates += 1
            return False
        self._seen[key] = None
        if len(self._seen) > self._max:
            self._seen.popitem(last=False)
        return True

    def clear(self) -> None:
        """Forget every id (at the start of an overlap)."""
        self._seen.clear()


class ChannelFamily:
    """Reference-counted subscriptions to the channels ``prefix + key`` of one family.

    ``acquire(key)`` / ``release(key)`` count local members; a pass of :meth:`_apply` brings the
    broker's subscriptions in line with the keys that have members, one pass at a time (so a
    subscribe and an unsubscribe of one channel never overtake each other). ``refs`` is bounded
    by the callers' own limits (rooms per hub, connections per hub); the broker holds at most
    ``limit`` subscriptions of this family, or one prefix subscription above it.
    """

    def __init__(self, broker: Broker, prefix: str, handler: Handler, *, limit: int) -> None:
        if limit < 2:
            raise ConfigError("a channel family's limit must be at least 2")
        self.broker = broker
        self.prefix = prefix
        self.limit = limit
        self.refs: dict[str, int] = {}
        self.active: set[str] = set()  # keys whose channel subscription is confirmed
        self.wide = False  # the prefix subscription is active instead
        # Keys whose membership changed since the last pass, while per-channel: a pass looks at
        # these, not at every key (a hub with 5,000 users would copy them all per connection).
        # Emptied by every pass, so it holds at most the keys touched in between.
        self._dirty: set[str] = set()
        self.switches = 0
        self.seen = SeqFilter()
        self._overlap_until = 0.0  # loop time; math.inf while a switch is under way
        self._handler = handler
        self._task: asyncio.Task[None] | None = None
        self._next: asyncio.Future[None] | None = None
        self._closed = False

    def accept(self, msg: BrokerMessage) -> bool:
        """False for the second copy of a message during an overlap; True otherwise."""
        if self._overlap_until == 0.0:
            return True
        if asyncio.get_running_loop().time() > self._overlap_until:
            self._overlap_until = 0.0
            self.seen.clear()
            return True
        return self.seen.accept(msg)

    def covered(self, key: str) -> bool:
        """True while messages on ``key``'s channel reach this hub."""
        return self.wide or key in self.active

    async def acquire(self, key: str) -> None:
        """One more local member of ``key``; returns once its channel is subscribed."""
        self.refs[key] = self.refs.get(key, 0) + 1
        if not self.wide:
            self._dirty.add(key)
        if not self.covered(key) and not self._closed:
            # shield: a cancelled join must not cancel the pass the other joins wait for.
            await asyncio.shield(self._kick())

    def release(self, key: str) -> None:
        """One local member of ``key`` fewer; the last one schedules the unsubscribe."""
        count = self.refs.get(key, 0) - 1
        if count > 0:
            self.refs[key] = count
            return
        self.refs.pop(key, None)
        if not self.wide:
            # Even when not yet subscribed: a pass may be subscribing it right now.
            self._dirty.add(key)
        if not self._closed and (key in self.active or self.wide):
            self._kick()

    def _kick(self) -> asyncio.Future[None]:
        """Ask for a pass; the future resolves when a pass started after this call is done."""
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        fut = self._next
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"wslab-routing:{self.prefix}"
            )
        return fut

    async def _run(self) -> None:
        while self._next is not None and not self._closed:
            fut, self._next = self._next, None
            try:
                await self._apply()
            except asyncio.CancelledError:
                fut.set_result(None)
                raise
            except Exception:
                # A broker bug must not leave joins waiting forever; the next pass retries.
                log.exception("routing %s: subscription pass failed", self.prefix)
            fut.set_result(None)

    async def _apply(self) -> None:
        if self.wide and len(self.refs) > self.limit // 2:
            return  # the prefix covers everyone: a pass per new member must not copy them all
        if not self.wide and len(self.refs) <= self.limit:
            await self._apply_changes()
            return
        # A switch: it looks at every key, so what was dirty is covered.
        self._dirty.clear()
        want = set(self.refs)
        if not self.wide:
            # Catch-all first, then drop the channels: no moment where a room is not covered.
            self._begin_overlap()
            try:
                await self.broker.subscribe_prefix(self.prefix, self._handler)
                self.wide = True
                self.switches += 1
                old = sorted(self.active)
                self.active.clear()
                await self._drain([(self.prefix + key, False) for key in old])
                for key in old:
                    await self.broker.unsubscribe(self.prefix + key, self._handler)
            finally:
                self._end_overlap()
            return
        if self.wide:
            self._begin_overlap()
            try:
                await self._subscribe(want)
                # Members who arrived meanwhile were covered by the prefix and did not wait:
                # their channels too, before the prefix goes (no await between the last check
                # and wide = False, so nobody slips through).
                while missing := set(self.refs) - self.active:
                    await self._subscribe(missing)
                self.wide = False
                self.switches += 1
                await self._drain([(self.prefix, True)])
                await self.broker.unsubscribe_prefix(self.prefix, self._handler)
            finally:
                self._end_overlap()
            # Members who left during the switch were not tracked (the prefix covered them):
            # their channels go in the next pass.
            stale = self.active - self.refs.keys()
            if stale:
                self._dirty |= stale
                self._kick()

    async def _apply_changes(self) -> None:
        """A per-channel pass: subscribe and unsubscribe the keys that changed since the last."""
        dirty, self._dirty = self._dirty, set()
        try:
            await self._subscribe({key for key in dirty if key in self.refs} - self.active)
            for key in sorted(key for key in dirty if key not in self.refs and key in self.active):
                self.active.discard(key)
                await self.broker.unsubscribe(self.prefix + key, self._handler)
        except BaseException:
            self._dirty |= dirty  # the next pass retries them (checking each again is harmless)
            raise

    def _begin_overlap(self) -> None:
        self.seen.clear()
        self._overlap_until = math.inf

    def _end_overlap(self) -> None:
        # Copies of messages the old subscription delivered may still wait in the new one's
        # queue: keep filtering a little longer.
        self._overlap_until = asyncio.get_running_loop().time() + OVERLAP_GRACE

    async def _drain(self, subscriptions: list[tuple[str, bool]]) -> None:
        """Wait (bounded) until the old subscriptions delivered what they held at the switch.

        Unsubscribing discards a subscription's queue, and a message published before the new
        subscription was confirmed is only in the old one's. What the old one queued after
        that is in the new one's too, so it need not wait for those.
        """
        targets = []
        for channel, prefix in subscriptions:
            handled, pending = self.broker.progress(channel, self._handler, prefix=prefix)
            if pending:
                targets.append((channel, prefix, handled + pending))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DRAIN_TIMEOUT
        for channel, prefix, target in targets:
            while True:
                handled, pending = self.broker.progress(channel, self._handler, prefix=prefix)
                if handled >= target or not pending:
                    break
                if loop.time() > deadline:
                    log.warning("routing %s: switching before %s drained", self.prefix, channel)
                    return
                await asyncio.sleep(0.005)

    async def _subscribe(self, keys: set[str]) -> None:
        if not keys:
            return
        if len(keys) == 1:  # the usual pass (one new member): no task to gather
            await self.broker.subscribe(self.prefix + next(iter(keys)), self._handler)
        else:
            # Concurrent: n new rooms in one pass cost one round trip, not n.
            await asyncio.gather(
                *(self.broker.subscribe(self.prefix + key, self._handler) for key in keys)
            )
        self.active |= keys

    async def close(self) -> None:
        """Stop the pass task and drop every subscription of the family (best effort)."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._next is not None and not self._next.done():
            self._next.set_result(None)
        for key in sorted(self.active):
            await self.broker.unsubscribe(self.prefix + key, self._handler)
        self.active.clear()
        if self.wide:
            await self.broker.unsubscribe_prefix(self.prefix, self._handler)
            self.wide = False

    def status(self) -> dict[str, Any]:
        """Local members' keys, subscribed channels, whether the catch-all is on."""
        return {
            "keys": len(self.refs),
            "channels": len(self.active),
            "wide": self.wide,
            "switches": self.switches,
            "limit": self.limit,
        }


class BrokerRouting:
    """The chat service's broker channels for room traffic and direct messages.

    ``on_room`` receives room messages and typing notices, ``on_direct`` direct messages
    (:func:`user_of` its channel says whose connections it is for; None on the hub-wide
    ``direct`` channel of ``mode="hub"``). Both see each broker message once.
    """

    def __init__(
        self,
        broker: Broker,
        *,
        on_room: Handler,
        on_direct: Handler,
        mode: str | None = None,
        max_room_channels: int = DEFAULT_LIMIT,
        max_user_channels: int = DEFAULT_LIMIT,
    ) -> None:
        if mode is None:
            mode = "room"
        if mode not in MODES:
            raise ConfigError(f"broker routing must be one of {', '.join(MODES)}, not {mode!r}")
        self.broker = broker
        self.mode = mode
        self._on_room, self._on_direct = on_room, on_direct
        self.rooms = ChannelFamily(broker, ROOM_PREFIX, self._room, limit=max_room_channels)
        self.users = ChannelFamily(broker, USER_PREFIX, self._direct, limit=max_user_channels)

    @property
    def per_room(self) -> bool:
        """True when routing per room and user (the default)."""
        return self.mode == "room"

    async def start(self) -> None:
        """In ``mode="hub"``, subscribe to the hub-wide channels (per-room mode: on demand)."""
        if not self.per_room:
            await self.broker.subscribe(ROOMS, self._room)
            await self.broker.subscribe(DIRECT, self._direct)

    async def stop(self) -> None:
        """Drop every subscription this routing holds."""
        if self.per_room:
            await self.rooms.close()
            await self.users.close()
        else:
            await self.broker.unsubscribe(ROOMS, self._room)
            await self.broker.unsubscribe(DIRECT, self._direct)

    # -- publishing --------------------------------------------------------------------------------

    def room_channel(self, room: str) -> str:
        """Where a message or typing notice for ``room`` is published."""
        return room_channel(room) if self.per_room else ROOMS

    def direct_channels(self, to_user: str, from_user: str) -> list[str]:
        """Where a direct message is published: the addressee's and the sender's channels."""
        if not self.per_room:
            return [DIRECT]
        if to_user == from_user:
            return [user_channel(to_user)]
        return [user_channel(to_user), user_channel(from_user)]

    # -- local membership --------------------------------------------------------------------------

    async def join_room(self, room: str) -> None:
        """A local connection joined ``room``; returns once its traffic reaches this hub."""
        if self.per_room:
            await self.rooms.acquire(room)

    def leave_room(self, room: str) -> None:
        """A local connection left ``room``."""
        if self.per_room:
            self.rooms.release(room)

    async def user_connected(self, user_id: str) -> None:
        """A connection of ``user_id`` opened here; returns once their DMs reach this hub."""
        if self.per_room:
            await self.users.acquire(user_id)

    def user_disconnected(self, user_id: str) -> None:
        """A connection of ``user_id`` closed."""
        if self.per_room:
            self.users.release(user_id)

    # -- receiving ---------------------------------------------------------------------------------

    async def _room(self, msg: BrokerMessage) -> None:
        if self.rooms.accept(msg):
            await self._on_room(msg)

    async def _direct(self, msg: BrokerMessage) -> None:
        if self.users.accept(msg):
            await self._on_direct(msg)

    def status(self) -> dict[str, Any]:
        """The mode, each family's state and the duplicates dropped."""
        return {
            "mode": self.mode,
            "rooms": self.rooms.status(),
            "users": self.users.status(),
            "duplicates": self.rooms.seen.duplicates + self.users.seen.duplicates,
        }
