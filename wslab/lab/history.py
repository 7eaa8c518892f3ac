"""A history checker for chat experiments, after Jepsen's Maelstrom: record what happened, then judge it.

An experiment (a load run, a test, a notebook under faults) records what its clients saw:

- **sends** — ``client, ref, room, content``: what each client asked the hub to store;
- **acks** — ``client, ref, message_id, seq``: the hub's promise that it stored it;
- **deliveries** — ``client, room, message_id, seq[, content]``: each ``chat:message`` a client got,
  in the order it got them;
- **history** — ``room, message_id, seq[, content], complete``: a ``chat:history`` fetched at the end;
- **presence** — ``client, room, users``: the last ``presence:list`` each client saw of a room.

:func:`check_history` takes these as pandas DataFrames or lists of dicts (or a
:class:`HistoryRecorder`, which collects them) and returns a :class:`HistoryVerdict`: valid or
invalid, with every counterexample as a row of a DataFrame. What it finds (``kind``):

``lost``
    an acknowledged message missing from the final history of its room (at or after the
    history's first ``seq``), or from a receiver's deliveries inside the ``seq`` window that
    receiver observed in that room;
``duplicate``
    a message delivered twice to the same client, or listed twice in a history;
``reordered``
    a client got a room's messages out of ``seq`` order;
``seq_gap``
    a history skips ``seq`` numbers (stored messages have no gaps; ``complete: false`` admits it);
``complete_lied``
    a history said ``complete: true`` yet had a gap or lacked an acknowledged message;
``seq_conflict``
    one ``seq`` given to two messages of a room, or a message seen with two ``seq``;
``presence_diverged``
    the clients' last presence snapshots of a room disagree (or differ from the expected set).

Bounds: a recorder keeps at most ``max_events`` records and counts what it had to drop; a check
of a recorder that dropped records refuses (a partial history proves nothing either way).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from wslab.foundation.errors import ConfigError

__all__ = ["ANOMALY_KINDS", "HistoryRecorder", "HistoryVerdict", "check_history"]

#: Every kind of counterexample :func:`check_history` reports.
ANOMALY_KINDS = (
    "lost",
    "duplicate",
    "reordered",
    "seq_gap",
    "complete_lied",
    "seq_conflict",
    "presence_diverged",
)
_ANOMALY_COLUMNS = ["kind", "room", "client", "message_id", "seq", "detail"]
_COLUMNS: Mapping[str, list[str]] = {
    "sends": ["client", "ref", "room", "content"],
    "acks": ["client", "ref", "message_id", "seq"],
    "deliveries": ["client", "room", "message_id", "seq"],
    "history": ["room", "message_id", "seq", "complete"],
    "presence": ["client", "room", "users"],
}


class HistoryRecorder:
    """Collects an experiment's sends, acks, deliveries, histories and presence snapshots.

    ::

        rec = HistoryRecorder()
        rec.send("alice", ref, "lobby", "hi")
        rec.ack("alice", ref, message_id, seq)
        rec.deliver("bob", "lobby", message_id, seq, "hi")
        rec.history("lobby", reply["messages"], complete=reply["complete"])
        rec.presence("bob", "lobby", ["alice", "bob"])
        check_history(rec)

    Plain methods and plain values, so load workers, tests and notebooks all feed it the same way.
    """

    def __init__(self, max_events: int = 1_000_000) -> None:
        if max_events < 1:
            raise ConfigError("max_events must be at least 1")
        self.max_events = max_events
        self.dropped = 0
        self._count = 0
        self._rows: dict[str, list[dict[str, Any]]] = {name: [] for name in _COLUMNS}

    def _add(self, table: str, row: dict[str, Any]) -> None:
        if self._count >= self.max_events:
            self.dropped += 1
            return
        self._count += 1
        self._rows[table].append(row)

    def send(self, client: str, ref: str, room: str, content: str) -> None:
        """``client`` sent ``chat:message`` with this ``ref`` to ``room``."""
        self._add("sends", {"client": client, "ref": ref, "room": room, "content": content})

    def ack(self, client: str, ref: str, message_id: str, seq: int) -> None:
        """The hub acknowledged ``client``'s ``ref`` as stored with ``message_id`` and ``seq``."""
        self._add("acks", {"client": client, "ref": ref, "message_id": message_id, "seq": seq})

    def deliver(
        self, client: str, room: str, message_id: str, seq: int, content: str | None = None
    ) -> None:
        """``client`` received ``chat:message`` ``message_id`` (call in the order received)."""
        row = {"client": client, "room": room, "message_id": message_id, "seq": seq}
        self._add("deliveries", {**row, "content": content})

    def history(self, room: str, messages: Iterable[Any], *, complete: bool) -> None:
        """A ``chat:history`` reply: its messages (dicts or ``ChatMessage`` events) and ``complete``."""
        for message in messages:
            item = message if isinstance(message, Mapping) else vars(message)
            get = item.get
            self._add(
                "history",
                {
                    "room": room,
                    "message_id": get("message_id"),
                    "seq": get("seq"),
                    "content": get("content"),
                    "complete": bool(complete),
                },
            )
        # An empty history still says whether it is complete: one row with no message.
        if not any(r["room"] == room for r in self._rows["history"]):
            self._add(
                "history",
                {
                    "room": room,
                    "message_id": None,
                    "seq": None,
                    "content": None,
                    "complete": bool(complete),
                },
            )

    def presence(self, client: str, room: str, users: Iterable[str]) -> None:
        """The users ``client`` saw in ``room`` (a later snapshot replaces an earlier one)."""
        self._add("presence", {"client": client, "room": room, "users": sorted(set(users))})

    def frames(self) -> dict[str, pd.DataFrame]:
        """Each table as a DataFrame (the arguments :func:`check_history` takes)."""
        return {name: _frame(rows, name) for name, rows in self._rows.items()}

    def __repr__(self) -> str:
        sizes = ", ".join(f"{len(rows)} {name}" for name, rows in self._rows.items())
        return f"<HistoryRecorder {sizes}, {self.dropped} dropped>"


