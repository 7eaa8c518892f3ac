"""Tests of wslab.foundation.codes and wslab.foundation.errors: the numbers and the error tree."""

from __future__ import annotations

import inspect

import pytest

import wslab.foundation as foundation
from wslab.foundation import codes, errors
from wslab.foundation.codes import (
    CONTROL_OPCODES,
    DATA_OPCODES,
    CloseCode,
    ErrorCode,
    Opcode,
    is_valid_wire_close_code,
)
from wslab.foundation.errors import (
    AuthenticationError,
    ConfigError,
    ConflictError,
    ConnectionBroken,
    ConnectionClosed,
    ConnectionClosedLocally,
    DegradedError,
    DependencyError,
    ForbiddenOrigin,
    HandshakeError,
    InvalidCloseFrame,
    InvalidHandshakeResponse,
    InvalidStateTransition,
    InvalidUpgrade,
    InvalidUTF8,
    NotFoundError,
    OperationTimeout,
    PayloadTooBig,
    PermissionDeniedError,
    ProtocolError,
    RateLimitedError,
    UnsupportedVersion,
    ValidationError,
    WslabError,
)

E = ErrorCode

# class: (parent, code, close_code) — the table drawn in the docstring of errors.py.
TREE: dict[type[WslabError], tuple[type[Exception], ErrorCode, int | None]] = {
    WslabError: (Exception, E.INTERNAL_ERROR, None),
    ProtocolError: (WslabError, E.INVALID_INPUT, 1002),
    InvalidUTF8: (ProtocolError, E.INVALID_INPUT, 1007),
    PayloadTooBig: (ProtocolError, E.INVALID_INPUT, 1009),
    InvalidCloseFrame: (ProtocolError, E.INVALID_INPUT, 1002),
    HandshakeError: (WslabError, E.INVALID_INPUT, None),
    InvalidUpgrade: (HandshakeError, E.INVALID_INPUT, None),
    UnsupportedVersion: (HandshakeError, E.INVALID_INPUT, None),
    ForbiddenOrigin: (HandshakeError, E.PERMISSION_DENIED, None),
    InvalidHandshakeResponse: (HandshakeError, E.INVALID_INPUT, None),
    InvalidStateTransition: (WslabError, E.INTERNAL_ERROR, None),
    ConnectionClosed: (WslabError, E.INTERNAL_ERROR, None),
    ConnectionClosedLocally: (ConnectionClosed, E.INTERNAL_ERROR, None),
    ConnectionBroken: (ConnectionClosed, E.INTERNAL_ERROR, None),
    ValidationError: (WslabError, E.INVALID_INPUT, None),
    NotFoundError: (WslabError, E.NOT_FOUND, None),
    PermissionDeniedError: (WslabError, E.PERMISSION_DENIED, 4003),
    AuthenticationError: (WslabError, E.PERMISSION_DENIED, 4001),
    ConflictError: (WslabError, E.CONFLICT, None),
    DependencyError: (WslabError, E.DEPENDENCY_ERROR, None),
    OperationTimeout: (WslabError, E.TIMEOUT, None),
    RateLimitedError: (WslabError, E.RATE_LIMITED, 1008),
    DegradedError: (WslabError, E.DEGRADED, None),
    ConfigError: (WslabError, E.INVALID_INPUT, None),
}


# -- codes -----------------------------------------------------------------------------------------


def test_error_codes_match_the_protocol_document() -> None:
    assert [(c.name, c.value) for c in ErrorCode] == [
        ("SUCCESS", 0),
        ("INVALID_INPUT", 1),
        ("NOT_FOUND", 2),
        ("PERMISSION_DENIED", 3),
        ("CONFLICT", 4),
        ("DEPENDENCY_ERROR", 5),
        ("INTERNAL_ERROR", 6),
        ("TIMEOUT", 7),
        ("RATE_LIMITED", 8),
        ("DEGRADED", 9),
    ]


def test_opcodes_are_the_rfc_values() -> None:
    assert {op.name: op.value for op in Opcode} == {
        "CONT": 0,
        "TEXT": 1,
        "BINARY": 2,
        "CLOSE": 8,
        "PING": 9,
        "PONG": 10,
    }
    assert {op for op in Opcode if op.is_control} == CONTROL_OPCODES
    assert {op for op in Opcode if not op.is_control} == DATA_OPCODES


def test_close_codes_used_by_the_hub() -> None:
    assert CloseCode.NORMAL_CLOSURE == 1000 and CloseCode.GOING_AWAY == 1001
    assert CloseCode.PROTOCOL_ERROR == 1002 and CloseCode.INVALID_PAYLOAD == 1007
    assert CloseCode.POLICY_VIOLATION == 1008 and CloseCode.MESSAGE_TOO_BIG == 1009
    assert CloseCode.INTERNAL_ERROR == 1011 and CloseCode.TRY_AGAIN_LATER == 1013
    assert CloseCode.NO_STATUS_RCVD == 1005 and CloseCode.ABNORMAL_CLOSURE == 1006
    assert CloseCode.AUTHENTICATION_FAILED == 4001 and CloseCode.FORBIDDEN == 4003


