"""PresenceTracker: local joins and leaves, news from other hubs, snapshots, expiry, goodbyes.

The tracker does no I/O, so these tests drive it directly with explicit times.
"""

from __future__ import annotations

import pytest

from wslab.application.presence import PresenceChange, PresenceTracker
from wslab.foundation.errors import ConflictError


def joined(room: str, user: str, name: str | None = None) -> PresenceChange:
    return PresenceChange(room, user, name or user, True)


def left(room: str, user: str, name: str | None = None) -> PresenceChange:
    return PresenceChange(room, user, name or user, False)


@pytest.fixture
def tracker() -> PresenceTracker:
    return PresenceTracker(snapshot_interval=5.0)


# -- one hub ------------------------------------------------------------------------------------


def test_first_connection_announces_the_user(tracker: PresenceTracker) -> None:
    assert tracker.join("lobby", "u1", "Ada", "c1") == joined("lobby", "u1", "Ada")
    assert tracker.users("lobby") == {"u1": "Ada"}
    assert tracker.is_present("lobby", "u1")


def test_second_tab_is_not_announced_twice(tracker: PresenceTracker) -> None:
    assert tracker.join("lobby", "u1", "Ada", "c1") is not None
    assert tracker.join("lobby", "u1", "Ada", "c2") is None
    # Closing one of the two tabs: still present, nothing to announce.
    assert tracker.leave("lobby", "u1", "c1") is None
    assert tracker.is_present("lobby", "u1")
    assert tracker.leave("lobby", "u1", "c2") == left("lobby", "u1", "Ada")
    assert not tracker.is_present("lobby", "u1")
    assert tracker.users("lobby") == {}


def test_leave_of_an_unknown_connection_changes_nothing(tracker: PresenceTracker) -> None:
    assert tracker.leave("lobby", "nobody", "c9") is None
    tracker.join("lobby", "u1", "Ada", "c1")
    assert tracker.leave("lobby", "u2", "c9") is None
    assert tracker.leave("other", "u1", "c1") is None
    assert tracker.users("lobby") == {"u1": "Ada"}


def test_rooms_are_independent(tracker: PresenceTracker) -> None:
    tracker.join("lobby", "u1", "Ada", "c1")
    assert tracker.join("dev", "u1", "Ada", "c1") == joined("dev", "u1", "Ada")
    assert tracker.leave("lobby", "u1", "c1") == left("lobby", "u1", "Ada")
    assert tracker.users("dev") == {"u1": "Ada"}
    assert tracker.local_snapshot() == {"dev": {"u1": "Ada"}}


def test_local_snapshot_lists_only_occupied_rooms(tracker: PresenceTracker) -> None:
    tracker.join("lobby", "u1", "Ada", "c1")
    tracker.join("lobby", "u2", "Bob", "c2")
    tracker.join("dev", "u2", "Bob", "c2")
    tracker.leave("dev", "u2", "c2")
    assert tracker.local_snapshot() == {"lobby": {"u1": "Ada", "u2": "Bob"}}


def test_room_count_is_bounded() -> None:
    tracker = PresenceTracker(max_rooms=2)
    tracker.join("r1", "u1", "Ada", "c1")
    tracker.join("r2", "u1", "Ada", "c1")
    tracker.join("r2", "u2", "Bob", "c2")  # an existing room is always fine
    with pytest.raises(ConflictError):
        tracker.join("r3", "u1", "Ada", "c1")
    assert "r3" not in tracker.local_snapshot()  # refused without a trace
    tracker.leave("r1", "u1", "c1")  # an emptied room frees its place
    assert tracker.join("r3", "u1", "Ada", "c1") is not None


def test_reserved_rooms_are_always_admitted() -> None:
    tracker = PresenceTracker(max_rooms=1, reserved_rooms=frozenset({"lobby"}))
    tracker.join("r1", "u1", "Ada", "c1")
    assert tracker.join("lobby", "u2", "Bob", "c2") is not None  # a full table, yet the lobby
    with pytest.raises(ConflictError):
        tracker.join("r2", "u2", "Bob", "c2")


