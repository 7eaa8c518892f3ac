"""The errors of the chat client: an ``error`` envelope of the protocol as an exception.

The hub answers a refused request with an ``error`` envelope whose ``code`` is an
:class:`~wslab.foundation.codes.ErrorCode`; :func:`error_from_envelope` (defined with the rest of the
wire format in :mod:`wslab.foundation.wire`, re-exported here) turns it into the matching
exception of the one tree in :mod:`wslab.foundation.errors`. :class:`TooManyPending` is the one
error the client raises on its own account (its ``max_pending`` bound).
"""

from __future__ import annotations

from wslab.foundation.errors import RateLimitedError
from wslab.foundation.wire import error_from_envelope

__all__ = ["TooManyPending", "error_from_envelope"]


class TooManyPending(RateLimitedError):
    """``max_pending`` requests are already waiting for their replies: this one was not sent."""
