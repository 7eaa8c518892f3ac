"""Who is on the other end: JWT tokens, token sources, Origin policy, expiry planning.

The hub admits a connection only with a valid JWT (see ``docs/protocol.md``, *Authentication*).
This module holds every decision about that, and no I/O or scheduling:

- :class:`AuthConfig` — the keys and rules, validated once at construction. The algorithm list is
  pinned and handed to pyjwt as is; ``none`` is never accepted; one config never mixes HMAC
  (``HS*``) with public-key algorithms (``RS*``/``PS*``/``ES*``), which is what makes the classic
  *key confusion* attack (an HS256 token "signed" with the server's RSA public key) impossible.
- :class:`TokenVerifier` — ``verify(token) -> Identity`` or :class:`AuthenticationError` (close
  4001) with a short message that is safe to send to the peer. Verified tokens are cached (LRU,
  bounded) and a cached entry never outlives the token's ``exp``.
- :func:`issue_token`, :func:`generate_secret` — minting tokens for tests, notebooks and
  ``wslab token``.
- :func:`token_from_upgrade`, :func:`token_from_message` — where a token may come from, in the
  protocol's order of preference (``Authorization: Bearer`` header, first ``auth`` message,
  ``?token=`` query).
- :class:`OriginPolicy` — the ``Origin`` allow-list checked during the handshake (HTTP 403).
- :func:`plan_expiry`, :func:`seconds_until_expiry`, :func:`check_refresh` — pure arithmetic the
  application layer uses to schedule ``auth:expiring``, accept ``auth:refresh`` and close with 4001.

One module a job: :mod:`.tokens` (config, verifier, issuing), :mod:`.sources` (where a token
comes from), :mod:`.origins` (the Origin allow-list), :mod:`.expiry` (planning while connected).
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
