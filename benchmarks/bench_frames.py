"""Frame codec speed: wslab's engine against the ``websockets`` library, side by side.

For each case — a small text frame (20 bytes), a 64 KiB and a 16 MiB binary frame, all masked as
a client sends them — it measures, in the same process and with the repetitions of the two
libraries interleaved (so a noisy neighbour hurts both alike):

- **encode**: a client frame with a fresh random masking key.
  wslab ``encode_frame(Frame(...), os.urandom(4))``; websockets ``Frame(...).serialize(mask=True)``.
- **parse**: the server side, one persistent parser per library as on a connection, fed one
  whole frame per call. wslab ``FrameParser(require_mask=True).feed(data)``; websockets
  ``Frame.parse(reader.read_exact, mask=True)`` driven by a ``StreamReader`` (as its protocol does).
- **parse, 64 KiB reads** (large frames only): the same frame arriving in 64 KiB pieces, one
  ``feed`` per piece, the way a socket delivers it.

It prints the median time per frame of each library and the ratio of throughputs
(wslab / websockets: above 1.0 wslab is faster)::

    python benchmarks/bench_frames.py [--quick] [--repeat R] [--min-time S]

A measurement, not a test: the numbers depend on the machine, so nothing asserts on them.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import timeit
from collections.abc import Callable
from dataclasses import dataclass

import websockets
from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode as WsOpcode
from websockets.streams import StreamReader

from wslab.foundation import Frame, FrameParser, Opcode, encode_frame
from wslab.foundation import frames as wslab_frames

KIB = 1024
MIB = 1024 * KIB
READ_SIZE = 64 * KIB  # what one socket read typically hands the parser

# Targets: wslab's throughput as a fraction of websockets'.
TARGET_SMALL = 0.7
TARGET_LARGE = 1.0


@dataclass(frozen=True)
class Case:
    """One payload: its label, opcode, bytes and the target ratio."""

    label: str
    opcode: int
    payload: bytes
    target: float

    @property
    def large(self) -> bool:
        return len(self.payload) > READ_SIZE // 2


def make_cases() -> list[Case]:
    text = b"hello from wslab! :)"  # 20 bytes: a typical chat-sized frame
    rng = os.urandom  # incompressible binary, like a file transfer
    return [
        Case("text 20 B", Opcode.TEXT, text, TARGET_SMALL),
        Case("binary 64 KiB", Opcode.BINARY, rng(64 * KIB), TARGET_LARGE),
        Case("binary 16 MiB", Opcode.BINARY, rng(16 * MIB), TARGET_LARGE),
    ]


# -- the operations, one closure per library ------------------------------------------------------


def wslab_encode(case: Case) -> Callable[[], object]:
    frame = Frame(Opcode(case.opcode), case.payload)
    urandom = os.urandom
    return lambda: encode_frame(frame, urandom(4))


def websockets_encode(case: Case) -> Callable[[], object]:
    frame = WsFrame(WsOpcode(case.opcode), case.payload)
    return lambda: frame.serialize(mask=True)


def wslab_parse(case: Case, pieces: list[bytes]) -> Callable[[], object]:
    parser = FrameParser(require_mask=True)

    def run() -> object:
        frames = []
        for piece in pieces:
            frames += parser.feed(piece)
        return frames[0]

    return run


def websockets_parse(case: Case, pieces: list[bytes]) -> Callable[[], object]:
    reader = StreamReader()
    parse = WsFrame.parse

    def run() -> object:
        # As websockets' protocol does: feed the bytes, then resume the parsing coroutine.
        gen = parse(reader.read_exact, mask=True, max_size=None)
        for piece in pieces:
            reader.feed_data(piece)
            try:
                next(gen)
            except StopIteration as done:
                return done.value
        raise AssertionError("frame incomplete")  # pragma: no cover

    return run


def wire_bytes(case: Case) -> bytes:
    return encode_frame(Frame(Opcode(case.opcode), case.payload), os.urandom(4))


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


# -- measuring -------------------------------------------------------------------------------------


def check_same_results(case: Case) -> None:
    """Both codecs must agree before their speed means anything."""
    ours = wire_bytes(case)
    theirs = websockets_encode(case)()
    assert wslab_parse(case, [theirs])().payload == case.payload  # type: ignore[attr-defined]
    assert websockets_parse(case, [ours])().data == case.payload  # type: ignore[attr-defined]


def calibrate(fn: Callable[[], object], min_time: float) -> int:
    """Calls per sample so that one sample lasts at least ``min_time`` seconds."""
    number = 1
    while True:
        elapsed = timeit.Timer(fn).timeit(number)
        if elapsed >= min_time or number >= 1 << 20:
            return number
        number = max(number * 2, int(number * min_time / max(elapsed, 1e-9) * 1.2))


def compare(
    ours: Callable[[], object], theirs: Callable[[], object], repeat: int, min_time: float
) -> tuple[float, float]:
    """Median seconds per call of each, their samples interleaved (ABBA order)."""
    n_ours, n_theirs = calibrate(ours, min_time), calibrate(theirs, min_time)
    samples: dict[str, list[float]] = {"ours": [], "theirs": []}
    for i in range(repeat):
        order = [("ours", ours, n_ours), ("theirs", theirs, n_theirs)]
        if i % 2:
            order.reverse()
        for name, fn, number in order:
            samples[name].append(timeit.Timer(fn).timeit(number) / number)
    return statistics.median(samples["ours"]), statistics.median(samples["theirs"])


@dataclass(frozen=True)
class Row:
    case: Case
    operation: str
    ours: float
    theirs: float

    @property
    def ratio(self) -> float:
        """Throughput of wslab over throughput of websockets (time theirs / time ours)."""
        return self.theirs / self.ours


def run(repeat: int, min_time: float) -> list[Row]:
    rows = []
    for case in make_cases():
        check_same_results(case)
        data = wire_bytes(case)
        operations: list[tuple[str, Callable[[], object], Callable[[], object]]] = [
            ("encode", wslab_encode(case), websockets_encode(case)),
            ("parse", wslab_parse(case, [data]), websockets_parse(case, [data])),
        ]
        if case.large:
            pieces = chunks(data, READ_SIZE)
            operations.append(
                (
                    "parse, 64 KiB reads",
                    wslab_parse(case, pieces),
                    websockets_parse(case, pieces),
                )
            )
        for operation, ours, theirs in operations:
            t_ours, t_theirs = compare(ours, theirs, repeat, min_time)
            rows.append(Row(case, operation, t_ours, t_theirs))
            print(".", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return rows


def format_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} µs"
    return f"{seconds * 1e3:.2f} ms"


def report(rows: list[Row]) -> str:
    header = (
        f"| {'case':<14} | {'operation':<20} | {'wslab':>10} | {'websockets':>10} | "
        f"{'wslab MB/s':>10} | {'ratio':>6} | {'target':>6} | met |"
    )
    lines = [header, "|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|"]
    for row in rows:
        size = len(row.case.payload)
        mbps = size / row.ours / 1e6
        met = "yes" if row.ratio >= row.case.target else "no"
        lines.append(
            f"| {row.case.label:<14} | {row.operation:<20} | {format_time(row.ours):>10} | "
            f"{format_time(row.theirs):>10} | {mbps:>10.1f} | {row.ratio:>5.2f}x | "
            f"{row.case.target:>5.1f}x | {met:<3} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter samples (~10 s)")
    parser.add_argument("--repeat", type=int, help="samples per library and operation")
    parser.add_argument("--min-time", type=float, help="seconds one sample lasts at least")
    args = parser.parse_args()
    repeat = args.repeat or (5 if args.quick else 15)
    min_time = args.min_time or (0.01 if args.quick else 0.05)

    speedups = "C" if wslab_frames._apply_mask_c is not None else "pure Python"
    print(
        f"Python {platform.python_version()} on {platform.machine()}, "
        f"websockets {websockets.__version__}, wslab masking: {speedups}; "
        f"median of {repeat} interleaved samples of >= {min_time * 1e3:.0f} ms each"
    )
    rows = run(repeat, min_time)
    print(report(rows))
    print("ratio = throughput of wslab / throughput of websockets (> 1: wslab is faster)")


if __name__ == "__main__":
    main()
