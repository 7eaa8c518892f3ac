"""Tests for wslab.integration.auth: configs, verification, attacks, cache, extraction, Origin."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import math
import pickle
import warnings
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.datastructures import Headers

from wslab.foundation.codes import CloseCode, ErrorCode
from wslab.foundation.errors import AuthenticationError, ConfigError, ForbiddenOrigin
from wslab.integration.auth import (
    AuthConfig,
    ExpiryPlan,
    Identity,
    OriginPolicy,
    TokenVerifier,
    check_refresh,
    generate_secret,
    issue_token,
    normalize_origin,
    plan_expiry,
    seconds_until_expiry,
    token_from_message,
    token_from_upgrade,
)
from wslab.testing import FakeClock

SECRET = "k" * 40  # 40 bytes: enough for HS256, not for HS384/HS512
NOW = 1_700_000_000.0


# -- helpers -------------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(obj: Any) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hs256_by_hand(header: dict[str, Any], payload: dict[str, Any], key: bytes) -> str:
    """Sign with plain hmac, bypassing pyjwt's refusal to use a PEM as an HMAC secret."""
    signing_input = f"{b64url_json(header)}.{b64url_json(payload)}"
    sig = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(sig)}"


def pem_private(key: Any) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def pem_public(key: Any) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def refused(verifier: TokenVerifier, token: object) -> str:
    """The message of the AuthenticationError that verify() must raise."""
    with pytest.raises(AuthenticationError) as info:
        verifier.verify(token)
    assert info.value.close_code == CloseCode.AUTHENTICATION_FAILED
    return info.value.message


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def config() -> AuthConfig:
    return AuthConfig(secret=SECRET)


@pytest.fixture
def verifier(config: AuthConfig, clock: FakeClock) -> TokenVerifier:
    return TokenVerifier(config, clock=clock)


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"sub": "alice", "iat": int(NOW), "exp": int(NOW) + 3600}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


# -- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize("algs", [("none",), ("None",), ("HS256", "none"), ("NONE",)])
def test_config_never_accepts_alg_none(algs: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError, match="never accepted"):
        AuthConfig(secret=SECRET, algorithms=algs)


def test_config_refuses_mixing_hmac_and_public_key_algorithms(rsa_key: Any) -> None:
    with pytest.raises(ConfigError, match="must not mix"):
        AuthConfig(secret=SECRET, public_key=pem_public(rsa_key), algorithms=("HS256", "RS256"))
    with pytest.raises(ConfigError, match="must not mix"):
        AuthConfig(public_key=pem_public(rsa_key), algorithms=("RS256", "ES256"))


def test_config_refuses_public_key_pem_as_hmac_secret(rsa_key: Any) -> None:
    # The key-confusion setup from the other side: the RSA public key as an HMAC secret.
    with pytest.raises(ConfigError, match="secret"):
        AuthConfig(secret=pem_public(rsa_key), algorithms=("HS256",))


@pytest.mark.parametrize(
    ("alg", "length", "ok"),
    [("HS256", 31, False), ("HS256", 32, True), ("HS384", 47, False), ("HS384", 48, True),
     ("HS512", 63, False), ("HS512", 64, True)],
)  # fmt: skip
def test_config_refuses_hmac_secret_shorter_than_hash(alg: str, length: int, ok: bool) -> None:
    if ok:
        cfg = AuthConfig(secret="s" * length, algorithms=(alg,))
        token = issue_token(cfg, "alice", now=NOW)
        assert TokenVerifier(cfg, clock=FakeClock(NOW)).verify(token).user_id == "alice"
    else:
        with pytest.raises(ConfigError, match=r"auth\.secret"):
            AuthConfig(secret="s" * length, algorithms=(alg,))


def test_valid_config_never_warns_at_run_time(config: AuthConfig) -> None:
    # Key length is enforced at construction, so pyjwt has nothing to warn about later.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        token = issue_token(config, "alice", now=NOW)
        TokenVerifier(config, clock=FakeClock(NOW)).verify(token)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"algorithms": ()}, "at least one"),
        ({"algorithms": ("HS999",)}, "not supported"),
        ({"secret": None}, r"auth\.secret is required"),
        ({"leeway": -1}, "leeway"),
        ({"max_token_bytes": 10}, "max_token_bytes"),
        ({"cache_size": -1}, "cache_size"),
        ({"issuer": ""}, "issuer"),
        ({"audience": 5}, "audience"),
        ({"public_key": "x"}, "not HS"),
    ],
)
def test_config_validation(kwargs: dict[str, Any], match: str) -> None:
    base: dict[str, Any] = {"secret": SECRET}
    base.update(kwargs)
    with pytest.raises(ConfigError, match=match):
        AuthConfig(**base)


