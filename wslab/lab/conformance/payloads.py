"""Deterministic payloads for the compression cases (12.x, 13.x): seeded, so every run is equal.

Autobahn's category 12 compresses real files (a JSON dump, a bitmap, Goethe's Faust, ...); this
runner ships no corpus, so each kind is generated from a seed with the same character:

- ``chat``: chat messages as JSON lines, few distinct words (highly compressible text);
- ``records``: packed binary sensor records with slowly changing fields (compressible binary);
- ``prose``: English-like prose, Canterbury-corpus-like (ordinary text);
- ``random``: random bytes (incompressible: deflate output is larger than its input);
- ``verse``: Hamlet-like verse with speaker names and non-ASCII punctuation (UTF-8 text).

:func:`generate` returns exactly ``length`` bytes; text kinds are valid UTF-8 at every length
(cut at a character boundary and padded with spaces).
"""

from __future__ import annotations

import functools
import json
import random
import struct

__all__ = ["KINDS", "TEXT_KINDS", "generate"]

_USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")
_ROOMS = ("lobby", "random", "ops", "help")
_WORDS_TEXT = (
    "the of and to in is that it was for on are with as his they at be this from have or by "
    "one had not but what all were when we there can an your which their said if do will each "
    "about how up out them then she many some so these would other into has more her two like "
    "him see time could no make than first been its who now people my made over did down only "
    "way find use may water long little very after words called just where most know pilgrim "
    "tale knight miller reeve cook squire merchant clerk lawyer parson pardoner wife road inn "
    "spring rain april shower sweet root vein flower wind breath wood field young sun ram half"
)
_WORDS = tuple(_WORDS_TEXT.split())
_VERSE_TEXT = (
    "to be or not that is question whether tis nobler mind suffer slings arrows outrageous "
    "fortune take arms against sea troubles opposing end them die sleep no more say we heart "
    "ache thousand natural shocks flesh heir consummation devoutly wished perchance dream ay "
    "there rub death what dreams may come when have shuffled off mortal coil must give pause"
)
_VERSE_WORDS = tuple(_VERSE_TEXT.split())
_SPEAKERS = ("HAMLET", "OPHELIA", "HORATIO", "POLONIUS", "GERTRUDE", "CLAUDIUS", "LAERTES")
# Non-ASCII punctuation of modern editions: 2- and 3-byte UTF-8 sequences inside the text.
_PUNCT = ("’", "—", "…", "; ", ", ", "! ", "? ", "é")

KINDS = ("chat", "records", "prose", "random", "verse")
TEXT_KINDS = frozenset({"chat", "prose", "verse"})


@functools.lru_cache(maxsize=128)
def generate(kind: str, length: int, seed: int) -> bytes:
    """``length`` bytes of payload ``kind`` (one of :data:`KINDS`), the same for the same seed.

    Cached (at most 128 payloads of at most a few hundred KiB): a case needs its payloads once
    to send and once to judge.
    """
    rng = random.Random(f"{kind}:{length}:{seed}")
    if kind == "random":
        return rng.randbytes(length)
    if kind == "records":
        return _records(rng, length)
    make = {"chat": _chat_line, "prose": _prose_sentence, "verse": _verse_line}[kind]
    parts: list[str] = []
    size = 0
    while size < length:
        part = make(rng)
        parts.append(part)
        size += len(part.encode("utf-8"))
    return _fit("".join(parts), length)


def _fit(text: str, length: int) -> bytes:
    """Exactly ``length`` bytes of UTF-8: cut at a character boundary, padded with spaces."""
    data = text.encode("utf-8")[:length]
    data = data.decode("utf-8", errors="ignore").encode("utf-8")
    return data + b" " * (length - len(data))


def _chat_line(rng: random.Random) -> str:
    words = " ".join(rng.choice(_WORDS[:40]) for _ in range(rng.randint(3, 12)))
    message = {
        "type": "message",
        "room": rng.choice(_ROOMS),
        "user": rng.choice(_USERS),
        "seq": rng.randint(1, 99999),
        "text": words,
    }
    return json.dumps(message, separators=(",", ":")) + "\n"


def _prose_sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 20))]
    words[0] = words[0].capitalize()
    return " ".join(words) + rng.choice((". ", ". ", ", and ", "; ", ".\n"))


def _verse_line(rng: random.Random) -> str:
    line = " ".join(rng.choice(_VERSE_WORDS) for _ in range(rng.randint(5, 9)))
    line = line.capitalize() + rng.choice(_PUNCT)
    if rng.random() < 0.2:
        return f"\n{rng.choice(_SPEAKERS)}.\n  {line}\n"
    return f"  {line}\n"


def _records(rng: random.Random, length: int) -> bytes:
    # 16-byte records: sequence number, timestamp in ms, sensor id, reading (a random walk).
    out = bytearray()
    ts, value = 1_700_000_000_000, 20.0
    seq = 0
    while len(out) < length:
        seq += 1
        ts += rng.randint(90, 110)
        value += rng.uniform(-0.05, 0.05)
        out += struct.pack("<IQhh", seq, ts, rng.randint(0, 7), int(value * 100))
    return bytes(out[:length])
