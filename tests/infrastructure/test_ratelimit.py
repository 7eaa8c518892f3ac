"""Token buckets, the per-connection flood rule and the bounded per-address limiter."""

from __future__ import annotations

import math

import pytest

from wslab.foundation.errors import ConfigError
from wslab.infrastructure.ratelimit import AddressLimiter, ConnectionLimiter, TokenBucket, Verdict
from wslab.testing import FakeClock

#: Where the tests' clocks start unless a test says otherwise (a monotonic clock is rarely at 0).
START = 1000.0


# -- TokenBucket ---------------------------------------------------------------------------------


def test_bucket_starts_full_and_refills_at_rate() -> None:
    clock = FakeClock(START)
    bucket = TokenBucket(rate=2.0, burst=5.0, clock=clock)
    assert bucket.tokens == 5.0
    assert all(bucket.try_consume() for _ in range(5))
    assert not bucket.try_consume()
    clock.advance(0.25)
    assert bucket.tokens == pytest.approx(0.5)
    assert not bucket.try_consume()
    clock.advance(0.25)
    assert bucket.try_consume()  # 0.5 s at 2/s is exactly one token
    assert bucket.tokens == pytest.approx(0.0)


def test_refill_never_exceeds_burst() -> None:
    clock = FakeClock(START)
    bucket = TokenBucket(rate=10.0, burst=3.0, clock=clock)
    bucket.try_consume(3)
    clock.advance(3600)
    assert bucket.tokens == 3.0
    assert bucket.try_consume(3) and not bucket.try_consume(0.5)


def test_more_than_burst_never_succeeds() -> None:
    clock = FakeClock(START)
    bucket = TokenBucket(rate=100.0, burst=4.0, clock=clock)
    clock.advance(1e6)
    assert not bucket.try_consume(4.5)
    assert bucket.time_until(4.5) == math.inf
    assert bucket.tokens == 4.0  # a failed attempt takes nothing


def test_fractional_costs_and_float_rounding() -> None:
    clock = FakeClock(0.0)
    bucket = TokenBucket(rate=10.0, burst=1.0, clock=clock)
    assert bucket.try_consume()
    # Ten steps of 0.01 s at 10/s add up to 1 token only up to rounding; it must still count.
    for _ in range(10):
        clock.advance(0.01)
    assert bucket.try_consume()
    assert bucket.tokens >= 0.0
    assert bucket.try_consume(0.0)


def test_time_until_matches_the_refill() -> None:
    clock = FakeClock(START)
    bucket = TokenBucket(rate=4.0, burst=8.0, clock=clock)
    assert bucket.time_until(8) == 0.0
    bucket.try_consume(8)
    assert bucket.time_until(1) == pytest.approx(0.25)
    assert bucket.time_until(6) == pytest.approx(1.5)
    clock.advance(bucket.time_until(6))
    assert bucket.try_consume(6)


def test_explicit_now_and_a_clock_that_steps_back() -> None:
    bucket = TokenBucket(rate=1.0, burst=2.0, clock=FakeClock(50.0))
    assert bucket.try_consume(2, now=50.0)
    assert not bucket.try_consume(1, now=40.0)  # earlier time: credits nothing, takes nothing
    assert bucket.available(now=40.0) == 0.0
    assert bucket.try_consume(1, now=51.0)


def test_can_consume_and_is_full_do_not_take_tokens() -> None:
    clock = FakeClock(START)
    bucket = TokenBucket(rate=1.0, burst=2.0, clock=clock)
    assert bucket.is_full() and bucket.can_consume(2)
    assert bucket.tokens == 2.0
    bucket.try_consume()
    assert not bucket.is_full()
    clock.advance(1)
    assert bucket.is_full()


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0), (math.inf, 1), (1, math.nan)])
def test_bucket_parameters_are_validated(rate: float, burst: float) -> None:
    with pytest.raises(ConfigError):
        TokenBucket(rate, burst)


def test_negative_cost_is_refused() -> None:
    with pytest.raises(ConfigError):
        TokenBucket(1, 1).try_consume(-1)


# -- ConnectionLimiter ---------------------------------------------------------------------------


def limiter(clock: FakeClock, **overrides: float) -> ConnectionLimiter:
    params: dict[str, float] = {
        "messages_per_second": 10,
        "burst": 5,
        "flood_close_after": 10,
        "flood_window": 10.0,
    }
    params.update(overrides)
    return ConnectionLimiter(**params, clock=clock)  # type: ignore[arg-type]


def test_within_the_rate_everything_is_allowed() -> None:
    clock = FakeClock(START)
    lim = limiter(clock)
    for _ in range(1000):
        assert lim.check(100) is Verdict.ALLOW
        clock.advance(0.1)  # 10/s, exactly the rate
    assert lim.allowed == 1000 and lim.rejected == 0


