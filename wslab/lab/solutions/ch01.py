"""Chapter 1 (frames): a frame by hand, a header's size, a compressed payload."""

from __future__ import annotations

import struct
import zlib


def my_frame() -> bytes:
    """The masked client text frame carrying ``"wslab"`` with the key ``01 02 03 04``."""
    text = b"wslab"
    key = bytes([1, 2, 3, 4])
    header = struct.pack("!BB", 0x80 | 0x1, 0x80 | len(text))  # FIN + TEXT, MASK + length
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(text))
    return header + key + masked


def header_size(payload_length: int, masked: bool) -> int:
    """The bytes of a frame header for a payload of ``payload_length`` bytes (§5.2)."""
    if payload_length < 126:
        size = 2  # the length fits in the 7-bit field
    elif payload_length < 1 << 16:
        size = 2 + 2  # escape 126 + a 16-bit length
    else:
        size = 2 + 8  # escape 127 + a 64-bit length
    return size + (4 if masked else 0)  # the masking key


def compress_message(text: str) -> bytes:
    """The payload of a permessage-deflate frame for ``text`` (RFC 7692 §7.2.1)."""
    compressor = zlib.compressobj(wbits=-15)  # negative wbits: raw DEFLATE (RFC 1951)
    data = compressor.compress(text.encode("utf-8")) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return data[:-4]  # the sync flush's 00 00 ff ff, which the receiver appends again
