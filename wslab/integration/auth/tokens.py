"""JWT tokens: :class:`AuthConfig` (keys and rules), :class:`TokenVerifier`, :func:`issue_token`.

- :class:`AuthConfig` — the keys and rules, validated once at construction. The algorithm list is
  pinned and handed to pyjwt as is; ``none`` is never accepted; one config never mixes HMAC
  (``HS*``) with public-key algorithms (``RS*``/``PS*``/``ES*``), which is what makes the classic
  *key confusion* attack (an HS256 token "signed" with the server's RSA public key) impossible.
- :class:`TokenVerifier` — ``verify(token) -> Identity`` or :class:`AuthenticationError` (close
  4001) with a short message that is safe to send to the peer. Verified tokens are cached (LRU,
  bounded) and a cached entry never outlives the token's ``exp``.
- :func:`issue_token`, :func:`generate_secret` — minting tokens for tests, notebooks and
  ``wslab token``.

Time enters as a ``clock`` or a ``now`` argument, never read behind the caller's back, so the
time claims (``exp``, ``nbf``, ``iat``) are checked here against that clock rather than by pyjwt
(which reads the wall clock); pyjwt checks the signature, the algorithm, ``iss``, ``aud`` and
required claims.

Short HMAC secrets are **refused** (:class:`ConfigError`), not merely warned about: RFC 7518
section 3.2 requires an HMAC key at least as long as the hash output (32 bytes for HS256, 48 for
HS384, 64 for HS512), and pyjwt is told to enforce the same minimum (``enforce_minimum_key_length``)
so it never emits ``InsecureKeyLengthWarning`` at run time. :func:`generate_secret` makes a secret
long enough for all three. RSA keys below 2048 bits are refused for the same reason.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import jwt

from wslab.foundation.errors import AuthenticationError, ConfigError

if TYPE_CHECKING:
    from jwt.types import Options  # pyjwt's TypedDict of decode() options

__all__ = [
    "SUPPORTED_ALGORITHMS",
    "AuthConfig",
    "CacheStats",
    "Identity",
    "LoadedKeys",
    "TokenVerifier",
    "generate_secret",
    "issue_token",
]

# -- algorithms and key families -----------------------------------------------------------------

#: Algorithm -> key family. One config may only use algorithms of one family: the same key bytes
#: must never be interpreted both as an HMAC secret and as a public key.
_FAMILIES: dict[str, str] = {
    "HS256": "hmac",
    "HS384": "hmac",
    "HS512": "hmac",
    "RS256": "rsa",
    "RS384": "rsa",
    "RS512": "rsa",
    "PS256": "rsa",
    "PS384": "rsa",
    "PS512": "rsa",
    "ES256": "ec",
    "ES384": "ec",
    "ES512": "ec",
}
SUPPORTED_ALGORITHMS: tuple[str, ...] = tuple(_FAMILIES)

#: Minimum HMAC key length in bytes: the hash output size (RFC 7518 section 3.2).
_HMAC_MIN_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}

# One pyjwt instance that refuses short keys instead of warning about them.
_JWT = jwt.PyJWT(options={"enforce_minimum_key_length": True})

# JWS compact serialization: three base64url segments; the signature may be empty only so that an
# ``alg: none`` token reaches pyjwt and is refused there as "algorithm not allowed".
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def _family(algorithm: str) -> str:
    return _FAMILIES[algorithm]


def _prepare_key(algorithm: str, key: Any, what: str) -> Any:
    """Load ``key`` as pyjwt would for ``algorithm``; any problem is a :class:`ConfigError`."""
    alg = jwt.get_algorithm_by_name(algorithm)
    try:
        prepared = alg.prepare_key(key)
    except Exception as exc:  # pyjwt and cryptography raise several types for a bad key
        raise ConfigError(f"auth.{what} is not a usable key for {algorithm}: {exc}") from exc
    check_length = getattr(alg, "check_key_length", None)  # pyjwt >= 2.10
    problem = check_length(prepared) if check_length is not None else None
    if problem:
        raise ConfigError(f"auth.{what} is too weak for {algorithm}: {problem}")
    return prepared


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


# -- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuthConfig:
    """Keys and rules for verifying (and, in tests and notebooks, issuing) tokens.

    - ``secret``: the HMAC secret for ``HS*`` algorithms, at least as many bytes as the hash
      output (32 for HS256). Use :func:`generate_secret`.
    - ``public_key``: PEM public key for ``RS*``/``PS*``/``ES*`` verification. May be omitted when
      ``private_key`` is given (it is then derived from it).
    - ``private_key``: PEM private key (unencrypted) for issuing ``RS*``/``PS*``/``ES*`` tokens;
      a verifying hub does not need it.
    - ``algorithms``: the pinned allow-list, passed to pyjwt verbatim. ``none`` is refused, and
      so is mixing HMAC with public-key algorithms.
    - ``issuer`` / ``audience``: when set, tokens must carry exactly this ``iss`` / an ``aud``
      that contains this value. When ``audience`` is not set, a token that *has* an ``aud`` is
      refused (RFC 7519 section 4.1.3: a recipient not named in ``aud`` must reject the token).
    - ``leeway``: seconds of clock skew tolerated on ``exp``, ``nbf`` and ``iat``.
    - ``max_token_bytes``: longer tokens are refused before any decoding.
    - ``cache_size``: how many verified tokens :class:`TokenVerifier` remembers (0 disables).

    Raises :class:`ConfigError` (naming the key) for any invalid combination.
    """

    secret: str | bytes | None = field(default=None, repr=False)
    public_key: str | bytes | None = field(default=None, repr=False)
    private_key: str | bytes | None = field(default=None, repr=False)
    algorithms: tuple[str, ...] = ("HS256",)
    issuer: str | None = None
    audience: str | None = None
    leeway: float = 0.0
    max_token_bytes: int = 8192
    cache_size: int = 1024

    def __post_init__(self) -> None:
        algorithms = self.algorithms
        if isinstance(algorithms, str):  # ("HS256") is a common slip for ("HS256",)
            algorithms = (algorithms,)
        algorithms = tuple(algorithms)
        object.__setattr__(self, "algorithms", algorithms)
        if not algorithms:
            raise ConfigError("auth.algorithms must name at least one algorithm")
        for alg in algorithms:
            if not isinstance(alg, str):
                raise ConfigError("auth.algorithms must be strings")
            if alg.lower() == "none":
                raise ConfigError("auth.algorithms: 'none' (unsigned tokens) is never accepted")
            if alg not in _FAMILIES:
                raise ConfigError(
                    f"auth.algorithms: {alg!r} is not supported "
                    f"(use one of {', '.join(SUPPORTED_ALGORITHMS)})"
                )
        families = {_family(alg) for alg in algorithms}
        if len(families) > 1:
            raise ConfigError(
                "auth.algorithms must not mix HMAC (HS*) with RSA/EC algorithms: "
                "one key read two ways enables key-confusion attacks"
            )
        for name in ("secret", "public_key", "private_key"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, (str, bytes)):
                raise ConfigError(f"auth.{name} must be a string or bytes")
        self.keys()  # loads and checks the keys now, so a bad one fails at startup

        for name in ("issuer", "audience"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"auth.{name} must be a non-empty string or None")
        if not (isinstance(self.leeway, (int, float)) and 0 <= self.leeway < math.inf):
            raise ConfigError("auth.leeway must be a finite number of seconds >= 0")
        if not isinstance(self.max_token_bytes, int) or self.max_token_bytes < 64:
            raise ConfigError("auth.max_token_bytes must be an integer >= 64")
        if not isinstance(self.cache_size, int) or self.cache_size < 0:
            raise ConfigError("auth.cache_size must be an integer >= 0")

    @property
    def can_issue(self) -> bool:
        """True if this config holds a key that can sign tokens."""
        return self.keys().signing is not None

    def keys(self) -> LoadedKeys:
        """The keys of this config, loaded and checked (cached: loading a PEM is not free)."""
        return _load_keys(self.algorithms, self.secret, self.public_key, self.private_key)


@dataclass(frozen=True)
class LoadedKeys:
    """Key objects ready for pyjwt: ``verify`` always, ``signing`` only if the config can issue."""

    verify: Any = field(repr=False)
    signing: Any = field(repr=False)


# Bounded: a process normally has one or two configs; at the limit the least recently used
# entry is dropped and simply reloaded when needed again.
@functools.lru_cache(maxsize=16)
def _load_keys(
    algorithms: tuple[str, ...],
    secret: str | bytes | None,
    public_key: str | bytes | None,
    private_key: str | bytes | None,
) -> LoadedKeys:
    """Load and check the keys for ``algorithms`` (all of one family); ConfigError if unusable."""
    if _family(algorithms[0]) == "hmac":
        if public_key is not None or private_key is not None:
            raise ConfigError("auth.public_key/private_key are for RS/PS/ES algorithms, not HS*")
        if secret is None:
            raise ConfigError(f"auth.secret is required for {', '.join(algorithms)}")
        raw = _as_bytes(secret)
        for alg in algorithms:
            minimum = _HMAC_MIN_BYTES[alg]
            if len(raw) < minimum:
                raise ConfigError(
                    f"auth.secret is {len(raw)} bytes; {alg} needs at least {minimum} "
                    "(RFC 7518 section 3.2) - use wslab.integration.auth.generate_secret()"
                )
            _prepare_key(alg, raw, "secret")  # refuses a PEM or JWK used as a secret
        return LoadedKeys(verify=raw, signing=raw)

    if secret is not None:
        raise ConfigError("auth.secret is only used by HS* algorithms")
    if public_key is None and private_key is None:
        raise ConfigError(f"auth.public_key is required for {', '.join(algorithms)}")
    if public_key is not None and b"PRIVATE KEY" in _as_bytes(public_key):
        raise ConfigError("auth.public_key holds a private key; give its public half")
    signing = verify = None
    for alg in algorithms:
        if private_key is not None:
            signing = _prepare_key(alg, private_key, "private_key")
        if public_key is not None:
            verify = _prepare_key(alg, public_key, "public_key")
    if signing is not None:
        derived = signing.public_key()
        if verify is None:
            verify = derived  # an issuing config verifies its own tokens
        elif derived.public_numbers() != verify.public_numbers():
            raise ConfigError("auth.private_key does not match auth.public_key")
    return LoadedKeys(verify=verify, signing=signing)


def generate_secret(nbytes: int = 64) -> str:
    """A random URL-safe HMAC secret (default 64 random bytes -> 86 characters).

    Long enough for HS256, HS384 and HS512. ``nbytes`` below 32 is raised to 32.
    """
    return secrets.token_urlsafe(max(nbytes, 32))


# -- identity ------------------------------------------------------------------------------------


def _freeze(value: Any) -> Any:
    """A read-only copy of decoded JSON: dicts become mapping proxies, lists become tuples."""
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class Identity:
    """Who a connection belongs to, as established by a verified token (or ``--no-auth``).

    ``expires_at`` is the token's ``exp`` in epoch seconds (``inf`` for guests). ``claims`` is a
    read-only view of every claim of the token; it is left out of equality and hashing.
    """

    user_id: str
    username: str
    roles: tuple[str, ...] = ()
    expires_at: float = math.inf
    issuer: str | None = None
    audience: str | None = None
    claims: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, compare=False, repr=False)
    anonymous: bool = False
    issued_at: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "roles", tuple(self.roles))
        if not isinstance(self.claims, MappingProxyType):
            object.__setattr__(self, "claims", _freeze(dict(self.claims)))

    @property
    def is_admin(self) -> bool:
        """True if the token grants the ``admin`` role."""
        return "admin" in self.roles

    def has_role(self, role: str) -> bool:
        """True if the token grants ``role``."""
        return role in self.roles

    @classmethod
    def guest(cls, n: int | None = None) -> Identity:
        """An anonymous guest for ``wslab serve --no-auth``: ``guest-<hex>``, role ``guest``.

        ``n`` (e.g. a connection counter) makes the id predictable (``guest(0x3f2a)`` is
        ``guest-3f2a``); without it the id is random. A guest's token never expires.
        """
        suffix = f"{n:04x}" if n is not None else secrets.token_hex(4)
        user_id = f"guest-{suffix}"
        return cls(user_id=user_id, username=user_id, roles=("guest",), anonymous=True)


# -- verification --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CacheStats:
    """A snapshot of the verified-token cache.

    ``evictions`` counts entries dropped to keep the cache within ``capacity`` (least recently
    used first); ``expired`` counts entries dropped because their token expired.
    """

    hits: int
    misses: int
    evictions: int
    expired: int
    size: int
    capacity: int


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AuthenticationError(f"invalid '{name}' claim")
    return float(value)


class TokenVerifier:
    """Verifies tokens against an :class:`AuthConfig`, remembering the ones it accepted.

    The cache maps SHA-256(token) to the :class:`Identity` built from it (never the token
    itself). It holds at most ``config.cache_size`` entries; at the limit the least recently used
    entry is evicted. Every hit is checked against the clock with the same rule as a fresh
    verification (``exp <= now - leeway`` means expired), and an expired entry is dropped and the
    token verified afresh - so a cached token is refused exactly like an uncached one. Refused
    tokens are never cached. Not thread-safe: use one verifier per event loop.
    """

    def __init__(self, config: AuthConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._clock = clock
        self._key = config.keys().verify
        self._cache: OrderedDict[bytes, Identity] = OrderedDict()
        self._hits = 0
        self._misses = 0
        self._evictions = 0
        self._expired = 0
        # A pyjwt decode that checks signature, algorithm, iss, aud and required claims; the time
        # claims are checked in _check_times against our clock.
        required = ["exp", "sub"] + (["iss"] if config.issuer is not None else [])
        self._options: Options = {
            "require": required,
            "verify_signature": True,
            "verify_exp": False,
            "verify_nbf": False,
            "verify_iat": False,
            "verify_iss": True,
            "verify_aud": True,
            "verify_sub": False,  # checked in _identity, with our own messages
            "enforce_minimum_key_length": True,
        }

    def verify(self, token: object) -> Identity:
        """The :class:`Identity` the token proves, or :class:`AuthenticationError` saying why not."""
        text = self._check_shape(token)
        key = hashlib.sha256(text.encode("ascii")).digest()
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None:
            if cached.expires_at > now - self.config.leeway:
                self._cache.move_to_end(key)
                self._hits += 1
                return cached
            # Expired while cached: drop it and let the full check produce the refusal.
            del self._cache[key]
            self._expired += 1
        self._misses += 1
        identity = self._verify_uncached(text, now)
        if self.config.cache_size > 0:
            self._cache[key] = identity
            while len(self._cache) > self.config.cache_size:
                self._cache.popitem(last=False)
                self._evictions += 1
        return identity

    @property
    def stats(self) -> CacheStats:
        """Cache counters since construction (or :meth:`clear_cache`)."""
        return CacheStats(
            hits=self._hits,
            misses=self._misses,
            evictions=self._evictions,
            expired=self._expired,
            size=len(self._cache),
            capacity=self.config.cache_size,
        )

    def clear_cache(self) -> None:
        """Forget every cached token and reset the counters (e.g. after revoking a user)."""
        self._cache.clear()
        self._hits = self._misses = self._evictions = self._expired = 0

    # -- internals --

    def _check_shape(self, token: object) -> str:
        """Cheap checks before any decoding: type, size, character set."""
        if not isinstance(token, str):
            raise AuthenticationError("malformed token")
        if len(token) > self.config.max_token_bytes:
            raise AuthenticationError("token too large")
        # The pattern is ASCII-only, so after it matches characters == bytes.
        if not _COMPACT_JWS.fullmatch(token):
            raise AuthenticationError("malformed token")
        return token

    def _verify_uncached(self, token: str, now: float) -> Identity:
        config = self.config
        try:
            claims = _JWT.decode(
                token,
                key=self._key,
                algorithms=list(config.algorithms),
                options=self._options,
                issuer=config.issuer,
                audience=config.audience,
            )
        except jwt.InvalidAlgorithmError as exc:
            raise AuthenticationError("algorithm not allowed") from exc
        except jwt.InvalidSignatureError as exc:
            raise AuthenticationError("invalid signature") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise AuthenticationError(f"token missing '{exc.claim}'") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthenticationError("wrong audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthenticationError("wrong issuer") from exc
        except jwt.DecodeError as exc:
            raise AuthenticationError("malformed token") from exc
        except jwt.PyJWTError as exc:
            raise AuthenticationError("invalid token") from exc
        except (ValueError, TypeError, RecursionError) as exc:
            # Attacker-controlled input must never escape as anything but a refusal.
            raise AuthenticationError("malformed token") from exc
        self._check_times(claims, now)
        try:
            return self._identity(claims)
        except RecursionError as exc:  # absurdly nested claims from a trusted issuer
            raise AuthenticationError("malformed token") from exc

    def _check_times(self, claims: Mapping[str, Any], now: float) -> None:
        leeway = self.config.leeway
        exp = _number(claims, "exp")
        if exp is None:  # pyjwt's "require" already refuses this; kept for clarity
            raise AuthenticationError("token missing 'exp'")
        if exp <= now - leeway:
            raise AuthenticationError("token expired")
        for name in ("nbf", "iat"):
            value = _number(claims, name)
            if value is not None and value > now + leeway:
                raise AuthenticationError("token not yet valid")

    def _identity(self, claims: dict[str, Any]) -> Identity:
        sub = claims.get("sub")
        if not isinstance(sub, str):
            raise AuthenticationError("invalid 'sub' claim")
        if not sub:
            raise AuthenticationError("token missing 'sub'")
        username = claims.get("username", sub)
        if not isinstance(username, str) or not username:
            raise AuthenticationError("invalid 'username' claim")
        roles = claims.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise AuthenticationError("invalid 'roles' claim")
        iss = claims.get("iss")
        exp = _number(claims, "exp")
        assert exp is not None  # checked in _check_times
        return Identity(
            user_id=sub,
            username=username,
            roles=tuple(dict.fromkeys(roles)),  # de-duplicated, order kept
            expires_at=exp,
            issuer=iss if isinstance(iss, str) else None,
            audience=self.config.audience if "aud" in claims else None,
            claims=_freeze(claims),
            issued_at=_number(claims, "iat"),
        )


# -- issuing -------------------------------------------------------------------------------------


def issue_token(
    config_or_secret: AuthConfig | str | bytes,
    user_id: str,
    *,
    username: str | None = None,
    roles: Iterable[str] = (),
    ttl: float = 3600,
    issuer: str | None = None,
    audience: str | None = None,
    algorithm: str | None = None,
    now: float | None = None,
    extra_claims: Mapping[str, Any] | None = None,
) -> str:
    """Sign a token for ``user_id`` valid for ``ttl`` seconds from ``now`` (default: the clock).

    ``config_or_secret`` is an :class:`AuthConfig` (RS/PS/ES need its ``private_key``) or an
    HMAC secret. ``algorithm`` defaults to the config's first algorithm (HS256 for a secret).
    ``issuer``/``audience`` default to the config's. ``ttl`` may be negative to mint an
    already-expired token for a demonstration. ``extra_claims`` are applied last and may
    override any claim (e.g. ``nbf``). Raises :class:`ConfigError` for a key or algorithm
    problem, :class:`ValueError` for a bad argument.
    """
    if isinstance(config_or_secret, AuthConfig):
        config = config_or_secret
    else:
        config = AuthConfig(secret=config_or_secret, algorithms=(algorithm or "HS256",))
    alg = algorithm or config.algorithms[0]
    if alg not in config.algorithms:
        raise ConfigError(f"auth.algorithms does not include {alg!r}")
    if not config.can_issue:
        raise ConfigError(f"auth.private_key is required to issue {alg} tokens")
    if not isinstance(user_id, str) or not user_id:
        raise ValueError("user_id must be a non-empty string")
    if not math.isfinite(ttl):
        raise ValueError("ttl must be a finite number of seconds")
    if isinstance(roles, str):  # roles="admin" would otherwise become ["a", "d", ...]
        roles = (roles,)
    issued = time.time() if now is None else now
    payload: dict[str, Any] = {
        "sub": user_id,
        "iat": math.floor(issued),
        "exp": math.ceil(issued + ttl),
    }
    if username is not None:
        payload["username"] = username
    roles = list(roles)
    if roles:
        payload["roles"] = roles
    iss = issuer if issuer is not None else config.issuer
    if iss is not None:
        payload["iss"] = iss
    aud = audience if audience is not None else config.audience
    if aud is not None:
        payload["aud"] = aud
    if extra_claims:
        payload.update(extra_claims)
    return _JWT.encode(payload, config.keys().signing, algorithm=alg)