@pytest.mark.parametrize(
    "code", [1000, 1001, 1002, 1003, *range(1007, 1015), 3000, 3500, 3999, 4000, 4001, 4999]
)
def test_valid_wire_close_codes(code: int) -> None:
    assert is_valid_wire_close_code(code)


@pytest.mark.parametrize(
    "code", [-1, 0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1999, 2000, 2999, 5000, 65535, 65536]
)
def test_invalid_wire_close_codes(code: int) -> None:
    assert not is_valid_wire_close_code(code)


def test_wire_close_code_table_over_the_whole_16_bit_range() -> None:
    valid = {c for c in range(65536) if is_valid_wire_close_code(c)}
    assert valid == {1000, 1001, 1002, 1003, *range(1007, 1015), *range(3000, 5000)}


def test_every_close_code_the_hub_sends_is_valid_on_the_wire() -> None:
    api_only = {CloseCode.NO_STATUS_RCVD, CloseCode.ABNORMAL_CLOSURE, CloseCode.TLS_HANDSHAKE}
    for code in CloseCode:
        assert is_valid_wire_close_code(code) is (code not in api_only), code


# -- the exception tree ----------------------------------------------------------------------------


def test_the_tree_covers_every_exported_class() -> None:
    exported = {getattr(errors, name) for name in errors.__all__}
    assert exported == set(TREE)
    assert {name for name in errors.__all__} <= set(foundation.__all__)
    defined = {
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, Exception) and obj.__module__ == errors.__name__
    }
    assert defined == set(TREE)  # no class left out of __all__ either


@pytest.mark.parametrize("cls", list(TREE), ids=lambda c: c.__name__)
def test_each_class_has_its_parent_code_and_close_code(cls: type[WslabError]) -> None:
    parent, code, close_code = TREE[cls]
    assert cls.__bases__ == (parent,)
    error = cls("something went wrong")
    assert isinstance(error, WslabError)
    assert error.code is code
    assert error.close_code == close_code
    if close_code is not None:
        assert isinstance(error.close_code, CloseCode)
    assert error.message == "something went wrong"
    assert error.to_dict() == {
        "code": int(code),
        "name": code.name,
        "message": "something went wrong",
    }


def test_to_dict_is_the_error_object_of_the_envelope() -> None:
    data = NotFoundError("unknown type 'chat:shout'").to_dict()
    assert data == {"code": 2, "name": "NOT_FOUND", "message": "unknown type 'chat:shout'"}
    assert type(data["code"]) is int  # JSON-ready, not an IntEnum


def test_default_message_is_the_class_name() -> None:
    assert WslabError().message == "WslabError"
    assert str(ValidationError()) == "ValidationError"
    assert ConnectionClosed().message == "connection closed"


def test_code_and_close_code_can_be_overridden_per_instance() -> None:
    error = WslabError("x", code=ErrorCode.TIMEOUT, close_code=CloseCode.GOING_AWAY)
    assert error.code is ErrorCode.TIMEOUT and error.close_code is CloseCode.GOING_AWAY
    assert WslabError.code is ErrorCode.INTERNAL_ERROR  # the class default is untouched
    assert ProtocolError("x", close_code=CloseCode.POLICY_VIOLATION).close_code == 1008


def test_handshake_errors_carry_an_http_status_and_headers() -> None:
    assert HandshakeError().status == 400
    assert InvalidUpgrade("bad key").status == 400
    assert InvalidUpgrade("wrong method", status=405).status == 405
    assert ForbiddenOrigin().status == 403
    refused = UnsupportedVersion("version 8")
    assert refused.status == 426
    assert refused.headers == {"Sec-WebSocket-Version": "13"}
    custom = HandshakeError("x", status=404, headers={"X-Why": "nope"})
    assert (custom.status, custom.headers) == (404, {"X-Why": "nope"})


def test_connection_closed_records_the_code_that_was_received() -> None:
    error = ConnectionBroken("peer went away", close_code=1001, reason="bye")
    assert error.close_code is CloseCode.GOING_AWAY
    assert error.received_code == 1001 and error.reason == "bye"
    private = ConnectionClosedLocally(close_code=4242)  # not a CloseCode member
    assert private.close_code is None and private.received_code == 4242
    assert isinstance(private, ConnectionClosed) and isinstance(error, ConnectionClosed)


def test_codes_module_imports_nothing_from_the_package() -> None:
    """codes is the bottom of the foundation: frames, errors and protocol all import it."""
    source = inspect.getsource(codes)
    assert "from ." not in source and "import wslab" not in source