def test_config_public_key_rules(rsa_key: Any, ec_key: Any) -> None:
    with pytest.raises(ConfigError, match=r"public_key is required"):
        AuthConfig(algorithms=("RS256",))
    with pytest.raises(ConfigError, match="only used by HS"):
        AuthConfig(secret=SECRET, public_key=pem_public(rsa_key), algorithms=("RS256",))
    with pytest.raises(ConfigError, match="private key"):
        AuthConfig(public_key=pem_private(rsa_key), algorithms=("RS256",))
    with pytest.raises(ConfigError, match="public_key"):  # an EC key for an RSA algorithm
        AuthConfig(public_key=pem_public(ec_key), algorithms=("RS256",))
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(ConfigError, match="public_key"):  # wrong curve for ES256
        AuthConfig(public_key=pem_public(p384), algorithms=("ES256",))
    with pytest.raises(ConfigError, match="does not match"):
        AuthConfig(
            private_key=pem_private(rsa_key),
            public_key=pem_public(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
            algorithms=("RS256",),
        )


def test_config_refuses_weak_rsa_key() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(ConfigError, match="too weak"):
        AuthConfig(public_key=pem_public(weak), algorithms=("RS256",))


def test_config_normalizes_algorithms_and_hides_keys() -> None:
    cfg = AuthConfig(secret=SECRET, algorithms="HS256")  # type: ignore[arg-type]
    assert cfg.algorithms == ("HS256",)
    assert SECRET not in repr(cfg)
    assert cfg.can_issue


def test_config_is_plain_data(rsa_key: Any) -> None:
    cfg = AuthConfig(public_key=pem_public(rsa_key), algorithms=("RS256",), leeway=1)
    assert dataclasses.asdict(cfg)["algorithms"] == ("RS256",)
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    assert dataclasses.replace(cfg, leeway=5).leeway == 5
    with pytest.raises(ConfigError):  # replace() validates like the constructor
        dataclasses.replace(cfg, algorithms=("HS256",))


def test_generate_secret_is_long_enough_for_every_hmac_algorithm() -> None:
    secret = generate_secret()
    assert len(secret.encode()) >= 64
    assert secret != generate_secret()
    cfg = AuthConfig(secret=secret, algorithms=("HS512",))
    token = issue_token(cfg, "bob", now=NOW)
    assert TokenVerifier(cfg, clock=FakeClock(NOW)).verify(token).user_id == "bob"
    assert len(generate_secret(1).encode()) >= 32


# -- happy paths ---------------------------------------------------------------------------------


def test_hs256_token_gives_identity(config: AuthConfig, verifier: TokenVerifier) -> None:
    token = issue_token(
        config, "u1", username="Alice", roles=["admin", "mod", "admin"], ttl=600, now=NOW,
        extra_claims={"team": {"name": "blue", "tags": ["a"]}},
    )  # fmt: skip
    identity = verifier.verify(token)
    assert identity.user_id == "u1"
    assert identity.username == "Alice"
    assert identity.roles == ("admin", "mod")
    assert identity.is_admin and identity.has_role("mod")
    assert identity.expires_at == NOW + 600
    assert identity.issued_at == NOW
    assert not identity.anonymous
    assert identity.issuer is None and identity.audience is None
    assert identity.claims["team"]["tags"] == ("a",)
    with pytest.raises(TypeError):
        identity.claims["sub"] = "mallory"  # type: ignore[index]
    with pytest.raises(TypeError):
        identity.claims["team"]["name"] = "red"  # type: ignore[index]


def test_username_defaults_to_sub_and_roles_to_empty(
    config: AuthConfig, verifier: TokenVerifier
) -> None:
    identity = verifier.verify(issue_token(config, "bob", now=NOW))
    assert identity.username == "bob"
    assert identity.roles == ()
    assert not identity.is_admin


def test_issuer_and_audience_checked_when_configured(clock: FakeClock) -> None:
    cfg = AuthConfig(secret=SECRET, issuer="https://id.example", audience="wslab")
    identity = TokenVerifier(cfg, clock=clock).verify(issue_token(cfg, "alice", now=NOW))
    assert identity.issuer == "https://id.example"
    assert identity.audience == "wslab"
    # aud may be a list that contains us
    token = issue_token(cfg, "alice", now=NOW, extra_claims={"aud": ["other", "wslab"]})
    assert TokenVerifier(cfg, clock=clock).verify(token).audience == "wslab"


@pytest.mark.parametrize("alg", ["RS256", "PS256"])
def test_rsa_happy_path(alg: str, rsa_key: Any, clock: FakeClock) -> None:
    issuer_cfg = AuthConfig(private_key=pem_private(rsa_key), algorithms=(alg,))
    hub_cfg = AuthConfig(public_key=pem_public(rsa_key), algorithms=(alg,))
    assert not hub_cfg.can_issue
    token = issue_token(issuer_cfg, "carol", roles=("admin",), now=NOW)
    assert jwt.get_unverified_header(token)["alg"] == alg
    identity = TokenVerifier(hub_cfg, clock=clock).verify(token)
    assert identity.user_id == "carol" and identity.is_admin
    # the issuing config derived its own public key and verifies too
    assert TokenVerifier(issuer_cfg, clock=clock).verify(token).user_id == "carol"


def test_es256_happy_path(ec_key: Any, clock: FakeClock) -> None:
    both = AuthConfig(
        public_key=pem_public(ec_key), private_key=pem_private(ec_key), algorithms=("ES256",)
    )
    hub_cfg = AuthConfig(public_key=pem_public(ec_key), algorithms=("ES256",))
    token = issue_token(both, "dave", now=NOW)
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    assert TokenVerifier(hub_cfg, clock=clock).verify(token).user_id == "dave"


def test_issue_token_rules(config: AuthConfig, rsa_key: Any, clock: FakeClock) -> None:
    with pytest.raises(ConfigError, match="does not include"):
        issue_token(config, "alice", algorithm="HS512")
    with pytest.raises(ConfigError, match="private_key is required"):
        issue_token(AuthConfig(public_key=pem_public(rsa_key), algorithms=("RS256",)), "alice")
    with pytest.raises(ValueError):
        issue_token(config, "")
    with pytest.raises(ConfigError):  # a raw secret goes through the same validation
        issue_token("short", "alice")
    token = issue_token(SECRET, "alice", roles="admin", now=NOW)
    identity = TokenVerifier(config, clock=clock).verify(token)
    assert identity.roles == ("admin",)
    assert (
        jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False})["exp"]
        == NOW + 3600
    )


