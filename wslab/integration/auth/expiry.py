"""Expiry while connected: when to warn (``auth:expiring``), when to close (4001), what refreshes.

Pure arithmetic on an :class:`~.tokens.Identity` and a ``now``: the session
(:mod:`wslab.application.session`) schedules its timers from :func:`plan_expiry` and accepts an
``auth:refresh`` only if :func:`check_refresh` does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from wslab.foundation.errors import AuthenticationError

from .tokens import Identity

__all__ = ["ExpiryPlan", "check_refresh", "plan_expiry", "seconds_until_expiry"]


def seconds_until_expiry(identity: Identity, now: float) -> float:
    """Seconds left before ``identity``'s token expires (negative once past; ``inf`` for guests)."""
    return identity.expires_at - now


@dataclass(frozen=True)
class ExpiryPlan:
    """When to warn a connected client that its token expires, and when to close it (4001).

    ``warn_at <= expires_at <= close_at``; ``close_at`` adds the verifier's leeway, so a connection
    is closed exactly when a fresh verification of its token would start failing.
    """

    expires_at: float
    warn_at: float
    close_at: float

    def phase(self, now: float) -> Literal["valid", "expiring", "expired"]:
        """``valid`` before ``warn_at``, ``expiring`` until ``close_at``, then ``expired``."""
        if now >= self.close_at:
            return "expired"
        if now >= self.warn_at:
            return "expiring"
        return "valid"

    def expires_in(self, now: float) -> float:
        """The ``expires_in`` of an ``auth:expiring`` message sent at ``now`` (never negative)."""
        return max(0.0, self.expires_at - now)


def plan_expiry(
    identity: Identity,
    now: float,
    *,
    leeway: float = 0.0,
    warn_before: float = 60.0,
    warn_fraction: float = 0.1,
) -> ExpiryPlan | None:
    """When to send ``auth:expiring`` and when to close, for a connection authenticated at ``now``.

    The warning goes out ``min(warn_before, warn_fraction * lifetime)`` seconds before expiry,
    where lifetime is ``exp - iat`` (or ``exp - now`` without ``iat``): 60 s is ample for a client
    to fetch a new token, while 10 % keeps short-lived demo tokens (say 30 s) from being warned
    about the moment they connect. If that moment has passed, the warning is due at once.
    Returns ``None`` for an identity that never expires (guests).
    """
    if math.isinf(identity.expires_at):
        return None
    start = identity.issued_at if identity.issued_at is not None else now
    lifetime = max(0.0, identity.expires_at - start)
    lead = min(warn_before, warn_fraction * lifetime)
    warn_at = max(now, identity.expires_at - lead)
    close_at = identity.expires_at + leeway
    return ExpiryPlan(
        expires_at=identity.expires_at, warn_at=min(warn_at, close_at), close_at=close_at
    )


def check_refresh(current: Identity, refreshed: Identity) -> None:
    """Refuse an ``auth:refresh`` whose token belongs to someone else (a connection never
    changes hands); the caller then closes with 4001 like any other authentication failure."""
    if refreshed.user_id != current.user_id:
        raise AuthenticationError("refresh token is for another user")
