"""Publish/subscribe between hubs: the ``Broker`` contract, and where each part of it lives.

This module is the public face (import from here): :mod:`~wslab.integration.broker_contract`
holds ``BrokerMessage``, the ``Broker`` protocol and the defaults,
:mod:`~wslab.integration.broker_base` the machinery every broker shares (``BrokerBase``), and
:mod:`~wslab.integration.memory_broker` ``MemoryBus`` and ``MemoryBroker``.

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

from wslab.integration.broker_base import BrokerBase
from wslab.integration.broker_contract import (
    DEFAULT_MAX_CHANNELS,
    DEFAULT_MAX_ERRORS,
    DEFAULT_PREFIX,
    DEFAULT_QUEUE_SIZE,
    MAX_FAMILIES,
    WIRE_VERSION,
    Broker,
    BrokerMessage,
    Handler,
    StateCallback,
)
from wslab.integration.memory_broker import MemoryBroker, MemoryBus

__all__ = [
    "DEFAULT_MAX_CHANNELS",
    "DEFAULT_MAX_ERRORS",
    "DEFAULT_PREFIX",
    "DEFAULT_QUEUE_SIZE",
    "MAX_FAMILIES",
    "WIRE_VERSION",
    "Broker",
    "BrokerBase",
    "BrokerMessage",
    "Handler",
    "MemoryBroker",
    "MemoryBus",
    "StateCallback",
]
