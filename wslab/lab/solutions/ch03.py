"""Chapter 3 (heartbeats): settings for a phone on a bad network."""

from __future__ import annotations

#: The most frequent pinging allowed (2 a minute).
PING_INTERVAL = 30.0
#: Well above the slowest healthy round trip with its jitter, and 30 + 10 <= 45.
PONG_TIMEOUT = 10.0
