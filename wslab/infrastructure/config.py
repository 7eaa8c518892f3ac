"""One validated configuration for the whole hub: :class:`HubConfig`.

Every setting of the hub lives in one frozen dataclass. A value can come from five places; each
later one beats the earlier ones::

    defaults  <  TOML file  <  WSLAB_* environment  <  command-line flags  <  runtime overrides
                 ([hub] table)  (WSLAB_PORT=9000)      (--port 9000)          (Hub.start(port=0))

:meth:`HubConfig.load` merges them and :attr:`HubConfig.sources` says where each value came from
(``"default"``, ``"file:/path/wslab.toml"``, ``"env:WSLAB_PORT"``, ``"cli"`` or ``"override"``).

Rules worth knowing:

- **A wrong value fails fast** with :class:`~wslab.foundation.errors.ConfigError`, whose message
  names the key as its source spells it and the value: ``WSLAB_PORT: expected an integer
  0..65535, got 'abc'``, ``--port: ...``, ``port (file /etc/wslab.toml): ...``. A bad value is an
  error even where a higher source overrides it: it is still a mistake in that source.
- **Unknown keys fail fast** in the TOML file, command-line overrides and keyword overrides, with a
  "did you mean" suggestion. **Unknown ``WSLAB_*`` environment variables are ignored**, because
  other tools (the test suite's ``WSLAB_TEST_POSTGRES``, CI's ``WSLAB_REQUIRE_SERVICES``) share the
  prefix; :func:`unknown_env_vars` lists them, with suggestions, for a CLI that wants to warn.
- **The TOML file** keeps the hub's settings in a ``[hub]`` table, so the same file can hold other
  tables for other tools; those are ignored, but a top-level ``key = value`` is an error (it was
  almost certainly meant for ``[hub]``). TOML values are typed: ``port = "8765"`` is an error.
  With ``file=None`` the path is taken from ``WSLAB_CONFIG`` when that is set.
- **Environment values are text**: integers, floats, booleans (``1/0 true/false yes/no on/off``,
  any case), lists as comma-separated strings; an empty value means "none" for settings that may
  be none (``WSLAB_JWT_SECRET=``) and is an error for the others.
- **Keyword overrides are typed** like the TOML file (``port="8765"`` is an error), while
  command-line values may be text or already converted (see :func:`add_arguments`).
- Secrets never leave through :meth:`HubConfig.to_dict` or ``repr``: ``jwt_secret`` shows as
  ``"***"`` and passwords inside the database and broker URLs are masked.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

import platformdirs

from wslab.foundation.errors import ConfigError
from wslab.infrastructure.urls import redact_url

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "CONFIG_FILE_ENV",
    "ENV_PREFIX",
    "HubConfig",
    "add_arguments",
    "default_database",
    "overrides_from_args",
    "sqlite_path",
    "unknown_env_vars",
]

ENV_PREFIX = "WSLAB_"
#: Names the TOML file when :meth:`HubConfig.load` is not given one. Not a setting itself.
CONFIG_FILE_ENV = "WSLAB_CONFIG"

KiB = 1024
MiB = 1024 * KiB

_Kind = Literal["int", "float", "bool", "str", "choice", "strs"]
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_SECRET_MASK = "***"


class _Invalid(Exception):
    """A value does not fit its setting; carries what was expected (the caller adds the key)."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


@dataclass(frozen=True)
class _Spec:
    """How one setting is parsed, checked, documented and shown."""

    kind: _Kind
    help: str
    group: str
    ge: float | None = None  # inclusive minimum
    gt: float | None = None  # exclusive minimum
    le: float | None = None  # inclusive maximum
    choices: tuple[str, ...] = ()
    optional: bool = False  # None is allowed
    redact: Literal["secret", "url"] | None = None
    # Extra rule run after the type and range checks: returns the canonical value or raises
    # _Invalid. ``expected`` replaces the generated description in error messages.
    validate: Callable[[Any], Any] | None = None
    expected: str | None = None


def _setting(default: Any, help: str, group: str, kind: _Kind, **rules: Any) -> Any:
    """A dataclass field carrying its :class:`_Spec`; a callable default is a factory."""
    spec = _Spec(kind=kind, help=help, group=group, **rules)
    if callable(default):
        return field(default_factory=default, metadata={"spec": spec})
    return field(default=default, metadata={"spec": spec})


