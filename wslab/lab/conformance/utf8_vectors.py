"""UTF-8 test vectors for conformance cases 6.5-6.23.

Markus Kuhn's "UTF-8 decoder capability and stress test" sections (boundary conditions,
malformed sequences, overlong forms, surrogates, non-characters), plus the prefixes of a valid
multi-byte string and the Unicode specials, in the order that fixes Autobahn's case numbers.
The validity flags are stated here by hand; the tests cross-check them against Python's strict
UTF-8 decoder.
"""

from __future__ import annotations

__all__ = ["KOSME", "utf8_test_groups"]

KOSME = bytes.fromhex("cebae1bdb9cf83cebcceb5")  # "κόσμε", the classic UTF-8 sample


def utf8_test_groups() -> list[tuple[str, list[tuple[bool, bytes]]]]:
    """Test vectors for 6.5-6.23: Markus Kuhn's UTF-8 decoder stress test plus a few more.

    Each entry is (subcategory title, [(is valid UTF-8, bytes), ...]); the order fixes the case
    numbers 6.5.x, 6.6.x, ... exactly as in Autobahn.
    """
    h = bytes.fromhex
    groups: list[tuple[str, list[tuple[bool, bytes]]]] = []
    groups.append(
        (
            "Some valid UTF-8 sequences",
            [
                (True, b"hello$world"),
                (True, b"hello" + "\u00a2".encode() + b"world"),
                (True, b"hello" + "\u20ac".encode() + b"world"),
                (True, b"hello" + "\U00024b62".encode() + b"world"),
                (True, KOSME),
            ],
        )
    )
    # Every prefix of a multi-byte string: valid exactly when it ends on a code point boundary.
    boundaries = {2, 5, 7, 9, 11}
    groups.append(
        (
            "All prefixes of a valid UTF-8 string that contains multi-byte code points",
            [(i in boundaries, KOSME[:i]) for i in range(1, len(KOSME) + 1)],
        )
    )
    groups.append(
        (
            "First possible sequence of a certain length",
            [(True, h("00")), (True, h("c280")), (True, h("e0a080")), (True, h("f0908080"))],
        )
    )
    groups.append(
        (
            "First possible sequence length 5/6 (invalid codepoints)",
            [(False, h("f888808080")), (False, h("fc8480808080"))],
        )
    )
    groups.append(
        (
            "Last possible sequence of a certain length",
            [(True, h("7f")), (True, h("dfbf")), (True, h("efbfbf")), (True, h("f48fbfbf"))],
        )
    )
    groups.append(
        (
            "Last possible sequence length 4/5/6 (invalid codepoints)",
            [(False, h("f7bfbfbf")), (False, h("fbbfbfbfbf")), (False, h("fdbfbfbfbfbf"))],
        )
    )
    groups.append(
        (
            "Other boundary conditions",
            [
                (True, h("ed9fbf")),
                (True, h("ee8080")),
                (True, h("efbfbd")),
                (True, h("f48fbfbf")),
                (False, h("f4908080")),
            ],
        )
    )
    groups.append(
        (
            "Unexpected continuation bytes",
            [
                (False, h(x))
                for x in ("80", "bf", "80bf", "80bf80", "80bf80bf", "80bf80bf80", "80bf80bf80bf")
            ]
            + [(False, bytes(range(0x80, 0xBF)))],
        )
    )
    lonely = []
    for lo, hi in ((0xC0, 0xDF), (0xE0, 0xEF), (0xF0, 0xF7), (0xF8, 0xFB), (0xFC, 0xFD)):
        lonely.append((False, b"".join(bytes([b, 0x20]) for b in range(lo, hi))))
    groups.append(("Lonely start characters", lonely))
    missing = [
        h(x)
        for x in (
            "c0", "e080", "f08080", "f8808080", "fc80808080",
            "df", "efbf", "f7bfbf", "fbbfbfbf", "fdbfbfbfbf",
        )
    ]  # fmt: skip
    groups.append(("Sequences with last continuation byte missing", [(False, x) for x in missing]))
    groups.append(("Concatenation of incomplete sequences", [(False, b"".join(missing))]))
    groups.append(
        ("Impossible bytes", [(False, h("fe")), (False, h("ff")), (False, h("fefeffff"))])
    )
    groups.append(
        (
            "Examples of an overlong ASCII character",
            [(False, h(x)) for x in ("c0af", "e080af", "f08080af", "f8808080af", "fc80808080af")],
        )
    )
    groups.append(
        (
            "Maximum overlong sequences",
            [(False, h(x)) for x in ("c1bf", "e09fbf", "f08fbfbf", "f887bfbfbf", "fc83bfbfbfbf")],
        )
    )
    groups.append(
        (
            "Overlong representation of the NUL character",
            [(False, h(x)) for x in ("c080", "e08080", "f0808080", "f880808080", "fc8080808080")],
        )
    )
    highs = ["eda080", "edadbf", "edae80", "edafbf"]
    lows = ["edb080", "edbe80", "edbfbf"]
    groups.append(("Single UTF-16 surrogates", [(False, h(x)) for x in [*highs, *lows]]))
    groups.append(
        (
            "Paired UTF-16 surrogates",
            [(False, h(a + b)) for a in highs for b in ("edb080", "edbfbf")],
        )
    )
    nonchars = [(True, h("efbfbe")), (True, h("efbfbf"))]
    for lead in ("f0", "f1", "f2", "f3", "f4"):
        for second in ("8f", "9f", "af", "bf"):
            if lead == "f4" and second != "8f":
                continue  # above U+10FFFF: not a code point at all
            if lead == "f0" and second == "8f":
                continue  # overlong form of U+FFFE/U+FFFF
            for last in ("be", "bf"):
                nonchars.append((True, h(lead + second + "bf" + last)))
    groups.append(("Non-character code points (valid UTF-8)", nonchars))
    groups.append(
        (
            "Unicode specials (i.e. replacement char)",
            [(True, h(f"efbf{x}")) for x in ("b9", "ba", "bb", "bc", "bd", "be", "bf")],
        )
    )
    return groups
