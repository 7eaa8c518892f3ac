"""The history checker: each seeded anomaly is caught, and a clean run on a real hub passes.

The seeded histories start from one clean record of three messages in a room seen by two
clients, and break exactly one thing each, so that a checker that missed that kind would fail.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from wslab.client import ChatClient
from wslab.client.events import ChatMessage
from wslab.foundation.errors import ConfigError
from wslab.hub import Hub
from wslab.lab import HistoryRecorder, HistoryVerdict, check_history

pytestmark = pytest.mark.timeout(60)


def clean() -> dict[str, list[dict[str, Any]]]:
    """Alice sends three messages to ``lobby``; alice and bob both get all three, in order."""
    sends = [
        {"client": "alice", "ref": f"r{i}", "room": "lobby", "content": f"m{i}"} for i in (1, 2, 3)
    ]
    acks = [
        {"client": "alice", "ref": f"r{i}", "message_id": f"id{i}", "seq": i} for i in (1, 2, 3)
    ]
    deliveries = [
        {"client": c, "room": "lobby", "message_id": f"id{i}", "seq": i, "content": f"m{i}"}
        for c in ("alice", "bob")
        for i in (1, 2, 3)
    ]
    history = [
        {"room": "lobby", "message_id": f"id{i}", "seq": i, "content": f"m{i}", "complete": True}
        for i in (1, 2, 3)
    ]
    presence = [{"client": c, "room": "lobby", "users": ["alice", "bob"]} for c in ("alice", "bob")]
    return {
        "sends": sends,
        "acks": acks,
        "deliveries": deliveries,
        "history": history,
        "presence": presence,
    }


def kinds(verdict: HistoryVerdict) -> set[str]:
    return set(verdict.anomalies["kind"])


def test_a_clean_history_is_valid() -> None:
    verdict = check_history(**clean())
    assert verdict.valid, verdict
    assert verdict.anomalies.empty
    assert "VALID" in repr(verdict) and "VALID" in verdict._repr_html_()


def test_a_lost_message_is_caught() -> None:
    run = clean()
    run["deliveries"] = [
        d for d in run["deliveries"] if not (d["client"] == "bob" and d["seq"] == 2)
    ]
    run["history"] = [h for h in run["history"] if h["seq"] != 3]
    verdict = check_history(**run)
    assert not verdict.valid
    lost = verdict.of_kind("lost")
    assert set(zip(lost["client"], lost["message_id"], strict=True)) == {
        ("bob", "id2"),
        (None, "id3"),
    }
    assert isinstance(verdict.anomalies, pd.DataFrame)
    assert "INVALID" in repr(verdict) and "id2" in repr(verdict)


def test_a_duplicated_delivery_is_caught() -> None:
    run = clean()
    run["deliveries"].append(dict(run["deliveries"][-1]))  # bob gets id3 twice
    verdict = check_history(**run)
    assert kinds(verdict) == {"duplicate"}
    row = verdict.of_kind("duplicate").iloc[0]
    assert (row["client"], row["message_id"]) == ("bob", "id3")


def test_a_reordered_delivery_is_caught() -> None:
    run = clean()
    bob = [d for d in run["deliveries"] if d["client"] == "bob"]
    run["deliveries"] = [d for d in run["deliveries"] if d["client"] != "bob"] + [
        bob[0],
        bob[2],
        bob[1],
    ]
    verdict = check_history(**run)
    assert kinds(verdict) == {"reordered"}
    row = verdict.of_kind("reordered").iloc[0]
    assert (row["client"], row["seq"]) == ("bob", 2)


def test_a_seq_gap_admitted_by_complete_false_is_a_gap_not_a_lie() -> None:
    run = clean()
    run["sends"] = run["sends"][:2]
    run["acks"] = run["acks"][:2]
    run["deliveries"] = [d for d in run["deliveries"] if d["seq"] != 3]
    run["history"] = [dict(h, complete=False) for h in run["history"] if h["seq"] != 2]
    run["history"][-1]["seq"] = 4
    run["history"][-1]["message_id"] = "id4"
    verdict = check_history(**run)
    assert "seq_gap" in kinds(verdict) and "complete_lied" not in kinds(verdict)
    assert verdict.of_kind("seq_gap").iloc[0]["seq"] == 2


def test_a_complete_true_that_lied_is_caught() -> None:
    run = clean()
    run["history"] = [h for h in run["history"] if h["seq"] != 2]  # still says complete: true
    verdict = check_history(**run)
    assert {"complete_lied", "seq_gap", "lost"} <= kinds(verdict)
    assert verdict.of_kind("complete_lied").iloc[0]["room"] == "lobby"


def test_a_seq_given_twice_is_caught() -> None:
    run = clean()
    run["acks"][2]["seq"] = 2
    verdict = check_history(**run)
    assert "seq_conflict" in kinds(verdict)


def test_presence_that_did_not_converge_is_caught() -> None:
    run = clean()
    run["presence"].append({"client": "bob", "room": "lobby", "users": ["bob"]})  # bob's last view
    verdict = check_history(**run)
    assert kinds(verdict) == {"presence_diverged"}
    verdict = check_history(**clean(), expected_presence={"lobby": ["alice", "bob", "carol"]})
    assert set(verdict.of_kind("presence_diverged")["client"]) == {"alice", "bob"}


def test_dataframes_and_bad_input() -> None:
    run = {name: pd.DataFrame(rows) for name, rows in clean().items()}
    assert check_history(**run).valid
    with pytest.raises(ConfigError, match="seq"):
        check_history(acks=[{"client": "a", "ref": "r", "message_id": "x"}])
    with pytest.raises(ConfigError, match="no recorded send"):
        check_history(acks=[{"client": "a", "ref": "r", "message_id": "x", "seq": 1}])
    recorder = HistoryRecorder(max_events=1)
    recorder.send("a", "r1", "lobby", "x")
    recorder.send("a", "r2", "lobby", "y")
    assert recorder.dropped == 1
    with pytest.raises(ConfigError, match="dropped"):
        check_history(recorder)


# -- a real hub, real clients --------------------------------------------------------------------


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    hub = await Hub.start(
        port=0,
        auth_required=True,
        database=f"sqlite:///{tmp_path}/h.db",
        rate_burst=1000,
        rate_messages_per_second=1000,
    )
    try:
        yield hub
    finally:
        await hub.stop()


async def test_a_clean_run_on_a_real_hub_passes_and_a_tampered_copy_fails(hub: Hub) -> None:
    names = ("alice", "bob", "carol")
    clients = {
        n: await ChatClient(hub.ws_url, token=hub.token(n), reconnect=False).connect()
        for n in names
    }
    rec = HistoryRecorder()
    try:
        for round_ in range(5):
            for name, c in clients.items():
                content = f"{name}-{round_}"
                ref = f"{name}:{round_}"
                rec.send(name, ref, "lobby", content)
                ack = await c.send_message(content)
                rec.ack(name, ref, ack.message_id, ack.seq)
        expected = 5 * len(names)
        for name, c in clients.items():
            for _ in range(expected):
                m = await c.next_event(ChatMessage, timeout=10)
                rec.deliver(name, m.room, m.message_id, m.seq, m.content)
        page = await clients["alice"].history("lobby", limit=100)
        rec.history("lobby", page.messages, complete=page.complete)
        for name, c in clients.items():
            users = await c.presence("lobby")
            rec.presence(name, "lobby", [u.user_id for u in users])
    finally:
        await asyncio.gather(*(c.close() for c in clients.values()))
    verdict = check_history(rec, expected_presence={"lobby": names})
    assert verdict.valid, verdict
    assert verdict.stats["deliveries"] == 45 and verdict.stats["history rows"] == 15
    # The same record with one of bob's deliveries removed must fail: the check has teeth.
    tables = rec.frames()
    bob = tables["deliveries"][tables["deliveries"]["client"] == "bob"]
    tables["deliveries"] = tables["deliveries"].drop(bob.index[3])
    assert set(check_history(**tables).anomalies["kind"]) == {"lost"}
