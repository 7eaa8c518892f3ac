"""The bounds of one connection and the counters it keeps: ``ConnectionLimits``,
``SlowConsumerPolicy`` (what happens at the outgoing queue's bound), ``ConnectionStats``.

Plain data, built by the hub from its ``HubConfig`` and read by :class:`Connection` and both
engines; :mod:`wslab.infrastructure.connection` re-exports them (their old import path).
"""

from __future__ import annotations

import enum
from array import array
from dataclasses import dataclass, field

from wslab.foundation.deflate import DeflateSettings
from wslab.foundation.errors import ConfigError

__all__ = ["MAX_RTTS", "ConnectionLimits", "ConnectionStats", "SlowConsumerPolicy"]


class SlowConsumerPolicy(str, enum.Enum):
    """What ``send_nowait`` does when the outgoing queue is full."""

    CLOSE = "close"  # close with 1013: the client reconnects and recovers from history
    DROP_OLDEST = "drop_oldest"  # keep the freshest data (e.g. live prices)
    DROP_NEW = "drop_new"  # keep what is queued, refuse the new message


@dataclass(frozen=True)
class ConnectionLimits:
    """The bounds of one connection. The hub builds these from its ``HubConfig``."""

    max_message_size: int | None = 1 << 20
    max_frame_size: int | None = None  # None: same as max_message_size
    max_queue: int = 256  # outgoing messages waiting while the socket is slow
    max_queue_bytes: int = 4 << 20
    slow_consumer_policy: SlowConsumerPolicy = SlowConsumerPolicy.CLOSE
    max_incoming: int = 64  # received messages waiting for the application
    write_high: int = 64 << 10  # transport write buffer: pause writing above this
    write_low: int = 16 << 10
    close_timeout: float = 5.0  # wait this long for the closing handshake, then drop TCP
    handshake_timeout: float = 10.0  # the whole HTTP upgrade request must arrive within this
    max_pending_pings: int = 16
    # Fair reading (wslab.infrastructure.fairness): frames per second a peer may send, charged
    # at arrival whatever their kind; None: no budget (an echo server for conformance runs).
    max_frames_per_second: float | None = None
    frame_burst: int | None = None  # None: two seconds' worth
    frame_flood_seconds: float = 5.0  # in debt this long, read after read: closed with 1008
    max_fragments: int | None = None  # frames of one message, empty ones included (1009 past it)
    # permessage-deflate (RFC 7692), offered/accepted by default as browsers expect; None: off.
    compression: DeflateSettings | None = field(default_factory=DeflateSettings)

    def __post_init__(self) -> None:
        if self.max_queue < 1 or self.max_incoming < 1:
            raise ConfigError("max_queue and max_incoming must be at least 1")
        if self.write_low > self.write_high:
            raise ConfigError("write_low must not exceed write_high")
        object.__setattr__(
            self, "slow_consumer_policy", SlowConsumerPolicy(self.slow_consumer_policy)
        )

    @property
    def frame_limit(self) -> int | None:
        """The effective limit on one received frame."""
        return self.max_frame_size if self.max_frame_size is not None else self.max_message_size


@dataclass(slots=True)
class ConnectionStats:
    """Per-connection counters, cheap to keep and shown by ``hub.connections``."""

    opened_at: float = 0.0
    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    dropped_out: int = 0
    queue_peak: int = 0
    writes_paused: int = 0
    pings_sent: int = 0
    pongs_received: int = 0
    last_rtt: float | None = None
    #: The last 64 round-trip times, oldest first; created with the first (an idle connection
    #: keeps none). Doubles in an array: a deque of 64 floats is over 2 KiB per connection.
    rtts: array[float] | None = None


#: Round-trip times one connection keeps (``stats.rtts``).
MAX_RTTS = 64
