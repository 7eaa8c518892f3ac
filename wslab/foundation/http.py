"""Just enough HTTP/1.1 to open a WebSocket: header fields, request/response heads, parsers.

A WebSocket connection starts life as an HTTP/1.1 request (RFC 9112). This module reads and
writes the *head* of such messages, the part up to the empty line::

    GET /chat?room=lobby HTTP/1.1\\r\\n      <- start line: method, target, version
    Host: server.example.com\\r\\n           <- header fields, "Name: value"
    Upgrade: websocket\\r\\n
    \\r\\n                                   <- end of the head
    ...anything after this is *not* ours: WebSocket frames (or a body)

It does no I/O. :class:`RequestParser` and :class:`ResponseParser` are fed bytes as they arrive
and return the parsed head once the empty line has been seen; the bytes after it are kept in
``leftover`` for whoever reads the rest of the stream. Both are bounded: a head larger than
``max_head_size`` or with more than ``max_headers`` fields is refused with 431 instead of being
buffered forever.

The parsers are deliberately strict (bare CR or LF (refused as soon as seen), obsolete line folding, whitespace before the
colon and non-ASCII bytes are all refused): lenient HTTP parsing is how request smuggling happens,
and a WebSocket client has no reason to send any of these.

WebSocket rules (which headers an upgrade needs) live in :mod:`wslab.foundation.handshake`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

# With absolute imports this is the standard library's ``http``, not this module.
from http import HTTPStatus
from typing import TypeAlias
from urllib.parse import parse_qs, urlsplit

from .errors import HandshakeError, InvalidHandshakeResponse, InvalidUpgrade

__all__ = [
    "DEFAULT_MAX_HEADERS",
    "DEFAULT_MAX_HEAD_SIZE",
    "HeaderItems",
    "Headers",
    "Request",
    "RequestParser",
    "Response",
    "ResponseParser",
    "build_response",
    "is_token",
    "reason_phrase",
    "require_host",
    "serialize_head",
]

DEFAULT_MAX_HEAD_SIZE = 16 * 1024  # bytes, including the final empty line
DEFAULT_MAX_HEADERS = 100

# RFC 9110 5.6.2: a token is one or more of these; header names and methods are tokens.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# A field value once its surrounding spaces/tabs are stripped: visible ASCII, inner SP and HTAB.
# (RFC 9110 also allows bytes >= 0x80 as "obs-text"; we refuse them, see the module docstring.)
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e]*")
_REQUEST_LINE = re.compile(r"(" + _TOKEN.pattern + r") ([\x21-\x7e]+) HTTP/(\d)\.(\d)")
# RFC 9110 15: a status code outside 100..599 is invalid (not one we could act on).
_STATUS_LINE = re.compile(r"HTTP/1\.\d ([1-5]\d\d)(?: ([\t\x20-\x7e]*))?")
# Every header line of a head at once, each as the checks of _split_head's loop want it.
_HEADER_BLOCK = re.compile(
    _TOKEN.pattern + r":[\t\x20-\x7e]*(?:\r\n" + _TOKEN.pattern + r":[\t\x20-\x7e]*)*"
)
_END_OF_HEAD = b"\r\n\r\n"
_BARE_LF = re.compile(rb"(?<!\r)\n")


def is_token(text: str) -> bool:
    """True if ``text`` is an RFC 9110 token (what header names, methods, subprotocols are)."""
    return _TOKEN.fullmatch(text) is not None


def reason_phrase(status: int) -> str:
    """The standard reason phrase for ``status`` ("Not Found"), or "Unknown"."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


