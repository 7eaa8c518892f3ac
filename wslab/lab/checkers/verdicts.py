"""How every exercise checker answers: one success line, or "Not yet" with a hint.

A hint names what is wrong and where to look (the RFC section, the field), never the expected
answer itself. Checkers of new exercises use these two helpers so that every chapter answers
in the same voice.
"""

from __future__ import annotations

__all__ = ["hint", "success"]


def hint(message: str) -> AssertionError:
    """The error a checker raises for a wrong answer: ``Not yet: <message>``."""
    return AssertionError(f"Not yet: {message}")


def success(message: str) -> None:
    """Print the checker's one-line verdict for a right answer."""
    print(f"✔ Correct! {message}")
