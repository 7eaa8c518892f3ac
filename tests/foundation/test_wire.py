"""The chat wire format's one home: error envelopes both ways, timestamps, DM rooms."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from wslab.foundation.codes import ErrorCode
from wslab.foundation.errors import NotFoundError, ValidationError, WslabError
from wslab.foundation.wire import (
    ERROR,
    dm_room,
    error_envelope,
    error_from_envelope,
    format_timestamp,
    parse_timestamp,
)


def test_error_envelope_round_trips_with_its_ref() -> None:
    envelope = error_envelope(NotFoundError("no such room"), ref="r-7")
    assert envelope == {
        "type": ERROR,
        "error": {"code": int(ErrorCode.NOT_FOUND), "name": "NOT_FOUND", "message": "no such room"},
        "ref": "r-7",
    }
    error = error_from_envelope(envelope)
    assert type(error) is NotFoundError
    assert error.ref == "r-7" and error.message == "no such room"


def test_ref_is_an_instance_attribute_set_by_the_constructor() -> None:
    a, b = WslabError("x", ref=1), WslabError("y")
    assert (a.ref, b.ref) == (1, None)
    assert "ref" in vars(a)


def test_a_malformed_envelope_gives_a_plain_error_without_ref() -> None:
    error = error_from_envelope({"type": "error", "error": "nope", "ref": ["not", "a", "ref"]})
    assert type(error) is WslabError and error.code is ErrorCode.INTERNAL_ERROR
    assert error.ref is None


def test_timestamps_round_trip_in_utc_with_milliseconds() -> None:
    ts = datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=timezone.utc)
    assert format_timestamp(ts) == "2026-01-02T03:04:05.678Z"
    assert parse_timestamp("2026-01-02T04:04:05.678+01:00") == ts
    with pytest.raises(ValidationError):
        parse_timestamp("2026-01-02T03:04:05")  # no offset


def test_dm_room_is_symmetric_and_injective() -> None:
    assert dm_room("ann", "ben") == dm_room("ben", "ann") == "dm:ann:ben"
    assert dm_room("x:y", "z") != dm_room("x", "y:z")


def test_old_homes_still_export_the_names() -> None:
    from wslab.client import error_from_envelope as client_efe
    from wslab.infrastructure.router import error_envelope as router_ee
    from wslab.integration.store import dm_room as store_dm
    from wslab.integration.store import parse_timestamp as store_pt

    assert (client_efe, router_ee, store_dm, store_pt) == (
        error_from_envelope,
        error_envelope,
        dm_room,
        parse_timestamp,
    )
