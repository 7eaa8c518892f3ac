"""Chapter 4 (messaging patterns): the request that fills a gap, the merge after a reconnect."""

from __future__ import annotations

from typing import Any


def gap_request() -> dict[str, Any]:
    """The client saw 1, 2, 3, 4, 7, 8: ask for what follows the last seq before the gap."""
    return {"type": "chat:history", "room": "lobby", "since_seq": 4}


def deliver(last_seq: int, incoming: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each message once, in seq order, none at or before ``last_seq``, none past a gap."""
    fresh = {m["message_id"]: m for m in incoming if m["seq"] > last_seq}
    shown = []
    for message in sorted(fresh.values(), key=lambda m: m["seq"]):
        if message["seq"] != last_seq + 1:
            break  # a gap: what follows waits for the missing message
        shown.append(message)
        last_seq = message["seq"]
    return shown


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` kept; a send takes one."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.last: float | None = None

    def try_take(self, now: float) -> bool:
        if self.last is not None:
            # refill for the time that passed, but never past the burst: idle time is not saved up
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False
