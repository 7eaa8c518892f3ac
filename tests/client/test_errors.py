"""Tests of ``wslab.client.errors``: ``error`` envelopes become exceptions of the one tree."""

from __future__ import annotations

import pytest

from wslab.client import TooManyPending, error_from_envelope
from wslab.foundation.codes import ErrorCode
from wslab.foundation.errors import (
    ConflictError,
    DegradedError,
    DependencyError,
    NotFoundError,
    OperationTimeout,
    PermissionDeniedError,
    RateLimitedError,
    ValidationError,
    WslabError,
)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (ErrorCode.INVALID_INPUT, ValidationError),
        (ErrorCode.NOT_FOUND, NotFoundError),
        (ErrorCode.PERMISSION_DENIED, PermissionDeniedError),
        (ErrorCode.CONFLICT, ConflictError),
        (ErrorCode.DEPENDENCY_ERROR, DependencyError),
        (ErrorCode.TIMEOUT, OperationTimeout),
        (ErrorCode.RATE_LIMITED, RateLimitedError),
        (ErrorCode.DEGRADED, DegradedError),
        (ErrorCode.INTERNAL_ERROR, WslabError),
    ],
)
def test_error_envelopes_map_to_the_exception_tree(code: ErrorCode, expected: type) -> None:
    envelope = {"type": "error", "ref": "r1", "error": {"code": int(code), "name": code.name}}
    envelope["error"]["message"] = "nope"
    error = error_from_envelope(envelope)
    assert type(error) is expected
    assert (error.code, error.message, error.ref) == (code, "nope", "r1")  # type: ignore[attr-defined]


def test_envelope_details_travel_with_the_exception() -> None:
    envelope = {
        "type": "error",
        "ref": "r2",
        "error": {"code": int(ErrorCode.DEGRADED), "message_id": "m-9", "retry_after": 2},
    }
    error = error_from_envelope(envelope)
    assert isinstance(error, DegradedError)
    assert error.message_id == "m-9"  # type: ignore[attr-defined]
    assert error.retry_after == 2  # type: ignore[attr-defined]
    assert error.details == envelope["error"]  # type: ignore[attr-defined]
    assert error.message == "the hub refused the request"  # no message given


@pytest.mark.parametrize("body", [None, "oops", {"code": 99_999}, {"code": "RATE_LIMITED"}])
def test_malformed_or_unknown_envelopes_give_an_internal_error(body: object) -> None:
    error = error_from_envelope({"type": "error", "error": body})
    assert type(error) is WslabError
    assert error.code == ErrorCode.INTERNAL_ERROR


def test_too_many_pending_is_a_rate_limit() -> None:
    error = TooManyPending("full")
    assert isinstance(error, RateLimitedError)
    assert error.code == ErrorCode.RATE_LIMITED
