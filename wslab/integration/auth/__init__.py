"""Who is on the other end: JWT tokens, token sources, Origin policy, expiry planning.

The hub admits a connection only with a valid JWT (see ``docs/protocol.md``, *Authentication*).
This package holds every decision about that, and no I/O or scheduling, one module a job:

- :mod:`.tokens` — :class:`AuthConfig` (keys and rules, validated once), :class:`TokenVerifier`
  (``verify(token) -> Identity`` or :class:`AuthenticationError`, close 4001; a bounded cache),
  :func:`issue_token` and :func:`generate_secret`;
- :mod:`.sources` — :func:`token_from_upgrade`, :func:`token_from_message`: where a token may
  come from, in the protocol's order of preference;
- :mod:`.origins` — :class:`OriginPolicy`, the ``Origin`` allow-list of the handshake (HTTP 403);
- :mod:`.expiry` — :func:`plan_expiry`, :func:`seconds_until_expiry`, :func:`check_refresh`: the
  arithmetic the session uses to schedule ``auth:expiring``, accept ``auth:refresh`` and close
  with 4001.

Everything is re-exported here, so ``from wslab.integration.auth import ...`` keeps working.
"""

from .expiry import ExpiryPlan, check_refresh, plan_expiry, seconds_until_expiry
from .origins import OriginPolicy, normalize_origin
from .sources import TokenSource, token_from_message, token_from_upgrade
from .tokens import (
    SUPPORTED_ALGORITHMS,
    AuthConfig,
    CacheStats,
    Identity,
    LoadedKeys,
    TokenVerifier,
    generate_secret,
    issue_token,
)

__all__ = [
    "SUPPORTED_ALGORITHMS",
    "AuthConfig",
    "CacheStats",
    "ExpiryPlan",
    "Identity",
    "LoadedKeys",
    "OriginPolicy",
    "TokenSource",
    "TokenVerifier",
    "check_refresh",
    "generate_secret",
    "issue_token",
    "normalize_origin",
    "plan_expiry",
    "seconds_until_expiry",
    "token_from_message",
    "token_from_upgrade",
]
