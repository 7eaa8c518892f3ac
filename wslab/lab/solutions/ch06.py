"""Chapter 6 (security): rate limits that let people through and stop scripts."""

from __future__ import annotations


def rate_settings() -> dict[str, float]:
    """Above a heated discussion's 4/s, a burst for quick replies, a quick end for floods."""
    return {
        "rate_messages_per_second": 5,
        "rate_burst": 10,
        "rate_flood_close_after": 20,
    }


def live_rate_settings() -> dict[str, float]:
    """The same settings hold live: the burst covers a jitter-bunched burst of replies."""
    return rate_settings()