def test_over_the_burst_is_rejected_but_the_connection_stays() -> None:
    clock = FakeClock(START)
    lim = limiter(clock)
    verdicts = [lim.check() for _ in range(8)]
    assert verdicts == [Verdict.ALLOW] * 5 + [Verdict.REJECT] * 3
    assert lim.retry_after() == pytest.approx(0.1)
    clock.advance(0.1)
    assert lim.check() is Verdict.ALLOW
    assert not lim.closed


def test_sustained_flooding_closes() -> None:
    clock = FakeClock(START)
    lim = limiter(clock)
    verdicts = [lim.check() for _ in range(5 + 10)]
    # Five allowed by the burst; the 10th rejection inside 10 s is the CLOSE.
    assert verdicts[:5] == [Verdict.ALLOW] * 5
    assert verdicts[5:14] == [Verdict.REJECT] * 9
    assert verdicts[14] is Verdict.CLOSE
    assert lim.closed
    clock.advance(60)
    assert lim.check() is Verdict.CLOSE  # sticky: the caller is closing the connection


def test_flooding_spread_over_the_window_still_closes() -> None:
    clock = FakeClock(START)
    lim = limiter(clock, messages_per_second=1, burst=1)
    verdicts = []
    # Two messages per second against a rate of one: one rejection per second.
    for _ in range(30):
        verdicts.append(lim.check())
        clock.advance(0.5)
        if verdicts[-1] is Verdict.CLOSE:
            break
    assert verdicts[-1] is Verdict.CLOSE
    assert verdicts.count(Verdict.REJECT) == 9  # the 10th rejection within 10 s closed it


def test_rejections_decay_so_a_client_that_backs_off_is_never_closed() -> None:
    clock = FakeClock(START)
    lim = limiter(clock)
    # Every 10.5 s: a burst of 14 messages (5 allowed, 9 rejected), then silence. Nine
    # rejections never reach ten within one window, however long this goes on.
    for _ in range(50):
        verdicts = [lim.check() for _ in range(14)]
        assert Verdict.CLOSE not in verdicts
        assert verdicts.count(Verdict.REJECT) == 9
        assert lim.recent_rejections() == 9
        clock.advance(10.5)
        assert lim.recent_rejections() == 0
    assert not lim.closed


def test_the_window_boundary_is_exclusive() -> None:
    clock = FakeClock(START)
    lim = limiter(clock, messages_per_second=1e-6, burst=1, flood_close_after=3, flood_window=2.0)
    assert lim.check() is Verdict.ALLOW
    assert lim.check() is Verdict.REJECT  # t = 0
    clock.advance(1.0)
    assert lim.check() is Verdict.REJECT  # t = 1
    clock.advance(1.0)
    # t = 2: the third rejection, but the first (t = 0) is exactly 2 s old: outside the window.
    assert lim.check() is Verdict.REJECT
    clock.advance(0.5)
    assert lim.check() is Verdict.CLOSE  # t = 2.5: rejections at 1, 2, 2.5 are inside 2 s


def test_rejected_messages_cost_no_tokens() -> None:
    clock = FakeClock(START)
    lim = limiter(clock, flood_close_after=1000)
    for _ in range(5):
        lim.check()
    for _ in range(100):
        assert lim.check() is Verdict.REJECT
    clock.advance(0.1)  # exactly one token back, not eaten by the rejections
    assert lim.check() is Verdict.ALLOW


def test_byte_limit() -> None:
    clock = FakeClock(START)
    lim = limiter(clock, bytes_per_second=1000, byte_burst=1500, flood_close_after=100)
    assert lim.check(1000) is Verdict.ALLOW
    assert lim.check(600) is Verdict.REJECT  # only 500 bytes of budget left
    assert lim.retry_after(600) == pytest.approx(0.1)
    assert lim.check(500) is Verdict.ALLOW
    clock.advance(0.6)
    # A byte rejection must not have taken a message token either: 5 - 2 + 6 capped at 5.
    assert lim.messages.tokens == 5.0
    assert lim.check(600) is Verdict.ALLOW
    assert lim.check(2000) is Verdict.REJECT  # larger than byte_burst: never allowed
    assert lim.retry_after(2000) == math.inf
    assert lim.bytes is not None and lim.bytes.burst == 1500


def test_byte_burst_defaults_to_one_second_of_rate() -> None:
    lim = ConnectionLimiter(10, 5, bytes_per_second=4096, clock=FakeClock(START))
    assert lim.bytes is not None and lim.bytes.burst == 4096
    assert ConnectionLimiter(10, 5, clock=FakeClock(START)).bytes is None


def test_connection_limiter_parameters_are_validated() -> None:
    with pytest.raises(ConfigError):
        ConnectionLimiter(10, 5, flood_close_after=0)
    with pytest.raises(ConfigError):
        ConnectionLimiter(10, 5, flood_window=0)
    with pytest.raises(ConfigError):
        ConnectionLimiter(0, 5)


# -- AddressLimiter ------------------------------------------------------------------------------


