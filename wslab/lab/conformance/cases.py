"""The case table: what each conformance case sends, and what a strict server must do.

The numbering and the intent of every case follow the Autobahn testsuite's categories 1-7, 9
and 10 (a plain RFC 6455 endpoint) and 12-13 (permessage-deflate, RFC 7692), so a result here
can be compared line by line with an Autobahn report. The table itself is data:

- a case's ``steps`` are :class:`Send` (frames, written in one go, frame by frame, or in chops
  of N bytes with a delay), :class:`SendMessage` (one message cut into fragments, built lazily so
  the 16 MiB cases cost nothing until run) and :class:`Pause` (wait; a labelled pause records a
  ``timeout`` event when the connection is still open afterwards, which is how "the server must
  fail *before* we send the rest" is observed);
- ``expected`` is the exact list of events the server must cause (echoed messages, pongs,
  pause labels); ``non_strict`` is an outcome that Autobahn calls NON-STRICT;
- ``closing`` says who must start the closing handshake and with which codes;
- ``offers`` are the ``Sec-WebSocket-Extensions`` lines the runner sends (None: no header, as
  in categories 1-10). A case with offers needs permessage-deflate: when the server declines,
  the case is UNIMPLEMENTED, as in Autobahn. Its :class:`SendMessage` steps with ``compressed``
  are deflated by the runner under the agreed parameters, and echoes are inflated before they
  are compared.

Where the expectation is stricter than Autobahn's, or adds a case Autobahn does not have, the
description says so (7.5.1 wants 1007 only; 7.7.14-16 cover 1012-1014; 7.9.10 covers 1015;
7.13.x want 1002 where Autobahn is informational; 5.19/5.20 check the first pong arrives during
the pause, as their description demands). Category 12 uses generated payloads in place of
Autobahn's files (:mod:`.payloads`), 13 its own parameter grid, and 12.6 (compressed frames a
strict server must refuse) is not in Autobahn at all.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal

from wslab.foundation.deflate import Deflater
from wslab.foundation.errors import ConfigError

from .payloads import TEXT_KINDS, generate
from .utf8_vectors import KOSME, utf8_test_groups
from .wire import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, close_payload

__all__ = [
    "CATEGORIES",
    "SUBCATEGORIES",
    "Case",
    "Closing",
    "Deflated",
    "Ev",
    "Frame",
    "Generated",
    "Pause",
    "Repeat",
    "Send",
    "SendMessage",
    "SendPart",
    "all_cases",
    "as_bytes",
    "case_sort_key",
    "data_length",
    "select_cases",
]


# -- the vocabulary of the table -----------------------------------------------------------------


@dataclass(frozen=True)
class Repeat:
    """``pattern`` repeated and cut to ``length`` bytes: a large payload described, not stored."""

    pattern: bytes
    length: int

    def __len__(self) -> int:
        return self.length

    def materialize(self) -> bytes:
        """The actual bytes (built on demand, so the table stays small)."""
        if self.length == 0:
            return b""
        reps = self.length // len(self.pattern) + 1
        return (self.pattern * reps)[: self.length]


@dataclass(frozen=True)
class Generated:
    """``length`` bytes of a seeded payload ``kind`` (see :mod:`.payloads`), built on demand."""

    kind: str
    length: int
    seed: int

    def __len__(self) -> int:
        return self.length

    def materialize(self) -> bytes:
        """The actual bytes (deterministic for the same kind, length and seed)."""
        return generate(self.kind, self.length, self.seed)


@dataclass(frozen=True)
class Deflated:
    """The raw deflate stream of ``source`` (RFC 7692 7.2.1, tail removed), built on demand.

    For frames the runner sends as they are (RSV1 set by the table, no negotiation needed to
    build them): the compressed bomb of 12.6.8 is a few dozen KiB describing 64 MiB. The stream
    is fresh (no context), so it inflates correctly in any connection's context.
    """

    source: bytes | Repeat

    def materialize(self) -> bytes:
        """Deflate the source piece by piece, so a large one is never held uncompressed."""
        deflater = Deflater(15, no_context_takeover=True)
        n, step = len(self.source), 1 << 20
        if isinstance(self.source, bytes):
            return deflater.compress(self.source)
        out = [
            deflater.compress(
                Repeat(self.source.pattern, min(step, n - i)).materialize(), fin=False
            )
            for i in range(0, n, step)
        ]
        return b"".join(out) + deflater.compress(b"")


Data = bytes | Repeat | Generated | Deflated


def data_length(data: Data) -> int:
    """The length in bytes of a payload given directly or described (a :class:`Deflated` one
    is built to be measured: its length is only known once compressed)."""
    match data:
        case Deflated():
            return len(data.materialize())
        case _:
            return len(data)


def as_bytes(data: Data) -> bytes:
    """The bytes of a payload given directly or described (:class:`Repeat`, ...)."""
    return data if isinstance(data, bytes) else data.materialize()


@dataclass(frozen=True)
class Frame:
    """One frame to send; any header is allowed, including invalid ones."""

    opcode: int
    payload: Data = b""
    fin: bool = True
    rsv: int = 0


@dataclass(frozen=True)
class Send:
    """Write frames: all in one write (``split='none'``), one write per frame (``'frames'``),
    or the concatenated bytes in pieces of ``chop`` bytes with ``delay`` seconds in between
    (``'chops'``; chop=1 is Autobahn's "octet-wise chops")."""

    frames: tuple[Frame, ...]
    split: Literal["none", "frames", "chops"] = "none"
    chop: int = 0
    delay: float = 0.0


@dataclass(frozen=True)
class SendMessage:
    """One data message, cut into frames of ``fragment`` payload bytes (0: one frame), then
    written whole or in chops of ``chop`` bytes. With ``await_echo`` the next step starts only
    once one more event has arrived (round-trip measurements)."""

    opcode: int
    payload: Data
    fragment: int = 0
    chop: int = 0
    delay: float = 0.0
    await_echo: bool = False
    #: Deflate the message under the agreed permessage-deflate parameters (RSV1 on its first
    #: frame). ``fragment`` then counts deflated bytes, unless ``stream``: the message is cut
    #: into pieces of ``fragment`` bytes and each piece is deflated with a sync flush.
    compressed: bool = False
    stream: bool = False


@dataclass(frozen=True)
class Pause:
    """Wait ``seconds`` (None: the runner's ``pause``). With a ``label``, record a ``timeout``
    event if the server has not closed by then, and skip the remaining steps if it has."""

    seconds: float | None = None
    label: str | None = None


@dataclass(frozen=True)
class SendPart:
    """Write the payload bytes ``start:end`` of ``frame`` (with its header when ``start`` is 0):
    one frame delivered in pieces, with other steps (pauses) in between."""

    frame: Frame
    start: int
    end: int


Step = Send | SendMessage | SendPart | Pause


@dataclass(frozen=True)
class Ev:
    """An observed or expected event: ``message`` (opcode + payload), ``pong`` or ``timeout``."""

    kind: Literal["message", "pong", "timeout"]
    data: Data = b""
    opcode: int = 0

    def describe(self) -> str:
        """A short human description (payloads summarized)."""
        if self.kind == "timeout":
            return f"open after pause {as_bytes(self.data).decode()}"
        what = {OP_TEXT: "text", OP_BINARY: "binary"}.get(self.opcode, f"opcode {self.opcode}")
        head = f"{what} message" if self.kind == "message" else "pong"
        return f"{head} {_summary(self.data)}"


def _summary(data: Data) -> str:
    if isinstance(data, Repeat):
        return f"{data.length} B"
    if isinstance(data, Generated):
        return f"{data.length} B of {data.kind}"
    if isinstance(data, Deflated):
        return f"deflate of {len(data.source)} B"
    if len(data) <= 24:
        return repr(data)
    return f"{len(data)} B {data[:12]!r}..."


@dataclass(frozen=True)
class Closing:
    """How the connection must end.

    ``initiator='client'``: the runner sends a close (or the script does) and the server must
    answer with a close frame whose code is in ``codes`` (None = empty payload), then close TCP.
    ``initiator='server'``: the server must fail the connection itself with a code in ``codes``.
    ``lenient_codes`` are codes Autobahn accepts but this table does not (judged NON-STRICT);
    ``require_clean=False`` means Autobahn would also accept the TCP connection simply dropped.
    """

    initiator: Literal["client", "server"]
    codes: frozenset[int | None]
    lenient_codes: frozenset[int | None] = frozenset()
    require_clean: bool = True

    def describe(self) -> str:
        """A short human description of the expected end of the connection."""
        codes = "/".join(
            "empty" if c is None else str(c) for c in sorted(self.codes, key=_code_key)
        )
        if self.initiator == "client":
            return f"server answers our close with {codes} and closes TCP"
        return f"server fails the connection with close {codes} and closes TCP"


def _code_key(code: int | None) -> int:
    return -1 if code is None else code


@dataclass(frozen=True)
class Case:
    """One conformance case; see the module docstring for the meaning of each part."""

    id: str
    description: str
    steps: tuple[Step, ...]
    expected: tuple[Ev, ...]
    closing: Closing
    non_strict: tuple[Ev, ...] | None = None
    informational: bool = False
    heavy: bool = False
    min_timeout: float = 0.0
    notes: str = ""
    offers: tuple[str, ...] | None = None

    @property
    def category(self) -> int:
        """The top-level Autobahn category (1-13)."""
        return int(self.id.split(".")[0])

    @property
    def subcategory(self) -> str:
        """The first two levels of the id (``"6.12"``), or the category for two-level ids."""
        parts = self.id.split(".")
        return ".".join(parts[:2]) if len(parts) == 3 else parts[0]

    @property
    def expectation(self) -> str:
        """The strict expectation in words."""
        if self.informational:
            return "informational: behaviour is implementation-defined; recorded, not judged"
        events = ", ".join(e.describe() for e in self.expected[:6]) or "nothing"
        if len(self.expected) > 6:
            events += f", ... {len(self.expected) - 6} more"
        text = f"receive [{events}]; {self.closing.describe()}"
        if self.offers is not None:
            text = f"permessage-deflate accepted for an offer made; {text}"
        return f"{text} ({self.notes})" if self.notes else text


CATEGORIES: dict[int, str] = {
    1: "Framing",
    2: "Pings/Pongs",
    3: "Reserved bits",
    4: "Opcodes",
    5: "Fragmentation",
    6: "UTF-8 handling",
    7: "Close handling",
    9: "Limits/Performance",
    10: "Auto-fragmentation",
    12: "WebSocket compression (different payloads)",
    13: "WebSocket compression (different parameters)",
}

SUBCATEGORIES: dict[str, str] = {
    "1.1": "Text messages",
    "1.2": "Binary messages",
    "6.1": "Valid UTF-8 with zero payload fragments",
    "6.2": "Valid UTF-8 unfragmented, fragmented on code points and within code points",
    "6.3": "Invalid UTF-8 differently fragmented",
    "6.4": "Fail-fast on invalid UTF-8",
    "7.1": "Basic close behavior (fuzzer initiated)",
    "7.3": "Close frame structure: payload length (fuzzer initiated)",
    "7.5": "Close frame structure: payload value (fuzzer initiated)",
    "7.7": "Close frame structure: valid close codes (fuzzer initiated)",
    "7.9": "Close frame structure: invalid close codes (fuzzer initiated)",
    "7.13": "Informational close information (fuzzer initiated)",
    "9.1": "Text message (increasing size)",
    "9.2": "Binary message (increasing size)",
    "9.3": "Fragmented text message (fixed size, increasing fragment size)",
    "9.4": "Fragmented binary message (fixed size, increasing fragment size)",
    "9.5": "Text message (fixed size, increasing chop size)",
    "9.6": "Binary message (fixed size, increasing chop size)",
    "9.7": "Text message round-trip time (fixed number, increasing size)",
    "9.8": "Binary message round-trip time (fixed number, increasing size)",
    "10.1": "Auto-fragmentation",
    "12.1": "Chat JSON text, highly compressible",
    "12.2": "Binary records, compressible",
    "12.3": "English prose, Canterbury-corpus-like text",
    "12.4": "Random binary, incompressible",
    "12.5": "Hamlet-like verse, UTF-8 text",
    "12.6": "Compressed frames a strict server must refuse (not an Autobahn subcategory)",
    "13.1": "Default offers",
    "13.2": "client_no_context_takeover",
    "13.3": "server_no_context_takeover",
    "13.4": "server_max_window_bits 9-15",
    "13.5": "client_max_window_bits, without and with a value",
    "13.6": "Parameter combinations",
    "13.7": "Several offers, the first unacceptable",
}


# -- helpers for writing the table ---------------------------------------------------------------

HELLO = b"Hello, world!"
BIN8 = b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff"
#: Delay between octet-wise chops: long enough for separate TCP segments on loopback.
OCTET_DELAY = 0.001

ECHO_OK = Closing("client", frozenset({1000}))
FAIL_1002 = Closing("server", frozenset({1002}), require_clean=False)
FAIL_1007 = Closing("server", frozenset({1007}), require_clean=False)
FAIL_1009 = Closing("server", frozenset({1009}), require_clean=False)


def text(payload: Data, *, fin: bool = True, rsv: int = 0) -> Frame:
    """A text frame."""
    return Frame(OP_TEXT, payload, fin, rsv)


def binary(payload: Data, *, fin: bool = True, rsv: int = 0) -> Frame:
    """A binary frame."""
    return Frame(OP_BINARY, payload, fin, rsv)


def cont(payload: Data, *, fin: bool = True, rsv: int = 0) -> Frame:
    """A continuation frame."""
    return Frame(OP_CONT, payload, fin, rsv)


def ping(payload: Data = b"", *, fin: bool = True, rsv: int = 0) -> Frame:
    """A ping frame."""
    return Frame(OP_PING, payload, fin, rsv)


def pong(payload: Data = b"", *, fin: bool = True, rsv: int = 0) -> Frame:
    """A pong frame."""
    return Frame(OP_PONG, payload, fin, rsv)


def close(
    code: int | None = None, reason: bytes = b"", *, fin: bool = True, rsv: int = 0
) -> Frame:
    """A close frame with an optional code and raw reason bytes."""
    return Frame(OP_CLOSE, close_payload(code, reason), fin, rsv)


def msg(payload: Data, opcode: int = OP_TEXT) -> Ev:
    """An expected echoed message."""
    return Ev("message", payload, opcode)


def pong_ev(payload: Data) -> Ev:
    """An expected pong."""
    return Ev("pong", payload)


def timeout_ev(label: str) -> Ev:
    """The marker of a labelled pause the connection survived."""
    return Ev("timeout", label.encode())


def one(*frames: Frame) -> Send:
    """All frames in one write ("sent in one chop")."""
    return Send(tuple(frames))


def framewise(*frames: Frame) -> Send:
    """One write per frame ("frame-wise chops")."""
    return Send(tuple(frames), split="frames")


def octetwise(*frames: Frame) -> Send:
    """One write per byte ("octet-wise chops")."""
    return Send(tuple(frames), split="chops", chop=1, delay=OCTET_DELAY)


# -- the categories ------------------------------------------------------------------------------


def _cat1() -> list[Case]:
    cases = []
    sizes = [0, 125, 126, 127, 128, 65535, 65536]
    for sub, opcode, pattern, kind in (
        (1, OP_TEXT, b"*", "text"),
        (2, OP_BINARY, b"\xfe", "binary"),
    ):
        for i, n in enumerate(sizes, 1):
            data = Repeat(pattern, n)
            cases.append(
                Case(
                    f"1.{sub}.{i}",
                    f"Send {kind} message with payload of length {n}.",
                    (SendMessage(opcode, data),),
                    (msg(data, opcode),),
                    ECHO_OK,
                )
            )
        data = Repeat(pattern, 65536)
        cases.append(
            Case(
                f"1.{sub}.8",
                f"Send {kind} message with payload of length 65536, written in chops of 997 octets.",
                (SendMessage(opcode, data, chop=997),),
                (msg(data, opcode),),
                ECHO_OK,
            )
        )
    return cases


def _cat2() -> list[Case]:
    big = b"\xfe" * 125
    pings10 = [f"payload-{i}".encode() for i in range(10)]
    return [
        Case("2.1", "Send ping without payload.", (one(ping()),), (pong_ev(b""),), ECHO_OK),
        Case(
            "2.2",
            "Send ping with small text payload.",
            (one(ping(HELLO)),),
            (pong_ev(HELLO),),
            ECHO_OK,
        ),
        Case(
            "2.3",
            "Send ping with small binary (non UTF-8) payload.",
            (one(ping(BIN8)),),
            (pong_ev(BIN8),),
            ECHO_OK,
        ),
        Case(
            "2.4",
            "Send ping with binary payload of 125 octets.",
            (one(ping(big)),),
            (pong_ev(big),),
            ECHO_OK,
        ),
        Case(
            "2.5",
            "Send ping with binary payload of 126 octets (control frames are limited to 125).",
            (one(ping(b"\xfe" * 126)),),
            (),
            FAIL_1002,
        ),
        Case(
            "2.6",
            "Send ping with binary payload of 125 octets, in octet-wise chops.",
            (octetwise(ping(big)),),
            (pong_ev(big),),
            ECHO_OK,
        ),
        Case("2.7", "Send unsolicited pong without payload.", (one(pong()),), (), ECHO_OK),
        Case(
            "2.8",
            "Send unsolicited pong with payload.",
            (one(pong(b"unsolicited pong payload")),),
            (),
            ECHO_OK,
        ),
        Case(
            "2.9",
            "Send unsolicited pong with payload, then ping with payload; only the ping is answered.",
            (one(pong(b"unsolicited pong payload"), ping(b"ping payload")),),
            (pong_ev(b"ping payload"),),
            ECHO_OK,
        ),
        Case(
            "2.10",
            "Send 10 pings with payload; expect 10 pongs in order.",
            (framewise(*(ping(p) for p in pings10)),),
            tuple(pong_ev(p) for p in pings10),
            ECHO_OK,
        ),
        Case(
            "2.11",
            "Send 10 pings with payload, in octet-wise chops; expect 10 pongs in order.",
            tuple(octetwise(ping(p)) for p in pings10),
            tuple(pong_ev(p) for p in pings10),
            ECHO_OK,
        ),
    ]


def _after_echo(tag: str, bad: Frame, how: str, desc: str) -> Case:
    """Echo a text message, then a bad frame, then a ping that must not be answered."""
    frames = (text(HELLO), bad, ping())
    send = {"one": one, "frames": framewise, "octets": octetwise}[how](*frames)
    return Case(tag, desc, (send,), (msg(HELLO),), FAIL_1002, non_strict=())


def _cat3() -> list[Case]:
    return [
        Case(
            "3.1",
            "Send small text message with RSV = 1.",
            (one(text(HELLO, rsv=1)),),
            (),
            FAIL_1002,
        ),
        _after_echo(
            "3.2",
            text(HELLO, rsv=2),
            "one",
            "Send small text message, then again with RSV = 2, then ping.",
        ),
        _after_echo(
            "3.3",
            text(HELLO, rsv=3),
            "frames",
            "Send small text message, then again with RSV = 3, then ping; frame-wise chops.",
        ),
        _after_echo(
            "3.4",
            text(HELLO, rsv=4),
            "octets",
            "Send small text message, then again with RSV = 4, then ping; octet-wise chops.",
        ),
        Case(
            "3.5",
            "Send small binary message with RSV = 5.",
            (one(binary(BIN8, rsv=5)),),
            (),
            FAIL_1002,
        ),
        Case("3.6", "Send ping with RSV = 6.", (one(ping(HELLO, rsv=6)),), (), FAIL_1002),
        Case("3.7", "Send close with RSV = 7.", (one(close(rsv=7)),), (), FAIL_1002),
    ]


def _cat4() -> list[Case]:
    cases = []
    for sub, opcodes, kind in (
        (1, (3, 4, 5, 6, 7), "non-control"),
        (2, (11, 12, 13, 14, 15), "control"),
    ):
        a, b, c, d, e = opcodes
        payload = b"reserved opcode payload"
        cases += [
            Case(
                f"4.{sub}.1",
                f"Send frame with reserved {kind} opcode {a}.",
                (one(Frame(a)),),
                (),
                FAIL_1002,
            ),
            Case(
                f"4.{sub}.2",
                f"Send frame with reserved {kind} opcode {b} and non-empty payload.",
                (one(Frame(b, payload)),),
                (),
                FAIL_1002,
            ),
            _after_echo(
                f"4.{sub}.3",
                Frame(c),
                "one",
                f"Send small text message, then frame with reserved {kind} opcode {c}, then ping.",
            ),
            _after_echo(
                f"4.{sub}.4",
                Frame(d, payload),
                "one",
                f"Send small text message, then frame with reserved {kind} opcode {d} and payload, then ping.",
            ),
            _after_echo(
                f"4.{sub}.5",
                Frame(e, payload),
                "one",
                f"Send small text message, then frame with reserved {kind} opcode {e} and payload, then ping.",
            ),
        ]
    return cases


def _cat5() -> list[Case]:
    f1, f2 = b"fragment1", b"fragment2"
    pp = b"ping payload"
    ways = (
        ("one", one, "in one chop"),
        ("frames", framewise, "in frame-wise chops"),
        ("octets", octetwise, "in octet-wise chops"),
    )
    cases = [
        Case(
            "5.1",
            "Send ping fragmented into 2 fragments (control frames must not be fragmented).",
            (one(ping(f1, fin=False), cont(f2)),),
            (),
            FAIL_1002,
        ),
        Case(
            "5.2",
            "Send pong fragmented into 2 fragments.",
            (one(pong(f1, fin=False), cont(f2)),),
            (),
            FAIL_1002,
        ),
    ]
    for n, (_, how, words) in enumerate(ways, 3):
        cases.append(
            Case(
                f"5.{n}",
                f"Send text message fragmented into 2 fragments, {words}.",
                (how(text(f1, fin=False), cont(f2)),),
                (msg(f1 + f2),),
                ECHO_OK,
            )
        )
    for n, (_, how, words) in enumerate(ways, 6):
        cases.append(
            Case(
                f"5.{n}",
                f"Send text message fragmented into 2 fragments with a ping in between, {words}.",
                (how(text(f1, fin=False), ping(pp), cont(f2)),),
                (pong_ev(pp), msg(f1 + f2)),
                ECHO_OK,
            )
        )
    for n, (_, how, words) in enumerate(ways, 9):
        cases.append(
            Case(
                f"5.{n}",
                f"Send continuation frame with FIN = true where there is nothing to continue, then a text message, {words}.",
                (how(cont(b"non-continuation payload"), text(HELLO)),),
                (),
                FAIL_1002,
            )
        )
    for n, (_, how, words) in enumerate(ways, 12):
        cases.append(
            Case(
                f"5.{n}",
                f"Send continuation frame with FIN = false where there is nothing to continue, then a text message, {words}.",
                (how(cont(b"non-continuation payload", fin=False), text(HELLO)),),
                (),
                FAIL_1002,
            )
        )
    cases.append(
        Case(
            "5.15",
            "Send text message in 2 fragments, then continuation frame with FIN = false where there "
            "is nothing to continue, then a text message, all in one chop.",
            (
                one(
                    text(f1, fin=False), cont(f2), cont(b"fragment3", fin=False), text(b"fragment4")
                ),
            ),
            (msg(f1 + f2),),
            FAIL_1002,
            non_strict=(),
        )
    )
    for n, fin in ((16, False), (17, True)):
        frames = (cont(f1, fin=fin), text(f2, fin=False), cont(b"fragment3")) * 2
        cases.append(
            Case(
                f"5.{n}",
                f"Repeated 2x: continuation frame with FIN = {str(fin).lower()} (nothing to continue), "
                "then a text message in 2 fragments.",
                (one(*frames),),
                (),
                FAIL_1002,
            )
        )
    cases.append(
        Case(
            "5.18",
            "Send text message in 2 fragments with both frame opcodes set to text.",
            (one(text(f1, fin=False), text(f2)),),
            (),
            FAIL_1002,
        )
    )
    frags = [f"fragment{i}".encode() for i in range(1, 6)]
    pings = [b"pongme 1!", b"pongme 2!"]
    for n, how, words in ((19, one, ""), (20, framewise, " Frame-wise chops.")):
        cases.append(
            Case(
                f"5.{n}",
                "Text message in 5 fragments: 2 fragments and a ping, pause, 2 fragments, a ping and "
                f"the final fragment. The first pong must arrive during the pause.{words}",
                (
                    how(text(frags[0], fin=False), cont(frags[1], fin=False), ping(pings[0])),
                    Pause(label="A"),
                    how(
                        cont(frags[2], fin=False),
                        cont(frags[3], fin=False),
                        ping(pings[1]),
                        cont(frags[4]),
                    ),
                ),
                (pong_ev(pings[0]), timeout_ev("A"), pong_ev(pings[1]), msg(b"".join(frags))),
                ECHO_OK,
                # Autobahn only checks the order of the events, not that the first pong came early.
                non_strict=(
                    timeout_ev("A"),
                    pong_ev(pings[0]),
                    pong_ev(pings[1]),
                    msg(b"".join(frags)),
                ),
            )
        )
    return cases


def _cat6() -> list[Case]:
    p1 = "Hello-µ@ßöä".encode()
    p2 = "üàá-UTF-8!!".encode()
    bad = KOSME + bytes.fromhex("eda080") + b"edited"
    ff_part1, ff_part2, ff_part3 = KOSME, bytes.fromhex("f4908080"), b"edited"
    ff_all = ff_part1 + ff_part2 + ff_part3
    fail_fast_expect = (timeout_ev("A"),)
    fail_fast_lenient = (timeout_ev("A"), timeout_ev("B"))

    def fail_fast(tag: str, desc: str, parts: tuple[bytes, bytes, bytes], chops: bool) -> Case:
        # "Chops" = one frame whose bytes arrive in 3 pieces; otherwise 3 frames of one message.
        if chops:
            whole = b"".join(parts)
            frame = text(whole)
            a, b = len(parts[0]), len(parts[0]) + len(parts[1])
            steps: tuple[Step, ...] = (
                SendPart(frame, 0, a),
                Pause(label="A"),
                SendPart(frame, a, b),
                Pause(label="B"),
                SendPart(frame, b, len(whole)),
            )
        else:
            steps = (
                one(text(parts[0], fin=False)),
                Pause(label="A"),
                one(cont(parts[1], fin=False)),
                Pause(label="B"),
                one(cont(parts[2])),
            )
        return Case(
            tag,
            desc,
            steps,
            fail_fast_expect,
            FAIL_1007,
            non_strict=fail_fast_lenient,
            notes="fail fast: the close must arrive before the second pause ends",
        )

    cases = [
        Case("6.1.1", "Send text message of length 0.", (one(text(b"")),), (msg(b""),), ECHO_OK),
        Case(
            "6.1.2",
            "Send fragmented text message, 3 fragments each of length 0.",
            (one(text(b"", fin=False), cont(b"", fin=False), cont(b"")),),
            (msg(b""),),
            ECHO_OK,
        ),
        Case(
            "6.1.3",
            "Send fragmented text message, 3 fragments, first and last of length 0, middle non-empty.",
            (one(text(b"", fin=False), cont(b"middle frame payload", fin=False), cont(b"")),),
            (msg(b"middle frame payload"),),
            ECHO_OK,
        ),
        Case(
            "6.2.1",
            "Send a valid UTF-8 text message in one fragment.",
            (one(text(p1 + p2)),),
            (msg(p1 + p2),),
            ECHO_OK,
        ),
        Case(
            "6.2.2",
            "Send a valid UTF-8 text message in two fragments, fragmented on a code point boundary.",
            (one(text(p1, fin=False), cont(p2)),),
            (msg(p1 + p2),),
            ECHO_OK,
        ),
        Case(
            "6.2.3",
            "Send a valid UTF-8 text message in fragments of 1 octet (frames end inside code points).",
            (SendMessage(OP_TEXT, p1 + p2, fragment=1),),
            (msg(p1 + p2),),
            ECHO_OK,
        ),
        Case(
            "6.2.4",
            "Send a valid UTF-8 text message (κόσμε) in fragments of 1 octet.",
            (SendMessage(OP_TEXT, KOSME, fragment=1),),
            (msg(KOSME),),
            ECHO_OK,
        ),
        Case(
            "6.3.1",
            f"Send invalid UTF-8 text message unfragmented. Payload: 0x{bad.hex()}",
            (one(text(bad)),),
            (),
            FAIL_1007,
        ),
        Case(
            "6.3.2",
            "Send invalid UTF-8 text message in fragments of 1 octet.",
            (SendMessage(OP_TEXT, bad, fragment=1),),
            (),
            FAIL_1007,
        ),
        fail_fast(
            "6.4.1",
            "Invalid UTF-8 text message in 3 frames with pauses: valid part, then a frame encoding "
            "U+110000 (out of range), then the rest.",
            (ff_part1, ff_part2, ff_part3),
            chops=False,
        ),
        fail_fast(
            "6.4.2",
            "As 6.4.1, but the second frame holds only the one octet that makes the payload invalid.",
            (ff_all[:12], ff_all[12:13], ff_all[13:]),
            chops=False,
        ),
        fail_fast(
            "6.4.3",
            "As 6.4.1, but one frame whose bytes are written in 3 chops with pauses.",
            (ff_part1, ff_part2, ff_part3),
            chops=True,
        ),
        fail_fast(
            "6.4.4",
            "As 6.4.2, but one frame whose bytes are written in 3 chops with pauses.",
            (ff_all[:12], ff_all[12:13], ff_all[13:]),
            chops=True,
        ),
    ]
    for sub, (_title, seqs) in enumerate(utf8_test_groups(), 5):
        for i, (valid, data) in enumerate(seqs, 1):
            word = "valid" if valid else "not valid"
            cases.append(
                Case(
                    f"6.{sub}.{i}",
                    f"Send a text message whose payload is {word} UTF-8, in one frame. Payload: 0x{data.hex()}",
                    (one(text(data)),),
                    (msg(data),) if valid else (),
                    ECHO_OK if valid else FAIL_1007,
                )
            )
    return cases


def _cat7() -> list[Case]:
    hw = b"Hello World!"
    invalid_reason = KOSME + bytes.fromhex("eda080") + b"edited"
    cases = [
        Case(
            "7.1.1",
            "Send a text message; once it is echoed, a close frame.",
            (one(text(hw)),),
            (msg(hw),),
            ECHO_OK,
        ),
        Case(
            "7.1.2",
            "Send two close frames; the second must be ignored.",
            (one(close(1000), close(1000)),),
            (),
            ECHO_OK,
        ),
        Case(
            "7.1.3",
            "Send a ping after the close frame; it must not be answered.",
            (one(close(1000), ping()),),
            (),
            ECHO_OK,
        ),
        Case(
            "7.1.4",
            "Send a text message after the close frame; it must not be echoed.",
            (one(close(1000), text(hw)),),
            (),
            ECHO_OK,
        ),
        Case(
            "7.1.5",
            "Send a message fragment, then a close frame, then the final fragment.",
            (one(text(b"fragment1", fin=False), close(1000), cont(b"fragment2")),),
            (),
            ECHO_OK,
        ),
        Case(
            "7.1.6",
            "Send a 256 KiB text message, a small text message, a close frame and a ping back to "
            "back; whether the messages are echoed before the close is implementation-defined.",
            (one(text(Repeat(b"BAsd7&jh23", 256 * 1024)), text(hw), close(1000), ping()),),
            (msg(Repeat(b"BAsd7&jh23", 256 * 1024)), msg(hw)),
            ECHO_OK,
            informational=True,
        ),
        Case(
            "7.3.1",
            "Send a close frame with payload length 0 (no code, no reason).",
            (one(close()),),
            (),
            Closing("client", frozenset({None, 1000})),
        ),
        Case(
            "7.3.2",
            "Send a close frame with payload length 1.",
            (one(Frame(OP_CLOSE, b"*")),),
            (),
            Closing("client", frozenset({1002}), require_clean=False),
        ),
        Case(
            "7.3.3",
            "Send a close frame with close code 1000 and no reason.",
            (one(close(1000)),),
            (),
            ECHO_OK,
        ),
        Case(
            "7.3.4",
            "Send a close frame with close code and a close reason.",
            (one(close(1000, hw)),),
            (),
            ECHO_OK,
        ),
        Case(
            "7.3.5",
            "Send a close frame with close code and a close reason of maximum length (123).",
            (one(close(1000, b"*" * 123)),),
            (),
            ECHO_OK,
        ),
        Case(
            "7.3.6",
            "Send a close frame with close code and a close reason that is too long (124): total "
            "payload 126 octets.",
            (one(close(1000, b"*" * 124)),),
            (),
            Closing("client", frozenset({1002}), require_clean=False),
        ),
        Case(
            "7.5.1",
            "Send a close frame whose reason is not valid UTF-8 (strict: 1007; Autobahn also "
            "accepts 1002, judged NON-STRICT here).",
            (one(close(1000, invalid_reason)),),
            (),
            Closing(
                "client", frozenset({1007}), lenient_codes=frozenset({1002}), require_clean=False
            ),
        ),
    ]
    valid = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]
    extra = [1012, 1013, 1014]  # registered with IANA after RFC 6455; not in Autobahn's list
    for i, code in enumerate(valid + extra, 1):
        note = " (IANA-registered after RFC 6455; not an Autobahn case)" if code in extra else ""
        cases.append(
            Case(
                f"7.7.{i}",
                f"Send close with valid close code {code}{note}.",
                (one(close(code)),),
                (),
                Closing("client", frozenset({1000, code})),
            )
        )
    invalid = [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999, 1015]
    for i, code in enumerate(invalid, 1):
        note = " (never sent on the wire; not an Autobahn case)" if code == 1015 else ""
        cases.append(
            Case(
                f"7.9.{i}",
                f"Send close with invalid close code {code}{note}.",
                (one(close(code)),),
                (),
                Closing("client", frozenset({1002}), require_clean=False),
            )
        )
    for i, code in enumerate((5000, 65535), 1):
        cases.append(
            Case(
                f"7.13.{i}",
                f"Send close with close code {code}, outside every range RFC 6455 section 7.4.2 "
                "defines (Autobahn: informational; judged strictly here).",
                (one(close(code)),),
                (),
                Closing("client", frozenset({1002}), require_clean=False),
            )
        )
    return cases


