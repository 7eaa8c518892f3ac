"""Token buckets: how fast a connection may send, and how often an address may connect.

Three pieces, each driven by an injectable clock (or an explicit ``now``) so tests and notebooks
can step time by hand:

:class:`TokenBucket`
    The classic algorithm. A bucket holds up to ``burst`` tokens and gains ``rate`` tokens per
    second; an action costing ``n`` tokens is allowed if ``n`` are there, and then takes them.
    Refilling is lazy: the elapsed time is credited whenever the bucket is looked at, so an idle
    bucket costs nothing. The level never exceeds ``burst``, so a request for more than
    ``burst`` tokens can **never** succeed.

:class:`ConnectionLimiter`
    Per connection: a message bucket and, optionally, a byte bucket. ``check(nbytes)`` answers
    :class:`Verdict` ``ALLOW``, ``REJECT`` (answer the message with a ``RATE_LIMITED`` error and
    keep the connection) or ``CLOSE`` (sustained flooding: the caller closes with 1008, policy
    violation). The flood rule is precise:

        A connection is closed when its ``flood_close_after``-th most recent rejection
        (counting the one being decided) happened less than ``flood_window`` seconds ago —
        i.e. ``flood_close_after`` rejections fall inside one window of ``flood_window``
        seconds.

    Rejections therefore decay: each one is forgotten ``flood_window`` seconds after it
    happened, so a client that bursts past its limit now and then, but backs off when told, is
    never closed. Rejected messages cost no tokens.

:class:`AddressLimiter`
    Per client address: one bucket of connection attempts (``attempts_per_minute``), kept in a
    bounded LRU map of at most ``max_addresses`` entries.

Floating point: refills accumulate ``rate * elapsed`` and can land a hair below a whole number
(0.1 s at 10/s may credit 0.9999999999999999 tokens), so a request is granted when the level is
within 1e-9 of it; the level is clamped at zero afterwards.
"""

from __future__ import annotations

import enum
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from wslab.foundation.errors import ConfigError

__all__ = ["AddressLimiter", "ConnectionLimiter", "TokenBucket", "Verdict"]

Clock = Callable[[], float]

# Tolerance for float rounding in refills (see the module docstring).
_EPSILON = 1e-9


class TokenBucket:
    """A token bucket: ``burst`` tokens at most, refilled at ``rate`` tokens per second.

    A new bucket starts full at ``start`` (default ``clock()``). ``now`` arguments default to
    ``clock()``; a ``now`` earlier than
    the last one seen (a clock that stepped back) credits nothing rather than taking tokens
    away.
    """

    __slots__ = ("_clock", "_last", "_tokens", "burst", "rate")

    def __init__(
        self,
        rate: float,
        burst: float,
        clock: Clock = time.monotonic,
        *,
        start: float | None = None,
    ) -> None:
        if not (rate > 0 and math.isfinite(rate)):
            raise ConfigError(f"rate must be a positive number of tokens per second, got {rate}")
        if not (burst > 0 and math.isfinite(burst)):
            raise ConfigError(f"burst must be a positive number of tokens, got {burst}")
        self.rate = float(rate)
        self.burst = float(burst)
        self._clock = clock
        self._tokens = self.burst
        self._last = clock() if start is None else start

    def _refill(self, now: float | None) -> float:
        if now is None:
            now = self._clock()
        elapsed = now - self._last
        if elapsed > 0:
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
            self._last = now
        return self._tokens

    def try_consume(self, n: float = 1.0, now: float | None = None) -> bool:
        """Take ``n`` tokens if there are that many and return True; else take none, False.

        ``n`` greater than ``burst`` never succeeds: the bucket cannot hold that many.
        """
        if n < 0:
            raise ConfigError(f"cannot consume a negative number of tokens ({n})")
        tokens = self._refill(now)
        if tokens + _EPSILON < n:
            return False
        self._tokens = max(0.0, tokens - n)
        return True

    def can_consume(self, n: float = 1.0, now: float | None = None) -> bool:
        """True if :meth:`try_consume` would succeed now, without taking anything."""
        return self._refill(now) + _EPSILON >= n

    def time_until(self, n: float = 1.0, now: float | None = None) -> float:
        """Seconds until ``n`` tokens are available: 0.0 if they are, ``math.inf`` if n > burst."""
        if n > self.burst + _EPSILON:
            return math.inf
        missing = n - self._refill(now)
        return 0.0 if missing <= _EPSILON else missing / self.rate

    def is_full(self, now: float | None = None) -> bool:
        """True if the bucket is at ``burst``: indistinguishable from a brand-new bucket."""
        return self._refill(now) >= self.burst

    def available(self, now: float | None = None) -> float:
        """The tokens available at ``now`` (refilled up to it first)."""
        return self._refill(now)

    @property
    def tokens(self) -> float:
        """The tokens available now (refilled up to ``clock()`` first)."""
        return self._refill(None)

    def __repr__(self) -> str:
        return f"<TokenBucket {self._tokens:.3f}/{self.burst:g} +{self.rate:g}/s>"