def test_address_attempts_per_minute() -> None:
    clock = FakeClock(START)
    lim = AddressLimiter(attempts_per_minute=6, clock=clock)
    assert [lim.allow("10.0.0.1") for _ in range(7)] == [True] * 6 + [False]
    assert lim.allow("10.0.0.2")  # other addresses have their own bucket
    clock.advance(10)  # 6/min: one attempt back every 10 s
    assert lim.allow("10.0.0.1")
    assert not lim.allow("10.0.0.1")
    assert lim.remaining("10.0.0.1") == pytest.approx(0.0)
    assert lim.remaining("10.9.9.9") == 6


def test_explicit_burst() -> None:
    lim = AddressLimiter(attempts_per_minute=60, burst=2, clock=FakeClock(START))
    assert [lim.allow("a") for _ in range(3)] == [True, True, False]


def test_lru_bound_is_never_exceeded_under_many_addresses() -> None:
    clock = FakeClock(START)
    lim = AddressLimiter(attempts_per_minute=5, max_addresses=1000, clock=clock)
    for i in range(100_000):
        lim.allow(f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}")
        if i % 997 == 0:
            assert len(lim) <= 1000
    assert len(lim) == 1000
    assert lim.evicted == 99_000  # no bucket had refilled: every eviction was forced


def test_refilled_buckets_are_dropped_before_anything_is_evicted() -> None:
    clock = FakeClock(START)
    lim = AddressLimiter(attempts_per_minute=60, burst=1, max_addresses=3, clock=clock)
    for address in ("a", "b", "c"):
        lim.allow(address)
    clock.advance(1.0)  # every bucket has refilled: same as having no bucket at all
    lim.allow("d")
    assert len(lim) == 1 and "d" in lim and lim.evicted == 0


def test_eviction_only_makes_the_limiter_more_lenient() -> None:
    clock = FakeClock(START)
    lim = AddressLimiter(attempts_per_minute=2, max_addresses=2, clock=clock)
    assert lim.allow("a") and lim.allow("a") and not lim.allow("a")
    lim.allow("b")
    lim.allow("c")  # evicts "a", the least recently used
    assert "a" not in lim and lim.evicted == 1
    # "a" comes back with a full bucket: more lenient than before, never stricter.
    assert lim.allow("a")


def test_recently_used_addresses_are_kept() -> None:
    clock = FakeClock(START)
    lim = AddressLimiter(attempts_per_minute=1, max_addresses=2, clock=clock)
    lim.allow("a")
    lim.allow("b")
    assert not lim.allow("a")  # touch "a": now "b" is least recently used
    lim.allow("c")
    assert "a" in lim and "b" not in lim
    assert not lim.allow("a")  # "a" kept its empty bucket


def test_address_limiter_parameters_are_validated() -> None:
    with pytest.raises(ConfigError):
        AddressLimiter(0)
    with pytest.raises(ConfigError):
        AddressLimiter(10, max_addresses=0)
    with pytest.raises(ConfigError):
        AddressLimiter(10, burst=0)


# -- forgiveness after a stall of the hub's own loop ---------------------------------------------------


def test_a_stall_forgives_the_backlog_it_explains_and_no_more() -> None:
    clock = FakeClock(START)
    stalled = {"seconds": 3.0}  # the loop was stalled 3 s (grace included)
    limiter = ConnectionLimiter(
        messages_per_second=10, burst=5, flood_close_after=5, flood_window=10,
        clock=clock, forgive=lambda now: stalled["seconds"],
    )  # fmt: skip
    verdicts = [limiter.check() for _ in range(5 + 35)]  # the burst, then 35 refused at once
    assert verdicts[:5] == [Verdict.ALLOW] * 5
    # 10/s over 3 s plus the burst: the first 35 rejections are the stall's doing.
    assert verdicts[5:] == [Verdict.REJECT] * 35 and not limiter.closed
    # A client that keeps going past what the stall explains is flooding, stall or not.
    more = [limiter.check() for _ in range(5)]
    assert more[-1] is Verdict.CLOSE and limiter.closed


def test_forgiveness_starts_afresh_after_the_stall_window() -> None:
    clock = FakeClock(START)
    stalled = {"seconds": 1.0}
    limiter = ConnectionLimiter(
        messages_per_second=10, burst=5, flood_close_after=100, flood_window=10,
        clock=clock, forgive=lambda now: stalled["seconds"],
    )  # fmt: skip
    for _ in range(5 + 15):
        limiter.check()  # 15 forgiven: 10/s x 1 s + 5
    assert limiter.recent_rejections() == 0
    stalled["seconds"] = 0.0
    limiter.check()  # no stall now: counted, and the forgiven count starts over
    assert limiter.recent_rejections() == 1
    stalled["seconds"] = 1.0
    for _ in range(15):
        limiter.check()
    assert limiter.recent_rejections() == 1  # a new stall forgives its own backlog again
