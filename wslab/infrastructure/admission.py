"""Cool-downs for abusers: whom the hub closed for abuse is refused at the upgrade for a while.

A connection the hub closes for abuse — 1008 (sustained flooding past the message or frame
rate) or 1009 (a message or a fragment chain past the caps) — would otherwise come straight
back: a flooder is closed within tens of milliseconds and reconnects at once, and every cycle
costs the hub a handshake, a token check, a lobby join and presence broadcasts that everyone
else waits behind. :class:`AbuseCoolDown` makes that churn rare and cheap: after an abusive
close, the same user (the token's subject) and, past a threshold, the same address is refused
at the upgrade with **HTTP 429 and Retry-After** until its cool-down ends — before any
connection, session, presence or store work exists for it.

The rules:

- **Offences grow the cool-down.** The n-th offence of a key cools it down for
  ``base * 2**(n - threshold)`` seconds, at most ``maximum``. A key is forgiven — its count
  back to zero — ``memory`` seconds after its last cool-down ended without a new offence.
- **Users first.** An abusive close of an authenticated connection counts against its user
  (the token's subject), who cools down from the first offence; an upgrade that proves a user
  (a valid token on the upgrade request) is judged as that user, not by its address. So many
  well-behaved users behind one NAT or proxy address keep connecting while one of them is
  cooling down, and the abuser's address is not blamed for what its user did.
- **Addresses only for the unattributed, past a generous threshold.** An abusive close nobody
  can be held to (a guest, whose id is new each time; a connection that flooded before it
  authenticated) counts against the client's address, and the address cools down from its
  ``threshold``-th such offence inside the memory. Only upgrades that prove no user are
  refused for it (guests; clients that send their token in the first message, as browsers
  do). That is the NAT trade-off: ``threshold`` unattributed offences from one shared address
  keep its *new* guest and token-in-message connections out for the cool-down; connections
  already open are never touched, and clients sending the token on the upgrade still get in.
- **Bounded.** Each table holds at most ``max_keys`` keys in least-recently-offended order.
  Forgiven keys are dropped as they are met at the old end; when the table is still full, the
  oldest key is evicted even if it is cooling down — which can only make the hub more lenient
  to it, never stricter to anyone (:attr:`OffenceTable.evicted` counts these).

Asking is cheap when nobody is cooling down (two dictionary lookups; the token is looked at only
while some user is cooling down or the address is), so it sits first in the upgrade checks.
Time enters as ``now`` (default: the clock), so tests step it by hand.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from wslab.foundation.codes import CloseCode
from wslab.foundation.errors import ConfigError

__all__ = ["ABUSE_CLOSE_CODES", "AbuseCoolDown", "OffenceTable", "retry_after_header"]

Clock = Callable[[], float]

#: Close codes the hub sends for abuse: flooding (1008) and over-size messages or fragment
#: chains (1009). 1011 (the hub's own failure), 1001 (shutdown) and 4001 (a bad token, which
#: the token's own checks handle) are not the client's abuse.
ABUSE_CLOSE_CODES = frozenset({int(CloseCode.POLICY_VIOLATION), int(CloseCode.MESSAGE_TOO_BIG)})


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` as RFC 9110 10.2.3 wants it: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))


class _Record:
    """One key's offences: how many, until when it cools down, when it is forgiven."""

    __slots__ = ("count", "forget_at", "until")

    def __init__(self) -> None:
        self.count = 0
        self.until = 0.0
        self.forget_at = 0.0


