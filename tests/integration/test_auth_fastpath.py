"""The HMAC fast path accepts exactly the tokens pyjwt's decode accepts, with the same claims."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wslab.integration.auth.fastpath import HmacFastPath

SECRET = b"k" * 64
OTHER = b"o" * 64
OPTIONS: Any = {
    "require": ["exp", "sub"],
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_sub": False,
    "enforce_minimum_key_length": True,
}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _token(header: Any, claims: Any, key: bytes = SECRET, alg: str = "HS256") -> str:
    head = _b64(header if isinstance(header, bytes) else json.dumps(header).encode())
    body = _b64(claims if isinstance(claims, bytes) else json.dumps(claims).encode())
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    sig = hmac.new(key, f"{head}.{body}".encode(), digest).digest()
    return f"{head}.{body}.{_b64(sig)}"


def _pyjwt(token: str, algorithms: list[str], issuer: str | None, audience: str | None) -> Any:
    required = OPTIONS["require"] + (["iss"] if issuer else [])
    try:
        return jwt.PyJWT().decode(
            token, SECRET, algorithms=algorithms, options={**OPTIONS, "require": required},
            issuer=issuer, audience=audience,
        )  # fmt: skip
    except (jwt.PyJWTError, ValueError, TypeError):
        return None


def _agrees(token: str, algorithms: tuple[str, ...] = ("HS256",), issuer: str | None = None,
            audience: str | None = None) -> Any:  # fmt: skip
    """The fast path's answer, checked against pyjwt: None (ask pyjwt) or the same claims."""
    required = ["exp", "sub"] + (["iss"] if issuer else [])
    fast = HmacFastPath(SECRET, algorithms, required, issuer, audience).claims(token)
    if fast is not None:
        assert fast == _pyjwt(token, list(algorithms), issuer, audience)
    return fast


GOOD = {"sub": "u1", "exp": 2_000_000_000, "username": "ann", "roles": ["a"]}


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_the_common_token_is_accepted_with_pyjwts_claims(alg: str) -> None:
    token = _token({"alg": alg, "typ": "JWT"}, GOOD, alg=alg)
    assert _agrees(token, (alg,)) == GOOD
    assert _agrees(jwt.encode(GOOD, SECRET, algorithm=alg), (alg,)) == GOOD


@pytest.mark.parametrize(
    ("header", "claims", "key"),
    [
        ({"alg": "HS256"}, GOOD, OTHER),  # wrong signature
        ({"alg": "HS384"}, GOOD, SECRET),  # algorithm not allowed
        ({"alg": "none"}, GOOD, SECRET),
        ({"alg": "HS256", "kid": 5}, GOOD, SECRET),  # other header parameters: pyjwt's rules
        ({"alg": "HS256", "crit": ["x"]}, GOOD, SECRET),
        ({"alg": "HS256", "b64": False}, GOOD, SECRET),
        ({"typ": "JWT"}, GOOD, SECRET),  # no alg
        (["alg"], GOOD, SECRET),  # header not an object
        (b"{not json", GOOD, SECRET),
        ({"alg": "HS256"}, [1, 2], SECRET),  # payload not an object
        ({"alg": "HS256"}, b"\xff\xfe", SECRET),
        ({"alg": "HS256"}, {"sub": "u1"}, SECRET),  # missing exp
        ({"alg": "HS256"}, {"exp": 1, "sub": None}, SECRET),  # null required claim
        ({"alg": "HS256"}, {**GOOD, "aud": "x"}, SECRET),  # aud without a configured audience
        ({"alg": "HS256"}, {**GOOD, "jti": 7}, SECRET),
    ],
)
def test_anything_else_is_left_to_pyjwt(header: Any, claims: Any, key: bytes) -> None:
    assert _agrees(_token(header, claims, key)) is None


def test_issuer_and_audience_rules() -> None:
    token = _token({"alg": "HS256"}, {**GOOD, "iss": "me"})
    assert _agrees(token, issuer="me") == {**GOOD, "iss": "me"}
    assert _agrees(token, issuer="you") is None
    assert _agrees(_token({"alg": "HS256"}, GOOD), issuer="me") is None
    assert _agrees(token, audience="app") is None  # audience checks are pyjwt's


def test_non_canonical_base64_is_left_to_pyjwt() -> None:
    head, body, sig = _token({"alg": "HS256"}, GOOD).split(".")
    last = sig[-1]
    # The last character of a 43-character segment carries 2 unused bits: a neighbour with other
    # low bits decodes to the same bytes but is not the canonical spelling.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = alphabet[alphabet.index(last) ^ 1]
    assert _agrees(f"{head}.{body}.{sig[:-1]}{twin}") is None
    assert _agrees(f"{head}.{body}.{sig}A") is None  # 1 mod 4: not base64 at all
    assert _agrees(f"{head}.{body}.") is None


@settings(max_examples=200, deadline=None)
@given(
    claims=st.dictionaries(
        st.sampled_from(["sub", "exp", "iss", "aud", "jti", "nbf", "iat", "x"]),
        st.one_of(st.none(), st.integers(), st.text(max_size=5), st.lists(st.text(max_size=3))),
    ),
    header_extra=st.dictionaries(st.sampled_from(["typ", "kid", "cty"]), st.text(max_size=3)),
    flip=st.integers(min_value=-1, max_value=120),
)
def test_never_accepts_what_pyjwt_refuses(
    claims: dict[str, Any], header_extra: dict[str, str], flip: int
) -> None:
    token = _token({"alg": "HS256", **header_extra}, claims)
    if 0 <= flip < len(token) and token[flip] != ".":
        # One character changed: usually a bad signature or undecodable segment.
        swap = "A" if token[flip] != "A" else "B"
        token = token[:flip] + swap + token[flip + 1 :]
    _agrees(token)
    _agrees(token, issuer="me")


def test_only_headers_of_tokens_signed_with_the_key_are_remembered() -> None:
    fast = HmacFastPath(SECRET, ("HS256",), ["exp", "sub"], None, None)
    forged = _token({"alg": "HS256", "typ": "x"}, GOOD, OTHER)
    assert fast.claims(forged) is None and not fast._headers
    assert fast.claims(_token({"alg": "HS256", "typ": "JWT"}, GOOD)) == GOOD
    assert len(fast._headers) == 1
    for i in range(40):  # bounded: past the limit, headers are read each time, as before
        assert fast.claims(_token({"alg": "HS256", "typ": f"t{i}"}, GOOD)) == GOOD
    assert len(fast._headers) == 16
