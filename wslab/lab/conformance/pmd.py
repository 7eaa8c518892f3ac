"""permessage-deflate (RFC 7692) on the runner's side: judging the answer, compressing, inflating.

The frame codec of :mod:`.wire` shares nothing with wslab's engine. Compression is different:
zlib does the work on both sides anyway, and :mod:`wslab.foundation.deflate` is the project's
own RFC 7692 code, so the runner uses its :class:`Deflater`, :class:`Inflater`,
:func:`parse_extensions` and :func:`accept_response`. What could let a wslab bug slip through
is kept independent here: which offers are acceptable (:func:`offer_problem`) and whether the
answer fits one of them (:func:`check_answer`) are written from RFC 7692 section 7.1 alone.

- :func:`check_answer` judges the server's ``Sec-WebSocket-Extensions`` answer and returns the
  agreed :class:`DeflateParams` (``None`` when the server declined);
- :class:`Compression` is the runner's end of an agreed connection: it deflates the runner's
  messages (whole, or fragment by fragment) and inflates the server's, bounded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from wslab.foundation.deflate import (
    EXTENSION_NAME,
    DeflateParams,
    Deflater,
    DeflateSettings,
    Inflater,
    accept_response,
    parse_extensions,
)
from wslab.foundation.errors import InvalidHandshakeResponse, ProtocolError

__all__ = [
    "Agreement",
    "AnswerError",
    "Compression",
    "WireInfo",
    "check_answer",
    "offer_problem",
]

_KNOWN = (
    "server_no_context_takeover",
    "client_no_context_takeover",
    "server_max_window_bits",
    "client_max_window_bits",
)
#: accept_response() with this checks only what holds for every offer: syntax, one extension,
#: known and non-repeated parameters, window values 9..15 (8 for the client's), nothing more.
_ANY_OFFER = DeflateSettings(max_window_bits=15)


class AnswerError(ValueError):
    """The server's answer is not a valid acceptance of any offer the runner made."""


def _bits(value: str | None) -> int | None:
    if value is None or not value.isdigit() or value.startswith("0") or not 8 <= int(value) <= 15:
        return None
    return int(value)


def offer_problem(name: str, params: Sequence[tuple[str, str | None]]) -> str | None:
    """Why a server must decline this offer (RFC 7692 section 7.1), or ``None`` if it may accept."""
    if name.lower() != EXTENSION_NAME:
        return f"{name} is not permessage-deflate"
    seen: set[str] = set()
    for key, value in params:
        if key not in _KNOWN:
            return f"unknown parameter {key}"
        if key in seen:
            return f"duplicated parameter {key}"
        seen.add(key)
        if key.endswith("context_takeover") and value is not None:
            return f"{key} with a value"
        if key == "server_max_window_bits" and _bits(value) is None:
            return f"server_max_window_bits={value}"
        if key == "client_max_window_bits" and value is not None and _bits(value) is None:
            return f"client_max_window_bits={value}"
    return None


def _mismatch(offer: dict[str, str | None], answer: dict[str, str | None]) -> str | None:
    """Why ``answer`` does not accept ``offer`` (RFC 7692 sections 7.1.1 and 7.1.2)."""
    if "server_no_context_takeover" in offer and "server_no_context_takeover" not in answer:
        return "the offer asks for server_no_context_takeover and the answer drops it"
    if "server_max_window_bits" in offer:
        asked = _bits(offer["server_max_window_bits"]) or 15
        got = _bits(answer.get("server_max_window_bits"))
        if got is None:
            return f"the offer asks for server_max_window_bits={asked} and the answer drops it"
        if got > asked:
            return f"server_max_window_bits={got} is larger than the {asked} offered"
    if "client_max_window_bits" in answer and "client_max_window_bits" not in offer:
        return "client_max_window_bits in the answer to an offer without it"
    return None


@dataclass(frozen=True)
class Agreement:
    """What was agreed: the parameters, the answer as sent, and the runner's own window.

    ``client_window`` is the window the runner compresses with: the answer's
    client_max_window_bits, never more than the offer accepted said (a value in an offer tells
    the server the client will not use more).
    """

    params: DeflateParams
    answer: str
    client_window: int