def test_guest_identity() -> None:
    guest = Identity.guest(0x3F2A)
    assert guest.user_id == "guest-3f2a" and guest.username == "guest-3f2a"
    assert guest.roles == ("guest",) and guest.anonymous and not guest.is_admin
    assert guest.expires_at == math.inf
    assert Identity.guest().user_id != Identity.guest().user_id
    assert seconds_until_expiry(guest, NOW) == math.inf
    assert plan_expiry(guest, NOW) is None


# -- attacks -------------------------------------------------------------------------------------


def test_authentication_error_closes_with_4001() -> None:
    err = AuthenticationError("token expired")
    assert err.close_code == 4001
    assert err.to_dict() == {
        "code": int(ErrorCode.PERMISSION_DENIED),
        "name": "PERMISSION_DENIED",
        "message": "token expired",
    }


def test_expired_token(config: AuthConfig, verifier: TokenVerifier) -> None:
    assert refused(verifier, issue_token(config, "alice", ttl=-1, now=NOW)) == "token expired"
    # exp == now is already expired (the token is valid strictly before exp)
    assert refused(verifier, issue_token(config, "alice", ttl=0, now=NOW)) == "token expired"


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_not_yet_valid(claim: str, config: AuthConfig, verifier: TokenVerifier) -> None:
    token = issue_token(config, "alice", now=NOW, extra_claims={claim: int(NOW) + 300})
    assert refused(verifier, token) == "token not yet valid"


def test_tampered_payload_keeps_signature(config: AuthConfig, verifier: TokenVerifier) -> None:
    token = issue_token(config, "alice", roles=["user"], now=NOW)
    header, payload, signature = token.split(".")
    forged = json.loads(unb64url(payload))
    forged["roles"] = ["admin"]
    assert refused(verifier, f"{header}.{b64url_json(forged)}.{signature}") == "invalid signature"


def test_tampered_signature(config: AuthConfig, verifier: TokenVerifier) -> None:
    token = issue_token(config, "alice", now=NOW)
    header, payload, signature = token.split(".")
    raw = bytearray(unb64url(signature))
    raw[0] ^= 0x01
    assert refused(verifier, f"{header}.{payload}.{b64url(bytes(raw))}") == "invalid signature"
    assert refused(verifier, f"{header}.{payload}.") == "invalid signature"


