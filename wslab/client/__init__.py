"""The asyncio client of the wslab chat hub: :class:`ChatClient` and what it hands back.

Notebooks, tests, benchmarks and load tools all talk to the hub through this one class. It speaks
the chat protocol (``docs/protocol.md``) and adds what a real client needs on a real network:

- **Requests with acks.** Every request gets a unique ``ref``; the reply with the same ``ref``
  resolves it (``ack``, ``chat:history``, ``presence:list``...) or fails it with the exception
  mapped from the ``error`` envelope's code (``RATE_LIMITED`` -> :class:`RateLimitedError`...).
  At most ``max_pending`` requests wait at once; all of them fail with ``ConnectionClosed`` when
  the connection drops. Chat messages are *not* resent automatically: the hub gives each message
  its own id, so a resend after a lost ack could store it twice. A message whose ack was lost
  comes back through recovery instead (it is in the store), and a late ack for a request that
  already failed (timeout, ``DEGRADED``) is reported as a :class:`LateAck` event.
- **Reconnect** after an unexpected close (not after :meth:`ChatClient.close`, and never after
  4001/4003, which are verdicts, not accidents), with capped exponential backoff and *full
  jitter*: before attempt ``n`` (from 0) it sleeps ``uniform(0, min(backoff_max,
  backoff_initial * 2**n))``, so a thousand clients dropped at once do not come back in step. The
  counter starts again from 0 after every successful reconnect.
- **Recovery without gaps or duplicates.** The client remembers the last ``seq`` it delivered per
  room. After a reconnect it rejoins its rooms and pages through ``chat:history`` with
  ``since_seq`` (``limit`` 100 while pages come back full); live messages that arrive meanwhile
  are held and merged, so each room's messages are delivered in ``seq`` order, each once (deduped
  by ``message_id``). A live ``seq`` that jumps by more than one, or a ``system:resync`` from the
  hub, triggers the same recovery. Where the store no longer has the missing messages
  (``complete: false``) a :class:`HistoryGap` event says so — never a silent gap.
- **Typed events** (small frozen dataclasses) in one bounded inbox, read with ``async for event
  in client`` or :meth:`ChatClient.next_event`.
- **Numbers for notebooks**: :attr:`ChatClient.stats` and :attr:`ChatClient.latencies` (the
  delay from sending a message to receiving it back from the hub).

A first join of a room asks the hub for its newest message (``chat:history`` with ``limit`` 1):
that ``seq`` is the baseline from which later gaps are measured, so a client that saw no message
in a room before a disconnect still recovers what was said while it was away.

Bounds and what happens at them:

====================  ==========================  ================================================
what                  bound                       at the limit
====================  ==========================  ================================================
inbox of events       ``max_inbox``               the oldest event is dropped, ``dropped_events``
pending requests      ``max_pending``             the new request fails (:class:`TooManyPending`)
messages per room     ``max_room_messages``       ``messages(room)`` forgets the oldest
held live messages    ``max_inbox`` per room      the newest are dropped; recovery refetches them
seen message ids      ``MAX_SEEN``                the oldest id is forgotten (seq still dedupes)
followed rooms + DMs  ``MAX_TRACKS``              the oldest idle direct conversation or left
                                                  room is forgotten (its seq restarts from the
                                                  next message)
latencies, backoffs   10 000 / 1 000              the oldest sample is forgotten
====================  ==========================  ================================================

(``MAX_SEEN``, ``MAX_TRACKS`` and the other fixed bounds are in :mod:`.bounds`.)

The package, one job per module (everything public is importable from ``wslab.client``).
:class:`ChatClient` is composed of parts, each an object that owns its own state and is given
the parts it works with (no mixins sharing attributes):

- :mod:`.chat_client` — :class:`ChatClient`: settings, connect/close, supervise, reconnect with
  full-jitter backoff (:mod:`wslab.infrastructure.backoff`), resume, and the calls
  (``send_message``, ``join``, ``history``...);
- :mod:`.opening` — ``Opener``: one connection attempt (handshake, token, ``system:connected``);
- :mod:`.requests` — ``Link`` (the connection the parts share) and ``Requests`` (refs, replies,
  timeouts, late acks, latency);
- :mod:`.incoming` — ``Incoming``: dispatch of the hub's messages to handlers and events;
- :mod:`.tracking` — ``Tracker``: per-room delivery in ``seq`` order, deduplicated, gaps noticed;
- :mod:`.recovery` — ``Recovery``: recovery of missed messages from ``chat:history``;
- :mod:`.inbox` — ``Inbox``: the bounded inbox of events;
- :mod:`.bounds` — the fixed bounds and the bounded-mapping helper;
- :mod:`.events` — the event dataclasses (:class:`ChatMessage`, :class:`Disconnected`...);
- :mod:`.results` — what requests return (:class:`Ack`, :class:`History`, :class:`User`) and
  :class:`ClientStats`;
- :mod:`.errors` — :func:`error_from_envelope` and :class:`TooManyPending`.
"""

from __future__ import annotations

# Importable from here as before the split, though not part of ``__all__``.
from .bounds import HISTORY_PAGE as HISTORY_PAGE
from .chat_client import FINAL_CLOSE_CODES as FINAL_CLOSE_CODES
from .chat_client import ChatClient
from .errors import TooManyPending, error_from_envelope
from .events import (
    AuthExpiring,
    ChatMessage,
    Connected,
    Disconnected,
    ErrorEvent,
    Event,
    HistoryGap,
    LateAck,
    PresenceJoin,
    PresenceLeave,
    Reconnected,
    SystemBroadcast,
    Typing,
    UnknownEvent,
)
from .results import Ack, ClientStats, History, User

__all__ = [
    "Ack",
    "AuthExpiring",
    "ChatClient",
    "ChatMessage",
    "ClientStats",
    "Connected",
    "Disconnected",
    "ErrorEvent",
    "Event",
    "History",
    "HistoryGap",
    "LateAck",
    "PresenceJoin",
    "PresenceLeave",
    "Reconnected",
    "SystemBroadcast",
    "TooManyPending",
    "Typing",
    "UnknownEvent",
    "User",
    "error_from_envelope",
]