@dataclass(frozen=True)
class HistoryVerdict:
    """The checker's judgement: ``valid`` and the counterexamples (one row each) that decided it."""

    valid: bool
    #: Columns ``kind, room, client, message_id, seq, detail``.
    anomalies: pd.DataFrame
    #: What was checked: counts of sends, acks, deliveries, rooms, ...
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        """How many counterexamples of each kind (every kind listed, zeros included)."""
        found = self.anomalies["kind"].value_counts().to_dict()
        return {kind: int(found.get(kind, 0)) for kind in ANOMALY_KINDS}

    def of_kind(self, kind: str) -> pd.DataFrame:
        """The counterexamples of one kind."""
        if kind not in ANOMALY_KINDS:
            raise ConfigError(f"kind must be one of {ANOMALY_KINDS}; got {kind!r}")
        return self.anomalies[self.anomalies["kind"] == kind].reset_index(drop=True)

    def _summary(self) -> str:
        found = ", ".join(f"{n} {k}" for k, n in self.counts.items() if n) or "no anomalies"
        checked = ", ".join(f"{n} {k}" for k, n in self.stats.items())
        return f"{'VALID' if self.valid else 'INVALID'}: {found} ({checked})"

    def __repr__(self) -> str:
        text = f"<HistoryVerdict {self._summary()}>"
        if not self.valid:
            text += "\n" + self.anomalies.head(20).to_string(index=False)
        return text

    def _repr_html_(self) -> str:
        colour = "#2e7d32" if self.valid else "#c62828"
        head = f'<p><b style="color:{colour}">{self._summary()}</b></p>'
        return head + ("" if self.valid else self.anomalies.head(50).to_html(index=False))


def _frame(data: Any, name: str) -> pd.DataFrame:
    """``data`` (a DataFrame, records or None) as a DataFrame with at least the required columns."""
    if data is None:
        return pd.DataFrame(columns=_COLUMNS[name])
    frame = data.copy() if isinstance(data, pd.DataFrame) else pd.DataFrame(list(data))
    if frame.empty:
        return frame.reindex(columns=sorted(set(frame.columns) | set(_COLUMNS[name])))
    missing = [c for c in _COLUMNS[name] if c not in frame.columns]
    if missing:
        raise ConfigError(f"{name} lacks the column(s) {missing}; it has {list(frame.columns)}")
    return frame