def test_wrong_hmac_key(verifier: TokenVerifier) -> None:
    token = issue_token("x" * 40, "alice", now=NOW)
    assert refused(verifier, token) == "invalid signature"


def test_wrong_rsa_key(rsa_key: Any, other_rsa_key: Any, clock: FakeClock) -> None:
    attacker = AuthConfig(private_key=pem_private(other_rsa_key), algorithms=("RS256",))
    hub = TokenVerifier(
        AuthConfig(public_key=pem_public(rsa_key), algorithms=("RS256",)), clock=clock
    )
    assert refused(hub, issue_token(attacker, "alice", now=NOW)) == "invalid signature"


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_crafted_by_hand(alg: str, verifier: TokenVerifier) -> None:
    token = f"{b64url_json({'alg': alg, 'typ': 'JWT'})}.{b64url_json(claims())}."
    assert refused(verifier, token) == "algorithm not allowed"


def test_alg_none_with_a_signature_and_missing_alg(
    config: AuthConfig, verifier: TokenVerifier
) -> None:
    real = issue_token(config, "alice", now=NOW)
    signature = real.split(".")[2]
    token = f"{b64url_json({'alg': 'none'})}.{b64url_json(claims())}.{signature}"
    assert refused(verifier, token) == "algorithm not allowed"
    token = f"{b64url_json({'typ': 'JWT'})}.{b64url_json(claims())}.{signature}"
    assert refused(verifier, token) == "algorithm not allowed"


def test_algorithm_outside_the_pinned_list(verifier: TokenVerifier) -> None:
    other = AuthConfig(secret="s" * 64, algorithms=("HS512",))
    assert refused(verifier, issue_token(other, "alice", now=NOW)) == "algorithm not allowed"


def test_key_confusion_hs256_signed_with_rsa_public_key(rsa_key: Any, clock: FakeClock) -> None:
    public_pem = pem_public(rsa_key)
    hub = TokenVerifier(AuthConfig(public_key=public_pem, algorithms=("RS256",)), clock=clock)
    token = hs256_by_hand(
        {"alg": "HS256", "typ": "JWT"}, claims(roles=["admin"]), public_pem.encode()
    )
    assert refused(hub, token) == "algorithm not allowed"
    # ... and the only config that could accept it cannot be built.
    with pytest.raises(ConfigError):
        AuthConfig(secret=public_pem, public_key=public_pem, algorithms=("HS256", "RS256"))


def test_wrong_audience(config: AuthConfig, clock: FakeClock) -> None:
    hub = TokenVerifier(AuthConfig(secret=SECRET, audience="wslab"), clock=clock)
    assert refused(hub, issue_token(config, "a", audience="other", now=NOW)) == "wrong audience"
    assert refused(hub, issue_token(config, "a", now=NOW)) == "token missing 'aud'"
    # A token addressed to someone while we have no audience configured is not for us either.
    open_hub = TokenVerifier(config, clock=clock)
    assert (
        refused(open_hub, issue_token(config, "a", audience="other", now=NOW)) == "wrong audience"
    )


def test_wrong_issuer(config: AuthConfig, clock: FakeClock) -> None:
    hub = TokenVerifier(AuthConfig(secret=SECRET, issuer="https://id.example"), clock=clock)
    assert (
        refused(hub, issue_token(config, "a", issuer="https://evil.example", now=NOW))
        == "wrong issuer"
    )
    assert refused(hub, issue_token(config, "a", now=NOW)) == "token missing 'iss'"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (claims(sub=None), "token missing 'sub'"),
        (claims(sub=""), "token missing 'sub'"),
        (claims(sub=42), "invalid 'sub' claim"),
        (claims(exp=None), "token missing 'exp'"),
        (claims(exp="tomorrow"), "invalid 'exp' claim"),
        (claims(exp=True), "invalid 'exp' claim"),
        (claims(nbf="soon"), "invalid 'nbf' claim"),
        (claims(username=""), "invalid 'username' claim"),
        (claims(username=7), "invalid 'username' claim"),
        (claims(roles="admin"), "invalid 'roles' claim"),
        (claims(roles=["admin", 1]), "invalid 'roles' claim"),
    ],
)
def test_bad_claims(payload: dict[str, Any], message: str, verifier: TokenVerifier) -> None:
    token = jwt.encode(payload, SECRET, algorithm="HS256")
    assert refused(verifier, token) == message


