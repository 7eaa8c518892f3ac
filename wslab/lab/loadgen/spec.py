"""What a load run is: the validated spec and each client's plan (user, rooms, whom it sends to)."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field
from typing import Any

from wslab.foundation.errors import WslabError

__all__ = ["PATTERNS", "LoadError", "LoadSpec"]

PATTERNS = ("one_room", "many_rooms", "direct", "mixed")
MAX_CLIENTS = 10_000


class LoadError(WslabError):
    """A load run could not go on: unreachable hub, a worker that died, a refused connection."""


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclass(frozen=True)
class LoadSpec:
    """A load run: ``clients`` connections sending ``rate`` messages/s in total.

    Bounded by ``duration`` seconds or by ``messages`` in total (one of the two). ``mode`` is
    ``"open"`` (sends at scheduled times whatever the replies) or ``"closed"`` (each sender waits
    for its ``ack`` before the next send).

    ``compression`` makes every client offer permessage-deflate, as a browser does. It is off by
    default because the workers share the machine with the hub: inflating the N x N presence
    traffic of a large run would spend the CPU the hub is being measured with.
    """

    url: str
    clients: int
    rate: float = 10.0
    duration: float | None = None
    messages: int | None = None
    pattern: str = "one_room"
    rooms: int = 4
    senders: int | None = None
    mode: str = "open"
    ramp: float = 0.0
    payload_size: int = 32
    drain: float = 2.0
    workers: int = 1
    connect_timeout: float = 5.0
    compression: bool = False
    #: Keep every send, ack and delivery for the result (False: only the per-second snapshots,
    #: so a long run that feeds a live dashboard holds no growing records in its workers).
    record: bool = True
    tokens: list[str | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not _is_int(self.clients) or not 1 <= self.clients <= MAX_CLIENTS:
            raise ValueError(f"clients must be an int in 1..{MAX_CLIENTS}, got {self.clients!r}")
        for name in ("rate", "ramp", "drain", "connect_timeout") + (
            ("duration",) if self.duration is not None else ()
        ):
            value = getattr(self, name)
            if not _is_number(value) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        for name in ("rooms", "workers", "payload_size") + (
            ("messages",) if self.messages is not None else ()
        ) + (("senders",) if self.senders is not None else ()):
            if not _is_int(getattr(self, name)):
                raise ValueError(f"{name} must be an int, got {getattr(self, name)!r}")
        if self.rate <= 0:
            raise ValueError(f"rate must be a positive number of messages/s, got {self.rate!r}")
        if (self.duration is None) == (self.messages is None):
            raise ValueError("give exactly one of duration (seconds) or messages (a count)")
        if self.duration is not None and not self.duration > 0:
            raise ValueError(f"duration must be > 0 seconds, got {self.duration!r}")
        if self.messages is not None and self.messages < 1:
            raise ValueError(f"messages must be >= 1, got {self.messages!r}")
        if self.pattern not in PATTERNS:
            raise ValueError(f"pattern must be one of {PATTERNS}, got {self.pattern!r}")
        if self.mode not in ("open", "closed"):
            raise ValueError(f"mode must be 'open' or 'closed', got {self.mode!r}")
        if self.rooms < 1:
            raise ValueError(f"rooms must be >= 1, got {self.rooms!r}")
        if self.senders is not None and not 1 <= self.senders <= self.clients:
            raise ValueError(f"senders must be in 1..clients ({self.clients}), got {self.senders}")
        for name in ("ramp", "drain"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 seconds, got {getattr(self, name)!r}")
        if self.connect_timeout <= 0:
            raise ValueError(f"connect_timeout must be > 0 seconds, got {self.connect_timeout!r}")
        if not 1 <= self.payload_size <= 4000:
            raise ValueError(f"payload_size must be in 1..4000, got {self.payload_size!r}")
        if not 1 <= self.workers <= self.clients:
            raise ValueError(f"workers must be in 1..clients ({self.clients}), got {self.workers}")
        if not isinstance(self.url, str) or not self.url.startswith(("ws://", "wss://")):
            raise ValueError(f"url must be ws:// or wss://, got {self.url!r}")
        if self.tokens and len(self.tokens) != self.clients:
            raise ValueError("tokens must have one entry per client")

    # -- the plan ----------------------------------------------------------------------------------

    @property
    def sender_count(self) -> int:
        return self.senders if self.senders is not None else self.clients

    def user(self, i: int) -> str:
        return f"load{i}"

    def rooms_of(self, i: int) -> list[str]:
        """The rooms client ``i`` joins (none for pure direct messages)."""
        if self.pattern == "direct":
            return []
        if self.pattern == "one_room":
            return ["load"]
        return [f"load{i % self.rooms}"]

    def target(self, i: int, k: int) -> dict[str, Any]:
        """Where client ``i``'s ``k``-th message goes: a room, or ``to_user`` for a direct one."""
        direct = self.pattern == "direct" or (self.pattern == "mixed" and k % 2 == 1)
        if direct:
            peer = (i + 1) % self.clients
            return {"to_user": self.user(peer)}
        return {"room": self.rooms_of(i)[0]}

    def per_sender(self) -> tuple[float, int | None]:
        """Each sender's rate and (for a count-bounded run) message count."""
        rate = self.rate / self.sender_count
        if self.messages is None:
            return rate, None
        return rate, math.ceil(self.messages / self.sender_count)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