def check_history(
    sends: Any = None,
    acks: Any = None,
    deliveries: Any = None,
    history: Any = None,
    presence: Any = None,
    *,
    expected_presence: Mapping[str, Iterable[str]] | None = None,
) -> HistoryVerdict:
    """Judge a recorded chat experiment; see the module docstring for what it looks for.

    The first argument may be a :class:`HistoryRecorder` instead of the sends. Each table may be
    a DataFrame or a list of dicts; a table left out is not checked. ``expected_presence`` maps a
    room to the user ids every client should finally see in it.
    """
    if isinstance(sends, HistoryRecorder):
        recorder = sends
        if recorder.dropped:
            raise ConfigError(
                f"the recorder dropped {recorder.dropped} records (max_events="
                f"{recorder.max_events}): a partial history cannot be checked"
            )
        tables = recorder.frames()
    else:
        tables = {
            "sends": _frame(sends, "sends"),
            "acks": _frame(acks, "acks"),
            "deliveries": _frame(deliveries, "deliveries"),
            "history": _frame(history, "history"),
            "presence": _frame(presence, "presence"),
        }
    found: list[dict[str, Any]] = []

    def add(kind: str, room: Any, client: Any, message_id: Any, seq: Any, detail: str) -> None:
        found.append(
            {
                "kind": kind,
                "room": room,
                "client": client,
                "message_id": message_id,
                "seq": seq,
                "detail": detail,
            }
        )

    sent, acked, got, hist = (
        tables["sends"],
        tables["acks"],
        tables["deliveries"],
        tables["history"],
    )
    # An ack carries no room: it comes from the send with the same (client, ref).
    if not acked.empty:
        acked = acked.merge(sent[["client", "ref", "room"]], on=["client", "ref"], how="left")
        unknown = acked[acked["room"].isna()]
        if not unknown.empty:
            raise ConfigError(f"{len(unknown)} ack(s) match no recorded send by (client, ref)")
    else:
        acked = acked.assign(room=pd.Series(dtype=object))

    # seq_conflict: one seq for two messages of a room, or one message seen with two seqs.
    seen = (
        pd.concat(
            [
                frame[["room", "message_id", "seq"]]
                for frame in (acked, got, hist)
                if not frame.empty
            ]
            or [pd.DataFrame(columns=["room", "message_id", "seq"])]
        )
        .dropna(subset=["message_id"])
        .drop_duplicates()
    )
    for (room, seq), group in seen.groupby(["room", "seq"]):
        if group["message_id"].nunique() > 1:
            ids = sorted(group["message_id"].unique())
            add("seq_conflict", room, None, None, seq, f"seq {seq} given to {ids}")
    for (room, mid), group in seen.groupby(["room", "message_id"]):
        if group["seq"].nunique() > 1:
            add("seq_conflict", room, None, mid, None, f"seen with seq {sorted(group['seq'])}")

    # duplicate and reordered, per client and room, in the order the client got them.
    for (client, room), group in got.groupby(["client", "room"], sort=False):
        for mid, count in group["message_id"].value_counts().items():
            if count > 1:
                seq = group.loc[group["message_id"] == mid, "seq"].iloc[0]
                add("duplicate", room, client, mid, seq, f"delivered {count} times")
        arrivals = group.drop_duplicates("message_id")[["message_id", "seq"]].to_numpy()
        for (_, before), (mid, after) in itertools.pairwise(arrivals):
            if after < before:
                add("reordered", room, client, mid, after, f"seq {after} arrived after {before}")
        # lost at this receiver: acked messages inside the seq window it observed.
        low, high = group["seq"].min(), group["seq"].max()
        window = acked[(acked["room"] == room) & acked["seq"].between(low, high)]
        for row in window[~window["message_id"].isin(group["message_id"])].itertuples():
            add("lost", room, client, row.message_id, row.seq, "acknowledged, never delivered")

    # the final history of each room: duplicates, gaps, lost acks, and whether complete told the truth.
    for room, group in hist.groupby("room", sort=False):
        complete = bool(group["complete"].iloc[0])
        messages = group.dropna(subset=["message_id"])
        for mid, count in messages["message_id"].value_counts().items():
            if count > 1:
                add("duplicate", room, None, mid, None, f"listed {count} times in the history")
        seqs = sorted(set(int(s) for s in messages["seq"]))
        gaps = [(a, b) for a, b in itertools.pairwise(seqs) if b != a + 1]
        for a, b in gaps:
            missing = f"{a + 1}" if b == a + 2 else f"{a + 1}..{b - 1}"
            add(
                "seq_gap",
                room,
                None,
                None,
                a + 1,
                f"history jumps from seq {a} to {b} (missing {missing})",
            )
        first = seqs[0] if seqs else None
        room_acks = acked[acked["room"] == room]
        if first is not None:
            room_acks = room_acks[room_acks["seq"] >= first]
        missing_acks = room_acks[~room_acks["message_id"].isin(messages["message_id"])]
        for row in missing_acks.drop_duplicates("message_id").itertuples():
            add("lost", room, None, row.message_id, row.seq, "acknowledged, not in the history")
        if complete and (gaps or not missing_acks.empty):
            add(
                "complete_lied",
                room,
                None,
                None,
                None,
                f"complete: true with {len(gaps)} gap(s) "
                f"and {missing_acks['message_id'].nunique()} acknowledged message(s) missing",
            )

    # presence: every client's last snapshot of a room must agree (and match what was expected).
    pres = tables["presence"]
    rooms = set(pres["room"]) | set(expected_presence or {})
    for room in sorted(rooms, key=str):
        last = pres[pres["room"] == room].groupby("client", sort=False).tail(1)
        views = {
            client: tuple(sorted(set(users)))
            for client, users in zip(last["client"], last["users"], strict=True)
        }
        expected = expected_presence.get(room) if expected_presence else None
        target = tuple(sorted(set(expected))) if expected is not None else None
        distinct = set(views.values()) | ({target} if target is not None else set())
        if len(distinct) > 1:
            for client, view in views.items():
                if target is not None and view == target:
                    continue
                add(
                    "presence_diverged",
                    room,
                    client,
                    None,
                    None,
                    f"sees {list(view)}" + (f", expected {list(target)}" if target else ""),
                )

    # object dtype keeps None as None (not NaN) where a counterexample has no client or seq.
    anomalies = pd.DataFrame(found, columns=_ANOMALY_COLUMNS, dtype=object)
    stats = {
        "sends": len(sent),
        "acks": len(acked),
        "deliveries": len(got),
        "history rows": int(hist["message_id"].notna().sum()) if not hist.empty else 0,
        "presence snapshots": len(pres),
    }
    return HistoryVerdict(valid=anomalies.empty, anomalies=anomalies, stats=stats)
