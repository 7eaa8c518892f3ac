"""The rate-limit exercise checker: good settings pass, each kind of mistake gets its own hint."""

from __future__ import annotations

import pytest

from wslab.infrastructure.config import HubConfig
from wslab.infrastructure.ratelimit import Verdict
from wslab.lab.checkers.security import (
    CLOSE_WITHIN,
    MAX_ABUSER_ACCEPTED,
    RATE_SETTINGS,
    TRAFFIC_PROFILES,
    RateSettings,
    TrafficProfile,
    check_rate_limit_exercise,
    rate_limit_report,
    rate_settings,
    simulate_rate_limit,
)


def settings(rate: object, burst: object, close_after: object) -> dict[str, object]:
    return dict(zip(RATE_SETTINGS, (rate, burst, close_after), strict=True))


def profile(name: str) -> TrafficProfile:
    return next(p for p in TRAFFIC_PROFILES if p.name == name)


GOOD = settings(5, 10, 20)


# -- passing answers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer", [GOOD, settings(4, 10, 20), settings(5, 6, 20), settings(5, 10, 60)]
)
def test_settings_that_fit_every_profile_pass(
    answer: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    check_rate_limit_exercise(answer)
    out = capsys.readouterr().out
    assert out.startswith("✔ Correct!")
    assert "spam script closed after" in out and "runaway bot closed after" in out


def test_a_hub_config_is_accepted_as_the_answer(capsys: pytest.CaptureFixture[str]) -> None:
    check_rate_limit_exercise(HubConfig.load(env={}, **GOOD))
    assert "Correct" in capsys.readouterr().out


def test_the_hubs_defaults_let_too_much_spam_through() -> None:
    defaults = HubConfig.load(env={})
    with pytest.raises(AssertionError, match=r"^Not yet: spam script .* were accepted"):
        check_rate_limit_exercise(defaults)


# -- each mistake and its hint ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        # the first burst of quick replies does not fit in the bucket
        (settings(2, 5, 30), r"^Not yet: quick replies .*very first burst"),
        # the burst fits, but the bucket refills too slowly between bursts
        (settings(0.5, 10, 20), r"^Not yet: quick replies .*had not refilled"),
        # a steady 4 messages per second outlasts a big bucket refilled at 3/s
        (settings(3, 25, 20), r"^Not yet: heated discussion .*30 s"),
        # a sustained rate above what the bot sends: never even refused
        (settings(60, 10, 20), r"^Not yet: runaway bot .*never closed.*never even refused"),
        # refusals pile up too slowly to reach the flood threshold in time
        (settings(30, 10, 40), r"^Not yet: runaway bot .*closed only at.*refused \d+ times"),
        # a burst larger than the allowed spam
        (settings(5, 40, 20), r"^Not yet: spam script .*brand-new connection"),
        # a small burst, but the refill lets too much through before the close
        (settings(30, 10, 20), r"^Not yet: runaway bot .*full bucket accounts for 10"),
    ],
)
def test_each_mistake_gets_a_hint_naming_the_profile(answer: dict[str, object], hint: str) -> None:
    with pytest.raises(AssertionError, match=hint):
        check_rate_limit_exercise(answer)


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        ("fast", "expected a dict"),
        ({"rate_messages_per_second": 5, "rate_burst": 10}, "no 'rate_flood_close_after'"),
        ({**GOOD, "port": 0}, "remove 'port'"),
        (settings(0, 10, 20), "the hub would refuse.*rate_messages_per_second"),
        (settings(5, 10.5, 20), "the hub would refuse.*rate_burst"),
    ],
)
def test_malformed_answers_get_a_hint(answer: object, hint: str) -> None:
    with pytest.raises(AssertionError, match=rf"^Not yet: .*{hint}"):
        check_rate_limit_exercise(answer)


@pytest.mark.parametrize("answer", [settings(2, 5, 30), settings(3, 25, 20), settings(30, 10, 40)])
def test_hints_point_at_the_idea_not_at_a_setting_to_change(answer: dict[str, object]) -> None:
    with pytest.raises(AssertionError) as caught:
        check_rate_limit_exercise(answer)
    assert not [name for name in RATE_SETTINGS if name in str(caught.value)]


# -- the simulation itself -------------------------------------------------------------------------


def test_the_simulation_is_the_hubs_token_bucket() -> None:
    # burst 5 at 2/s: five messages at once, then one per half second; a sixth at t=0 waits.
    outcome = simulate_rate_limit(settings(2, 5, 30), profile("spam script"))
    verdicts = [v for _, v in outcome.timeline]
    assert verdicts[:5] == [Verdict.ALLOW] * 5 and verdicts[5] is Verdict.REJECT
    assert verdicts[-1] is Verdict.CLOSE and verdicts.count(Verdict.CLOSE) == 1
    assert outcome.rejected == 29  # the 30th refusal is the close
    assert outcome.closed_at == outcome.timeline[-1][0]
    assert outcome.accepted == 5  # 34 ms of refill at 2/s adds less than one token


def test_nothing_is_sent_after_the_close() -> None:
    outcome = simulate_rate_limit(GOOD, profile("runaway bot"))
    assert outcome.closed_at is not None
    assert len(outcome.timeline) < profile("runaway bot").messages
    assert outcome.closed_at - outcome.timeline[0][0] <= CLOSE_WITHIN
    assert outcome.accepted <= MAX_ABUSER_ACCEPTED


def test_people_are_never_closed_with_good_settings() -> None:
    for name in ("quick replies", "heated discussion"):
        outcome = simulate_rate_limit(GOOD, profile(name))
        assert outcome.accepted == profile(name).messages
        assert outcome.first_rejected_at is None and outcome.closed_at is None
        assert outcome.problem is None


def test_profiles_are_what_their_descriptions_say() -> None:
    quick = profile("quick replies")
    assert quick.messages == 60 and quick.times[:3] == (0.0, 0.1, 0.2) and quick.times[10] == 5.0
    assert profile("heated discussion").messages == 4 * 30
    assert profile("spam script").messages == 1000 * 5
    assert profile("runaway bot").messages == 50 * 10
    assert [p.kind for p in TRAFFIC_PROFILES] == ["person", "person", "abuser", "abuser"]


def test_rate_settings_normalises_every_accepted_shape() -> None:
    expected = RateSettings(5.0, 10, 20)
    assert rate_settings(GOOD) == expected
    assert rate_settings(HubConfig.load(env={}, **GOOD)) == expected
    assert rate_settings(expected) is expected


def test_the_report_has_one_row_per_profile() -> None:
    report = rate_limit_report(settings(2, 5, 30))
    assert list(report["profile"]) == [p.name for p in TRAFFIC_PROFILES]
    assert list(report["ok"]) == [False, False, True, True]
    assert report.loc[report["profile"] == "spam script", "accepted"].item() == 5
