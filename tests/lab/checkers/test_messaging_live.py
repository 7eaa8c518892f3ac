"""The live chapter 4 checker: the student's token bucket paces a sender into a rate-limited hub
behind a jittery proxy; the hub's replies judge it."""

from __future__ import annotations

import pytest

from wslab.lab.checkers.messaging_live import check_live_bucket_exercise
from wslab.lab.solutions.ch04 import TokenBucket


class Always:
    """No pacing at all."""

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


class Answers:
    def __init__(self, rate: float, burst: int) -> None:
        pass

    def try_take(self, now: float) -> object:
        return 1


async def test_a_bucket_that_answers_with_no_bool_gets_a_hint() -> None:
    with pytest.raises(AssertionError, match="return True"):
        await check_live_bucket_exercise(Answers)


async def test_the_stub_gets_not_yet(capsys: pytest.CaptureFixture[str]) -> None:
    class Stub:
        def __init__(self, rate: float, burst: int) -> None:
            pass

        def try_take(self, now: float) -> bool:
            raise NotImplementedError

    assert await check_live_bucket_exercise(Stub) is None
    assert "Not yet" in capsys.readouterr().out


@pytest.mark.slow
async def test_the_model_bucket_is_never_refused() -> None:
    run = await check_live_bucket_exercise(TokenBucket)
    assert run.refused == 0 and run.acked == run.sent


@pytest.mark.slow
@pytest.mark.parametrize(
    ("bucket", "hint"),
    [(Always, "refused"), (Uncapped, "refused"), (NoRefill, "tokens come back"),
     (Sluggish, "refills too slowly")],
)
async def test_the_usual_wrong_buckets_are_refused(bucket: type, hint: str) -> None:
    with pytest.raises(AssertionError, match=hint):
        await check_live_bucket_exercise(bucket)
