"""Chapter 5 (scaling): how many hubs, and which hubs the broker must reach."""

from __future__ import annotations

import math
from typing import Any


def hubs_needed(users: int, capacity: int) -> int:
    """The fewest hubs that hold ``users`` even after any one of them stops."""
    # ceil: a hub runs or it doesn't; + 1: after losing one, the others still hold everyone
    return math.ceil(users / capacity) + 1


def must_receive(origin: str, room: str, presence: dict[str, Any]) -> set[str]:
    """The hubs other than ``origin`` with at least one member of ``room`` connected."""
    return {hub for hub, rooms in presence.items() if hub != origin and len(rooms.get(room, ())) > 0}
