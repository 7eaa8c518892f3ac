"""The errors of the chat client: an ``error`` envelope of the protocol as an exception.

The hub answers a refused request with an ``error`` envelope whose ``code`` is an
:class:`~wslab.foundation.codes.ErrorCode`; :func:`error_from_envelope` turns it into the matching
exception of the one tree in :mod:`wslab.foundation.errors`. :class:`TooManyPending` is the one
error the client raises on its own account (its ``max_pending`` bound).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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

__all__ = ["TooManyPending", "error_from_envelope"]


class TooManyPending(RateLimitedError):
    """``max_pending`` requests are already waiting for their replies: this one was not sent."""


_ERRORS: dict[int, type[WslabError]] = {
    ErrorCode.INVALID_INPUT: ValidationError,
    ErrorCode.NOT_FOUND: NotFoundError,
    ErrorCode.PERMISSION_DENIED: PermissionDeniedError,
    ErrorCode.CONFLICT: ConflictError,
    ErrorCode.DEPENDENCY_ERROR: DependencyError,
    ErrorCode.TIMEOUT: OperationTimeout,
    ErrorCode.RATE_LIMITED: RateLimitedError,
    ErrorCode.DEGRADED: DegradedError,
}


def error_from_envelope(envelope: Mapping[str, Any]) -> WslabError:
    """The exception for an ``error`` envelope of the protocol.

    The class follows ``error.code`` (``INVALID_INPUT`` -> :class:`ValidationError`, ...; an
    unknown code gives a plain :class:`WslabError` with ``INTERNAL_ERROR``). The exception also
    carries ``ref``, ``message_id`` (set by the hub on ``DEGRADED``: the message was relayed but
    not stored yet), ``retry_after`` if given, and ``details`` (the whole ``error`` object).
    """
    body = envelope.get("error")
    if not isinstance(body, Mapping):
        body = {}
    raw_code = body.get("code")
    message = body.get("message")
    message = message if isinstance(message, str) and message else "the hub refused the request"
    cls = _ERRORS.get(raw_code) if isinstance(raw_code, int) else None
    if cls is None:
        code = None
        if isinstance(raw_code, int) and raw_code in ErrorCode._value2member_map_:
            code = ErrorCode(raw_code)
        error = WslabError(message, code=code or ErrorCode.INTERNAL_ERROR)
    else:
        error = cls(message)
    error.ref = envelope.get("ref")
    error.message_id = body.get("message_id", envelope.get("message_id"))
    error.retry_after = body.get("retry_after", envelope.get("retry_after"))
    error.details = dict(body)
    return error
