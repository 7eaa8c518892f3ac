"""The live chapter 6 checker: rate settings plugged into a real hub, a person behind a jittery
proxy and a spam script on a raw socket, with a witness counting what got through."""

from __future__ import annotations

import pytest

from wslab.lab.checkers.security_live import check_live_rate_limit_exercise

RIGHT = {"rate_messages_per_second": 5, "rate_burst": 10, "rate_flood_close_after": 20}


@pytest.mark.parametrize(
    ("settings", "hint"),
    [
        ({"rate_messages_per_second": 5, "rate_burst": 10}, "rate_flood_close_after"),
        ({**RIGHT, "rate_messages_per_second": 50_000}, "never be stopped"),
    ],
)
async def test_settings_refused_before_any_hub_starts(settings: object, hint: str) -> None:
    with pytest.raises(AssertionError, match=hint):
        await check_live_rate_limit_exercise(settings)


async def test_the_stub_gets_not_yet(capsys: pytest.CaptureFixture[str]) -> None:
    assert await check_live_rate_limit_exercise(...) is None
    assert "Not yet" in capsys.readouterr().out


@pytest.mark.slow
async def test_the_right_settings_pass_live() -> None:
    run = await check_live_rate_limit_exercise(RIGHT)
    assert run.person_refused == 0 and run.spam_close_code == 1008


@pytest.mark.slow
async def test_a_burst_too_small_for_bunched_replies_refuses_the_person() -> None:
    with pytest.raises(AssertionError, match="person"):
        await check_live_rate_limit_exercise({**RIGHT, "rate_messages_per_second": 2, "rate_burst": 3})


@pytest.mark.slow
async def test_waiting_for_too_many_refusals_never_closes_the_spammer() -> None:
    with pytest.raises(AssertionError, match="spam script was never closed"):
        await check_live_rate_limit_exercise({**RIGHT, "rate_flood_close_after": 5000})


@pytest.mark.slow
async def test_a_huge_burst_lets_spam_reach_the_room() -> None:
    with pytest.raises(AssertionError, match="witness received"):
        await check_live_rate_limit_exercise({**RIGHT, "rate_burst": 200})
