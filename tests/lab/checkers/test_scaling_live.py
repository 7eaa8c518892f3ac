"""The live chapter 5 checker: the student's hub count started for real, the busiest hub stopped,
its users reconnected to the others (or not) and a message sent to everyone left."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from wslab.lab.checkers.scaling_live import check_live_hub_count_exercise


async def test_the_fewest_hubs_that_survive_a_stop_pass(capsys: pytest.CaptureFixture[str]) -> None:
    run = await check_live_hub_count_exercise(lambda u, c: math.ceil(u / c) + 1)
    assert run.connected_after == run.reached_after == 20 and run.displaced > 0
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("hubs_needed", "hint"),
    [
        (lambda u, c: math.ceil(u / c), "found no hub with room"),  # forgot the spare hub
        (lambda u, c: u // c, "admitted only"),  # rounded down
        (lambda u, c: math.ceil(u / c) + 3, "fewer would have done it"),  # pays for idle hubs
        (lambda u, c: u / c + 1, "return an int"),
        (lambda u, c: 1000, "between 1 and"),
    ],
)
async def test_the_usual_wrong_counts_are_refused(hubs_needed: Callable[[int, int], object],
                                                  hint: str) -> None:
    with pytest.raises(AssertionError, match=hint):
        await check_live_hub_count_exercise(hubs_needed)


async def test_the_stub_gets_not_yet(capsys: pytest.CaptureFixture[str]) -> None:
    def stub(users: int, capacity: int) -> int:
        raise NotImplementedError

    assert await check_live_hub_count_exercise(stub) is None
    assert "Not yet" in capsys.readouterr().out


async def test_a_measured_capacity_changes_the_hubs_started(capsys: pytest.CaptureFixture[str]) -> None:
    run = await check_live_hub_count_exercise(lambda u, c: math.ceil(u / c) + 1, capacity=9)
    assert run.hubs == 4 and run.connected_after == run.reached_after == 20
    assert "Correct" in capsys.readouterr().out
    # the count right for the default capacity of 6 is one hub too many at 9
    with pytest.raises(AssertionError, match="fewer would have done it"):
        await check_live_hub_count_exercise(lambda u, c: 5, capacity=9)


@pytest.mark.parametrize("capacity", [0, 1, 21, 6.5, True, "6"])
async def test_a_capacity_out_of_range_gets_a_clear_answer(capacity: object) -> None:
    with pytest.raises(AssertionError, match="capacity must be"):
        await check_live_hub_count_exercise(lambda u, c: math.ceil(u / c) + 1,
                                            capacity=capacity)  # type: ignore[arg-type]


async def test_the_injected_solution_is_judged_at_the_notebooks_capacity(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def stub(users: int, capacity: int) -> int:
        raise NotImplementedError

    monkeypatch.setenv("WSLAB_INJECT_SOLUTIONS", "1")
    run = await check_live_hub_count_exercise(stub, capacity=9)
    assert run.hubs == 4 and run.connected_after == 20  # ceil(20 / 9) + 1, not the default's 5