# -- several hubs -------------------------------------------------------------------------------


def test_remote_join_and_leave(tracker: PresenceTracker) -> None:
    assert tracker.remote_event("hub-b", "lobby", "u2", "Bob", True, now=1.0) == joined(
        "lobby", "u2", "Bob"
    )
    assert tracker.users("lobby") == {"u2": "Bob"}
    assert tracker.remote_hubs == ["hub-b"]
    assert tracker.remote_event("hub-b", "lobby", "u2", "Bob", False, now=2.0) == left(
        "lobby", "u2", "Bob"
    )
    assert tracker.users("lobby") == {}


def test_user_on_two_hubs_is_present_until_gone_from_both(tracker: PresenceTracker) -> None:
    assert tracker.join("lobby", "u1", "Ada", "c1") is not None
    # The same user opens a tab on another hub: already present, no second announcement.
    assert tracker.remote_event("hub-b", "lobby", "u1", "Ada", True, now=1.0) is None
    assert tracker.leave("lobby", "u1", "c1") is None  # still there through hub-b
    assert tracker.is_present("lobby", "u1")
    assert tracker.remote_event("hub-b", "lobby", "u1", "Ada", False, now=2.0) == left(
        "lobby", "u1", "Ada"
    )


def test_local_join_of_a_user_present_elsewhere_is_quiet(tracker: PresenceTracker) -> None:
    tracker.remote_event("hub-b", "lobby", "u1", "Ada", True, now=1.0)
    assert tracker.join("lobby", "u1", "Ada", "c1") is None
    assert tracker.remote_event("hub-b", "lobby", "u1", "Ada", False, now=2.0) is None
    assert tracker.users("lobby") == {"u1": "Ada"}


def test_snapshot_replaces_what_was_known_of_a_hub(tracker: PresenceTracker) -> None:
    tracker.remote_event("hub-b", "lobby", "u2", "Bob", True, now=1.0)
    tracker.remote_event("hub-b", "dev", "u3", "Cy", True, now=1.0)
    # A missed leave (u3) and a missed join (u4) are both corrected by the next snapshot.
    changes = tracker.remote_snapshot("hub-b", {"lobby": {"u2": "Bob", "u4": "Di"}}, now=5.0)
    assert sorted(changes, key=lambda c: (c.room, c.user_id)) == [
        left("dev", "u3", "Cy"),
        joined("lobby", "u4", "Di"),
    ]
    assert tracker.users("lobby") == {"u2": "Bob", "u4": "Di"}
    assert tracker.users("dev") == {}
    # The same snapshot again changes nothing.
    assert tracker.remote_snapshot("hub-b", {"lobby": {"u2": "Bob", "u4": "Di"}}, now=6.0) == []


def test_snapshot_does_not_announce_users_present_locally(tracker: PresenceTracker) -> None:
    tracker.join("lobby", "u1", "Ada", "c1")
    assert tracker.remote_snapshot("hub-b", {"lobby": {"u1": "Ada"}}, now=1.0) == []
    assert tracker.remote_snapshot("hub-b", {}, now=2.0) == []
    assert tracker.users("lobby") == {"u1": "Ada"}


def test_snapshot_is_a_copy(tracker: PresenceTracker) -> None:
    rooms = {"lobby": {"u2": "Bob"}}
    tracker.remote_snapshot("hub-b", rooms, now=1.0)
    rooms["lobby"]["u9"] = "Eve"
    assert tracker.users("lobby") == {"u2": "Bob"}


def test_goodbye_forgets_the_hubs_users(tracker: PresenceTracker) -> None:
    tracker.join("lobby", "u1", "Ada", "c1")
    tracker.remote_snapshot("hub-b", {"lobby": {"u1": "Ada", "u2": "Bob"}}, now=1.0)
    tracker.remote_snapshot("hub-c", {"lobby": {"u3": "Cy"}}, now=1.0)
    assert tracker.hub_gone("hub-b") == [left("lobby", "u2", "Bob")]
    assert tracker.users("lobby") == {"u1": "Ada", "u3": "Cy"}
    assert tracker.remote_hubs == ["hub-c"]
    assert tracker.hub_gone("hub-b") == []  # a second goodbye is harmless


