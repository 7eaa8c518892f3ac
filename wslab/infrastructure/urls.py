"""URLs safe to print: the password of a ``scheme://user:password@host/...`` URL masked.

Store and broker URLs may carry credentials; logs, ``status()`` views, error messages and
``wslab config`` show them only through :func:`redact_url`.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["SECRET_MASK", "redact_url"]

#: What stands in for a secret wherever one would be shown.
SECRET_MASK = "***"


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``; a URL without one is returned unchanged."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:{SECRET_MASK}@{host}"))