class OffenceTable:
    """Offences per key (a user id or an address) in a bounded LRU map (see the module docstring).

    :param base: seconds of the first cool-down (at the ``threshold``-th offence).
    :param maximum: the longest cool-down, however many offences.
    :param memory: seconds after a cool-down ends until the key's offences are forgotten.
    :param threshold: offences before the key cools down at all (1: from the first).
    :param max_keys: keys kept at most.
    """

    __slots__ = ("_clock", "_records", "base", "evicted", "max_keys", "maximum", "memory",
                 "threshold")  # fmt: skip

    def __init__(
        self,
        base: float,
        maximum: float,
        memory: float,
        *,
        threshold: int = 1,
        max_keys: int = 10_000,
        clock: Clock = time.monotonic,
    ) -> None:
        if not (base > 0 and math.isfinite(base)):
            raise ConfigError(f"cool-down: base must be a positive number of seconds, got {base}")
        if not (maximum >= base and math.isfinite(maximum)):
            raise ConfigError(f"cool-down: maximum must be >= base ({base}), got {maximum}")
        if not memory >= 0:
            raise ConfigError(f"cool-down: memory must be >= 0 seconds, got {memory}")
        if threshold < 1 or max_keys < 1:
            raise ConfigError(
                f"cool-down: threshold and max_keys must be >= 1, got {threshold}, {max_keys}"
            )
        self.base, self.maximum, self.memory = float(base), float(maximum), float(memory)
        self.threshold, self.max_keys = threshold, max_keys
        self._clock = clock
        self._records: OrderedDict[str, _Record] = OrderedDict()
        #: Keys evicted from a full table before they were forgiven (each made it more lenient).
        self.evicted = 0

    def offend(self, key: str, now: float | None = None) -> float:
        """Count one offence of ``key``; return the cool-down it now serves (0.0: none yet)."""
        if now is None:
            now = self._clock()
        records = self._records
        record = records.get(key)
        if record is None or now >= record.forget_at:
            if record is None:
                self._make_room(now)
            record = records[key] = _Record()
        records.move_to_end(key)
        record.count += 1
        over = record.count - self.threshold
        if over < 0:
            # Below the threshold: nothing to serve, but the offence is remembered for a while.
            record.forget_at = max(record.forget_at, now + self.memory)
            return 0.0
        # 2**over overflows a float past ~1000 offences; the cap is reached long before.
        seconds = self.maximum if over > 60 else min(self.maximum, self.base * 2.0**over)
        record.until = max(record.until, now + seconds)
        record.forget_at = record.until + self.memory
        return record.until - now

    def retry_after(self, key: str, now: float | None = None) -> float:
        """Seconds ``key`` still cools down (0.0: it may connect)."""
        record = self._records.get(key)
        if record is None:
            return 0.0
        left = record.until - (self._clock() if now is None else now)
        return left if left > 0 else 0.0

    def offences(self, key: str, now: float | None = None) -> int:
        """Offences of ``key`` still remembered."""
        record = self._records.get(key)
        if record is None or (self._clock() if now is None else now) >= record.forget_at:
            return 0
        return record.count

    def _make_room(self, now: float) -> None:
        records = self._records
        # Forgiven keys at the old end hold nothing a new record would not; stopping at the
        # first one still remembered keeps this amortised O(1).
        while records:
            oldest = next(iter(records.values()))
            if now < oldest.forget_at:
                break
            records.popitem(last=False)
        if len(records) >= self.max_keys:
            records.popitem(last=False)
            self.evicted += 1

    def __len__(self) -> int:
        return len(self._records)

    def __bool__(self) -> bool:
        return bool(self._records)

    def __contains__(self, key: object) -> bool:
        return key in self._records


class AbuseCoolDown:
    """Who is refused at the upgrade after an abusive close, and for how long.

    :param base: seconds of a first cool-down.
    :param maximum: the longest cool-down.
    :param memory: seconds after a cool-down ends until its offences are forgotten.
    :param address_threshold: abusive closes from one address (inside the memory) before the
        address as a whole cools down; 0 (the hub's default): never, as everyone behind one NAT
        or proxy would be refused with it.
    :param max_keys: users, and addresses, kept at most (each table on its own).
    """

    def __init__(
        self,
        base: float = 10.0,
        maximum: float = 900.0,
        memory: float = 600.0,
        *,
        address_threshold: int = 5,
        max_keys: int = 10_000,
        clock: Clock = time.monotonic,
    ) -> None:
        if address_threshold < 0:
            raise ConfigError(f"cool-down: address_threshold must be >= 0, got {address_threshold}")
        self.users = OffenceTable(base, maximum, memory, max_keys=max_keys, clock=clock)
        #: 0: an address never cools down as a whole (only proven users do).
        self.address_threshold = address_threshold
        self.addresses = OffenceTable(
            base, maximum, memory, threshold=max(1, address_threshold), max_keys=max_keys,
            clock=clock,
        )
        self._clock = clock
        #: Abusive closes counted, and upgrades refused for a cool-down.
        self.offences = 0
        self.refusals = 0

    def closed(
        self, code: int | None, address: str | None, user: str | None, now: float | None = None
    ) -> float:
        """The hub closed a connection with ``code``: count it if it was abuse.

        ``user`` is the authenticated user (None for guests and connections never
        authenticated: a guest's id is new every time, so it identifies nobody). The offence
        counts against the user if there is one, else against ``address``. Returns the
        cool-down it now serves, 0.0 if none.
        """
        if code not in ABUSE_CLOSE_CODES:
            return 0.0
        if now is None:
            now = self._clock()
        self.offences += 1
        if user is not None:
            return self.users.offend(user, now)
        if not address or not self.address_threshold:
            return 0.0
        return self.addresses.offend(address, now)

    def refusal(
        self, address: str | None, identify: Callable[[], str | None], now: float | None = None
    ) -> float:
        """Seconds to refuse an upgrade from ``address`` for (0.0: admit it).

        ``identify`` returns the user a valid token on the upgrade proves, or None; it is
        called only while some user or this address is cooling down.
        """
        users, addresses = self.users, self.addresses
        if not users and not addresses:
            return 0.0  # nobody has offended: the common case costs nothing
        if now is None:
            now = self._clock()
        address_wait = addresses.retry_after(address, now) if address else 0.0
        if not users and not address_wait:
            return 0.0
        user = identify()
        # A proven user is judged as that user: its neighbours' abuse is not its own.
        wait = users.retry_after(user, now) if user is not None else address_wait
        if wait:
            self.refusals += 1
        return wait