def test_oversized_token_refused_before_parsing(config: AuthConfig, clock: FakeClock) -> None:
    small = TokenVerifier(AuthConfig(secret=SECRET, max_token_bytes=256), clock=clock)
    big = issue_token(config, "alice", now=NOW, extra_claims={"pad": "x" * 300})
    assert refused(small, big) == "token too large"
    # even when it is not a JWT at all: size is the first check
    assert refused(small, "\x00" * 10_000) == "token too large"


@pytest.mark.parametrize(
    "garbage",
    ["", " ", "abc", "a.b", "a.b.c.d", "...", "a..c", "ünïcødé.ünï.cødé", "eyJ.eyJ.\u00e9",
     "a.b.c ", "\n", "Bearer x.y.z", "e30.e30.", "e30.W10.", "bm90IGpzb24.bm90IGpzb24.AA"],
)  # fmt: skip
def test_garbage_strings(garbage: str, verifier: TokenVerifier) -> None:
    assert refused(verifier, garbage) in {"malformed token", "algorithm not allowed"}


@pytest.mark.parametrize("not_a_string", [None, b"a.b.c", 42, ["a.b.c"]])
def test_non_string_tokens(not_a_string: object, verifier: TokenVerifier) -> None:
    assert refused(verifier, not_a_string) == "malformed token"


def test_non_object_payload(verifier: TokenVerifier) -> None:
    token = hs256_by_hand({"alg": "HS256"}, claims(), SECRET.encode())
    header, _, _ = token.split(".")
    signing_input = f"{header}.{b64url(b'[1, 2]')}"
    sig = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    assert refused(verifier, f"{signing_input}.{b64url(sig)}") == "malformed token"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_refused_with_authentication_error(text: str) -> None:
    verifier = TokenVerifier(AuthConfig(secret=SECRET), clock=FakeClock(NOW))
    with pytest.raises(AuthenticationError):
        verifier.verify(text)


_SEGMENT = st.binary(max_size=80).map(b64url)


@settings(max_examples=200, deadline=None)
@given(_SEGMENT, _SEGMENT, _SEGMENT, st.sampled_from(["HS256", "none", "RS256", "HS512", ""]))
def test_any_three_segments_are_refused(h: str, p: str, s: str, alg: str) -> None:
    verifier = TokenVerifier(AuthConfig(secret=SECRET), clock=FakeClock(NOW))
    for header in (h, b64url_json({"alg": alg})):
        with pytest.raises(AuthenticationError):
            verifier.verify(f"{header}.{p}.{s}")


# -- leeway --------------------------------------------------------------------------------------


def test_leeway_tolerates_small_clock_skew(clock: FakeClock) -> None:
    strict = TokenVerifier(AuthConfig(secret=SECRET), clock=clock)
    lenient = TokenVerifier(AuthConfig(secret=SECRET, leeway=10), clock=clock)
    expired_5s_ago = issue_token(SECRET, "a", ttl=-5, now=NOW)
    assert refused(strict, expired_5s_ago) == "token expired"
    assert lenient.verify(expired_5s_ago).user_id == "a"
    expired_20s_ago = issue_token(SECRET, "a", ttl=-20, now=NOW)
    assert refused(lenient, expired_20s_ago) == "token expired"
    early = issue_token(
        SECRET, "a", now=NOW, extra_claims={"nbf": int(NOW) + 5, "iat": int(NOW) + 5}
    )
    assert refused(strict, early) == "token not yet valid"
    assert lenient.verify(early).user_id == "a"
    too_early = issue_token(SECRET, "a", now=NOW, extra_claims={"nbf": int(NOW) + 20})
    assert refused(lenient, too_early) == "token not yet valid"


# -- cache ---------------------------------------------------------------------------------------


def test_cache_hit_and_miss(config: AuthConfig, verifier: TokenVerifier) -> None:
    token = issue_token(config, "alice", now=NOW)
    first = verifier.verify(token)
    second = verifier.verify(token)
    assert second is first
    stats = verifier.stats
    assert (stats.hits, stats.misses, stats.size, stats.capacity) == (1, 1, 1, 1024)


def test_cached_token_is_refused_after_exp(config: AuthConfig, clock: FakeClock) -> None:
    verifier = TokenVerifier(config, clock=clock)
    token = issue_token(config, "alice", ttl=60, now=NOW)
    verifier.verify(token)
    clock.advance(59)
    assert verifier.verify(token).user_id == "alice"
    assert verifier.stats.hits == 1
    clock.advance(1)  # now == exp
    assert refused(verifier, token) == "token expired"
    stats = verifier.stats
    assert stats.expired == 1 and stats.size == 0
    assert refused(verifier, token) == "token expired"  # and it is not cached again


