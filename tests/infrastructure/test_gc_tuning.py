"""tune_for_serving: the start-up heap frozen, young collections rarer, the rest as it was."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from wslab.infrastructure.gc_tuning import tune_for_serving


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold, enabled = gc.get_threshold(), gc.isenabled()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
        (gc.enable if enabled else gc.disable)()


def test_raises_the_young_threshold_and_freezes_the_heap(restored_gc: None) -> None:
    gc.set_threshold(700, 10, 10)
    tune_for_serving(5000)
    assert gc.get_threshold() == (5000, 10, 10)
    assert gc.get_freeze_count() > 0


def test_never_lowers_a_threshold_nor_turns_the_collector_on(restored_gc: None) -> None:
    gc.set_threshold(50_000, 10, 10)
    tune_for_serving(5000)
    assert gc.get_threshold() == (50_000, 10, 10)
    gc.set_threshold(0, 10, 10)
    tune_for_serving(5000)
    assert gc.get_threshold()[0] == 0
