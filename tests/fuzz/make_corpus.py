"""Write the seed corpus: a few valid and nearly valid inputs per target.

    python tests/fuzz/make_corpus.py

Files are named by the SHA-1 of their content, as libFuzzer names its own, so rerunning this
adds nothing twice. Inputs a long fuzzing run found interesting can be copied in the same way
(``libFuzzer -merge=1 tests/fuzz/corpus/T WORKDIR`` keeps only the ones that add coverage).
"""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path

from wslab.foundation.codes import Opcode
from wslab.foundation.frames import Frame, encode_frame

CORPUS = Path(__file__).resolve().parent / "corpus"
KEY = b"\x11\x22\x33\x44"


def _deflated(text: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-15)
    return (compressor.compress(text) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


def frame_seeds() -> list[bytes]:
    msgs = [
        [Frame(Opcode.TEXT, b"hello")],
        [Frame(Opcode.BINARY, bytes(range(200)))],
        [Frame(Opcode.TEXT, "h\xe9\u20ac".encode(), fin=False), Frame(Opcode.PING, b"!"),
         Frame(Opcode.CONT, b"lo", fin=True)],
        [Frame(Opcode.CONT, b"", fin=False)] * 3,
        [Frame(Opcode.TEXT, b"a", fin=False), *[Frame(Opcode.CONT, b"", fin=False)] * 5],
        [Frame(Opcode.PING, b"x" * 125), Frame(Opcode.PONG, b"")],
        [Frame(Opcode.CLOSE, b"\x03\xe8bye")],
        [Frame(Opcode.CLOSE, b"\x03")],
        [Frame(Opcode.TEXT, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80")],
        [Frame(Opcode.TEXT, b"x" * 7000)],
        [Frame(Opcode.TEXT, _deflated(b"compress me " * 40), rsv1=True)],
    ]
    seeds = []
    for frames in msgs:
        # Option byte: bit 0 = server role (the peer masks), bit 4 = deflate negotiated.
        for opts in (0x00, 0x01, 0x03, 0x11):
            key = KEY if opts & 1 else None
            stream = b"".join(encode_frame(f, key) for f in frames)
            seeds.append(bytes([opts, 0]) + stream)
        seeds.append(bytes([0x05, 3]) + b"".join(encode_frame(f, KEY) for f in frames))
    return seeds


def close_seeds() -> list[bytes]:
    return [b"", b"\x03\xe8", b"\x03\xe8bye", b"\x03\xed", b"\x0f\xa0ok", b"\x03\xe8\xff",
            b"\x03", b"\x03\xe9" + "\u20ac".encode() * 41]  # fmt: skip


UPGRADE = (
    b"GET /ws?room=lobby HTTP/1.1\r\nHost: localhost:8765\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\nOrigin: http://localhost:8765\r\n"
    b"Sec-WebSocket-Protocol: chat, superchat\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
)


def request_seeds() -> list[bytes]:
    heads = [
        UPGRADE,
        UPGRADE + b"\x81\x85" + KEY + b"hello",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        b"HEAD /metrics HTTP/1.0\r\n\r\n",
        b"POST /ws HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\nHost: x\n\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
        b"GET /%zz?a=1&a=2&b HTTP/1.1\r\nHost : x\r\n\r\n",
        UPGRADE.replace(b"13", b"8"),
        UPGRADE.replace(b"GET", b"PUT"),
    ]
    return [b"U\x00" + h for h in heads] + [b"G\x01" + heads[0], b"G\x05" + heads[4]]


def response_seeds() -> list[bytes]:
    ok = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    )
    return [b"\x00\x00" + ok, b"\x00\x03" + ok, b"\x00\x00HTTP/1.1 503 Busy\r\nRetry-After: 1\r\n\r\n",
            b"\x00\x00HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n\r\n"]  # fmt: skip


MESSAGES: list[object] = [
    {"type": "auth", "token": "abc.def.ghi", "ref": 1},
    {"type": "room:join", "room": "lobby", "ref": "r1"},
    {"type": "room:leave", "room": "general"},
    {"type": "chat:message", "room": "lobby", "content": "hello \u20ac", "ref": 7},
    {"type": "chat:message", "to_user": "bob", "content": "psst"},
    {"type": "chat:typing", "room": "lobby", "is_typing": True},
    {"type": "chat:history", "room": "lobby", "limit": 50, "before_seq": 10},
    {"type": "chat:history", "since_seq": 9223372036854775807},
    {"type": "presence:list", "room": "lobby", "version": "1.0"},
    {"type": "admin:broadcast", "content": "maintenance"},
    {"type": "nope", "ref": "x" * 128},
    [1, 2, 3],
]


def router_seeds() -> list[bytes]:
    seeds = [json.dumps(m).encode() for m in MESSAGES]
    return [*seeds, b"{", b"[[[[[[[[[[", b'{"type": 5}', b"\x00binary", b'"\\ud800"']


def validation_seeds() -> list[bytes]:
    from wslab.application.validation import SCHEMAS

    types = sorted(SCHEMAS)
    seeds = []
    for message in MESSAGES:
        if isinstance(message, dict) and message["type"] in types:
            seeds.append(bytes([types.index(message["type"])]) + json.dumps(message).encode())
    return seeds


SEEDS = {
    "frames": frame_seeds,
    "frame_parser": frame_seeds,
    "close_payload": close_seeds,
    "http_request": request_seeds,
    "http_response": response_seeds,
    "router": router_seeds,
    "validation": validation_seeds,
}


def main() -> None:
    for target, make in SEEDS.items():
        folder = CORPUS / target
        folder.mkdir(parents=True, exist_ok=True)
        for seed in make():
            (folder / hashlib.sha1(seed).hexdigest()).write_bytes(seed)


if __name__ == "__main__":
    main()
