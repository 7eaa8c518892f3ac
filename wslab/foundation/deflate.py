"""permessage-deflate (RFC 7692): negotiation for both roles and per-message (de)compression.

Standard library only (``zlib``), no I/O. Two jobs:

* **Negotiation** (RFC 7692 sections 5 and 7.1). A client offers the extension in
  ``Sec-WebSocket-Extensions`` (:func:`client_offer`) and checks the server's answer
  (:func:`accept_response`, which refuses anything it did not offer). A server reads every offer
  of every header line (:func:`negotiate`), declines offers with unknown, duplicated or invalid
  parameters, and answers the first one it can accept.
* **Messages** (section 7.2). :class:`Deflater` compresses one message (or fragment) with a sync
  flush and removes the ``00 00 ff ff`` tail; :class:`Inflater` puts it back and inflates
  *incrementally, bounded*: it never produces more than the caller's remaining budget plus one
  byte, so a small frame that inflates to gigabytes (a decompression bomb) is stopped at the
  limit with :class:`PayloadTooBig` (1009) without the inflated message ever being held.

Memory per connection is what zlib allocates: a compressor needs about ``2**(wbits + 2) +
2**(mem_level + 9)`` bytes, an inflater about ``2**wbits``. With context takeover both live as
long as the connection; without it they are dropped after each message. The defaults below
(window 2**12, memLevel 5) keep an idle compressed connection under 40 KiB instead of the 320 KiB
zlib's defaults cost, for a small loss of ratio on chat-sized messages.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import InvalidHandshakeResponse, PayloadTooBig, ProtocolError

__all__ = [
    "EXTENSION_NAME",
    "DeflateParams",
    "DeflateSettings",
    "Deflater",
    "Inflater",
    "accept_response",
    "client_offer",
    "compressor_memory",
    "negotiate",
    "parse_extensions",
]

EXTENSION_NAME = "permessage-deflate"
#: The trailer every sync flush ends with; RFC 7692 7.2.1 removes it, 7.2.2 restores it.
TAIL = b"\x00\x00\xff\xff"
_PARAMS = frozenset(
    {
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_max_window_bits",
        "client_max_window_bits",
    }
)
_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)

Extension = tuple[str, list[tuple[str, str | None]]]


# -- header syntax ---------------------------------------------------------------------------------


def parse_extensions(values: Iterable[str]) -> list[Extension]:
    """Parse ``Sec-WebSocket-Extensions`` header values (RFC 6455 9.1) into (name, params).

    Several header lines and several comma-separated extensions per line are allowed; parameter
    values may be tokens or quoted strings. Raises ``ValueError`` on bad syntax.
    """
    result: list[Extension] = []
    for value in values:
        result.extend(_parse_line(value))
    return result


def _skip_ws(value: str, pos: int) -> int:
    while pos < len(value) and value[pos] in " \t":
        pos += 1
    return pos


def _token(value: str, pos: int) -> tuple[str, int]:
    start = pos
    while pos < len(value) and value[pos] in _TOKEN_CHARS:
        pos += 1
    if pos == start:
        raise ValueError(f"expected a token at {pos} in {value!r}")
    return value[start:pos], pos


def _parse_line(value: str) -> list[Extension]:
    result: list[Extension] = []
    pos, end = 0, len(value)
    while True:
        pos = _skip_ws(value, pos)
        if pos < end and value[pos] == ",":  # empty list elements are allowed (RFC 9110 5.6.1)
            pos += 1
            continue
        if pos >= end:
            return result
        name, pos = _token(value, pos)
        params: list[tuple[str, str | None]] = []
        pos = _skip_ws(value, pos)
        while pos < end and value[pos] == ";":
            key, pos = _token(value, _skip_ws(value, pos + 1))
            pos = _skip_ws(value, pos)
            param: str | None = None
            if pos < end and value[pos] == "=":
                pos = _skip_ws(value, pos + 1)
                if pos < end and value[pos] == '"':
                    close = value.find('"', pos + 1)
                    if close < 0 or "\\" in value[pos + 1 : close]:
                        raise ValueError(f"bad quoted string in {value!r}")
                    param = value[pos + 1 : close]
                    pos = close + 1
                    if not param or any(c not in _TOKEN_CHARS for c in param):
                        raise ValueError("a quoted parameter value must be a token")
                else:
                    param, pos = _token(value, pos)
            params.append((key, param))
            pos = _skip_ws(value, pos)
        result.append((name, params))
        if pos < end:
            if value[pos] != ",":
                raise ValueError(f"unexpected {value[pos]!r} at {pos} in {value!r}")
            pos += 1


def _window_bits(value: str | None, *, allow_none: bool) -> int | None:
    if value is None:
        if allow_none:
            return None
        raise ValueError("window bits need a value")
    if not value.isdigit() or value.startswith("0") or not 8 <= int(value) <= 15:
        raise ValueError(f"window bits must be 8..15, got {value!r}")
    return int(value)


# -- parameters ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeflateParams:
    """What was agreed for one connection (both directions)."""

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int = 15
    client_max_window_bits: int = 15

    def header(self) -> str:
        """The ``Sec-WebSocket-Extensions`` value a server answers with."""
        parts = [EXTENSION_NAME]
        if self.server_no_context_takeover:
            parts.append("server_no_context_takeover")
        if self.client_no_context_takeover:
            parts.append("client_no_context_takeover")
        if self.server_max_window_bits < 15:
            parts.append(f"server_max_window_bits={self.server_max_window_bits}")
        if self.client_max_window_bits < 15:
            parts.append(f"client_max_window_bits={self.client_max_window_bits}")
        return "; ".join(parts)

    def deflater(self, *, server: bool, settings: DeflateSettings | None = None) -> Deflater:
        """The compressor for messages this end (server or client) sends."""
        s = settings or DeflateSettings()
        bits = self.server_max_window_bits if server else self.client_max_window_bits
        reset = self.server_no_context_takeover if server else self.client_no_context_takeover
        return Deflater(
            min(bits, s.max_window_bits),
            no_context_takeover=reset,
            level=s.level,
            mem_level=s.mem_level,
            threshold=s.threshold,
        )

    def inflater(self, *, server: bool) -> Inflater:
        """The decompressor for messages the peer of this end sends."""
        bits = self.client_max_window_bits if server else self.server_max_window_bits
        reset = self.client_no_context_takeover if server else self.server_no_context_takeover
        return Inflater(bits, no_context_takeover=reset)


@dataclass(frozen=True, slots=True)
class DeflateSettings:
    """This end's wishes: what it accepts and how it compresses.

    ``max_window_bits`` caps the window of both directions when this end may choose it (a server
    always may for its own direction; for the client's only if the client offered
    ``client_max_window_bits``). ``no_context_takeover`` asks for it in both directions to save
    the per-connection zlib memory of idle connections. Messages shorter than ``threshold``
    bytes are sent uncompressed: a deflate stream of a few bytes is often longer than its input.
    """

    max_window_bits: int = 12
    no_context_takeover: bool = False
    level: int = 6
    mem_level: int = 5
    threshold: int = 64

    def __post_init__(self) -> None:
        # 8 is legal in the RFC but zlib silently compresses raw deflate with 9 instead, which a
        # peer that asked for 8 could not inflate: refuse it rather than break the stream.
        if not 9 <= self.max_window_bits <= 15:
            raise ValueError("max_window_bits must be 9..15")
        if not 1 <= self.mem_level <= 9 or not -1 <= self.level <= 9 or self.threshold < 0:
            raise ValueError("mem_level 1..9, level -1..9, threshold >= 0")


def _check_params(params: list[tuple[str, str | None]], *, offer: bool) -> dict[str, str | None]:
    seen: dict[str, str | None] = {}
    for key, value in params:
        if key not in _PARAMS:
            raise ValueError(f"unknown parameter {key!r}")
        if key in seen:
            raise ValueError(f"duplicated parameter {key!r}")
        if key.endswith("context_takeover") and value is not None:
            raise ValueError(f"{key} takes no value")
        if key == "server_max_window_bits":
            _window_bits(value, allow_none=False)
        if key == "client_max_window_bits":
            # Only an offer may say "client_max_window_bits" without a value (RFC 7692 7.1.2.2).
            _window_bits(value, allow_none=offer)
        seen[key] = value
    return seen


# -- server role -----------------------------------------------------------------------------------


def negotiate(
    header_values: Iterable[str], settings: DeflateSettings | None = None
) -> DeflateParams | None:
    """Server: the parameters to accept from the client's offers, or ``None`` to decline.

    Offers are tried in the client's order (RFC 7692 5); an offer with unknown, duplicated or
    invalid parameters is declined and the next is tried. Answer with ``params.header()``. An
    unparsable header declines the extension (the handshake itself may still succeed).
    """
    s = settings or DeflateSettings()
    try:
        offers = parse_extensions(header_values)
    except ValueError:
        return None
    for name, raw in offers:
        if name.lower() != EXTENSION_NAME:
            continue
        try:
            p = _check_params(raw, offer=True)
        except ValueError:
            continue
        server_bits = min(int(p.get("server_max_window_bits") or 15), s.max_window_bits)
        if "server_max_window_bits" in p and int(p["server_max_window_bits"] or 15) < 9:
            continue  # see DeflateSettings: zlib cannot compress with a window of 2**8
        if "client_max_window_bits" in p:
            client_bits = min(int(p["client_max_window_bits"] or 15), s.max_window_bits)
        else:
            client_bits = 15  # the client did not say it can limit its window: it must stay 15
        return DeflateParams(
            server_no_context_takeover="server_no_context_takeover" in p or s.no_context_takeover,
            client_no_context_takeover="client_no_context_takeover" in p or s.no_context_takeover,
            server_max_window_bits=server_bits,
            client_max_window_bits=client_bits,
        )
    return None


# -- client role -----------------------------------------------------------------------------------


def client_offer(settings: DeflateSettings | None = None) -> str:
    """Client: the ``Sec-WebSocket-Extensions`` value to offer."""
    s = settings or DeflateSettings()
    parts = [EXTENSION_NAME]
    if s.no_context_takeover:
        parts += ["server_no_context_takeover", "client_no_context_takeover"]
    if s.max_window_bits < 15:
        parts.append(f"server_max_window_bits={s.max_window_bits}")
    parts.append(
        f"client_max_window_bits={s.max_window_bits}"
        if s.max_window_bits < 15
        else "client_max_window_bits"
    )
    return "; ".join(parts)


def accept_response(
    header_values: Iterable[str], settings: DeflateSettings | None = None
) -> DeflateParams | None:
    """Client: check the server's answer to :func:`client_offer`; ``None`` if it declined.

    Raises :class:`InvalidHandshakeResponse` (fail the handshake) for anything that answers no
    offer of ours: another extension, several, unknown or duplicated parameters, a window larger
    than we asked for, or context takeover for our direction when we asked it be reset.
    """
    s = settings or DeflateSettings()
    values = list(header_values)
    if not values:
        return None

    def fail(message: str) -> InvalidHandshakeResponse:
        return InvalidHandshakeResponse(f"Sec-WebSocket-Extensions: {message}", status=101)

    try:
        answers = parse_extensions(values)
    except ValueError as exc:
        raise fail(str(exc)) from None
    if len(answers) != 1 or answers[0][0].lower() != EXTENSION_NAME:
        raise fail("the server chose an extension we did not offer")
    try:
        p = _check_params(answers[0][1], offer=False)
    except ValueError as exc:
        raise fail(str(exc)) from None
    server_bits = int(p.get("server_max_window_bits") or 15)
    client_bits = int(p.get("client_max_window_bits") or s.max_window_bits)
    if server_bits > s.max_window_bits or client_bits > s.max_window_bits:
        raise fail("a window larger than we offered")
    if server_bits < 9:
        raise fail("server_max_window_bits=8 is not supported")
    server_reset = "server_no_context_takeover" in p
    if s.no_context_takeover and not server_reset:
        raise fail("server context takeover kept although we asked to reset it")
    return DeflateParams(
        server_no_context_takeover=server_reset,
        client_no_context_takeover="client_no_context_takeover" in p or s.no_context_takeover,
        server_max_window_bits=server_bits,
        client_max_window_bits=client_bits,
    )


# -- messages --------------------------------------------------------------------------------------


def compressor_memory(window_bits: int, mem_level: int) -> int:
    """Bytes zlib allocates for one compressor (zlib's zconf.h formula)."""
    return (1 << (window_bits + 2)) + (1 << (mem_level + 9))


class Deflater:
    """Compresses outgoing messages of one connection (RFC 7692 7.2.1)."""

    def __init__(
        self,
        window_bits: int = 15,
        *,
        no_context_takeover: bool = False,
        level: int = 6,
        mem_level: int = 5,
        threshold: int = 0,
    ) -> None:
        # zlib cannot write raw deflate with a 256-byte window (it would use 512): never below 9.
        self.window_bits = max(window_bits, 9)
        self.no_context_takeover = no_context_takeover
        self.level, self.mem_level, self.threshold = level, mem_level, threshold
        self._zobj: zlib._Compress | None = None  # created lazily: idle connections cost nothing

    @property
    def memory(self) -> int:
        """Bytes of zlib state held now (0 between messages without context takeover)."""
        return compressor_memory(self.window_bits, self.mem_level) if self._zobj else 0

    def should_compress(self, size: int) -> bool:
        """True when a message of ``size`` bytes is worth compressing."""
        return size >= self.threshold

    def compress(self, data: bytes, *, fin: bool = True) -> bytes:
        """Compress one message, or one fragment of it (``fin`` false for all but the last)."""
        if self._zobj is None:
            self._zobj = zlib.compressobj(
                self.level, zlib.DEFLATED, -self.window_bits, self.mem_level
            )
        out = self._zobj.compress(data) + self._zobj.flush(zlib.Z_SYNC_FLUSH)
        if fin:
            if out.endswith(TAIL):
                out = out[:-4]
            if self.no_context_takeover:
                self._zobj = None
        return out or b"\x00"  # an empty message deflates to a single empty stored block


class Inflater:
    """Inflates incoming compressed messages, bounded (RFC 7692 7.2.2, and bombs)."""

    def __init__(self, window_bits: int = 15, *, no_context_takeover: bool = False) -> None:
        # A larger window than the peer uses inflates its data just as well; zlib wants >= 9.
        self.window_bits = max(window_bits, 9)
        self.no_context_takeover = no_context_takeover
        self._zobj: zlib._Decompress | None = None

    @property
    def memory(self) -> int:
        """Bytes of zlib state held now (about the window; 0 when reset between messages)."""
        return (1 << self.window_bits) + 7 * 1024 if self._zobj else 0

    def inflate(self, data: bytes, *, fin: bool, limit: int | None) -> bytes:
        """Inflate one frame's payload; at most ``limit`` bytes may come out (``None``: any).

        Raises :class:`PayloadTooBig` as soon as the output would exceed ``limit``: zlib is
        asked for ``limit + 1`` bytes at most, so no more than that is ever held.
        """
        if self._zobj is None:
            self._zobj = zlib.decompressobj(-self.window_bits)
        zobj = self._zobj
        if fin:
            data = data + TAIL
        try:
            if limit is None:
                out = zobj.decompress(data)
            else:
                out = zobj.decompress(data, limit + 1)
                if len(out) > limit or zobj.unconsumed_tail:
                    # Output still pending past the limit: that is a bomb, or just too big.
                    raise PayloadTooBig(f"message inflates past the limit of {limit} bytes")
        except zlib.error as exc:
            raise ProtocolError(f"invalid compressed data: {exc}") from None
        if zobj.eof:
            # A BFINAL block ended the stream: allowed (7.2.3.2); the next message starts afresh.
            self._zobj = None
        elif fin and self.no_context_takeover:
            self._zobj = None
        return out

    def reset(self) -> None:
        """Drop the zlib state (after a failure)."""
        self._zobj = None