def test_cached_and_uncached_agree_at_every_instant(clock: FakeClock) -> None:
    cfg = AuthConfig(secret=SECRET, leeway=3)
    cached = TokenVerifier(cfg, clock=clock)
    token = issue_token(cfg, "alice", ttl=10, now=NOW)
    cached.verify(token)
    for step in range(30):
        clock.now = NOW + step * 0.5
        fresh = TokenVerifier(cfg, clock=clock)
        outcomes = []
        for v in (cached, fresh):
            try:
                outcomes.append(v.verify(token).user_id)
            except AuthenticationError as exc:
                outcomes.append(exc.message)
        assert outcomes[0] == outcomes[1], clock.now


def test_refused_tokens_are_never_cached(config: AuthConfig, verifier: TokenVerifier) -> None:
    for bad in [
        issue_token(config, "a", ttl=-1, now=NOW),
        issue_token("y" * 40, "a", now=NOW),
        "a.b.c",
    ]:
        refused(verifier, bad)
        refused(verifier, bad)
    assert verifier.stats.size == 0 and verifier.stats.hits == 0


def test_cache_is_bounded_lru(clock: FakeClock) -> None:
    cfg = AuthConfig(secret=SECRET, cache_size=3)
    verifier = TokenVerifier(cfg, clock=clock)
    tokens = [issue_token(cfg, f"user{i}", now=NOW) for i in range(5)]
    for t in tokens[:3]:
        verifier.verify(t)
    verifier.verify(tokens[0])  # user0 becomes most recently used
    verifier.verify(tokens[3])  # evicts user1
    verifier.verify(tokens[4])  # evicts user2
    stats = verifier.stats
    assert stats.size == 3 and stats.evictions == 2
    hits = stats.hits
    verifier.verify(tokens[0])
    assert verifier.stats.hits == hits + 1  # user0 survived
    verifier.verify(tokens[1])
    assert verifier.stats.hits == hits + 1  # user1 was evicted: a miss
    assert verifier.stats.size == 3


def test_cache_can_be_disabled_and_cleared(config: AuthConfig, clock: FakeClock) -> None:
    off = TokenVerifier(AuthConfig(secret=SECRET, cache_size=0), clock=clock)
    token = issue_token(config, "alice", now=NOW)
    off.verify(token)
    off.verify(token)
    assert (off.stats.hits, off.stats.misses, off.stats.size) == (0, 2, 0)
    on = TokenVerifier(config, clock=clock)
    on.verify(token)
    on.clear_cache()
    assert on.stats.size == 0 and on.stats.misses == 0


# -- extraction ----------------------------------------------------------------------------------


def test_bearer_header_beats_query() -> None:
    headers = {"Authorization": "Bearer a.b.c"}
    assert token_from_upgrade(headers, {"token": ["q.q.q"]}) == ("a.b.c", "header")


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
@pytest.mark.parametrize("key", ["Authorization", "authorization", "AUTHORIZATION"])
def test_bearer_scheme_and_header_name_are_case_insensitive(scheme: str, key: str) -> None:
    assert token_from_upgrade({key: f"{scheme} a.b.c"}, {}) == ("a.b.c", "header")


def test_real_header_containers() -> None:
    headers = Headers()
    headers["authorization"] = "Bearer x.y.z"
    assert token_from_upgrade(headers, None) == ("x.y.z", "header")
    headers["Authorization"] = "Bearer u.v.w"
    with pytest.raises(AuthenticationError, match="more than one"):
        token_from_upgrade(headers, None)


class GetOnly:
    """A header container that only offers get()."""

    def __init__(self, value: str | None) -> None:
        self.value = value

    def get(self, name: str) -> str | None:
        return self.value if name == "Authorization" else None


