"""Chapter 2 (the state machine): each scenario's states and the close code reported."""

from __future__ import annotations

FULL = ["CONNECTING", "OPEN", "CLOSING", "CLOSED"]


def predictions() -> dict[str, tuple[list[str], int]]:
    """The life of the named side in every scenario of the exercise."""
    return {
        "client_says_goodbye": (FULL, 1000),  # the code of the echo it received
        "hub_shuts_down": (FULL, 1001),
        "cable_pulled": (["CONNECTING", "OPEN", "CLOSED"], 1006),  # no close frame, no CLOSING
        "upgrade_refused": (["CONNECTING", "CLOSED"], 1006),  # it never opened
        "close_without_a_code": (FULL, 1005),  # a close frame with no status (never on the wire)
        "both_close_at_once": (FULL, 1001),  # each end reports the code it *received*
    }
