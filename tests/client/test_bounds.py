"""Tests of ``wslab.client.bounds``: the bounded-mapping helper forgets the oldest entry."""

from __future__ import annotations

from collections import OrderedDict

from wslab.client.bounds import bounded_put


def test_bounded_put_keeps_the_newest_and_refreshes_a_repeated_key() -> None:
    store: OrderedDict[str, int] = OrderedDict()
    for index, key in enumerate(["a", "b", "c"]):
        bounded_put(store, key, index, 3)
    bounded_put(store, "a", 9, 3)  # "a" becomes the newest again
    bounded_put(store, "d", 4, 3)  # so "b" is the oldest and goes
    assert list(store.items()) == [("c", 2), ("a", 9), ("d", 4)]