def test_get_only_header_container() -> None:
    assert token_from_upgrade(GetOnly("Bearer a.b.c"), {}) == ("a.b.c", "header")
    assert token_from_upgrade(GetOnly(None), {"token": "q.q.q"}) == ("q.q.q", "query")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("Basic YWxpY2U6cGFzcw==", "unsupported authorization scheme"),
        ("Token a.b.c", "unsupported authorization scheme"),
        ("Bearer", "malformed Authorization header"),
        ("Bearer ", "malformed Authorization header"),
        ("", "malformed Authorization header"),
        ("Bearer a.b.c d.e.f", "malformed Authorization header"),
        ("Bearer a.b.c, Bearer d.e.f", "malformed Authorization header"),
        ("Bearer a.b.c,d.e.f", "malformed Authorization header"),
    ],
)
def test_malformed_authorization_header_is_refused(value: str, message: str) -> None:
    with pytest.raises(AuthenticationError) as info:
        token_from_upgrade({"Authorization": value}, {"token": ["q.q.q"]})
    assert info.value.message == message
    assert info.value.close_code == 4001


def test_two_authorization_headers_in_a_plain_dict() -> None:
    with pytest.raises(AuthenticationError, match="more than one"):
        token_from_upgrade({"Authorization": "Bearer a.b.c", "authorization": "Bearer d.e.f"}, {})


def test_query_token() -> None:
    assert token_from_upgrade({}, {"token": ["a.b.c"]}) == ("a.b.c", "query")
    assert token_from_upgrade({"Host": "x"}, {"token": "a.b.c"}) == ("a.b.c", "query")
    assert token_from_upgrade({}, {}) == (None, "message")
    assert token_from_upgrade({}, {"token": []}) == (None, "message")
    assert token_from_upgrade({}, None) == (None, "message")
    with pytest.raises(AuthenticationError, match="more than one"):
        token_from_upgrade({}, {"token": ["a.b.c", "d.e.f"]})
    with pytest.raises(AuthenticationError, match="malformed"):
        token_from_upgrade({}, {"token": [""]})


def test_token_from_message() -> None:
    assert token_from_message({"type": "auth", "token": "a.b.c", "ref": "1"}) == "a.b.c"
    assert (
        token_from_message({"type": "auth:refresh", "token": "a.b.c"}, expected_type="auth:refresh")
        == "a.b.c"
    )


@pytest.mark.parametrize(
    "msg",
    [
        {"type": "chat:message", "token": "a.b.c", "content": "hi"},
        {"type": "auth:refresh", "token": "a.b.c"},
        {"token": "a.b.c"},
        ["auth", "a.b.c"],
        "a.b.c",
        None,
    ],
)
def test_token_in_the_wrong_message_is_refused(msg: object) -> None:
    with pytest.raises(AuthenticationError) as info:
        token_from_message(msg)
    assert info.value.message == "first message must be auth"


@pytest.mark.parametrize("token", [None, "", "  ", 42, ["a.b.c"]])
def test_auth_message_without_a_usable_token(token: object) -> None:
    with pytest.raises(AuthenticationError, match="needs a token"):
        token_from_message({"type": "auth", "token": token})


def test_extracted_token_goes_through_verification(
    config: AuthConfig, verifier: TokenVerifier
) -> None:
    token = issue_token(config, "alice", now=NOW)
    extracted, source = token_from_upgrade({"authorization": f"Bearer {token}"}, {})
    assert source == "header" and verifier.verify(extracted or "").user_id == "alice"
    assert verifier.verify(token_from_message({"type": "auth", "token": token})).user_id == "alice"


# -- Origin policy -------------------------------------------------------------------------------


def test_empty_allow_list_allows_everything() -> None:
    policy = OriginPolicy([])
    assert policy.allows_all
    for origin in [None, "https://evil.example", "null", "garbage"]:
        policy.check(origin)


def test_exact_origins_after_normalization() -> None:
    policy = OriginPolicy(["https://Chat.Example.com:443", "http://localhost:8888/"])
    policy.check("https://chat.example.com")
    policy.check("HTTPS://CHAT.EXAMPLE.COM")
    policy.check("http://localhost:8888")
    for bad in [
        "http://chat.example.com",  # scheme differs
        "https://chat.example.com:8443",  # port differs
        "https://evil.chat.example.com",  # subdomain
        "https://chat.example.com.evil.example",  # suffix trick
        "http://localhost",  # default port is not 8888
        "https://user@chat.example.com",
        "not an origin",
        "",
    ]:
        with pytest.raises(ForbiddenOrigin) as info:
            policy.check(bad)
        assert info.value.status == 403
        assert info.value.code == ErrorCode.PERMISSION_DENIED


def test_missing_origin_is_allowed() -> None:
    OriginPolicy(["https://chat.example.com"]).check(None)


def test_null_origin_needs_explicit_allowance() -> None:
    with pytest.raises(ForbiddenOrigin):
        OriginPolicy(["https://chat.example.com"]).check("null")
    with pytest.raises(ForbiddenOrigin):
        OriginPolicy(["*"]).check("null")
    OriginPolicy(["null"]).check("null")
    assert not OriginPolicy(["null"]).allows("https://chat.example.com")