class Verdict(enum.Enum):
    """What to do with one incoming message."""

    ALLOW = "allow"  # handle it
    REJECT = "reject"  # answer with a RATE_LIMITED error; the connection stays open
    CLOSE = "close"  # sustained flooding: close the connection with 1008 (policy violation)


class ConnectionLimiter:
    """Message and byte rate limits for one connection, with a flood rule that closes it.

    :param messages_per_second: sustained message rate.
    :param burst: messages that may arrive at once (the message bucket's size).
    :param bytes_per_second: sustained byte rate, or None for no byte limit.
    :param byte_burst: the byte bucket's size (default: one second of ``bytes_per_second``).
        A message larger than this is always rejected, so keep it at least the hub's
        ``max_message_size``.
    :param flood_close_after: rejections inside ``flood_window`` seconds that close the
        connection (see the module docstring for the exact rule).
    :param flood_window: the window, in seconds, over which rejections count.
    :param forgive: asked at each rejection for the seconds of stall that may explain a backlog
        now (0: none; the hub passes its ``LoopStallWatch.forgiven_seconds``). While it is
        above 0, rejections are not counted towards the flood rule — up to what a client keeping
        to the rate could have sent in that time (``rate * seconds + burst``): a backlog the hub's
        own stall created is not the client's flood, a flood during a stall still is.
    """

    __slots__ = (
        "_bytes",
        "_clock",
        "_closed",
        "_forgiven",
        "_messages",
        "_rejections",
        "allowed",
        "flood_close_after",
        "flood_window",
        "forgive",
        "rejected",
    )

    def __init__(
        self,
        messages_per_second: float,
        burst: float,
        bytes_per_second: float | None = None,
        byte_burst: float | None = None,
        flood_close_after: int = 20,
        flood_window: float = 10.0,
        clock: Clock = time.monotonic,
        forgive: Callable[[float], float] | None = None,
    ) -> None:
        if flood_close_after < 1:
            raise ConfigError(f"flood_close_after must be at least 1, got {flood_close_after}")
        if not flood_window > 0:
            raise ConfigError(f"flood_window must be positive, got {flood_window}")
        self._clock = clock
        self._messages = TokenBucket(messages_per_second, burst, clock)
        self._bytes: TokenBucket | None = None
        if bytes_per_second is not None:
            self._bytes = TokenBucket(
                bytes_per_second,
                bytes_per_second if byte_burst is None else byte_burst,
                clock,
            )
        self.flood_close_after = flood_close_after
        self.flood_window = float(flood_window)
        self.forgive = forgive
        # Times of the most recent rejections. Only the last ``flood_close_after`` can matter
        # to the rule, so that is the bound; older ones fall off the left.
        # Created at the first rejection: most connections never get one, and an empty deque
        # is some 600 bytes per connection.
        self._rejections: deque[float] | None = None
        self._closed = False
        # Rejections forgiven in the current stall window (reset once it is over).
        self._forgiven = 0
        #: Messages allowed and rejected so far (CLOSE verdicts count as rejected).
        self.allowed = 0
        self.rejected = 0

    def check(self, nbytes: int = 0, now: float | None = None) -> Verdict:
        """Decide on one incoming message of ``nbytes`` bytes.

        Once ``CLOSE`` has been returned, every later call returns ``CLOSE`` too: messages still
        in flight on a connection being closed for flooding are not handled.
        """
        if now is None:
            now = self._clock()
        if self._closed:
            self.rejected += 1
            return Verdict.CLOSE
        byte_bucket = self._bytes
        # Take tokens only if both buckets can pay, so a rejected message costs nothing.
        if self._messages.can_consume(1.0, now) and (
            byte_bucket is None or byte_bucket.can_consume(nbytes, now)
        ):
            self._messages.try_consume(1.0, now)
            if byte_bucket is not None:
                byte_bucket.try_consume(nbytes, now)
            self.allowed += 1
            return Verdict.ALLOW
        self.rejected += 1
        if self.forgive is not None:
            stalled = self.forgive(now)
            if stalled <= 0:
                self._forgiven = 0
            elif self._forgiven < self._messages.rate * stalled + self._messages.burst:
                self._forgiven += 1
                return Verdict.REJECT
        rejections = self._rejections
        if rejections is None:
            rejections = self._rejections = deque(maxlen=self.flood_close_after)
        rejections.append(now)
        if len(rejections) == self.flood_close_after and now - rejections[0] < self.flood_window:
            self._closed = True
            return Verdict.CLOSE
        return Verdict.REJECT

    def retry_after(self, nbytes: int = 0, now: float | None = None) -> float:
        """Seconds until a message of ``nbytes`` would be allowed (``inf`` if it never can)."""
        if now is None:
            now = self._clock()
        wait = self._messages.time_until(1.0, now)
        if self._bytes is not None:
            wait = max(wait, self._bytes.time_until(nbytes, now))
        return wait

    def recent_rejections(self, now: float | None = None) -> int:
        """Rejections inside the flood window ending now (what the flood rule is counting)."""
        if now is None:
            now = self._clock()
        return sum(1 for t in self._rejections or () if now - t < self.flood_window)

    @property
    def closed(self) -> bool:
        """True once a ``CLOSE`` verdict has been given."""
        return self._closed

    @property
    def messages(self) -> TokenBucket:
        """The message bucket (for display)."""
        return self._messages

    @property
    def bytes(self) -> TokenBucket | None:
        """The byte bucket, or None without a byte limit (for display)."""
        return self._bytes