class Headers:
    """Case-insensitive, multi-valued HTTP header fields, in the order they were added.

    Like :class:`email.message.Message`, iterating yields every field *name* (a name repeats if
    the field does), ``len()`` counts fields, and :meth:`items` gives every ``(name, value)``.
    Names keep the spelling they were added with, so output looks like what was written; lookups
    ignore case. Every field is checked on :meth:`add`, so a value can never smuggle a CR/LF into
    a serialized head.
    """

    # Each field keeps its lower-cased name too: a handshake looks fields up a dozen times, and
    # lower-casing every name on every lookup was most of what those lookups cost.
    __slots__ = ("_fields",)

    def __init__(self, fields: HeaderItems = ()) -> None:
        self._fields: list[tuple[str, str, str]] = []
        for name, value in _pairs(fields):
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        """Append a field. Surrounding spaces/tabs are dropped; ValueError if it is malformed."""
        value = value.strip(" \t")
        if not is_token(name):
            raise ValueError(f"invalid header name: {name!r}")
        if not _FIELD_VALUE.fullmatch(value):
            raise ValueError(f"invalid character in the value of header {name}")
        self._fields.append((name, _lower(name), value))

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of field ``name``, or ``default`` if it is absent."""
        lname = _lower(name)
        for _, key, value in self._fields:
            if key == lname:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of field ``name``, in order (an empty list if it is absent)."""
        lname = _lower(name)
        return [value for _, key, value in self._fields if key == lname]

    def tokens(self, name: str) -> list[str]:
        """The comma-separated elements of every ``name`` field (``Connection: keep-alive, Upgrade``).

        RFC 9110 5.3: several lines of a list field mean the same as one line joined with commas;
        empty elements are ignored. Case is kept; callers compare case-insensitively where the
        field's definition says so.
        """
        return [
            item.strip(" \t")
            for value in self.get_all(name)
            for item in value.split(",")
            if item.strip(" \t")
        ]

    def items(self) -> list[tuple[str, str]]:
        """Every ``(name, value)`` field, in order, names as they were added."""
        return [(name, value) for name, _, value in self._fields]

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[str]:
        return (name for name, _, _ in self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(k, v) for _, k, v in self._fields] == [(k, v) for _, k, v in other._fields]

    # Defining __eq__ alone leaves __hash__ None: headers are mutable, so not hashable.

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"


#: Lower-cased header names, shared: every request spells the same few dozen names, so each
#: connection's headers point at one string per name instead of a copy. Bounded (names come
#: from peers): past the limit, names are lower-cased without being remembered.
_LOWER: dict[str, str] = {}
_LOWER_LIMIT = 512


def _lower(name: str) -> str:
    lowered = _LOWER.get(name)
    if lowered is None:
        lowered = name.lower()
        if len(_LOWER) < _LOWER_LIMIT:
            _LOWER[name] = lowered
    return lowered


#: Anything that can describe header fields: a Headers, a dict, or ``(name, value)`` pairs.
HeaderItems: TypeAlias = "Headers | Mapping[str, str] | Iterable[tuple[str, str]]"


def _pairs(fields: HeaderItems) -> Iterable[tuple[str, str]]:
    if isinstance(fields, (Headers, Mapping)):
        return fields.items()
    return fields


@dataclass(frozen=True)
class Request:
    """The head of an HTTP request.

    ``target`` is the request target exactly as sent (``/chat?room=lobby``); ``path`` is its path
    part (not percent-decoded, so ``/a%2Fb`` stays distinct from ``/a/b``) and ``query`` its
    decoded query parameters, as :func:`urllib.parse.parse_qs` returns them (every value a list).
    ``version`` is the protocol as written, e.g. ``"HTTP/1.1"``.
    """

    method: str
    target: str
    path: str
    query: dict[str, list[str]]
    version: str
    headers: Headers


@dataclass(frozen=True)
class Response:
    """The head of an HTTP response; ``body`` is empty when it came from :class:`ResponseParser`."""

    status: int
    reason: str
    headers: Headers
    body: bytes = field(default=b"", repr=False)