def test_the_hubs_own_page_is_admitted_whatever_the_list() -> None:
    policy = OriginPolicy(["https://chat.example.com"])
    assert policy.allows("http://127.0.0.1:8765", host="127.0.0.1:8765")
    policy.check("http://127.0.0.1:8765", host="127.0.0.1:8765")
    # Another port on the same machine is another origin.
    assert not policy.allows("http://127.0.0.1:9999", host="127.0.0.1:8765")
    with pytest.raises(ForbiddenOrigin):
        policy.check("http://evil.example", host="127.0.0.1:8765")
    assert not policy.allows("null", host="127.0.0.1:8765")


def test_star_allows_every_real_origin() -> None:
    policy = OriginPolicy(["*"])
    assert policy.allows("https://anything.example:1234")
    assert not policy.allows("garbage")


def test_ipv6_and_default_ports() -> None:
    assert normalize_origin("http://[::1]:80") == "http://[::1]"
    assert normalize_origin("wss://Example.com:443") == "wss://example.com"
    assert normalize_origin("https://example.com:8443") == "https://example.com:8443"
    assert OriginPolicy(["http://[::1]:8000"]).allows("http://[::1]:8000")


@pytest.mark.parametrize(
    "entry",
    [
        "https://*.example.com",
        "https://example.com/path",
        "example.com",
        "https://a.com?x=1",
        "https://a.com:99999",
    ],
)
def test_bad_allow_list_entries(entry: str) -> None:
    with pytest.raises(ConfigError):
        OriginPolicy([entry])


# -- expiry planning -----------------------------------------------------------------------------


def identity_with(ttl: float, *, iat: bool = True) -> Identity:
    return Identity(user_id="a", username="a", expires_at=NOW + ttl, issued_at=NOW if iat else None)


def test_long_token_is_warned_60s_ahead() -> None:
    plan = plan_expiry(identity_with(3600), NOW)
    assert plan == ExpiryPlan(expires_at=NOW + 3600, warn_at=NOW + 3540, close_at=NOW + 3600)
    assert plan.phase(NOW) == "valid"
    assert plan.phase(NOW + 3540) == "expiring"
    assert plan.phase(NOW + 3600) == "expired"
    assert plan.expires_in(NOW + 3540) == 60
    assert plan.expires_in(NOW + 4000) == 0


def test_short_token_is_warned_at_ten_percent() -> None:
    plan = plan_expiry(identity_with(30), NOW)
    assert plan is not None
    assert plan.warn_at == pytest.approx(NOW + 27)


def test_lifetime_without_iat_counts_from_now() -> None:
    plan = plan_expiry(identity_with(100, iat=False), NOW + 50)
    assert plan is not None
    assert plan.warn_at == pytest.approx(NOW + 95)  # 10 % of the 50 s left


def test_leeway_delays_the_close_and_late_warnings_are_due_now() -> None:
    plan = plan_expiry(identity_with(3600), NOW + 3590, leeway=5)
    assert plan is not None
    assert plan.close_at == NOW + 3605
    assert plan.warn_at == NOW + 3590  # the warning moment has passed: warn at once
    assert seconds_until_expiry(identity_with(3600), NOW + 3590) == 10


def test_plan_matches_the_verifier(clock: FakeClock) -> None:
    cfg = AuthConfig(secret=SECRET, leeway=2)
    verifier = TokenVerifier(cfg, clock=clock)
    identity = verifier.verify(issue_token(cfg, "a", ttl=120, now=NOW))
    plan = plan_expiry(identity, NOW, leeway=cfg.leeway)
    assert plan is not None
    clock.now = plan.close_at - 0.001
    assert verifier.verify(issue_token(cfg, "a", ttl=120, now=NOW)).user_id == "a"
    clock.now = plan.close_at
    assert refused(verifier, issue_token(cfg, "a", ttl=120, now=NOW)) == "token expired"


def test_refresh_must_keep_the_user(config: AuthConfig, verifier: TokenVerifier) -> None:
    current = verifier.verify(issue_token(config, "alice", now=NOW))
    check_refresh(current, verifier.verify(issue_token(config, "alice", ttl=7200, now=NOW)))
    with pytest.raises(AuthenticationError, match="another user"):
        check_refresh(current, verifier.verify(issue_token(config, "mallory", now=NOW)))
