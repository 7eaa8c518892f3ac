"""Chapter 3 (heartbeats): settings for a phone on a bad network."""

from __future__ import annotations

#: The most frequent pinging allowed (2 a minute).
PING_INTERVAL = 30.0
#: Well above the slowest healthy round trip with its jitter, and 30 + 10 <= 45.
PONG_TIMEOUT = 10.0

#: The live hub: pings at most 3 a second (0.5 s apart)...
LIVE_PING_INTERVAL = 0.5
#: ...and a timeout above the slowest jittery round trip (2 x 0.6 s), with 0.5 + 1.6 <= 2.5.
LIVE_PONG_TIMEOUT = 1.6