class _HeadParser:
    """Buffer bytes until the empty line that ends a head, within the size and count limits."""

    #: The error raised for a malformed or oversized head (a request or response error).
    error: type[HandshakeError] = HandshakeError

    def __init__(
        self,
        *,
        max_head_size: int = DEFAULT_MAX_HEAD_SIZE,
        max_headers: int = DEFAULT_MAX_HEADERS,
    ) -> None:
        self.max_head_size = max_head_size
        self.max_headers = max_headers
        #: The raw head, end included, once complete (for logs and the notebooks' wire views).
        self.head = b""
        #: The bytes that followed the head; empty until the head is complete.
        self.leftover = b""
        self._buffer = bytearray()
        self._done = False

    def _feed_head(self, data: bytes) -> tuple[str, Headers] | None:
        """Add ``data``; return (start line, headers) once the head is complete, else None."""
        if self._done:
            raise RuntimeError("this parser has finished; read .leftover and make a new one")
        # The end marker may straddle two feeds, so look back 3 bytes, but never further:
        # rescanning the whole buffer on every byte would make byte-at-a-time input quadratic.
        start = max(0, len(self._buffer) - 3)
        self._buffer += data
        # Only search the first max_head_size bytes: a marker found there ends a head within
        # the limit. The buffer holds at most that plus one feed, as we stop right after.
        end = self._buffer.find(_END_OF_HEAD, start, self.max_head_size)
        # RFC 9112 2.2 lets a recipient accept a bare LF as a line end; we reject it, always
        # and at once (400), rather than wait for a CRLF CRLF that a LF-only peer never sends.
        # Only the head is looked at (a body or frames after it may hold any byte); the
        # lookbehind sees the byte before ``start``, so a CR LF split across feeds is fine.
        if _BARE_LF.search(self._buffer, start, end if end >= 0 else self.max_head_size):
            self._done = True
            raise self.error("bare LF line ending; lines end with CRLF")
        if end < 0:
            if len(self._buffer) >= self.max_head_size:
                self._done = True
                raise self.error(f"head larger than {self.max_head_size} bytes", status=431)
            return None
        self._done = True
        end += len(_END_OF_HEAD)
        self.head, self.leftover = bytes(self._buffer[:end]), bytes(self._buffer[end:])
        self._buffer = bytearray()
        return self._split_head(self.head[: -len(_END_OF_HEAD)])

    def _split_head(self, head: bytes) -> tuple[str, Headers]:
        try:
            text = head.decode("ascii")
        except UnicodeDecodeError:
            raise self.error("non-ASCII byte in the head") from None
        start_line, *lines = text.split("\r\n")
        if len(lines) > self.max_headers:
            raise self.error(f"more than {self.max_headers} header fields", status=431)
        headers = Headers()
        if lines and _HEADER_BLOCK.fullmatch(text, len(start_line) + 2):
            # The common case: one match checks every line as the loop below would (a token
            # right before the colon, a value of visible ASCII, SP and HTAB; no line starting
            # with whitespace), so the fields go in without checking each one again.
            fields = headers._fields
            for line in lines:
                name, _, value = line.partition(":")
                fields.append((name, _lower(name), value.strip(" \t")))
            return start_line, headers
        for line in lines:
            # These checks mirror Headers.add, but raise the HTTP error the peer should get.
            if line[:1] in (" ", "\t"):
                raise self.error("obsolete line folding is not allowed")
            name, colon, value = line.partition(":")
            if not colon:
                raise self.error("header line without a colon")
            if not is_token(name):  # also catches whitespace before the colon (RFC 9112 5.1)
                raise self.error("invalid header name")
            value = value.strip(" \t")
            if not _FIELD_VALUE.fullmatch(value):  # bare CR, LF, NUL, other controls
                raise self.error("invalid character in a header value")
            headers.add(name, value)
        return start_line, headers


class RequestParser(_HeadParser):
    """Incremental parser for the head of one request; errors are :class:`InvalidUpgrade`.

    ``feed(data)`` returns None until the head is complete, then the :class:`Request` (also kept
    in ``.request``). The error's ``status`` is the answer to send: 400 for a malformed head,
    431 for one over the limits, 505 for an HTTP major version other than 1. After the head (or
    an error) the parser is finished; feeding it again is a bug and raises RuntimeError.
    """

    error = InvalidUpgrade
    request: Request | None = None  #: the result, once complete

    def feed(self, data: bytes) -> Request | None:
        """Add received bytes; return the Request once its head is complete, else None."""
        parsed = self._feed_head(data)
        if parsed is None:
            return None
        start_line, headers = parsed
        match = _REQUEST_LINE.fullmatch(start_line)
        if match is None:
            raise InvalidUpgrade("malformed request line")
        method, target, major, minor = match.groups()
        if major != "1":
            raise InvalidUpgrade(f"HTTP/{major}.{minor} is not supported", status=505)
        _check_framing(headers)
        path, query = _split_target(target)
        self.request = Request(method, target, path, query, f"HTTP/{major}.{minor}", headers)
        return self.request


