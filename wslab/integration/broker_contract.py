"""The broker contract's parts: :class:`BrokerMessage` (and its wire format), the
:class:`Broker` protocol, handler types and the defaults every broker shares.

The contract itself (delivery, order, bounds, health) is described in
:mod:`wslab.integration.broker`, which re-exports everything here; import from there.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from wslab.foundation.errors import ValidationError

__all__ = [
    "DEFAULT_MAX_CHANNELS",
    "DEFAULT_MAX_ERRORS",
    "DEFAULT_PREFIX",
    "DEFAULT_QUEUE_SIZE",
    "MAX_FAMILIES",
    "WIRE_VERSION",
    "Broker",
    "BrokerMessage",
    "Handler",
    "StateCallback",
]

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

    @property
    def alone(self) -> bool:
        """True when nothing published now could reach another hub (publishing may be skipped)."""
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


