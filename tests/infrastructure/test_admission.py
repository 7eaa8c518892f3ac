"""AbuseCoolDown and OffenceTable: growth, forgiveness, users before addresses, the bound."""

from __future__ import annotations

import pytest

from wslab.foundation.errors import ConfigError
from wslab.infrastructure.admission import AbuseCoolDown, OffenceTable, retry_after_header


def test_cool_downs_double_with_each_offence_up_to_the_maximum() -> None:
    table = OffenceTable(10, 45, 100)
    assert [table.offend("u", now=0) for _ in range(4)] == [10, 20, 40, 45]
    assert table.retry_after("u", now=30) == 15
    assert table.retry_after("u", now=45) == 0


def test_offences_are_forgotten_memory_seconds_after_the_cool_down_ends() -> None:
    table = OffenceTable(10, 100, 60)
    table.offend("u", now=0)
    assert table.offend("u", now=20) == 20  # remembered: the second offence doubles
    assert table.offences("u", now=20 + 20 + 59) == 2
    assert table.offences("u", now=20 + 20 + 60) == 0
    assert table.offend("u", now=100) == 10  # forgiven: back to the first cool-down


def test_below_the_threshold_offences_are_counted_but_not_served() -> None:
    table = OffenceTable(10, 100, 60, threshold=3)
    assert table.offend("a", now=0) == 0
    assert table.offend("a", now=1) == 0
    assert table.retry_after("a", now=1) == 0
    assert table.offend("a", now=2) == 10
    assert table.offend("a", now=3) == 20


def test_the_table_is_bounded_and_eviction_only_forgives() -> None:
    table = OffenceTable(10, 100, 60, max_keys=3)
    for n in range(3):
        table.offend(f"k{n}", now=0)
    table.offend("k3", now=1)  # full, nobody forgiven yet: the oldest is evicted
    assert len(table) == 3 and "k0" not in table and table.evicted == 1
    assert table.retry_after("k0", now=1) == 0  # evicted = more lenient, never stricter
    table.offend("k4", now=1000)  # everyone forgiven: dropped, not evicted
    assert len(table) == 1 and table.evicted == 1


def test_huge_offence_counts_stay_at_the_maximum() -> None:
    table = OffenceTable(1, 50, 1e9)
    for _ in range(5000):
        seconds = table.offend("u", now=0)
    assert seconds == 50


def test_a_user_is_cooled_down_from_the_first_offence_and_judged_apart_from_its_address() -> None:
    cool = AbuseCoolDown(10, 100, 60, address_threshold=3)
    assert cool.closed(1008, "10.0.0.1", "mallory", now=0) == 10
    assert cool.refusal("10.0.0.1", lambda: "mallory", now=1) == 9
    # Another user behind the same address (a NAT) is admitted: judged as itself.
    assert cool.refusal("10.0.0.1", lambda: "alice", now=1) == 0
    # An upgrade that proves nobody is judged by the address, which the user's offence spared.
    assert cool.refusal("10.0.0.1", lambda: None, now=1) == 0
    assert cool.addresses.offences("10.0.0.1", now=1) == 0
    assert cool.refusal("10.0.0.1", lambda: "mallory", now=10) == 0


def test_an_address_cools_down_past_its_threshold_for_upgrades_proving_no_user() -> None:
    cool = AbuseCoolDown(10, 100, 60, address_threshold=2)
    cool.closed(1009, "10.0.0.2", None, now=0)
    assert cool.refusal("10.0.0.2", lambda: None, now=0) == 0
    cool.closed(1009, "10.0.0.2", None, now=1)
    assert cool.refusal("10.0.0.2", lambda: None, now=2) == 9
    assert cool.refusal("10.0.0.2", lambda: "alice", now=2) == 0  # a proven user still gets in
    assert cool.refusal("10.0.0.3", lambda: None, now=2) == 0  # other addresses are not touched
    assert cool.refusals == 1


def test_at_threshold_zero_an_address_never_cools_down_but_users_still_do() -> None:
    cool = AbuseCoolDown(10, 100, 60, address_threshold=0)  # the hub's default
    for t in range(20):
        assert cool.closed(1009, "10.0.0.9", None, now=t) == 0
    assert not cool.addresses  # nothing remembered against a shared address
    assert cool.refusal("10.0.0.9", lambda: None, now=21) == 0
    assert cool.closed(1008, "10.0.0.9", "mallory", now=21) == 10
    assert cool.refusal("10.0.0.9", lambda: "mallory", now=22) == 9
    assert cool.refusal("10.0.0.9", lambda: None, now=22) == 0  # her neighbours get in


def test_only_abuse_close_codes_count() -> None:
    cool = AbuseCoolDown(10, 100, 60, address_threshold=1)
    for code in (1000, 1001, 1011, 4001, None):
        assert cool.closed(code, "10.0.0.4", "bob", now=0) == 0
    assert cool.offences == 0 and not cool.users and not cool.addresses


def test_nobody_is_asked_for_a_token_while_nobody_cools_down() -> None:
    cool = AbuseCoolDown(10, 100, 60)

    def identify() -> str | None:
        raise AssertionError("the token was looked at")

    assert cool.refusal("10.0.0.5", identify, now=0) == 0
    cool.closed(1008, "10.0.0.5", None, now=0)  # an address offence below its threshold
    assert cool.refusal("10.0.0.5", identify, now=0) == 0


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    assert [retry_after_header(s) for s in (0.01, 1.0, 1.2, 59.9)] == ["1", "1", "2", "60"]


@pytest.mark.parametrize("args", [(0, 10, 10), (10, 5, 10), (10, 20, -1), (10, float("inf"), 10)])
def test_nonsense_settings_fail_fast(args: tuple[float, float, float]) -> None:
    with pytest.raises(ConfigError):
        OffenceTable(*args)