def _cat9(quick: bool) -> list[Case]:
    # Quick mode divides every size by 16 and the message counts by 10; ids stay the same.
    div = 16 if quick else 1
    kib, mib = 1024, 1024 * 1024
    text_pat, bin_pat = b"BAsd7&jh23", b"\x00\xfe\x23\xfa\xf0"
    kinds = ((OP_TEXT, "text", text_pat), (OP_BINARY, "binary", bin_pat))
    cases: list[Case] = []

    def heavy(tag: str, desc: str, step: Step, data: Repeat, opcode: int, secs: float) -> Case:
        return Case(tag, desc, (step,), (msg(data, opcode),), ECHO_OK, heavy=True, min_timeout=secs)

    sizes = [64 * kib, 256 * kib, mib, 4 * mib, 8 * mib, 16 * mib]
    for sub, (opcode, kind, pat) in enumerate(kinds, 1):
        for i, n in enumerate(sizes, 1):
            data = Repeat(pat, n // div)
            cases.append(
                heavy(
                    f"9.{sub}.{i}",
                    f"Send {kind} message with payload of length {data.length}.",
                    SendMessage(opcode, data),
                    data,
                    opcode,
                    10 + n / mib * 4,
                )
            )
    frag_sizes = [64, 256, kib, 4 * kib, 16 * kib, 64 * kib, 256 * kib, mib, 4 * mib]
    for sub, (opcode, kind, _) in enumerate(kinds, 3):
        data = Repeat(b"*" if opcode == OP_TEXT else b"\xfe", 4 * mib // div)
        for i, size in enumerate(frag_sizes, 1):
            cases.append(
                heavy(
                    f"9.{sub}.{i}",
                    f"Send fragmented {kind} message of length {data.length} in fragments of {size}.",
                    SendMessage(opcode, data, fragment=size),
                    data,
                    opcode,
                    60,
                )
            )
    chops = [64, 128, 256, 512, 1024, 2048]
    for sub, (opcode, kind, pat) in enumerate(kinds, 5):
        data = Repeat(pat, mib // div)
        for i, chop in enumerate(chops, 1):
            cases.append(
                heavy(
                    f"9.{sub}.{i}",
                    f"Send {kind} message of length {data.length}, written in chops of {chop} octets.",
                    SendMessage(opcode, data, chop=chop),
                    data,
                    opcode,
                    60,
                )
            )
    count = 100 if quick else 1000
    for sub, (opcode, kind, _) in enumerate(kinds, 7):
        for i, n in enumerate([0, 16, 64, 256, 1024, 4096], 1):
            data = Repeat(b"*" if opcode == OP_TEXT else b"\xfe", n)
            cases.append(
                Case(
                    f"9.{sub}.{i}",
                    f"Send {count} {kind} messages of payload size {n}, one at a time, each after "
                    "the echo of the previous one (round-trip time).",
                    (SendMessage(opcode, data, await_echo=True),) * count,
                    (msg(data, opcode),) * count,
                    ECHO_OK,
                    heavy=True,
                    min_timeout=60,
                    notes="sequential: each message is sent after the previous echo",
                )
            )
    return cases


def _cat10() -> list[Case]:
    data = Repeat(b"*", 65536)
    return [
        Case(
            "10.1.1",
            "Send text message with payload of length 65536 in frames of 1300 payload octets.",
            (SendMessage(OP_TEXT, data, fragment=1300),),
            (msg(data),),
            ECHO_OK,
        )
    ]


#: The offer of categories 12 and 12.6: the one browsers send (any server that does
#: permessage-deflate accepts it).
BROWSER_OFFER = ("permessage-deflate; client_max_window_bits",)
#: The sizes of Autobahn's 12.x and 13.x cases.
PMD_SIZES = (16, 64, 256, 1024, 4096, 8192, 16384, 32768, 65536, 131072)


def _deflate(data: bytes, *, fin: bool = True) -> bytes:
    """A fresh raw deflate stream of ``data`` (sync-flushed; tail kept when ``fin`` is false)."""
    return Deflater(15, no_context_takeover=True).compress(data, fin=fin)


def _gen_kind(kind: str) -> int:
    return OP_TEXT if kind in TEXT_KINDS else OP_BINARY


def _cat12(quick: bool) -> list[Case]:
    count = 4 if quick else 10
    kinds = (
        (1, "chat", "chat JSON text"),
        (2, "records", "binary record"),
        (3, "prose", "English prose text"),
        (4, "random", "random binary"),
        (5, "verse", "verse text (UTF-8)"),
    )
    cases: list[Case] = []
    for sub, kind, words in kinds:
        sizes = [(size, "", 0, False) for size in PMD_SIZES] + [
            (16384, ", the deflated bytes in frames of 512", 512, False),
            (65536, ", deflated piece by piece in fragments of 4096", 4096, True),
        ]
        opcode = _gen_kind(kind)
        for i, (size, how, fragment, stream) in enumerate(sizes, 1):
            payloads = [Generated(kind, size, sub * 10_000 + i * 100 + j) for j in range(count)]
            steps = tuple(
                SendMessage(opcode, p, fragment=fragment, compressed=True, stream=stream)
                for p in payloads
            )
            cases.append(
                Case(
                    f"12.{sub}.{i}",
                    f"Send {count} compressed {words} messages of {size} bytes in a row{how}; "
                    "each echo must inflate to exactly what was sent.",
                    steps,
                    tuple(msg(p, opcode) for p in payloads),
                    ECHO_OK,
                    offers=BROWSER_OFFER,
                    min_timeout=10 if size >= 65536 else 0,
                )
            )
    return cases + _cat12_6()


def _cat12_6() -> list[Case]:
    hello = _deflate(HELLO)
    frag = _deflate(b"fragment1fragment2")
    first = _deflate(b"fragment1", fin=False)  # ends on a block boundary (sync flush)

    def after_echo(tag: str, bad: tuple[Frame, ...], desc: str, codes: frozenset[int]) -> Case:
        # As _after_echo: a good compressed message must be echoed, then the bad frame(s) must
        # fail the connection before the ping is answered.
        return Case(
            tag,
            desc,
            (one(text(hello, rsv=4), *bad, ping()),),
            (msg(HELLO),),
            Closing("server", codes, require_clean=False),
            non_strict=(),
            offers=("permessage-deflate",),
        )

    p1002 = frozenset({1002})
    return [
        after_echo(
            "12.6.1",
            (text(frag[:4], rsv=4, fin=False), cont(frag[4:], rsv=4)),
            "Send a compressed message, then a compressed fragmented one with RSV1 on its "
            "continuation frame too (RFC 7692 6.1: only the first frame), then ping.",
            p1002,
        ),
        after_echo(
            "12.6.2",
            (text(b"fragment1", fin=False), cont(b"fragment2", rsv=4)),
            "Send a compressed message, then an uncompressed fragmented one with RSV1 on its "
            "continuation frame only, then ping.",
            p1002,
        ),
        after_echo(
            "12.6.3",
            (ping(_deflate(b"ping payload"), rsv=4),),
            "Send a compressed message, then a ping with RSV1 (control frames are never "
            "compressed, RFC 7692 6.1), then ping.",
            p1002,
        ),
        after_echo(
            "12.6.4",
            (pong(_deflate(b"pong payload"), rsv=4),),
            "Send a compressed message, then a pong with RSV1, then ping.",
            p1002,
        ),
        Case(
            "12.6.5",
            "Offer no extension, then send a text message with RSV1 and a valid deflate payload: "
            "RSV1 means nothing unless permessage-deflate was negotiated.",
            (one(text(hello, rsv=4)),),
            (),
            FAIL_1002,
        ),
        after_echo(
            "12.6.6",
            (text(b"\xff\xff\xff\xff", rsv=4),),
            "Send a compressed message, then an RSV1 text frame that is not valid deflate data "
            "(reserved block type), then ping. RFC 7692 says to fail the connection and names no "
            "code: 1002 (wslab and websockets) and 1007 are both judged OK.",
            frozenset({1002, 1007}),
        ),
        after_echo(
            "12.6.7",
            (text(first, rsv=4, fin=False), cont(b"\xff\xff")),
            "Send a compressed message, then a compressed fragmented one whose continuation "
            "frame is not valid deflate data, then ping (1002 or 1007, as 12.6.6).",
            frozenset({1002, 1007}),
        ),
        Case(
            "12.6.8",
            "Send a compressed binary frame of about 64 KiB that inflates to 64 MiB (a "
            "decompression bomb, past any sane message limit): the server must fail the "
            "connection with 1009 without inflating it all.",
            (one(binary(Deflated(Repeat(b"\x00", 64 << 20)), rsv=4)),),
            (),
            FAIL_1009,
            offers=("permessage-deflate",),
            min_timeout=10,
        ),
    ]


def _traffic(seed: int) -> tuple[tuple[Step, ...], tuple[Ev, ...]]:
    """The echo traffic of every 13.x case: compressed messages of several kinds and sizes,
    fragmented both ways, repeated copies (context takeover, and the identical-copies check of
    server_no_context_takeover), an uncompressed message in between and an empty one."""
    chat = Generated("chat", 1024, seed)
    verse = Generated("verse", 1500, seed + 1)
    plan: list[tuple[int, Data, int, bool, bool]] = [  # opcode, payload, fragment, stream, deflate
        (OP_TEXT, Generated("chat", 16, seed + 2), 0, False, True),
        (OP_TEXT, chat, 0, False, True),
        (OP_TEXT, chat, 0, False, True),
        (OP_TEXT, chat, 0, False, True),
        (OP_BINARY, Generated("random", 2048, seed + 3), 0, False, True),
        (OP_TEXT, Generated("prose", 4096, seed + 4), 700, False, True),
        (OP_TEXT, Generated("chat", 256, seed + 5), 0, False, False),
        (OP_BINARY, Generated("records", 16384, seed + 6), 4096, True, True),
        (OP_TEXT, verse, 0, False, True),
        (OP_TEXT, verse, 0, False, True),
        (OP_TEXT, b"", 0, False, True),
        (OP_TEXT, Generated("chat", 40000, seed + 7), 0, False, True),
    ]
    steps = tuple(
        SendMessage(op, data, fragment=frag, compressed=deflate, stream=stream)
        for op, data, frag, stream, deflate in plan
    )
    return steps, tuple(msg(data, op) for op, data, *_ in plan)


def _cat13() -> list[Case]:
    pmd = "permessage-deflate"
    grid: list[tuple[int, list[tuple[str, ...]]]] = [
        (1, [(pmd,), (f"{pmd}; client_max_window_bits",)]),
        (
            2,
            [
                (f"{pmd}; client_no_context_takeover",),
                (f"{pmd}; client_no_context_takeover; client_max_window_bits",),
            ],
        ),
        (3, [(f"{pmd}; server_no_context_takeover",)]),
        (4, [(f"{pmd}; server_max_window_bits={bits}",) for bits in range(9, 16)]),
        (
            5,
            [
                (f"{pmd}; client_max_window_bits",),
                *((f"{pmd}; client_max_window_bits={bits}",) for bits in range(8, 16)),
            ],
        ),
        (
            6,
            [
                (f"{pmd}; server_no_context_takeover; client_no_context_takeover",),
                (f"{pmd}; server_max_window_bits=9; client_max_window_bits=9",),
                (
                    f"{pmd}; server_no_context_takeover; client_no_context_takeover; "
                    "server_max_window_bits=9; client_max_window_bits=9",
                ),
                (
                    f"{pmd}; server_no_context_takeover; server_max_window_bits=12; "
                    "client_max_window_bits",
                ),
                (
                    f"{pmd}; client_no_context_takeover; client_max_window_bits=10; "
                    "server_max_window_bits=15",
                ),
            ],
        ),
        (
            7,
            [
                (f"{pmd}; x_unknown_parameter, {pmd}; client_max_window_bits",),
                (f"{pmd}; server_no_context_takeover; server_no_context_takeover, {pmd}",),
                (f"{pmd}; server_max_window_bits=16, {pmd}; server_max_window_bits=10",),
                (f"{pmd}; client_max_window_bits=abc", f"{pmd}; server_no_context_takeover"),
                (f"x-webkit-deflate-frame, {pmd}; client_max_window_bits",),
                (
                    f"{pmd}; server_no_context_takeover; client_no_context_takeover; "
                    f"server_max_window_bits=9; client_max_window_bits=9, "
                    f"{pmd}; server_max_window_bits=12, {pmd}",
                ),
            ],
        ),
    ]
    cases = []
    for sub, offers in grid:
        for i, lines in enumerate(offers, 1):
            steps, expected = _traffic(sub * 1000 + i * 10)
            shown = " + ".join(repr(line) for line in lines)
            several = " (two header lines)" if len(lines) > 1 else ""
            cases.append(
                Case(
                    f"13.{sub}.{i}",
                    f"Offer {shown}{several}; the answer must accept an acceptable offer, then "
                    f"{len(expected)} compressed messages (16 B to 40 KB, fragmented, repeated, "
                    "one uncompressed) must echo exactly under the agreed parameters.",
                    steps,
                    expected,
                    ECHO_OK,
                    offers=lines,
                )
            )
    return cases


# -- selecting cases -----------------------------------------------------------------------------


def case_sort_key(case_id: str) -> tuple[int, ...]:
    """Numeric order of dotted ids ("6.10.1" after "6.9.2")."""
    return tuple(int(p) for p in case_id.split("."))


@functools.lru_cache(maxsize=2)
def _table(quick: bool) -> tuple[Case, ...]:
    cases = [
        *_cat1(),
        *_cat2(),
        *_cat3(),
        *_cat4(),
        *_cat5(),
        *_cat6(),
        *_cat7(),
        *_cat9(quick),
        *_cat10(),
        *_cat12(quick),
        *_cat13(),
    ]
    cases.sort(key=lambda c: case_sort_key(c.id))
    return tuple(cases)


def all_cases(quick: bool = False) -> tuple[Case, ...]:
    """Every case, in id order. ``quick`` shrinks category 9 (sizes /16, counts /10) and sends
    4 messages instead of 10 in each case of 12.1-12.5."""
    return _table(quick)


def _matches(case_id: str, pattern: str) -> bool:
    # A plain id also selects its sub-cases ("6.4" -> 6.4.1..6.4.4); wildcards use fnmatch.
    if any(ch in pattern for ch in "*?["):
        return fnmatchcase(case_id, pattern)
    return case_id == pattern or case_id.startswith(pattern + ".")


def select_cases(
    patterns: str | Iterable[str] | None = None,
    *,
    quick: bool = False,
    exclude: str | Iterable[str] | None = None,
) -> list[Case]:
    """The cases whose id matches any of ``patterns`` (``"1.*,5.*"``, ``["2.5", "6.4"]``).

    ``None`` selects every case. A pattern that matches nothing is an error
    (:class:`~wslab.foundation.errors.ConfigError`): a typo must not silently run zero cases.
    """
    cases = all_cases(quick)
    chosen: Sequence[Case]
    if patterns is None:
        chosen = cases
    else:
        pats = _split(patterns)
        for pat in pats:
            if not any(_matches(c.id, pat) for c in cases):
                raise ConfigError(f"no conformance case matches {pat!r}")
        chosen = [c for c in cases if any(_matches(c.id, p) for p in pats)]
    if exclude is not None:
        ex = _split(exclude)
        chosen = [c for c in chosen if not any(_matches(c.id, p) for p in ex)]
    return list(chosen)


def _split(patterns: str | Iterable[str]) -> list[str]:
    items = patterns.split(",") if isinstance(patterns, str) else list(patterns)
    return [p.strip() for p in items if p.strip()]


# The titles of 6.5-6.23 come from the vector table, so they cannot drift apart from it.
for _sub, (_title, _seqs) in enumerate(utf8_test_groups(), 5):
    SUBCATEGORIES[f"6.{_sub}"] = _title
