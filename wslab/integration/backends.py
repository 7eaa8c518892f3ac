"""Build the hub's message store and broker from a URL: the one place that knows every backend.

The contracts (:mod:`wslab.integration.store`, :mod:`wslab.integration.broker`) know nothing of
their implementations; this module is where a URL picks one. The names pair up:

=====================  =======================================  ==============================
                       build only (no I/O)                      build and open (async)
=====================  =======================================  ==============================
message store          :func:`store_from_url`                   :func:`open_store`
broker                 :func:`broker_from_url`                  :func:`open_broker`
=====================  =======================================  ==============================

The optional backends (PostgreSQL, Redis) are imported only when their URL is used, so the
embedded defaults need nothing beyond the core dependencies.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from wslab.foundation.errors import ConfigError
from wslab.integration.broker import Broker, MemoryBroker, MemoryBus
from wslab.integration.store import DEFAULT_RETENTION, BaseStore

__all__ = ["broker_from_url", "open_broker", "open_store", "store_from_url"]


# -- message stores -----------------------------------------------------------------------------


def store_from_url(
    url: str,
    *,
    retention: int = DEFAULT_RETENTION,
    retention_overrides: Mapping[str, int] | None = None,
    retention_batch: int | None = None,
    **options: Any,
) -> BaseStore:
    """Build (but do not open) the store a URL names.

    - ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` (the usual SQLAlchemy
      spelling: the path is everything after ``sqlite:///``), ``sqlite:///:memory:`` or
      ``sqlite://`` for a private in-memory database;
    - ``postgresql://user@host:port/db`` or ``postgres://...`` (passed to asyncpg as is).

    ``options`` go to the backend's constructor (e.g. ``busy_timeout`` for SQLite, ``schema``
    and ``pool_size`` for PostgreSQL). An unknown scheme or option is a :class:`ConfigError`.
    """
    if not isinstance(url, str) or not url:
        raise ConfigError("store url must be a non-empty string")
    common: dict[str, Any] = {
        "retention": retention,
        "retention_overrides": retention_overrides,
        "retention_batch": retention_batch,
    }
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    try:
        if scheme == "sqlite":
            from wslab.integration.sqlite_store import SQLiteStore

            if url in ("sqlite://", "sqlite:///:memory:"):
                path = ":memory:"
            elif url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
                path = url[len("sqlite:///") :]
            else:
                raise ConfigError("store url: write sqlite:///path/to.db or sqlite:///:memory:")
            return SQLiteStore(path, **common, **options)
        if scheme in ("postgresql", "postgres"):
            from wslab.integration.postgres_store import PostgresStore

            return PostgresStore(url, **common, **options)
    except TypeError as exc:
        # An unknown keyword option: a configuration mistake, not a bug.
        raise ConfigError(f"store option not understood: {exc}") from None
    raise ConfigError(
        "store url scheme must be sqlite:// or postgresql:// (got "
        f"{scheme + '://' if scheme else 'no scheme'})"
    )


async def open_store(
    url: str,
    *,
    retention: int = DEFAULT_RETENTION,
    retention_overrides: Mapping[str, int] | None = None,
    retention_batch: int | None = None,
    **options: Any,
) -> BaseStore:
    """Build the store a URL names (see :func:`store_from_url`) and open it.

    Close it with ``await store.close()``, or use it as ``async with await open_store(...)``.
    """
    store = store_from_url(
        url,
        retention=retention,
        retention_overrides=retention_overrides,
        retention_batch=retention_batch,
        **options,
    )
    await store.open()
    return store


# -- brokers ------------------------------------------------------------------------------------


def broker_from_url(url: str, hub_id: str | None = None, **options: Any) -> Broker:
    """Build (but do not start) the broker a URL names.

    - ``memory://`` — the process-wide default :class:`MemoryBus`;
      ``memory://NAME`` — the bus called NAME (separate from every other name);
    - ``redis://host:port/db``, ``rediss://...`` (TLS) or ``unix:///path/redis.sock?db=0`` — a
      :class:`~wslab.integration.redis_broker.RedisBroker` (needs the ``scale`` extra).

    ``options`` go to the broker's constructor (``prefix``, ``queue_size``, ...).
    Anything else raises :class:`ConfigError`.
    """
    if not isinstance(url, str):
        raise ConfigError("broker URL must be a string")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "memory":
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ConfigError("broker URL memory://NAME takes only a name")
        return MemoryBroker(MemoryBus.named(parts.netloc), hub_id, **options)
    if scheme in ("redis", "rediss", "unix"):
        from wslab.integration.redis_broker import RedisBroker

        _check_redis_query(parts.query)
        return RedisBroker(url, hub_id, **options)
    # Only the scheme is echoed: the rest of a URL may hold a password.
    raise ConfigError(
        f"unsupported broker URL scheme {scheme!r}: use memory://, redis://, rediss:// or unix://"
    )


#: Query parameters of a Redis URL that redis-py takes besides its typed ones (TLS files, names).
_REDIS_STRING_OPTIONS = frozenset(
    {"client_name", "ssl_ca_certs", "ssl_ca_path", "ssl_cert_reqs", "ssl_certfile", "ssl_keyfile"}
)


def _check_redis_query(query: str) -> None:
    """Refuse a Redis URL option redis-py would choke on later, deep inside the first connect.

    redis-py passes unknown query parameters to its connection class as keyword arguments, so a
    typo (``?op_timeout=1``) surfaces as a ``TypeError`` at start; a bad value (``?db=x``) as a
    ``ValueError``. Both become one :class:`ConfigError` naming the parameter, here.
    """
    if not query:
        return
    from redis.connection import URL_QUERY_ARGUMENT_PARSERS as typed

    known = sorted({*typed, *_REDIS_STRING_OPTIONS})
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in known:
            guess = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {guess[0]}?" if guess else f" (known: {', '.join(known)})"
            raise ConfigError(f"broker URL: unknown Redis option {name!r}{hint}")
        parser = typed.get(name)
        if callable(parser):
            try:
                parser(value)
            except (TypeError, ValueError):
                raise ConfigError(f"broker URL: Redis option {name}={value!r} is not valid") from None


async def open_broker(url: str, hub_id: str | None = None, **options: Any) -> Broker:
    """Build the broker a URL names (see :func:`broker_from_url`) and start it.

    Raises :class:`~wslab.foundation.errors.DependencyError` if its server cannot be reached.
    Stop it with ``await broker.close()``.
    """
    broker = broker_from_url(url, hub_id, **options)
    await broker.start()
    return broker
