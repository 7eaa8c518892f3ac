"""The live chapter 4 checker: the student's token bucket is plugged into a running hub as its
rate limiter; a flooder, polite clients and a burst after a pause judge it."""

from __future__ import annotations

import pytest

from wslab.lab.checkers.messaging_live import check_live_bucket_exercise
from wslab.lab.solutions.ch04 import TokenBucket


class Always:
    """No limit at all."""

    def __init__(self, rate: float, burst: int) -> None:
        pass

    def try_take(self, now: float) -> bool:
        return True


class Uncapped(TokenBucket):
    """Refills, but saves up idle time past the burst."""

    def try_take(self, now: float) -> bool:
        if self.last is not None:
            self.tokens += (now - self.last) * self.rate
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class NoRefill(TokenBucket):
    """Spends its burst, then never gets a token back."""

    def try_take(self, now: float) -> bool:
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Sluggish(TokenBucket):
    """Refills at a third of the rate it was given."""

    def __init__(self, rate: float, burst: int) -> None:
        super().__init__(rate / 3, burst)


class PaysForRefusals(TokenBucket):
    """Spends a token on every message, refused or not: a flooder digs itself into debt."""

    def try_take(self, now: float) -> bool:
        if self.last is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        self.tokens -= 1
        return self.tokens >= 0


class Shared:
    """One bucket for every connection (class attributes): polite clients pay for the flooder."""

    tokens = 0.0
    last: float | None = None

    def __init__(self, rate: float, burst: int) -> None:
        Shared.rate, Shared.burst = rate, burst
        if Shared.last is None:
            Shared.tokens = float(burst)

    def try_take(self, now: float) -> bool:
        if Shared.last is not None:
            Shared.tokens = min(self.burst, Shared.tokens + (now - Shared.last) * self.rate)
        Shared.last = now
        if Shared.tokens >= 1:
            Shared.tokens -= 1
            return True
        return False


class Answers:
    def __init__(self, rate: float, burst: int) -> None:
        pass

    def try_take(self, now: float) -> object:
        return 1


async def test_a_bucket_that_answers_with_no_bool_gets_a_hint() -> None:
    with pytest.raises(AssertionError, match="return True"):
        await check_live_bucket_exercise(Answers)


async def test_an_instance_instead_of_the_class_gets_a_hint() -> None:
    with pytest.raises(AssertionError, match="the class itself"):
        await check_live_bucket_exercise(TokenBucket(20, 5))


async def test_the_stub_gets_not_yet(capsys: pytest.CaptureFixture[str]) -> None:
    class Stub:
        def __init__(self, rate: float, burst: int) -> None:
            pass

        def try_take(self, now: float) -> bool:
            raise NotImplementedError

    assert await check_live_bucket_exercise(Stub) is None
    assert "Not yet" in capsys.readouterr().out


@pytest.mark.slow
async def test_the_model_bucket_limits_the_flooder_and_spares_the_polite() -> None:
    run = await check_live_bucket_exercise(TokenBucket)
    assert run.polite_refused == 0
    assert abs(run.flood_accepted - run.expected) <= 0.15 * run.expected


@pytest.mark.slow
@pytest.mark.parametrize(
    ("bucket", "hint"),
    [(Always, "ever say no"), (Uncapped, "idle time is not saved up"),
     (NoRefill, "tokens come back"), (Sluggish, "refills too slowly"),
     (PaysForRefusals, "refused message cost"), (Shared, "shared between instances")],
)
async def test_the_usual_wrong_buckets_are_refused(bucket: type, hint: str) -> None:
    with pytest.raises(AssertionError, match=hint):
        await check_live_bucket_exercise(bucket)
