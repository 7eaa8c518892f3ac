"""Hub-wide traffic totals summed from the per-connection counters, for ``/metrics``.

Each connection already counts what crosses it in plain ints (:class:`ConnectionStats`: messages
and bytes; on wslab's engine the protocol also counts frames). Counting the same again into
metric objects on every frame would double the cost of the hot path, so the totals are computed
only when read: what the closed connections added up to (folded in once, when each closes) plus
the current counts of the open ones. Reading costs one pass over the open connections.

Per engine
    ``messages_in``/``messages_out`` are complete data messages on both engines. ``bytes_in`` is
    the bytes read from the socket on both. ``bytes_out`` is the bytes of data frames written on
    wslab's engine and the data payloads handed to the library on ``websockets`` (which keeps the
    frames to itself). Frames are counted on wslab's engine only: on ``websockets``
    :meth:`TrafficTotals.frames` is ``None``.
"""

from __future__ import annotations

from .connection import Connection

__all__ = ["FIELDS", "TrafficTotals"]

#: The totals kept, in the order :meth:`TrafficTotals.snapshot` returns them.
FIELDS: tuple[str, ...] = (
    "messages_in",
    "messages_out",
    "bytes_in",
    "bytes_out",
    "frames_in",
    "frames_out",
)


def _counts(connection: Connection) -> tuple[int, int, int, int, int, int]:
    stats = connection.stats
    frames = connection.frame_counts() or (0, 0)
    return (
        stats.messages_in,
        stats.messages_out,
        stats.bytes_in,
        stats.bytes_out,
        frames[0],
        frames[1],
    )


class TrafficTotals:
    """Totals over every connection the hub served: the closed ones plus the open ones.

    :meth:`track` a connection when it opens and :meth:`fold` it once it has closed (its final
    counts move into the closed totals in the same step, so nothing is counted twice or lost).
    The open set holds only connections that are tracked and not yet folded, so it is bounded
    by the server's connection limit.
    """

    def __init__(self) -> None:
        self._open: dict[str, Connection] = {}
        self._closed = [0] * len(FIELDS)

    def track(self, connection: Connection) -> None:
        """Count ``connection`` from now on (its counts so far included)."""
        self._open[connection.id] = connection

    def fold(self, connection: Connection) -> None:
        """``connection`` has closed: add its final counts to the closed totals."""
        if self._open.pop(connection.id, None) is None:
            return
        closed = self._closed
        for i, n in enumerate(_counts(connection)):
            closed[i] += n

    def snapshot(self) -> dict[str, int]:
        """Every total now, as ``{field: value}`` (see :data:`FIELDS`)."""
        totals = list(self._closed)
        for connection in tuple(self._open.values()):
            for i, n in enumerate(_counts(connection)):
                totals[i] += n
        return dict(zip(FIELDS, totals, strict=True))

    def total(self, field: str) -> int:
        """One total now (``"bytes_in"``...)."""
        return self.snapshot()[field]

    def __len__(self) -> int:
        """Connections being counted that have not closed yet."""
        return len(self._open)