def test_silent_hub_expires_after_three_intervals(tracker: PresenceTracker) -> None:
    tracker.remote_snapshot("hub-b", {"lobby": {"u2": "Bob"}}, now=100.0)
    tracker.remote_snapshot("hub-c", {"lobby": {"u3": "Cy"}}, now=110.0)
    assert tracker.expire(now=100.0 + 3 * 5.0) == []  # exactly at the limit: still alive
    assert tracker.expire(now=100.0 + 3 * 5.0 + 0.1) == [left("lobby", "u2", "Bob")]
    assert tracker.remote_hubs == ["hub-c"]
    assert tracker.users("lobby") == {"u3": "Cy"}


def test_events_keep_a_hub_alive(tracker: PresenceTracker) -> None:
    tracker.remote_snapshot("hub-b", {"lobby": {"u2": "Bob"}}, now=100.0)
    tracker.remote_event("hub-b", "dev", "u2", "Bob", True, now=112.0)
    assert tracker.expire(now=120.0) == []
    assert tracker.users("dev") == {"u2": "Bob"}
    # A late, older timestamp never moves the last-seen time back.
    tracker.remote_event("hub-b", "dev", "u5", "Fay", True, now=50.0)
    assert tracker.expire(now=126.0) == []


def test_user_listed_on_two_hubs_leaves_once_when_both_go(tracker: PresenceTracker) -> None:
    tracker.remote_snapshot("hub-b", {"lobby": {"u2": "Bob"}}, now=1.0)
    tracker.remote_snapshot("hub-c", {"lobby": {"u2": "Bob"}}, now=1.0)
    assert tracker.hub_gone("hub-b") == []
    assert tracker.hub_gone("hub-c") == [left("lobby", "u2", "Bob")]


def test_expired_hub_that_speaks_again_is_back(tracker: PresenceTracker) -> None:
    tracker.remote_snapshot("hub-b", {"lobby": {"u2": "Bob"}}, now=0.0)
    assert tracker.expire(now=100.0) == [left("lobby", "u2", "Bob")]
    assert tracker.remote_snapshot("hub-b", {"lobby": {"u2": "Bob"}}, now=101.0) == [
        joined("lobby", "u2", "Bob")
    ]


# -- counts (what large rooms are told instead of every join) ------------------------------------


def test_count_follows_local_and_remote_changes(tracker: PresenceTracker) -> None:
    tracker.join("lobby", "u1", "Ada", "c1")
    tracker.join("lobby", "u1", "Ada", "c2")  # a second tab is still one user
    tracker.join("lobby", "u2", "Bob", "c3")
    assert tracker.count("lobby") == 2
    tracker.remote_event("hub-b", "lobby", "u3", "Cy", True, now=1.0)
    tracker.remote_event("hub-b", "lobby", "u1", "Ada", True, now=1.0)  # on two hubs: once
    assert tracker.count("lobby") == 3
    tracker.remote_snapshot("hub-b", {"lobby": {"u4": "Di"}}, now=2.0)  # replaces u3 and u1
    assert tracker.count("lobby") == 3 == len(tracker.users("lobby"))
    tracker.hub_gone("hub-b")
    tracker.leave("lobby", "u1", "c1")
    tracker.leave("lobby", "u1", "c2")
    assert tracker.count("lobby") == 1 == len(tracker.users("lobby"))
    tracker.leave("lobby", "u2", "c3")
    assert tracker.count("lobby") == 0 and tracker.users("lobby") == {}


def test_users_with_a_limit_stops_early(tracker: PresenceTracker) -> None:
    for i in range(10):
        tracker.join("lobby", f"u{i}", f"User {i}", f"c{i}")
    tracker.remote_event("hub-b", "lobby", "r1", "Remote", True, now=1.0)
    assert len(tracker.users("lobby", limit=3)) == 3
    assert len(tracker.users("lobby", limit=100)) == 11
