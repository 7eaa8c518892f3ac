"""One validated configuration for the whole hub: :class:`HubConfig`.

Every setting of the hub lives in one frozen dataclass. A value can come from five places; each
later one beats the earlier ones::

    defaults  <  TOML file  <  WSLAB_* environment  <  command-line flags  <  runtime overrides
                 ([hub] table)  (WSLAB_PORT=9000)      (--port 9000)          (Hub.start(port=0))

:meth:`HubConfig.load` merges them and :attr:`HubConfig.sources` says where each value came from
(``"default"``, ``"file:/path/wslab.toml"``, ``"env:WSLAB_PORT"``, ``"cli:--port"`` or
``"override"``). :func:`settings` describes every setting (names, default, rules) for help text,
``docs/configuration.md`` and ``wslab config``; :mod:`wslab.infrastructure.config_flags` turns
them into command-line flags.

This module declares the settings (the fields of :class:`HubConfig`, each with its rules) and
merges the sources. Parsing and checking one value lives in
:mod:`wslab.infrastructure.config_values`, the environment's names and the TOML file's reading
in :mod:`wslab.infrastructure.config_sources`; the names they define are importable from here
too.

Rules worth knowing:

- **A wrong value fails fast** with :class:`~wslab.foundation.errors.ConfigError`, whose message
  names the key as its source spells it and the value: ``WSLAB_PORT: expected an integer
  0..65535, got abc``, ``--db: ...``, ``port (file /etc/wslab.toml): ...``. Text values are
  repeated as a shell would take them back, typed ones as Python writes them, secrets never. A bad value is an
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
  command-line values may be text or already converted (see
  :func:`wslab.infrastructure.config_flags.add_arguments`).
- **An HMAC secret is long enough for its algorithms** (32 bytes for HS256, RFC 7518 section
  3.2), checked here so the message names where the secret came from.
- Secrets never leave through :meth:`HubConfig.to_dict` or ``repr``: ``jwt_secret`` shows as
  ``"***"`` and passwords inside the database and broker URLs are masked.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from wslab.foundation.errors import ConfigError
from wslab.infrastructure.config_sources import CONFIG_FILE_ENV, ENV_PREFIX, _read_toml
from wslab.infrastructure.config_values import (
    _HMAC_MIN_BYTES,
    _SECRET_MASK,
    KiB,
    MiB,
    _check_algorithms,
    _check_broker,
    _check_database,
    _check_file,
    _check_host,
    _check_hub_id,
    _check_origins,
    _check_path,
    _check_public_key,
    _convert_or_raise,
    _describe,
    _label,
    _setting,
    _Spec,
    as_text,
    default_database,
    sqlite_path,
)
from wslab.infrastructure.urls import redact_url

__all__ = [
    "CONFIG_FILE_ENV",
    "ENV_PREFIX",
    "HubConfig",
    "Setting",
    "as_text",
    "default_database",
    "settings",
    "sqlite_path",
    "unknown_env_vars",
]


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
    # After the hub closes a connection for abuse (1008 flooding, 1009 too big), its user, and
    # past a threshold its address, is refused at the upgrade for a while: a flooder closed in
    # milliseconds would otherwise reconnect at once, a handshake and lobby join each time.
    abuse_cooldown_seconds: float = _setting(
        10.0, "Seconds a user (or address) closed for abuse (1008, 1009) is refused with 429 and "
        "Retry-After at the upgrade; doubles with each offence; 0 turns cool-downs off.",
        _RATE, "float", ge=0,
    )  # fmt: skip
    abuse_cooldown_max_seconds: float = _setting(
        900.0, "The longest abuse cool-down, however many offences.", _RATE, "float", gt=0
    )
    abuse_memory_seconds: float = _setting(
        600.0, "Seconds after a cool-down ends until the offences behind it are forgotten.",
        _RATE, "float", ge=0,
    )  # fmt: skip
    abuse_address_threshold: int = _setting(
        0, "Abusive closes from one IP before the IP itself cools down, for upgrades without a "
        "valid token (users with one are judged as themselves). 0: an IP never cools down as a "
        "whole - everyone behind its NAT or proxy would be refused, browsers included (they send "
        "the token after the upgrade); connections_per_ip_per_minute still bounds its churn.",
        _RATE, "int", ge=0,
    )  # fmt: skip
    abuse_table_size: int = _setting(
        10_000, "Users, and IPs, remembered for abuse cool-downs (least recent dropped first).",
        _RATE, "int", ge=1,
    )  # fmt: skip
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
        "bool", aliases=("--no-auth",),
    )  # fmt: skip
    jwt_secret: str | None = _setting(
        None,
        "HMAC key for HS* tokens (32 bytes or more for HS256). None: `wslab serve` and "
        "`wslab token` share a development secret kept in the user's data folder; a hub "
        "started from Python generates one.",
        _AUTH, "str", optional=True, redact="secret", aliases=("--secret",),
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
        validate=_check_origins, aliases=("--allowed-origin",),
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
        shown_default="sqlite:///<user data dir>/wslab.db", aliases=("--db",),
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
    # Routing between hubs (wslab.application.routing): a hub subscribes to the channels of the
    # rooms and users it serves, so it receives only their traffic.
    broker_routing: str = _setting(
        "room", "Broker channels for room and direct traffic: 'room' (one per room and user, "
        "a hub receives only what its clients need) or 'hub' (one hub-wide channel each, "
        "every hub receives everything). Every hub on one broker must use the same.",
        _STORE, "choice", choices=("room", "hub"),
    )  # fmt: skip
    max_broker_channels: int = _setting(
        5000, "Room (and, separately, user) channels one hub subscribes to one by one; past it, "
        "one pattern subscription takes all of them until the count falls to half.",
        _STORE, "int", ge=1,
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
    retry_queue_per_user: int = _setting(
        100, "Messages of one user held for retry while the store is down; beyond it, that user's "
        "new messages are refused (RATE_LIMITED), so one sender cannot fill the retry queue.",
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
    log_json: bool = _setting(
        True, "Log one JSON object per line (else plain text; `--log-format text|json`).", _OBS,
        "bool",
    )  # fmt: skip

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
        if self.abuse_cooldown_max_seconds < self.abuse_cooldown_seconds:
            raise ConfigError(
                f"{label('abuse_cooldown_max_seconds')}: must be >= "
                f"{label('abuse_cooldown_seconds')} ({self.abuse_cooldown_max_seconds} < "
                f"{self.abuse_cooldown_seconds})"
            )
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            given = "tls_certfile" if self.tls_certfile is not None else "tls_keyfile"
            missing = "tls_keyfile" if given == "tls_certfile" else "tls_certfile"
            raise ConfigError(f"{label(given)}: is set but {missing} is not; set both or neither")
        hmac = [a for a in self.jwt_algorithms if a in _HMAC_MIN_BYTES]
        if self.jwt_secret is not None and hmac:
            # RFC 7518 section 3.2: an HMAC key at least as long as the hash. Checked here, not
            # only where tokens are signed, so the message names the flag, variable or file key.
            need = max(hmac, key=_HMAC_MIN_BYTES.__getitem__)
            size = len(self.jwt_secret.encode())
            if size < _HMAC_MIN_BYTES[need]:
                raise ConfigError(
                    f"{label('jwt_secret')}: {need} needs a secret of at least "
                    f"{_HMAC_MIN_BYTES[need]} bytes; this one has {size}"
                )
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
        ``argv_overrides`` is what
        :func:`wslab.infrastructure.config_flags.overrides_from_args` returns. Raises ConfigError.
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
        # What the user typed, when the parser recorded it (``--db`` rather than ``--database``).
        flags: Mapping[str, str] = getattr(argv_overrides, "flags", {})
        for key, raw in (argv_overrides or {}).items():
            _require_known(key, "command-line arguments")
            put(key, raw, f"cli:{flags[key]}" if key in flags else "cli", text=True)
        for key, raw in overrides.items():
            _require_known(key, "overrides")
            put(key, raw, "override", text=False)
        return cls._build(values, sources)

    def replace(self, **changes: Any) -> HubConfig:
        """A copy with ``changes`` applied (as runtime overrides), validated like :meth:`load`."""
        return self.replace_from("override", **changes)

    def replace_from(self, source: str, **changes: Any) -> HubConfig:
        """:meth:`replace` with ``source`` recorded in :attr:`sources` for the changed settings
        (a command line that fills in a value itself says where it took it from)."""
        for key in changes:
            _require_known(key, "replace()")
        values = {name: getattr(self, name) for name in _SPECS}
        values.update(changes)
        sources = dict(self.__dict__["_sources"])
        sources.update(dict.fromkeys(changes, source))
        return self._build(values, sources)

    # -- introspection ---------------------------------------------------------------------------

    @property
    def sources(self) -> Mapping[str, str]:
        """Where each setting's value came from: ``"default"``, ``"file:<path>"``,
        ``"env:<VAR>"``, ``"cli:<flag as typed>"`` (``"cli"`` when the parser did not say which
        spelling) or ``"override"`` (every setting has an entry)."""
        return MappingProxyType(self.__dict__["_sources"])

    def label(self, name: str) -> str:
        """How a message should name setting ``name``: as the source of its value spells it
        (``--db``, ``WSLAB_PORT``, ``port (file /etc/wslab.toml)``, or the plain name)."""
        _require_known(name, "label()")
        source = self.__dict__["_sources"][name]
        return name if source in ("default", "override") else _label(name, source)

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


# -- the table's names and defaults --------------------------------------------------------------


def _default(name: str) -> Any:
    f = HubConfig.__dataclass_fields__[name]
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


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


# -- description, for help, documentation and ``wslab config`` --------------------------------


@dataclass(frozen=True)
class Setting:
    """One setting as a reader sees it: its names in each source, its default and its rules."""

    name: str  #: keyword and key in the TOML file's ``[hub]`` table
    env: str  #: environment variable
    flag: str  #: command-line flag (``--kebab-case``)
    aliases: tuple[str, ...]  #: further flags (``--db``, ``--no-auth``)
    kind: str  #: int, float, bool, str, choice or strs (a list)
    group: str
    help: str
    default: Any
    default_text: str  #: the default as text, machine-independent (``<user data dir>``)
    expected: str  #: what a value must be: "an integer 0..65535"
    choices: tuple[str, ...]
    secret: bool  #: never shown


def settings() -> list[Setting]:
    """Every setting of :class:`HubConfig`, in declaration order."""
    result = []
    for name, spec in _SPECS.items():
        default = _default(name)
        result.append(
            Setting(
                name=name,
                env=ENV_PREFIX + name.upper(),
                flag="--" + name.replace("_", "-"),
                aliases=spec.aliases,
                kind=spec.kind,
                group=spec.group,
                help=spec.help,
                default=default,
                default_text=spec.shown_default or as_text(default),
                expected=_describe(spec),
                choices=spec.choices,
                secret=spec.redact == "secret",
            )
        )
    return result
