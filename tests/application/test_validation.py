"""Message validation (layers 1-3) and protocol versioning, without sockets.

The same rules seen through a live hub are in ``test_chat_e2e.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from wslab.application.validation import (
    DEFAULT_HISTORY_LIMIT,
    DEFAULT_ROOM,
    MAX_CONTENT_LENGTH,
    MAX_HISTORY_LIMIT,
    SCHEMAS,
    validate,
    validate_room,
)
from wslab.application.versioning import (
    CURRENT_VERSION,
    DEPRECATED_VERSIONS,
    upgrade_request,
)
from wslab.foundation.codes import ErrorCode
from wslab.foundation.errors import ValidationError


def invalid(message_type: str, body: dict[str, Any], match: str) -> ValidationError:
    with pytest.raises(ValidationError, match=match) as info:
        validate(message_type, body)
    assert info.value.code is ErrorCode.INVALID_INPUT
    return info.value


# -- layer 1: types -----------------------------------------------------------------------------


def test_defaults_are_filled_in() -> None:
    assert validate("chat:message", {"content": "hi"}) == {
        "room": DEFAULT_ROOM,
        "content": "hi",
        "to_user": None,
    }
    assert validate("chat:history", {}) == {
        "room": DEFAULT_ROOM,
        "limit": DEFAULT_HISTORY_LIMIT,
        "before_seq": None,
        "since_seq": None,
        "with_user": None,
    }


def test_unknown_fields_are_ignored() -> None:
    fields = validate("room:join", {"room": "dev", "colour": "blue", "type": "room:join"})
    assert fields == {"room": "dev"}


@pytest.mark.parametrize(
    ("message_type", "body", "field"),
    [
        ("chat:message", {"content": 5}, "content"),
        ("chat:message", {"content": ["hi"]}, "content"),
        ("chat:message", {"content": "hi", "room": 7}, "room"),
        ("chat:message", {"content": "hi", "to_user": 1}, "to_user"),
        ("chat:typing", {"is_typing": "yes"}, "is_typing"),
        ("chat:typing", {"is_typing": 1}, "is_typing"),
        ("chat:history", {"limit": "10"}, "limit"),
        ("chat:history", {"limit": 10.5}, "limit"),
        ("chat:history", {"since_seq": "3"}, "since_seq"),
        ("room:join", {"room": {"name": "dev"}}, "room"),
        ("auth:refresh", {"token": 123}, "token"),
        ("admin:broadcast", {"content": False}, "content"),
    ],
)
def test_wrong_types_name_the_field(message_type: str, body: dict[str, Any], field: str) -> None:
    error = invalid(message_type, body, f"'{field}' must be")
    assert field in error.message


def test_a_boolean_is_not_an_integer() -> None:
    # JSON true would pass a Python isinstance(int) check; the protocol says it is not a number.
    invalid("chat:history", {"limit": True}, "'limit' must be an integer")
    invalid("chat:history", {"before_seq": False}, "'before_seq' must be an integer")


@pytest.mark.parametrize(
    ("message_type", "field"),
    [
        ("chat:message", "content"),
        ("chat:typing", "is_typing"),
        ("room:join", "room"),
        ("room:leave", "room"),
        ("auth", "token"),
        ("auth:refresh", "token"),
        ("admin:broadcast", "content"),
    ],
)
def test_required_fields(message_type: str, field: str) -> None:
    invalid(message_type, {}, f"'{field}' is required")


def test_null_counts_as_missing() -> None:
    invalid("chat:message", {"content": None}, "'content' is required")
    assert validate("chat:message", {"content": "x", "room": None})["room"] == DEFAULT_ROOM


# -- layer 2: ranges ----------------------------------------------------------------------------


def test_content_length_bounds() -> None:
    assert validate("chat:message", {"content": "x" * MAX_CONTENT_LENGTH})["content"]
    invalid("chat:message", {"content": "x" * (MAX_CONTENT_LENGTH + 1)}, "1 to 5000")
    invalid("chat:message", {"content": ""}, "1 to 5000")
    invalid("admin:broadcast", {"content": "x" * 5001}, "1 to 5000")


def test_content_length_counts_characters_not_bytes() -> None:
    text = "é" * MAX_CONTENT_LENGTH  # 10 000 bytes of UTF-8, 5000 characters
    assert validate("chat:message", {"content": text})["content"] == text


def test_content_is_never_rewritten() -> None:
    text = "  <script>alert('x')</script> &lt; \u202e\n"
    assert validate("chat:message", {"content": text})["content"] == text


def test_history_limit_bounds() -> None:
    assert validate("chat:history", {"limit": 1})["limit"] == 1
    assert validate("chat:history", {"limit": MAX_HISTORY_LIMIT})["limit"] == MAX_HISTORY_LIMIT
    invalid("chat:history", {"limit": MAX_HISTORY_LIMIT + 1}, "between 1 and 100")
    invalid("chat:history", {"limit": 0}, "between 1 and 100")
    invalid("chat:history", {"limit": -5}, "between 1 and 100")


def test_sequence_numbers_are_not_negative() -> None:
    assert validate("chat:history", {"since_seq": 0})["since_seq"] == 0
    invalid("chat:history", {"since_seq": -1}, "between 0 and")
    invalid("chat:history", {"before_seq": -1}, "between 0 and")


@pytest.mark.parametrize("field", ["since_seq", "before_seq"])
def test_sequence_numbers_fit_in_64_bits(field: str) -> None:
    assert validate("chat:history", {field: 2**63 - 1})[field] == 2**63 - 1
    error = invalid("chat:history", {field: 2**70}, "between 0 and")
    assert len(error.message) < 120  # the huge value is not echoed whole


@pytest.mark.parametrize("room", ["lobby", "a", "dev-ops", "team_1", "v1.2", "A" * 64])
def test_good_room_names(room: str) -> None:
    validate_room("room", room)
    assert validate("room:join", {"room": room}) == {"room": room}


@pytest.mark.parametrize(
    "room", ["", "-x", ".hidden", "a b", "dm:alice:bob", "A" * 65, "röom", "x/y", "<b>"]
)
def test_bad_room_names(room: str) -> None:
    invalid("room:join", {"room": room}, "'room' must be 1-64")


def test_direct_message_rooms_cannot_be_joined_or_posted_to() -> None:
    # "dm:..." is the store's key for direct conversations, not a room anyone may enter.
    invalid("chat:message", {"content": "hi", "room": "dm:a:b"}, "'room'")


def test_user_id_length() -> None:
    assert validate("chat:message", {"content": "hi", "to_user": "u" * 128})["to_user"]
    invalid("chat:message", {"content": "hi", "to_user": ""}, "'to_user'")
    invalid("chat:message", {"content": "hi", "to_user": "u" * 129}, "'to_user'")


# -- layer 3: business rules --------------------------------------------------------------------


def test_history_cursors_are_exclusive() -> None:
    invalid("chat:history", {"before_seq": 5, "since_seq": 2}, "not both")


def test_before_seq_zero_is_meaningless() -> None:
    invalid("chat:history", {"before_seq": 0}, "at least 1")


def test_unknown_type_has_no_schema() -> None:
    invalid("chat:shout", {}, "no schema")


def test_every_protocol_request_has_a_schema() -> None:
    assert set(SCHEMAS) == {
        "auth",
        "auth:refresh",
        "room:join",
        "room:leave",
        "chat:message",
        "chat:typing",
        "chat:history",
        "presence:list",
        "admin:broadcast",
    }


# -- versions -----------------------------------------------------------------------------------


def test_current_and_deprecated_versions() -> None:
    assert CURRENT_VERSION == "1.0"
    assert "0.9" in DEPRECATED_VERSIONS
    assert "1.0" in DEPRECATED_VERSIONS["0.9"]


def test_version_0_9_text_becomes_content() -> None:
    body = {"type": "chat:message", "text": "old style", "room": "lobby"}
    upgraded = upgrade_request("0.9", "chat:message", body)
    assert upgraded["content"] == "old style"
    assert "text" not in upgraded
    assert body["text"] == "old style"  # the caller's dict is left alone
    assert validate("chat:message", upgraded)["content"] == "old style"


def test_version_0_9_with_content_keeps_content() -> None:
    body = {"content": "new", "text": "old"}
    assert upgrade_request("0.9", "chat:message", body)["content"] == "new"


def test_other_types_and_current_version_pass_unchanged() -> None:
    body = {"text": "x"}
    assert upgrade_request("0.9", "chat:typing", body) is body
    assert upgrade_request(CURRENT_VERSION, "chat:message", body) is body