def check_answer(offers: Sequence[str], answer: Sequence[str]) -> Agreement | None:
    """Judge the server's answer to ``offers`` (header lines as sent); ``None`` if it declined.

    Raises :class:`AnswerError` when the answer is invalid in itself (through
    :func:`~wslab.foundation.deflate.accept_response`) or accepts no acceptable offer.
    """
    if not answer:
        return None
    try:
        params = accept_response(answer, _ANY_OFFER)
    except InvalidHandshakeResponse as exc:
        raise AnswerError(str(exc)) from None
    assert params is not None  # accept_response returns None only without an answer
    (_, answer_params) = parse_extensions(answer)[0]
    answered = dict(answer_params)
    reasons = []
    for name, raw in parse_extensions(offers):
        if offer_problem(name, raw) is not None:
            continue
        offer = dict(raw)
        why = _mismatch(offer, answered)
        if why is None:
            window = params.client_max_window_bits
            hint = _bits(offer.get("client_max_window_bits"))
            return Agreement(params, ", ".join(answer), min(window, hint or 15))
        reasons.append(why)
    detail = "; ".join(reasons) or "no offer was acceptable"
    raise AnswerError(f"the answer {', '.join(answer)!r} accepts none of the offers ({detail})")


@dataclass
class WireInfo:
    """How one server message crossed the wire: compressed or not, its bytes and their digest."""

    compressed: bool
    wire_bytes: int
    digest: bytes


class Compression:
    """The runner's end of a connection that agreed on permessage-deflate."""

    def __init__(self, agreement: Agreement) -> None:
        params = agreement.params
        self.agreement = agreement
        bits = agreement.client_window
        # zlib cannot deflate with a 256-byte window (it silently uses 512): for a window of 8
        # the runner writes stored blocks (level 0), which reference nothing and fit any window.
        self.deflater = Deflater(
            max(bits, 9),
            no_context_takeover=params.client_no_context_takeover,
            level=6 if bits >= 9 else 0,
            mem_level=8,
        )
        self.inflater: Inflater = params.inflater(server=False)
        self._digest = hashlib.sha256()
        self._wire_bytes = 0

    def message_frames(
        self, payload: bytes, fragment: int, stream: bool
    ) -> list[tuple[bytes, bool]]:
        """The (compressed payload, fin) of each frame of one message.

        ``stream=False``: the whole message is deflated, and the deflated bytes are cut into
        frames of ``fragment`` bytes (0: one frame). ``stream=True``: the message is cut into
        pieces of ``fragment`` bytes and each piece deflated on its own (with a sync flush), as
        a sender streaming a message it does not hold whole would do.
        """
        if not stream:
            data = self.deflater.compress(payload)
            size = fragment or len(data)
            pieces = [data[i : i + size] for i in range(0, len(data), size)]
            return [(p, i == len(pieces) - 1) for i, p in enumerate(pieces)]
        size = fragment or len(payload) or 1
        chunks = [payload[i : i + size] for i in range(0, len(payload), size)] or [b""]
        last = len(chunks) - 1
        return [(self.deflater.compress(c, fin=i == last), i == last) for i, c in enumerate(chunks)]

    def inflate(self, data: bytes, *, fin: bool, limit: int) -> bytes:
        """Inflate one frame of a compressed server message, at most ``limit`` bytes out.

        Raises ``ValueError`` (the runner gives up on the connection) for invalid deflate data
        or a message that inflates past ``limit``.
        """
        self._digest.update(data)
        self._wire_bytes += len(data)
        try:
            return self.inflater.inflate(data, fin=fin, limit=limit)
        except ProtocolError as exc:  # invalid data, or PayloadTooBig past the limit
            raise ValueError(
                f"server sent a compressed message the runner cannot inflate: {exc}"
            ) from None

    def finish_message(self) -> WireInfo:
        """The wire facts of the compressed message whose last frame was just inflated."""
        info = WireInfo(True, self._wire_bytes, self._digest.digest())
        self._digest, self._wire_bytes = hashlib.sha256(), 0
        return info