# -- rules for individual settings ---------------------------------------------------------------

_JWT_ALGORITHMS = (
    "HS256", "HS384", "HS512",
    "RS256", "RS384", "RS512",
    "PS256", "PS384", "PS512",
    "ES256", "ES384", "ES512",
    "EdDSA",
)  # fmt: skip
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _check_host(value: str) -> str:
    if not value or any(c.isspace() for c in value):
        raise _Invalid("a host name or IP address")
    return value


def _check_path(value: str) -> str:
    if not value.startswith("/") or any(c in value for c in "?# "):
        raise _Invalid("a URL path starting with '/' (no query or spaces)")
    return value


def _check_algorithms(value: tuple[str, ...]) -> tuple[str, ...]:
    # "none" is left out on purpose: an unsigned token must never authenticate anyone.
    if not value or any(a not in _JWT_ALGORITHMS for a in value):
        raise _Invalid("one or more of " + ", ".join(_JWT_ALGORITHMS))
    return value


def _check_public_key(value: str) -> str:
    # PEM text, or the path of a PEM file (handy in an environment variable); the auth layer
    # reads the file, we only make sure it is there.
    if value.lstrip().startswith("-----BEGIN") or Path(value).is_file():
        return value
    raise _Invalid("PEM text or the path of an existing PEM file")


def _check_origins(value: tuple[str, ...]) -> tuple[str, ...]:
    origins = []
    for origin in value:
        parts = urlsplit(origin)
        if (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
        ):
            raise _Invalid("origins like 'https://chat.example.org' or 'http://localhost:8765'")
        # Browsers send scheme and host in lower case and without a trailing slash.
        origins.append(f"{parts.scheme}://{parts.netloc.lower()}")
    return tuple(origins)


def _check_database(value: str) -> str:
    if value.startswith("sqlite:///") and len(value) > len("sqlite:///"):
        return value
    if value.startswith(("postgresql://", "postgres://")):
        return value
    raise _Invalid("'sqlite:///<path>', 'sqlite:///:memory:' or 'postgresql://...'")


def _check_broker(value: str) -> str:
    if value.startswith(("memory://", "redis://", "rediss://", "unix://")):
        return value
    raise _Invalid("'memory://' or a Redis URL ('redis://', 'rediss://', 'unix://')")


def _check_hub_id(value: str) -> str:
    if not _HUB_ID.fullmatch(value):
        raise _Invalid("1-64 letters, digits, '.', '_' or '-' (starting with a letter or digit)")
    return value


def _check_file(value: str) -> str:
    if not Path(value).is_file():
        raise _Invalid("the path of an existing file")
    return value


def default_database() -> str:
    """``sqlite:///<user data dir>/wslab.db``: per user, survives restarts, needs no server.

    The directory may not exist yet; the store creates it when it opens the file.
    """
    return "sqlite:///" + str(Path(platformdirs.user_data_dir("wslab")) / "wslab.db")


def sqlite_path(database: str) -> str:
    """The file path (or ``":memory:"``) inside a ``sqlite:///`` URL.

    The URL convention is SQLAlchemy's: ``sqlite:///relative.db``, ``sqlite:////abs/path.db``.
    """
    if not database.startswith("sqlite:///"):
        raise ConfigError(f"database: expected a 'sqlite:///' URL, got {database!r}")
    return database[len("sqlite:///") :]


# -- the configuration ---------------------------------------------------------------------------

_NET = "network"
_MSG = "messages and queues"
_ZIP = "compression"
_BEAT = "heartbeat and timeouts"
_RATE = "rate limits and admission"
_AUTH = "authentication"
_STORE = "storage and fan-out"
_OBS = "observability"
_TLS = "TLS and shutdown"


