"""The hub's plain HTTP side: the packaged chat page and the method table.

:func:`static_file` serves only the files named in :data:`STATIC_FILES` from ``wslab/web``
(no path reaches anything else); :data:`KNOWN_METHODS` tells a method the hub does not allow
(405) from one HTTP does not define (501). The routes themselves are ``Hub._http``.
"""

from __future__ import annotations

from importlib import resources

from wslab.infrastructure.server import HttpResponse

__all__ = ["KNOWN_METHODS", "STATIC_FILES", "static_file"]

#: The files under ``wslab/web`` the hub serves, with their content types.
STATIC_FILES = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "index.html": "text/html; charset=utf-8",
}

#: The methods RFC 9110 (section 9) and RFC 5789 (PATCH) define; any other is 501.
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)


def static_file(name: str) -> HttpResponse:
    """The packaged web file ``name`` (the chat page and its assets), or 404 for any other."""
    content_type = STATIC_FILES.get(name)
    if content_type is None:  # only known files: no path tricks can reach anything else
        return HttpResponse(404, b"not found\n")
    try:
        body = resources.files("wslab").joinpath("web", name).read_bytes()
    except FileNotFoundError:
        return HttpResponse(404, b"not found\n")
    return HttpResponse(200, body, content_type, headers=(("Cache-Control", "no-cache"),))