class AddressLimiter:
    """Connection attempts per client address, in a bounded LRU map of token buckets.

    Each address gets a bucket of ``burst`` attempts (default: ``attempts_per_minute``) refilled
    at ``attempts_per_minute / 60`` per second.

    Bound: at most ``max_addresses`` buckets. A full bucket is the same as no bucket (a new one
    starts full), so buckets that have refilled completely are dropped as they are met from the
    least recently used end. If the map is still full when a new address arrives, the least
    recently used bucket is evicted even though it is not full. Evicting can only make the
    limiter **more lenient** for that address — it comes back with a full bucket, never an
    emptier one — and never stricter for anyone; :attr:`evicted` counts these evictions.
    """

    __slots__ = ("_buckets", "_clock", "burst", "evicted", "max_addresses", "rate")

    def __init__(
        self,
        attempts_per_minute: float,
        max_addresses: int = 10_000,
        clock: Clock = time.monotonic,
        *,
        burst: float | None = None,
    ) -> None:
        if not attempts_per_minute > 0:
            raise ConfigError(f"attempts_per_minute must be positive, got {attempts_per_minute}")
        if max_addresses < 1:
            raise ConfigError(f"max_addresses must be at least 1, got {max_addresses}")
        self.rate = attempts_per_minute / 60.0
        self.burst = float(attempts_per_minute if burst is None else burst)
        if not self.burst > 0:
            raise ConfigError(f"burst must be positive, got {burst}")
        self.max_addresses = max_addresses
        self._clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        #: Buckets evicted before they had refilled (each made the limiter more lenient).
        self.evicted = 0

    def allow(self, address: str, now: float | None = None) -> bool:
        """Count one connection attempt from ``address``; True if it is within the limit."""
        if now is None:
            now = self._clock()
        buckets = self._buckets
        bucket = buckets.get(address)
        if bucket is None:
            self._make_room(now)
            bucket = buckets[address] = TokenBucket(self.rate, self.burst, self._clock, start=now)
        else:
            buckets.move_to_end(address)
        return bucket.try_consume(1.0, now)

    def _make_room(self, now: float) -> None:
        buckets = self._buckets
        # Drop refilled buckets from the LRU end: they hold nothing a new bucket would not.
        # Stopping at the first non-full one keeps this amortised O(1) per call.
        while buckets:
            oldest = next(iter(buckets.values()))
            if not oldest.is_full(now):
                break
            buckets.popitem(last=False)
        if len(buckets) >= self.max_addresses:
            buckets.popitem(last=False)
            self.evicted += 1

    def remaining(self, address: str, now: float | None = None) -> float:
        """Attempts ``address`` could make right now (``burst`` if it is not tracked)."""
        bucket = self._buckets.get(address)
        if bucket is None:
            return self.burst
        return bucket.available(now)

    def __len__(self) -> int:
        return len(self._buckets)

    def __contains__(self, address: object) -> bool:
        return address in self._buckets