@dataclass(frozen=True, repr=False)
class HubConfig:
    """Every setting of the hub, validated on construction. Build one with :meth:`load`.

    Constructing it directly (``HubConfig(port=0)``) validates too; the keyword arguments count
    as runtime overrides in :attr:`sources`.
    """

    # -- network: where the hub listens and which engine speaks WebSocket --
    host: str = _setting(
        "127.0.0.1", "Interface to listen on ('0.0.0.0' for all).", _NET, "str",
        validate=_check_host,
    )  # fmt: skip
    port: int = _setting(8765, "TCP port; 0 picks a free port.", _NET, "int", ge=0, le=65535)
    engine: str = _setting(
        "wslab", "WebSocket engine: wslab's own, or the websockets library as a reference.",
        _NET, "choice", choices=("wslab", "websockets"),
    )  # fmt: skip
    path: str = _setting(
        "/ws", "URL path of the WebSocket endpoint.", _NET, "str", validate=_check_path
    )

    # -- messages and queues: every buffer is bounded; the policy says what happens at the limit --
    max_message_size: int = _setting(
        1 * MiB, "Largest reassembled message in bytes; bigger closes with 1009.", _MSG, "int",
        ge=1,
    )  # fmt: skip
    # Not checked against max_message_size: a notebook lowering one limit to show a 1009 close
    # must not have to lower the other too.
    max_frame_size: int = _setting(
        1 * MiB, "Largest single frame payload in bytes; bigger closes with 1009.", _MSG, "int",
        ge=1,
    )  # fmt: skip
    max_queue: int = _setting(
        256, "Outgoing messages queued per connection before the slow-consumer policy applies.",
        _MSG, "int", ge=1,
    )  # fmt: skip
    # Not checked against max_message_size either: the connection decides what a single
    # oversized message does to an empty queue.
    max_queue_bytes: int = _setting(
        4 * MiB, "Outgoing bytes queued per connection before the slow-consumer policy applies.",
        _MSG, "int", ge=1,
    )  # fmt: skip
    slow_consumer_policy: str = _setting(
        "close",
        "At a full outgoing queue: 'close' (1013), 'drop_oldest' or 'drop_new' message.",
        _MSG, "choice", choices=("close", "drop_oldest", "drop_new"),
    )  # fmt: skip
    write_buffer_high: int = _setting(
        64 * KiB, "Transport write buffer (bytes) above which sending pauses.", _MSG, "int",
        ge=1,
    )  # fmt: skip
    write_buffer_low: int = _setting(
        16 * KiB, "Transport write buffer (bytes) below which sending resumes.", _MSG, "int",
        ge=0,
    )  # fmt: skip

    # -- permessage-deflate (RFC 7692): browsers and websockets offer it on every connection --
    compression: bool = _setting(
        True, "Negotiate permessage-deflate with clients that offer it (false: never compress).",
        _ZIP, "bool",
    )  # fmt: skip
    compression_threshold: int = _setting(
        64, "Messages shorter than this many bytes are sent uncompressed (it would not pay).",
        _ZIP, "int", ge=0,
    )  # fmt: skip
    # 2**12 bytes of window: an idle compressed connection costs ~40 KiB of zlib state instead of
    # the ~320 KiB of zlib's defaults, for a little ratio on chat-sized messages.
    compression_window_bits: int = _setting(
        12, "Largest deflate window (2**bits bytes) for either direction; smaller saves memory.",
        _ZIP, "int", ge=9, le=15,
    )  # fmt: skip
    # On by default: with context takeover every connection's window is its own, so a broadcast
    # is compressed once per receiver (~4x the CPU of not compressing, and 32 KiB of zlib state
    # per connection); without it the hub compresses once for everyone (less CPU than sending it
    # uncompressed) at a worse ratio. benchmarks/bench_deflate.py measures both.
    compression_no_context_takeover: bool = _setting(
        True,
        "Reset the deflate context after every message: no zlib memory per idle connection and "
        "a broadcast compressed once for everyone; false compresses better, per connection.",
        _ZIP, "bool",
    )  # fmt: skip

    # -- heartbeat and timeouts (seconds) --
    ping_interval: float = _setting(
        20.0, "Seconds between pings to each peer.", _BEAT, "float", gt=0
    )
    pong_timeout: float = _setting(
        10.0, "Seconds to wait for a pong before closing with 1011.", _BEAT, "float", gt=0
    )
    close_timeout: float = _setting(
        5.0, "Seconds to wait for the peer's close frame before dropping the TCP connection.",
        _BEAT, "float", gt=0,
    )  # fmt: skip

    # -- rate limits and admission: token buckets per connection, counters per IP --
    rate_messages_per_second: float = _setting(
        20.0, "Sustained messages per second a connection may send.", _RATE, "float", gt=0
    )
    rate_burst: int = _setting(
        40, "Messages a connection may send at once before the rate applies.", _RATE, "int",
        ge=1,
    )  # fmt: skip
    rate_bytes_per_second: int = _setting(
        1 * MiB, "Sustained bytes per second a connection may send.", _RATE, "int", ge=1
    )
    rate_flood_close_after: int = _setting(
        20, "Rate-limit violations in a row before closing with 1008.", _RATE, "int", ge=1
    )
    # Charged per frame at arrival, far above any chat client's rate: it exists for the peer
    # that sends empty fragments or tiny pings, which the message limit never sees.
    max_frames_per_second: float = _setting(
        1000.0, "Frames of any kind a connection may send per second; past it reading pauses, "
        "and a connection over it for 5 s is closed with 1008.", _RATE, "float", gt=0,
    )  # fmt: skip
    frame_burst: int = _setting(
        2000, "Frames a connection may send at once before max_frames_per_second applies.",
        _RATE, "int", ge=1,
    )  # fmt: skip
    max_fragments_per_message: int = _setting(
        1024, "Frames one message may be split into (empty ones count); more closes with 1009.",
        _MSG, "int", ge=1,
    )  # fmt: skip
    connections_per_ip_per_minute: int = _setting(
        60, "New connections accepted per client IP per minute.", _RATE, "int", ge=1
    )
    max_connections: int = _setting(
        10_000, "Open connections at once; more are refused with 503.", _RATE, "int", ge=1
    )
    max_connections_per_ip: int = _setting(
        1000, "Open WebSocket connections at once per client IP; more are refused with 429.",
        _RATE, "int", ge=1,
    )  # fmt: skip
    # Shared tables: the per-user limit sits far below the hub-wide one, so no single user (however
    # many connections) can fill the room table for everyone else.
    max_rooms: int = _setting(
        10_000, "Rooms with members on this hub at once; new rooms past it get CONFLICT.", _RATE,
        "int", ge=1,
    )  # fmt: skip
    max_rooms_per_connection: int = _setting(
        100, "Rooms one connection may be in at once; more get CONFLICT.", _RATE, "int", ge=1
    )
    max_rooms_per_user: int = _setting(
        50, "Distinct rooms one user's connections may be in together; more get RATE_LIMITED.",
        _RATE, "int", ge=1,
    )  # fmt: skip

    # -- authentication: JWT on the upgrade, the first message or the URL --
    auth_required: bool = _setting(
        True, "Require a JWT; false admits anyone as a guest (teaching, benchmarks).", _AUTH,
        "bool",
    )  # fmt: skip
    jwt_secret: str | None = _setting(
        None, "HMAC key for HS* tokens; none means the hub generates one at start.", _AUTH,
        "str", optional=True, redact="secret",
    )  # fmt: skip
    jwt_algorithms: tuple[str, ...] = _setting(
        ("HS256",), "Accepted JWT algorithms (never 'none').", _AUTH, "strs",
        validate=_check_algorithms,
    )  # fmt: skip
    jwt_public_key: str | None = _setting(
        None, "Public key for RS*/PS*/ES*/EdDSA tokens: PEM text or a PEM file path.", _AUTH,
        "str", optional=True, validate=_check_public_key,
    )  # fmt: skip
    jwt_issuer: str | None = _setting(
        None, "Required 'iss' claim, if set.", _AUTH, "str", optional=True
    )
    jwt_audience: str | None = _setting(
        None, "Required 'aud' claim, if set.", _AUTH, "str", optional=True
    )
    jwt_leeway: float = _setting(
        0.0, "Seconds of clock skew tolerated on 'exp' and 'nbf'.", _AUTH, "float", ge=0
    )
    auth_timeout: float = _setting(
        10.0, "Seconds a connection may take to send its auth message.", _AUTH, "float", gt=0
    )
    allowed_origins: tuple[str, ...] = _setting(
        (), "Origins allowed to open a WebSocket; empty allows every origin.", _AUTH, "strs",
        validate=_check_origins,
    )  # fmt: skip
    token_cache_size: int = _setting(
        1024, "Verified tokens remembered (LRU, oldest evicted); 0 disables the cache.", _AUTH,
        "int", ge=0,
    )  # fmt: skip

    # -- storage and fan-out: embedded by default, real servers when outgrown --
    database: str = _setting(
        default_database,
        "Message store: 'sqlite:///<path>', 'sqlite:///:memory:' or 'postgresql://...'.",
        _STORE, "str", validate=_check_database, redact="url",
    )  # fmt: skip
    broker: str = _setting(
        "memory://", "Fan-out between hubs: 'memory://' (one process) or 'redis://...'.",
        _STORE, "str", validate=_check_broker, redact="url",
    )  # fmt: skip
    broker_prefix: str = _setting(
        "wslab:", "Prefix of every broker channel, so several deployments (or test runs) can share one Redis.",
        _STORE, "str",
    )  # fmt: skip
    presence_interval: float = _setting(
        5.0, "Seconds between presence snapshots sent to the other hubs (3 missed = hub gone).",
        _STORE, "float", gt=0,
    )  # fmt: skip
    # Presence at scale (wslab.application.presence_fanout): past this, joins and leaves are not
    # announced one by one, so letting N users into one room costs O(N) messages, not O(N^2).
    presence_broadcast_limit: int = _setting(
        50, "Members a room may have on this hub and still get presence:join/leave one by one; "
        "larger rooms get presence:count every presence_interval and the list on request.",
        _STORE, "int", ge=0,
    )  # fmt: skip
    history_retention: int = _setting(
        10_000, "Messages kept per room; older ones are deleted.", _STORE, "int", ge=1
    )
    retry_queue_size: int = _setting(
        1000, "Messages held for retry while the store is down; beyond it, new messages are refused.",
        _STORE, "int", ge=1,
    )  # fmt: skip

    # -- observability --
    hub_id: str | None = _setting(
        None, "Name of this hub in messages and logs; none means generated.", _OBS, "str",
        optional=True, validate=_check_hub_id,
    )  # fmt: skip
    event_log_size: int = _setting(
        10_000, "Engine events kept in memory; the oldest are dropped.", _OBS, "int", ge=1
    )
    event_log_level: str = _setting(
        "lifecycle", "Events recorded: 'lifecycle' (no per-frame events), 'frames' (every frame) "
        "or 'off'.",
        _OBS, "choice", choices=("frames", "lifecycle", "off"),
    )  # fmt: skip
    log_level: str = _setting(
        "INFO", "Level of the hub's log.", _OBS, "choice",
        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
    )  # fmt: skip
    log_json: bool = _setting(True, "Log one JSON object per line (else plain text).", _OBS, "bool")

    # -- TLS and shutdown --
    tls_certfile: str | None = _setting(
        None, "PEM certificate chain for wss:// (set with tls_keyfile).", _TLS, "str",
        optional=True, validate=_check_file,
    )  # fmt: skip
    tls_keyfile: str | None = _setting(
        None, "PEM private key for wss:// (set with tls_certfile).", _TLS, "str",
        optional=True, validate=_check_file,
    )  # fmt: skip
    shutdown_timeout: float = _setting(
        5.0, "Seconds to close connections (1001) before cancelling them.", _TLS, "float", gt=0
    )

    # -- construction and validation -------------------------------------------------------------

    def __post_init__(self) -> None:
        # _build() puts the sources in place before __init__ runs; a direct HubConfig(...) call
        # has none, and its keyword arguments count as overrides.
        sources: dict[str, str] | None = self.__dict__.get("_sources")
        if sources is None:
            sources = {
                name: "default" if getattr(self, name) == _default(name) else "override"
                for name in _SPECS
            }
        for name, spec in _SPECS.items():
            raw = getattr(self, name)
            value = _convert_or_raise(name, spec, raw, sources[name], text=False)
            if value is not raw:
                object.__setattr__(self, name, value)
        self._check_relations(sources)
        # A plain dict keeps the object picklable; the property hands out a read-only view.
        object.__setattr__(self, "_sources", dict(sources))

    def _check_relations(self, sources: Mapping[str, str]) -> None:
        """Rules that involve more than one setting."""

        def label(name: str) -> str:
            return _label(name, sources[name])

        if self.write_buffer_low > self.write_buffer_high:
            raise ConfigError(
                f"{label('write_buffer_low')}: must be <= {label('write_buffer_high')} "
                f"({self.write_buffer_low} > {self.write_buffer_high})"
            )
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            given = "tls_certfile" if self.tls_certfile is not None else "tls_keyfile"
            missing = "tls_keyfile" if given == "tls_certfile" else "tls_certfile"
            raise ConfigError(f"{label(given)}: is set but {missing} is not; set both or neither")
        asymmetric = [a for a in self.jwt_algorithms if not a.startswith("HS")]
        if self.auth_required and asymmetric and self.jwt_public_key is None:
            raise ConfigError(
                f"{label('jwt_algorithms')}: {asymmetric[0]} needs jwt_public_key, which is not set"
            )

    @classmethod
    def _build(cls, values: Mapping[str, Any], sources: Mapping[str, str]) -> HubConfig:
        config = cls.__new__(cls)
        object.__setattr__(config, "_sources", {n: sources.get(n, "default") for n in _SPECS})
        config.__init__(**values)  # type: ignore[misc]
        return config

    @classmethod
    def load(
        cls,
        *,
        file: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        argv_overrides: Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> HubConfig:
        """Merge defaults < ``file`` < ``env`` < ``argv_overrides`` < ``overrides``.

        ``env`` defaults to ``os.environ``; pass ``{}`` to ignore the environment. ``file`` is a
        TOML file with a ``[hub]`` table; when None, ``WSLAB_CONFIG`` in ``env`` may name one.
        ``argv_overrides`` is what :func:`overrides_from_args` returns. Raises ConfigError.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}

        def put(name: str, raw: Any, source: str, *, text: bool) -> None:
            values[name] = _convert_or_raise(name, _SPECS[name], raw, source, text=text)
            sources[name] = source

        if file is None and env.get(CONFIG_FILE_ENV):
            file = env[CONFIG_FILE_ENV]
        if file is not None:
            path = Path(file)
            for key, raw in _read_toml(path).items():
                _require_known(key, f"file {path} [hub]")
                put(key, raw, f"file:{path}", text=False)
        for var, raw in env.items():
            name = _env_to_name(var)
            if name is not None:  # unknown WSLAB_* variables belong to someone else: ignored
                put(name, raw, f"env:{var}", text=True)
        for key, raw in (argv_overrides or {}).items():
            _require_known(key, "command-line arguments")
            put(key, raw, "cli", text=True)
        for key, raw in overrides.items():
            _require_known(key, "overrides")
            put(key, raw, "override", text=False)
        return cls._build(values, sources)

    def replace(self, **changes: Any) -> HubConfig:
        """A copy with ``changes`` applied (as runtime overrides), validated like :meth:`load`."""
        for key in changes:
            _require_known(key, "replace()")
        values = {name: getattr(self, name) for name in _SPECS}
        values.update(changes)
        sources = dict(self.__dict__["_sources"])
        sources.update(dict.fromkeys(changes, "override"))
        return self._build(values, sources)

    # -- introspection ---------------------------------------------------------------------------

    @property
    def sources(self) -> Mapping[str, str]:
        """Where each setting's value came from: ``"default"``, ``"file:<path>"``,
        ``"env:<VAR>"``, ``"cli"`` or ``"override"`` (every setting has an entry)."""
        return MappingProxyType(self.__dict__["_sources"])

    @classmethod
    def field_help(cls) -> dict[str, str]:
        """One line of documentation per setting, in declaration order."""
        return {name: spec.help for name, spec in _SPECS.items()}

    @classmethod
    def field_groups(cls) -> dict[str, list[str]]:
        """The settings grouped by concern (network, heartbeat, authentication...)."""
        groups: dict[str, list[str]] = {}
        for name, spec in _SPECS.items():
            groups.setdefault(spec.group, []).append(name)
        return groups

    def to_dict(self, *, redact: bool = True) -> dict[str, Any]:
        """All settings by name; with ``redact``, secrets are ``"***"`` and URL passwords masked."""
        result = {}
        for name, spec in _SPECS.items():
            value = getattr(self, name)
            if redact and value is not None:
                if spec.redact == "secret":
                    value = _SECRET_MASK
                elif spec.redact == "url":
                    value = redact_url(value)
            result[name] = value
        return result

    def __repr__(self) -> str:
        # Only what differs from the defaults: a notebook shows the interesting part.
        shown = self.to_dict()
        parts = [f"{n}={shown[n]!r}" for n in _SPECS if getattr(self, n) != _default(n)]
        return f"HubConfig({', '.join(parts)})"


_SPECS: dict[str, _Spec] = {f.name: f.metadata["spec"] for f in dataclasses.fields(HubConfig)}


# -- conversion of one value ---------------------------------------------------------------------


def _default(name: str) -> Any:
    f = HubConfig.__dataclass_fields__[name]
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _label(name: str, source: str) -> str:
    """How an error message names a setting: as its source spells it."""
    if source.startswith("env:"):
        return source[len("env:") :]
    if source == "cli":
        return "--" + name.replace("_", "-")
    if source.startswith("file:"):
        return f"{name} (file {source[len('file:') :]})"
    return f"{name} ({source})"


def _describe(spec: _Spec) -> str:
    """What a setting expects, for error messages: 'an integer 0..65535'."""
    if spec.expected:
        text = spec.expected
    elif spec.kind in ("int", "float"):
        noun = "an integer" if spec.kind == "int" else "a number"
        if spec.ge is not None and spec.le is not None:
            text = f"{noun} {spec.ge:g}..{spec.le:g}"
        elif spec.gt is not None:
            text = f"{noun} > {spec.gt:g}"
        elif spec.ge is not None:
            text = f"{noun} >= {spec.ge:g}"
        else:
            text = noun
    elif spec.kind == "bool":
        text = "a boolean (true/false, 1/0, yes/no, on/off)"
    elif spec.kind == "choice":
        text = "one of " + ", ".join(repr(c) for c in spec.choices)
    elif spec.kind == "strs":
        text = "a list of strings (or one comma-separated string)"
    else:
        text = "a string"
    return text + " or None" if spec.optional else text


def _parse_text(spec: _Spec, raw: str) -> Any:
    """Text (environment, command line) -> a typed value, before range and rule checks."""
    stripped = raw.strip()
    if spec.kind == "strs":
        return tuple(item.strip() for item in raw.split(",") if item.strip())
    if spec.optional and not stripped:
        return None
    if spec.kind == "int":
        try:
            return int(stripped)
        except ValueError:
            raise _Invalid(_describe(spec)) from None
    if spec.kind == "float":
        try:
            return float(stripped)
        except ValueError:
            raise _Invalid(_describe(spec)) from None
    if spec.kind == "bool":
        if stripped.lower() in _TRUE:
            return True
        if stripped.lower() in _FALSE:
            return False
        raise _Invalid(_describe(spec))
    return raw  # str and choice: checked as typed values


def _check_typed(spec: _Spec, raw: Any) -> Any:
    """A typed value (TOML, keyword override, or parsed text) -> its canonical form."""
    kind = spec.kind
    is_number = isinstance(raw, (int, float)) and not isinstance(raw, bool)
    if kind == "int" and is_number and isinstance(raw, int):
        return raw
    elif kind == "float" and is_number and math.isfinite(raw):
        return float(raw)
    elif kind in ("bool", "str") and isinstance(raw, bool if kind == "bool" else str):
        return raw
    elif kind == "choice" and isinstance(raw, str):
        for choice in spec.choices:  # any case in, the canonical spelling out
            if raw.strip().lower() == choice.lower():
                return choice
    elif kind == "strs":
        if isinstance(raw, str):
            return _parse_text(spec, raw)
        if isinstance(raw, (list, tuple)) and all(isinstance(x, str) for x in raw):
            return raw if isinstance(raw, tuple) else tuple(raw)
    raise _Invalid(_describe(spec))


def _convert(spec: _Spec, raw: Any, *, text: bool) -> Any:
    if isinstance(raw, os.PathLike):
        raw = os.fspath(raw)
    value = _parse_text(spec, raw) if text and isinstance(raw, str) else raw
    if value is None:
        if spec.optional:
            return None
        raise _Invalid(_describe(spec))
    value = _check_typed(spec, value)
    if (
        (spec.ge is not None and value < spec.ge)
        or (spec.gt is not None and value <= spec.gt)
        or (spec.le is not None and value > spec.le)
    ):
        raise _Invalid(_describe(spec))
    if spec.validate is not None:
        value = spec.validate(value)
    return value


def _convert_or_raise(name: str, spec: _Spec, raw: Any, source: str, *, text: bool) -> Any:
    try:
        return _convert(spec, raw, text=text)
    except _Invalid as exc:
        raise ConfigError(f"{_label(name, source)}: expected {exc.expected}, got {raw!r}") from None


def _require_known(key: object, where: str) -> None:
    if key in _SPECS:
        return
    guess = difflib.get_close_matches(str(key).replace("-", "_").lower(), list(_SPECS), n=1)
    hint = f"; did you mean {guess[0]!r}?" if guess else ""
    raise ConfigError(f"unknown setting {key!r} in {where}{hint}")


def _env_to_name(var: str) -> str | None:
    """``WSLAB_PORT`` -> ``"port"``; None for anything that is not a setting's variable."""
    if not var.startswith(ENV_PREFIX):
        return None
    name = var[len(ENV_PREFIX) :].lower()
    if name in _SPECS and var == ENV_PREFIX + name.upper():
        return name
    return None


def unknown_env_vars(env: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """``WSLAB_*`` variables that are no setting, each with the closest setting's variable.

    :meth:`HubConfig.load` ignores them (other tools share the prefix); a CLI may warn about a
    likely typo such as ``WSLAB_PROT``.
    """
    env = os.environ if env is None else env
    known = [ENV_PREFIX + n.upper() for n in _SPECS] + [CONFIG_FILE_ENV]
    result: dict[str, str | None] = {}
    for var in env:
        if var.startswith(ENV_PREFIX) and var not in known:
            guess = difflib.get_close_matches(var, known, n=1, cutoff=0.8)
            result[var] = guess[0] if guess else None
    return result


def _read_toml(path: Path) -> dict[str, Any]:
    """The ``[hub]`` table of a TOML file."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path}: not found") from None
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot be read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: invalid TOML ({exc})") from None
    stray = [key for key, value in data.items() if not isinstance(value, dict)]
    if stray:
        raise ConfigError(
            f"config file {path}: top-level key {stray[0]!r}; hub settings belong in a [hub] table"
        )
    if "hub" not in data:
        raise ConfigError(f"config file {path}: no [hub] table")
    return data["hub"]


# -- command line --------------------------------------------------------------------------------


def _argparse_type(name: str) -> Callable[[str], Any]:
    spec = _SPECS[name]

    def convert(text: str) -> Any:
        try:
            return _convert(spec, text, text=True)
        except _Invalid as exc:
            # argparse prefixes "argument --flag: "
            raise argparse.ArgumentTypeError(f"expected {exc.expected}, got {text!r}") from None

    convert.__name__ = name  # argparse names the type in some messages
    return convert


def add_arguments(parser: argparse.ArgumentParser, fields: Iterable[str] | None = None) -> None:
    """Expose settings as ``--kebab-case`` flags, grouped by concern in ``--help``.

    A flag's default is "not given" (``argparse.SUPPRESS``), so :func:`overrides_from_args`
    returns only what was typed and lower sources keep their say. Booleans get ``--flag`` and
    ``--no-flag``; lists take comma-separated values. With ``fields=None`` every setting gets a
    flag except ``jwt_secret``: a secret on the command line is visible to every user of the
    machine (``ps``), so it comes from ``WSLAB_JWT_SECRET`` or the file unless named explicitly.
    """
    if fields is None:
        names = [n for n, s in _SPECS.items() if s.redact != "secret"]
    else:
        names = list(fields)
        for name in names:
            _require_known(name, "add_arguments()")
    groups: dict[str, argparse._ArgumentGroup] = {}
    for name in names:
        spec = _SPECS[name]
        group = groups.get(spec.group)
        if group is None:
            group = groups[spec.group] = parser.add_argument_group(f"hub: {spec.group}")
        flag = "--" + name.replace("_", "-")
        default = _default(name)
        if spec.kind == "strs":
            default = ",".join(default)
        # argparse %-formats help strings.
        text = f"{spec.help} [default: {default}; env {ENV_PREFIX}{name.upper()}]"
        text = text.replace("%", "%%")
        if spec.kind == "bool":
            group.add_argument(
                flag,
                dest=name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=text,
            )
        else:
            metavar = "{" + ",".join(spec.choices) + "}" if spec.choices else name.upper()
            group.add_argument(
                flag,
                dest=name,
                type=_argparse_type(name),
                default=argparse.SUPPRESS,
                metavar=metavar,
                help=text,
            )


def overrides_from_args(ns: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line, for ``HubConfig.load(argv_overrides=...)``."""
    return {name: value for name, value in vars(ns).items() if name in _SPECS}
