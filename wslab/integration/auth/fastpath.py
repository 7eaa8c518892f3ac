"""The common HMAC token, accepted without pyjwt's per-call machinery.

A hub verifies one fresh token per new connection, and pyjwt spends most of that time not on
the HMAC but around it: merging option dicts, looking the algorithm up by name, preparing and
re-checking the key (PEM/SSH/DER sniffing of the secret), validating each base64 segment byte by
byte in Python. :class:`HmacFastPath` does the same checks once per verifier (key, algorithm
objects) and per token only what the token itself needs.

It only ever **accepts**: for a token it is not sure about it answers None, and the caller runs
the full pyjwt decode, which then accepts or refuses it with its usual reason. It accepts exactly
what that decode would accept, for the shape almost every token has:

- a header of ``alg`` (one of the configured HMAC algorithms) and optionally ``typ`` - any other
  header parameter (``kid``, ``crit``, ``b64``...) goes the full way;
- canonical unpadded base64url segments (pyjwt refuses others) and a JSON object in each;
- a signature that matches (a wrong one goes the full way, to be refused there);
- every required claim present and not null, ``iss`` equal to the configured issuer when there is
  one, no ``aud`` claim and no configured audience (audience rules are pyjwt's), and ``jti`` a
  string if present.

The time claims are not looked at here: :class:`~.tokens.TokenVerifier` checks them against its
own clock on either path.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import json
from base64 import urlsafe_b64decode, urlsafe_b64encode
from collections.abc import Iterable
from typing import Any

__all__ = ["HmacFastPath"]

_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
_PADDING = ("", "", "==", "=")  # by len % 4; 1 is never valid base64 (refused below)
_HEADER_KEYS = frozenset({"alg", "typ"})


def _segment(text: str) -> bytes | None:
    """The bytes of one canonical, unpadded base64url segment, or None."""
    padding = len(text) % 4
    if padding == 1:
        return None
    try:
        raw = urlsafe_b64decode(text + _PADDING[padding])
    except (binascii.Error, ValueError):
        return None
    # Non-canonical spellings (stray low bits in the last character) decode too; pyjwt refuses
    # them by re-encoding, and so do we.
    if urlsafe_b64encode(raw).rstrip(b"=") != text.encode("ascii"):
        return None
    return raw


def _json_object(raw: bytes) -> dict[str, Any] | None:
    # As UTF-8 text: pyjwt hands json.loads the bytes, which also reads UTF-16/32 - such a
    # token fails here (not UTF-8, or NULs json refuses) and goes the full way.
    try:
        value = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


#: Header segments already read (a verifier sees the same one or two, from its issuers) -> the
#: algorithm they name. Only for tokens whose signature matched, so nobody without the key can
#: fill it; bounded, and when full it is simply not added to.
_HEADER_CACHE_SIZE = 16


class HmacFastPath:
    """Accepts the common HS* token with ``key``; None means "ask pyjwt" (see the module doc).

    ``algorithms`` are the allowed ones (all HMAC, as the config guarantees), ``required`` the
    claims that must be present and not null, ``issuer`` the one ``iss`` must equal (or None).
    """

    __slots__ = ("_audience", "_headers", "_issuer", "_macs", "_required")

    def __init__(
        self,
        key: bytes,
        algorithms: Iterable[str],
        required: Iterable[str],
        issuer: str | None,
        audience: str | None,
    ) -> None:
        # One keyed HMAC per algorithm, copied per token: the key schedule is done once.
        self._macs = {alg: hmac.new(key, digestmod=_HASHES[alg]) for alg in algorithms}
        self._required = tuple(required)
        self._issuer = issuer
        self._audience = audience
        self._headers: dict[str, str] = {}

    def claims(self, token: str) -> dict[str, Any] | None:
        """The claims of ``token`` (a compact JWS of the URL-safe alphabet), or None."""
        if self._audience is not None:
            return None
        head, _, rest = token.partition(".")
        body, _, sig = rest.partition(".")
        alg = self._headers.get(head)
        known = alg is not None
        if alg is None:
            alg = self._algorithm(head)
            if alg is None:
                return None
        mac = self._macs[alg]
        signature = _segment(sig)
        payload_raw = _segment(body)
        if signature is None or payload_raw is None:
            return None
        mac = mac.copy()
        mac.update(token[: len(head) + 1 + len(body)].encode("ascii"))
        if not hmac.compare_digest(signature, mac.digest()):
            return None
        if not known and len(self._headers) < _HEADER_CACHE_SIZE:
            self._headers[head] = alg
        claims = _json_object(payload_raw)
        if claims is None or "aud" in claims:
            return None
        for name in self._required:
            if claims.get(name) is None:
                return None
        if self._issuer is not None and claims.get("iss") != self._issuer:
            return None
        if "jti" in claims and not isinstance(claims["jti"], str):
            return None
        return claims

    def _algorithm(self, head: str) -> str | None:
        """The allowed algorithm a header segment names, if it has no other parameter but typ."""
        raw = _segment(head)
        header = _json_object(raw) if raw is not None else None
        if header is None or not _HEADER_KEYS.issuperset(header):
            return None
        alg = header.get("alg")
        return alg if isinstance(alg, str) and alg in self._macs else None
