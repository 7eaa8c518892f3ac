"""The ``Origin`` allow-list checked during the handshake: :class:`OriginPolicy` (HTTP 403).

The one place that decides whether an upgrade's ``Origin`` is welcome — including the hub's own
page, served from the host the request names; the hub only calls :meth:`OriginPolicy.check`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from wslab.foundation.errors import ConfigError, ForbiddenOrigin

__all__ = ["OriginPolicy", "normalize_origin"]

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_HOSTNAME = re.compile(r"[a-z0-9._-]+")


def normalize_origin(value: str) -> str:
    """``scheme://host[:port]`` in lower case with the default port dropped; ValueError if bad.

    ``HTTPS://Chat.Example.com:443`` and ``https://chat.example.com`` are the same origin.
    """
    parts = urlsplit(value.strip())
    scheme = parts.scheme.lower()
    if not scheme or not parts.netloc or "@" in parts.netloc:
        raise ValueError(f"not an origin: {value!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"an origin has no path, query or fragment: {value!r}")
    host = parts.hostname or ""
    port = parts.port  # raises ValueError for a port out of range or not a number
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    elif not _HOSTNAME.fullmatch(host):
        raise ValueError(f"not an origin: {value!r}")
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _same_host(origin: str, host: str | None) -> bool:
    """True if ``origin`` (``scheme://host[:port]``) names the ``Host`` the request was sent to."""
    if not host or "://" not in origin:
        return False
    return origin.split("://", 1)[1].rstrip("/").lower() == host.strip().lower()


class OriginPolicy:
    """The ``Origin`` allow-list checked during the opening handshake.

    Browsers attach ``Origin`` to every WebSocket upgrade, and WebSockets are not covered by the
    same-origin policy: without this check any web page a user visits could open a socket to
    the hub with the user's cookies (cross-site WebSocket hijacking). Rules:

    - an empty allow-list admits everything (the teaching default: notebooks, ``file://``
      pages and any local port work out of the box); say which origins you trust in production;
    - ``"*"`` admits every real origin, but not ``"null"``;
    - other entries are exact origins, compared after :func:`normalize_origin`;
    - ``"null"`` (sandboxed iframes, ``file://`` pages, some redirects) is refused unless listed;
    - a request **without** ``Origin`` is admitted: it does not come from a browser page, and a
      non-browser client could send any ``Origin`` it likes, so the header protects nothing
      there - such clients are held back by the token, not by this policy.
    """

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        entries = [allowed] if isinstance(allowed, str) else list(allowed)
        self._any = False
        self._null = False
        self._origins: set[str] = set()
        for entry in entries:
            if not isinstance(entry, str):
                raise ConfigError("allowed_origins entries must be strings")
            text = entry.strip()
            if text == "*":
                self._any = True
            elif text.lower() == "null":
                self._null = True
            elif "*" in text:
                raise ConfigError(
                    f"allowed_origins: wildcards other than '*' are not supported: {entry!r}"
                )
            else:
                try:
                    self._origins.add(normalize_origin(text))
                except ValueError as exc:
                    raise ConfigError(f"allowed_origins: {exc}") from exc
        self._open = not entries

    @property
    def allows_all(self) -> bool:
        """True if no allow-list was configured (every origin, including ``null``, is admitted)."""
        return self._open

    def allows(self, origin: str | None, *, host: str | None = None) -> bool:
        """True if a handshake with this ``Origin`` value (``None``: no header) is admitted.

        ``host`` is the request's ``Host`` header: a page served by the hub itself (its origin
        names that same host and port) is always admitted, whatever the list says.
        """
        if origin is None or self._open or _same_host(origin, host):
            return True
        text = origin.strip()
        if text.lower() == "null":
            return self._null
        try:
            normalized = normalize_origin(text)
        except ValueError:
            return False
        return self._any or normalized in self._origins

    def check(self, origin: str | None, *, host: str | None = None) -> None:
        """Raise :class:`ForbiddenOrigin` (HTTP 403) unless :meth:`allows` admits ``origin``."""
        if not self.allows(origin, host=host):
            raise ForbiddenOrigin("origin not allowed")

    def __repr__(self) -> str:
        if self._open:
            return "OriginPolicy(allow all)"
        listed = (
            sorted(self._origins) + (["*"] if self._any else []) + (["null"] if self._null else [])
        )
        return f"OriginPolicy({listed!r})"