def _check_framing(headers: Headers) -> None:
    """Refuse the heads that make request smuggling possible (RFC 9112 6.1, 6.3)."""
    lengths = headers.get_all("Content-Length")
    codings = headers.get_all("Transfer-Encoding")
    if len(lengths) > 1:
        raise InvalidUpgrade("more than one Content-Length")
    if lengths and not lengths[0].isdigit():
        raise InvalidUpgrade("invalid Content-Length")
    if codings and lengths:
        raise InvalidUpgrade("both Transfer-Encoding and Content-Length")
    if len(codings) > 1:
        raise InvalidUpgrade("more than one Transfer-Encoding")
    if codings:  # no request of ours has a body; we do not decode one (RFC 9112 6.1: 501)
        raise InvalidUpgrade("Transfer-Encoding is not supported", status=501)


def require_host(request: Request) -> None:
    """InvalidUpgrade (400) if an HTTP/1.1 ``request`` lacks Host or repeats it (RFC 9112 3.2).

    Apart from the parser, which reads heads of any origin (tests, the notebooks' wire views):
    a server calls it before answering.
    """
    if request.version != "HTTP/1.0" and len(request.headers.get_all("Host")) != 1:
        raise InvalidUpgrade("an HTTP/1.1 request needs exactly one Host header")


def _split_target(target: str) -> tuple[str, dict[str, list[str]]]:
    """Path and query of a request target in origin form (``/p?q``) or absolute form."""
    if "#" in target:  # RFC 9112 3.2: a fragment is never sent; RFC 6455 3 forbids it too
        raise InvalidUpgrade("fragment in the request target")
    if target.startswith("/"):
        path, _, query = target.partition("?")
    elif target == "*":  # asterisk form, only meaningful for OPTIONS; routing will refuse it
        path, query = "*", ""
    else:  # absolute form, e.g. "http://host/chat", which servers must accept (RFC 9112 3.2.2)
        parts = urlsplit(target)
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise InvalidUpgrade("malformed request target")
        path, query = parts.path or "/", parts.query
    return path, parse_qs(query, keep_blank_values=True)


class ResponseParser(_HeadParser):
    """Incremental parser for the head of one response; errors are InvalidHandshakeResponse.

    Used by the client to read the answer to its upgrade request. Only the head is read: any
    body (or, after a 101, the first WebSocket frames) stays in ``leftover``.
    """

    error = InvalidHandshakeResponse
    response: Response | None = None  #: the result, once complete

    def feed(self, data: bytes) -> Response | None:
        """Add received bytes; return the Response once its head is complete, else None."""
        parsed = self._feed_head(data)
        if parsed is None:
            return None
        status_line, headers = parsed
        match = _STATUS_LINE.fullmatch(status_line)
        if match is None:
            raise InvalidHandshakeResponse("malformed status line")
        status, reason = match.groups()
        self.response = Response(int(status), reason or "", headers)
        return self.response


def serialize_head(start_line: str, headers: HeaderItems) -> bytes:
    """The bytes of a head: the start line, one line per field, and the empty line."""
    fields = headers if isinstance(headers, Headers) else Headers(headers)
    lines = [start_line, *(f"{name}: {value}" for name, value in fields.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def build_response(
    status: int,
    headers: HeaderItems = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> bytes:
    """A complete HTTP/1.1 response for plain routes and refused upgrades.

    The body is always delimited by ``Content-Length`` (except for 204 and 304, which have no
    body), so the caller never sets it. Error responses (4xx, 5xx) get ``Connection: close``
    unless the caller set ``Connection``: after refusing a handshake we close the connection
    rather than guess where the next request starts. A 101 is made by
    :func:`wslab.foundation.handshake.build_upgrade_response`, not here.
    """
    if not 200 <= status <= 599:
        raise ValueError(f"status must be in 200..599, not {status}")
    fields = Headers(headers)
    if "Content-Length" in fields or "Transfer-Encoding" in fields:
        raise ValueError("build_response sets the body length itself")
    if content_type is not None:
        fields.add("Content-Type", content_type)
    if status in (204, 304):
        if body:
            raise ValueError(f"a {status} response has no body")
    else:
        fields.add("Content-Length", str(len(body)))
    if status >= 400 and "Connection" not in fields:
        fields.add("Connection", "close")
    return serialize_head(f"HTTP/1.1 {status} {reason_phrase(status)}", fields) + body
