"""The broker contract, checked on every broker: MemoryBroker and RedisBroker (real Redis).

Also the parts only MemoryBroker has (buses, simulated outages) and the wire format.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from wslab.foundation.errors import ConfigError, DependencyError, ValidationError
from wslab.integration.backends import broker_from_url, open_broker
from wslab.integration.broker import (
    Broker,
    BrokerMessage,
    MemoryBroker,
    MemoryBus,
)
from wslab.testing import wait_until

WAIT = 10.0  # generous upper bound for anything to arrive; never a timing assertion

MakeBroker = Callable[..., Awaitable[Broker]]


class Inbox:
    """A handler that records what it receives."""

    def __init__(self) -> None:
        self.messages: list[BrokerMessage] = []

    async def __call__(self, msg: BrokerMessage) -> None:
        self.messages.append(msg)

    async def wait_count(self, n: int) -> None:
        await wait_until(lambda: len(self.messages) >= n, what=f"{n} messages")

    def payloads(self) -> list[dict[str, Any]]:
        return [m.payload for m in self.messages]


@pytest.fixture(params=["memory", "redis"])
def broker_factory(request: pytest.FixtureRequest, unique_name: str) -> Callable[..., Broker]:
    """Builds unstarted brokers of one kind that can all reach each other, isolated per test."""
    if request.param == "memory":
        bus = MemoryBus(unique_name)
        return lambda hub_id, **kw: MemoryBroker(bus, hub_id, **kw)
    redis_url = request.getfixturevalue("redis_url")
    pytest.importorskip("redis")
    from wslab.integration.redis_broker import RedisBroker

    prefix = f"wslab-test:{unique_name}:"
    return lambda hub_id, **kw: RedisBroker(redis_url, hub_id, prefix=prefix, **kw)


@pytest.fixture
async def make_broker(broker_factory: Callable[..., Broker]) -> AsyncIterator[MakeBroker]:
    """``await make_broker("a")`` -> a started broker, closed after the test."""
    brokers: list[Broker] = []

    async def make(hub_id: str, *, start: bool = True, **options: Any) -> Broker:
        broker = broker_factory(hub_id, **options)
        brokers.append(broker)
        if start:
            await broker.start()
        return broker

    yield make
    for broker in brokers:
        await broker.close()


# -- the contract, on every broker -----------------------------------------------------------


async def test_roundtrip_carries_channel_payload_and_origin(make_broker: MakeBroker) -> None:
    a = await make_broker("a")
    b = await make_broker("b")
    inbox = Inbox()
    await a.subscribe("room:lobby", inbox)

    await b.publish("room:lobby", {"type": "chat:message", "content": "héllo", "n": [1, 2]})

    await inbox.wait_count(1)
    (msg,) = inbox.messages
    assert msg == BrokerMessage(
        channel="room:lobby",
        payload={"type": "chat:message", "content": "héllo", "n": [1, 2]},
        origin_hub="b",
        origin_seq=1,
    )
    assert isinstance(a, Broker)
    assert a.hub_id == "a"
    assert a.healthy


async def test_own_messages_are_not_delivered_and_other_hubs_are(make_broker: MakeBroker) -> None:
    # The hub delivered its own messages locally: the broker skips them once, for every handler.
    a = await make_broker("a")
    b = await make_broker("b")
    inbox_a, inbox_b = Inbox(), Inbox()
    await a.subscribe("c", inbox_a)
    await a.subscribe_prefix("c", inbox_a)
    await b.subscribe("c", inbox_b)
    await a.publish("c", {"k": "own"})
    await b.publish("c", {"k": "other"})
    # b's message reaches a (once per subscription) after a's own, which was published first.
    await inbox_a.wait_count(2)
    await inbox_b.wait_count(1)
    assert [(m.origin_hub, m.payload["k"]) for m in inbox_a.messages] == [("b", "other")] * 2
    assert [(m.origin_hub, m.payload["k"]) for m in inbox_b.messages] == [("a", "own")]
    assert a.status()["own_skipped"] == 2  # the exact and the prefix copy
    assert b.status()["own_skipped"] == 1
    assert a.status()["dropped"] == 0


async def test_echo_own_delivers_a_hubs_own_messages(make_broker: MakeBroker) -> None:
    # The symmetric broker, for observing a one-hub setup end to end.
    a = await make_broker("a", echo_own=True)
    inbox = Inbox()
    await a.subscribe("c", inbox)
    await a.publish("c", {"k": 1})
    await inbox.wait_count(1)
    assert inbox.messages[0].origin_hub == a.hub_id
    assert a.status()["own_skipped"] == 0


async def test_each_message_reaches_each_hub_exactly_once(make_broker: MakeBroker) -> None:
    hubs = [await make_broker(name, echo_own=True) for name in ("a", "b", "c")]
    inboxes = {hub.hub_id: Inbox() for hub in hubs}
    for hub in hubs:
        # Subscribing the same handler twice must not double the deliveries.
        await hub.subscribe("room", inboxes[hub.hub_id])
        await hub.subscribe("room", inboxes[hub.hub_id])

    per_hub = 20
    for i in range(per_hub):
        for hub in hubs:
            await hub.publish("room", {"i": i})

    total = per_hub * len(hubs)
    for inbox in inboxes.values():
        await inbox.wait_count(total)
    # Let any duplicate that is still in flight arrive before counting.
    marker = Inbox()
    await hubs[0].subscribe("marker", marker)
    await hubs[1].subscribe("marker", marker)
    await hubs[2].subscribe("marker", marker)
    for hub in hubs:
        await hub.publish("marker", {})
    await marker.wait_count(9)

    for inbox in inboxes.values():
        keys = [(m.origin_hub, m.origin_seq) for m in inbox.messages]
        assert len(keys) == total
        assert len(set(keys)) == total
        for origin in ("a", "b", "c"):
            seqs = [seq for hub, seq in keys if hub == origin]
            assert seqs == list(range(1, per_hub + 1))


async def test_order_is_preserved_for_1000_messages(make_broker: MakeBroker) -> None:
    a = await make_broker("a")
    b = await make_broker("b")
    inbox = Inbox()
    await a.subscribe("ordered", inbox)

    for i in range(1000):
        await b.publish("ordered", {"i": i})

    await inbox.wait_count(1000)
    assert [p["i"] for p in inbox.payloads()] == list(range(1000))
    assert [m.origin_seq for m in inbox.messages] == list(range(1, 1001))
    assert a.status()["dropped"] == 0


async def test_origin_seq_counts_per_origin_and_channel(make_broker: MakeBroker) -> None:
    a = await make_broker("a", echo_own=True)
    b = await make_broker("b", echo_own=True)
    inbox = Inbox()
    await a.subscribe("one", inbox)
    await a.subscribe("two", inbox)

    for _ in range(3):
        await a.publish("one", {})
    for _ in range(2):
        await a.publish("two", {})
    await b.publish("one", {})

    await inbox.wait_count(6)
    seen = sorted((m.channel, m.origin_hub, m.origin_seq) for m in inbox.messages)
    assert seen == [
        ("one", "a", 1),
        ("one", "a", 2),
        ("one", "a", 3),
        ("one", "b", 1),
        ("two", "a", 1),
        ("two", "a", 2),
    ]


async def test_unsubscribe_stops_delivery(make_broker: MakeBroker) -> None:
    a = await make_broker("a")
    b = await make_broker("b")
    gone, stays = Inbox(), Inbox()
    await a.subscribe("room", gone)
    await a.subscribe("room", stays)
    await b.publish("room", {"n": 1})
    await gone.wait_count(1)
    await stays.wait_count(1)

    # One handler leaves: the other still gets messages, the first does not.
    await a.unsubscribe("room", gone)
    await b.publish("room", {"n": 2})
    await stays.wait_count(2)
    assert gone.payloads() == [{"n": 1}]

    # The last handler leaves the channel. Messages of one publisher reach one subscriber in
    # publish order, so once a later marker on another channel arrived, anything still due on
    # "room" would have arrived too.
    await a.unsubscribe("room", stays)
    marker = Inbox()
    await a.subscribe("marker", marker)
    await b.publish("room", {"n": 3})
    await b.publish("marker", {})
    await marker.wait_count(1)
    assert stays.payloads() == [{"n": 1}, {"n": 2}]
    assert gone.payloads() == [{"n": 1}]
    assert a.status()["channels"] == 1  # only "marker" is left
    # Unknown pairs are ignored.
    await a.unsubscribe("room", stays)
    await a.unsubscribe("never", stays)


async def test_handler_failure_is_isolated(
    make_broker: MakeBroker, caplog: pytest.LogCaptureFixture
) -> None:
    a = await make_broker("a")
    b = await make_broker("b")
    calls: list[int] = []

    async def flaky(msg: BrokerMessage) -> None:
        calls.append(msg.payload["n"])
        if msg.payload["n"] == 1:
            raise RuntimeError("handler bug")

    healthy_inbox = Inbox()
    await a.subscribe("room", flaky)
    await a.subscribe("room", healthy_inbox)

    with caplog.at_level(logging.ERROR, logger="wslab.integration.broker"):
        for n in (1, 2, 3):
            await b.publish("room", {"n": n})
        await healthy_inbox.wait_count(3)
        await wait_until(lambda: len(calls) == 3, what="flaky handler to see 3 messages")

    assert calls == [1, 2, 3]  # the failure did not end delivery
    assert healthy_inbox.payloads() == [{"n": 1}, {"n": 2}, {"n": 3}]
    status = a.status()
    assert status["handler_errors"] == 1
    assert status["recent_errors"][-1]["error"] == "RuntimeError: handler bug"
    assert status["recent_errors"][-1]["channel"] == "room"
    assert any("handler bug" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


async def test_full_queue_drops_and_counts(make_broker: MakeBroker) -> None:
    queue_size = 5
    slow_hub = await make_broker("slow", queue_size=queue_size)
    fast_hub = await make_broker("fast")
    publisher = await make_broker("pub")
    release = asyncio.Event()
    handled: list[int] = []

    async def slow(msg: BrokerMessage) -> None:
        await release.wait()
        handled.append(msg.origin_seq)

    fast = Inbox()
    await slow_hub.subscribe("room", slow)
    await fast_hub.subscribe("room", fast)

    sent = 20
    for i in range(sent):
        # The slow handler never blocks the publisher.
        await asyncio.wait_for(publisher.publish("room", {"i": i}), WAIT)

    await fast.wait_count(sent)
    await wait_until(lambda: slow_hub.status()["received"] == sent, what="slow hub to receive")
    dropped = slow_hub.status()["dropped"]
    # At most the queue plus the one message inside the handler can be held.
    assert sent - (queue_size + 1) <= dropped < sent
    release.set()
    await wait_until(lambda: len(handled) == sent - dropped, what="queued messages")
    assert handled == sorted(handled)  # order kept; the gaps show in origin_seq
    assert handled[0] == 1
    assert slow_hub.status()["dropped"] == dropped
    assert fast_hub.status()["dropped"] == 0


async def test_publish_validates_payload(make_broker: MakeBroker) -> None:
    a = await make_broker("a", echo_own=True)
    inbox = Inbox()
    await a.subscribe("room", inbox)
    with pytest.raises(ValidationError):
        await a.publish("room", ["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        await a.publish("room", {"x": {1, 2}})
    with pytest.raises(ValidationError):
        await a.publish("room", {"x": float("nan")})
    with pytest.raises(ValidationError):
        await a.publish("", {})
    await a.publish("room", {"ok": True})
    await inbox.wait_count(1)
    # Refused messages used no sequence number: receivers see no false gap.
    assert inbox.messages[0].origin_seq == 1


async def test_publish_when_not_running_raises_dependency_error(make_broker: MakeBroker) -> None:
    a = await make_broker("a", start=False)
    with pytest.raises(DependencyError):
        await a.publish("room", {})
    await a.start()
    await a.close()
    assert not a.healthy
    with pytest.raises(DependencyError):
        await a.publish("room", {})
    await a.close()  # idempotent


async def test_subscribe_before_start_is_honoured(make_broker: MakeBroker) -> None:
    a = await make_broker("a", start=False)
    inbox = Inbox()
    await a.subscribe("early", inbox)
    await a.start()
    b = await make_broker("b")
    await b.publish("early", {"x": 1})
    await inbox.wait_count(1)


async def test_each_hub_gets_its_own_payload(make_broker: MakeBroker) -> None:
    a = await make_broker("a", echo_own=True)
    b = await make_broker("b", echo_own=True)
    original = {"list": [1]}
    seen_by_b: list[dict[str, Any]] = []

    async def mutate(msg: BrokerMessage) -> None:
        msg.payload["list"].append("mutated")

    async def record(msg: BrokerMessage) -> None:
        seen_by_b.append(msg.payload)

    await a.subscribe("room", mutate)
    await b.subscribe("room", record)
    await a.publish("room", original)
    await wait_until(lambda: len(seen_by_b) == 1)
    await wait_until(lambda: a.status()["delivered"] == 1)
    assert original == {"list": [1]}
    assert seen_by_b == [{"list": [1]}]


async def test_close_leaves_no_tasks(make_broker: MakeBroker) -> None:
    a = await make_broker("a")
    await a.subscribe("one", Inbox())
    await a.subscribe("two", Inbox())
    blocker = asyncio.Event()

    async def stuck(msg: BrokerMessage) -> None:
        await blocker.wait()

    await a.subscribe("three", stuck)
    await a.publish("three", {})
    await wait_until(lambda: a.status()["received"] == 1)
    await a.unsubscribe("three", stuck)  # leaves a running handler behind
    await a.close()
    leftover = [
        t for t in asyncio.all_tasks() if t.get_name().startswith("wslab-broker") and not t.done()
    ]
    assert leftover == []


async def test_status_reports_the_documented_keys(make_broker: MakeBroker) -> None:
    a = await make_broker("a")
    status = a.status()
    for key in ("connected", "reconnects", "last_error", "dropped", "hub_id", "kind"):
        assert key in status
    assert status["connected"] is True
    assert status["reconnects"] == 0
    assert status["last_error"] is None


# -- MemoryBroker only -----------------------------------------------------------------------


async def test_memory_outage_is_reported_and_recovered() -> None:
    bus = MemoryBus()
    a, b = MemoryBroker(bus, "a"), MemoryBroker(bus, "b")
    await a.start()
    await b.start()
    states: list[tuple[bool, str]] = []
    a.on_state_change(lambda healthy, reason: states.append((healthy, reason)))
    inbox = Inbox()
    await a.subscribe("room", inbox)

    await a.simulate_outage("cable cut")
    assert not a.healthy
    assert states == [(False, "cable cut")]
    with pytest.raises(DependencyError):
        await a.publish("room", {})
    await b.publish("room", {"lost": True})  # never reaches a; a counts it
    assert a.status()["dropped"] == 1
    assert a.status()["last_error"] == "cable cut"

    await a.end_outage()
    assert a.healthy
    assert states == [(False, "cable cut"), (True, "outage ended")]
    assert a.status()["reconnects"] == 1
    await b.publish("room", {"after": True})
    await inbox.wait_count(1)
    assert inbox.payloads() == [{"after": True}]
    # The receiver sees the lost message as a gap in origin_seq.
    assert inbox.messages[0].origin_seq == 2
    await a.close()
    await b.close()


async def test_state_callback_errors_are_counted_and_async_callbacks_awaited() -> None:
    a = MemoryBroker(MemoryBus(), "a")
    await a.start()
    seen: list[bool] = []

    def broken(healthy: bool, reason: str) -> None:
        raise RuntimeError("callback bug")

    async def good(healthy: bool, reason: str) -> None:
        await asyncio.sleep(0)
        seen.append(healthy)

    remove = a.on_state_change(broken)
    a.on_state_change(good)
    await a.simulate_outage()
    assert seen == [False]
    assert a.status()["callback_errors"] == 1
    remove()
    await a.end_outage()
    assert seen == [False, True]
    assert a.status()["callback_errors"] == 1
    await a.close()


async def test_broker_from_url_memory_urls() -> None:
    d1 = broker_from_url("memory://", "d1")
    d2 = broker_from_url("memory://", "d2")
    x = broker_from_url("memory://x", "x")
    assert isinstance(d1, MemoryBroker) and isinstance(x, MemoryBroker)
    assert d1.bus is d2.bus
    assert x.bus is not d1.bus
    assert x.bus is MemoryBus.named("x")
    for broker in (d1, d2, x):
        await broker.start()
    inbox_d2, inbox_x = Inbox(), Inbox()
    await d2.subscribe("room", inbox_d2)
    await x.subscribe("room", inbox_x)
    await d1.publish("room", {})
    await inbox_d2.wait_count(1)
    assert inbox_x.messages == []  # named buses are separate
    for broker in (d1, d2, x):
        await broker.close()


@pytest.mark.parametrize(
    "url", ["http://localhost", "memory://a/b", "", "postgres://x", "redis+unix://x"]
)
def test_broker_from_url_rejects_other_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        broker_from_url(url)


def test_broker_from_url_error_does_not_echo_secrets() -> None:
    with pytest.raises(ConfigError) as info:
        broker_from_url("amqp://user:s3cret@host/")
    assert "s3cret" not in str(info.value)


async def test_broker_from_url_passes_options_and_default_hub_id() -> None:
    broker = broker_from_url("memory://opts", queue_size=7, prefix="p:")
    assert isinstance(broker, MemoryBroker)
    assert broker.queue_size == 7
    assert broker.prefix == "p:"
    assert broker.hub_id  # generated when not given
    assert broker_from_url("memory://opts").hub_id != broker.hub_id


async def test_open_broker_builds_and_starts() -> None:
    a = await open_broker("memory://started", "a")
    b = await open_broker("memory://started", "b")
    inbox = Inbox()
    await b.subscribe("room", inbox)
    await a.publish("room", {"n": 1})  # publishing needs a started broker
    await inbox.wait_count(1)
    assert inbox.messages[0].origin_hub == "a"
    await a.close()
    await b.close()


async def test_prefix_separates_applications_on_one_bus() -> None:
    bus = MemoryBus()
    app1 = MemoryBroker(bus, "a", prefix="app1:", echo_own=True)
    app2 = MemoryBroker(bus, "b", prefix="app2:", echo_own=True)
    await app1.start()
    await app2.start()
    inbox = Inbox()
    await app2.subscribe("room", inbox)
    await app1.publish("room", {})
    await app2.publish("room", {"own": True})
    await inbox.wait_count(1)
    assert inbox.payloads() == [{"own": True}]
    await app1.close()
    await app2.close()


async def test_sequence_counters_are_bounded_without_repeating_numbers() -> None:
    bus = MemoryBus()
    a = MemoryBroker(bus, "a", max_channels=2, echo_own=True)
    await a.start()
    inbox = Inbox()
    for channel in ("c1", "c2", "c3"):
        await a.subscribe(channel, inbox)
    await a.publish("c1", {})
    await a.publish("c1", {})
    await a.publish("c2", {})
    await a.publish("c3", {})  # c1, least recently published, is forgotten
    await a.publish("c1", {})
    await inbox.wait_count(5)
    c1 = [m.origin_seq for m in inbox.messages if m.channel == "c1"]
    assert c1[:2] == [1, 2]
    # Never a number already used on c1 (that would look like a duplicate); a gap is fine.
    assert c1[2] > 2
    await a.close()


def test_broker_message_wire_roundtrip() -> None:
    msg = BrokerMessage("room:x", {"content": "ü €", "n": 3, "l": [None, True]}, "hub-1", 42)
    data = msg.encode()
    assert isinstance(data, bytes)
    assert BrokerMessage.decode("room:x", data) == msg
    assert BrokerMessage.decode("room:x", data.decode()) == msg


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        b'{"origin_hub": "h", "origin_seq": 1}',
        b'{"origin_hub": "", "origin_seq": 1, "payload": {}}',
        b'{"origin_hub": "h", "origin_seq": 0, "payload": {}}',
        b'{"origin_hub": "h", "origin_seq": true, "payload": {}}',
        b'{"origin_hub": "h", "origin_seq": "1", "payload": {}}',
        b'{"origin_hub": "h", "origin_seq": 1, "payload": []}',
    ],
)
def test_broker_message_decode_rejects_malformed(data: bytes) -> None:
    with pytest.raises(ValidationError):
        BrokerMessage.decode("c", data)


async def test_malformed_wire_message_is_counted_not_fatal() -> None:
    bus = MemoryBus()
    a = MemoryBroker(bus, "a")
    b = MemoryBroker(bus, "b")
    await a.start()
    await b.start()
    inbox = Inbox()
    await a.subscribe("room", inbox)
    bus._publish("wslab:room", b"garbage")
    await b.publish("room", {"ok": 1})
    await inbox.wait_count(1)
    assert a.status()["malformed"] == 1
    assert inbox.payloads() == [{"ok": 1}]
    await a.close()
    await b.close()


def test_invalid_configuration_is_refused() -> None:
    with pytest.raises(ConfigError):
        MemoryBroker(MemoryBus(), "")
    with pytest.raises(ConfigError):
        MemoryBroker(MemoryBus(), "a", queue_size=0)
    with pytest.raises(ConfigError):
        MemoryBroker(MemoryBus(), "a", max_channels=0)


# -- prefix subscriptions and what a broker receives, on every broker --------------------------


async def test_prefix_subscription_receives_every_matching_channel_only(
    make_broker: MakeBroker,
) -> None:
    a = await make_broker("a")
    b = await make_broker("b")
    inbox = Inbox()
    await a.subscribe_prefix("room:", inbox)
    assert a.prefixes == frozenset({"room:"})

    await b.publish("user:bob", {"n": 0})  # not a room: never reaches a
    await b.publish("room:x", {"n": 1})
    await b.publish("room:y", {"n": 2})
    await b.publish("rooms", {"n": 3})  # starts with "room" but not with "room:"
    await b.publish("room:x", {"n": 4})

    await inbox.wait_count(3)
    assert [(m.channel, m.payload["n"], m.origin_seq) for m in inbox.messages] == [
        ("room:x", 1, 1),
        ("room:y", 2, 1),
        ("room:x", 4, 2),
    ]
    # Everything a received came through the subscription: nothing of "user" or "rooms".
    assert set(a.status()["received_by_family"]) == {"room"}
    assert a.status()["prefixes"] == 1

    await a.unsubscribe_prefix("room:", inbox)
    assert a.prefixes == frozenset()
    await b.publish("room:x", {"n": 5})
    marker = Inbox()
    await a.subscribe("marker", marker)
    await b.publish("marker", {})
    await marker.wait_count(1)
    assert [m.payload["n"] for m in inbox.messages] == [1, 2, 4]


async def test_prefix_glob_characters_are_literal(make_broker: MakeBroker) -> None:
    a = await make_broker("a")
    b = await make_broker("b")
    inbox = Inbox()
    await a.subscribe_prefix("a*[?]\\:", inbox)
    await b.publish("abc]\\:x", {"n": 0})  # would match an unescaped glob
    await b.publish("a*[?]\\:x", {"n": 1})
    await inbox.wait_count(1)
    marker = Inbox()
    await a.subscribe("marker", marker)
    await b.publish("marker", {})
    await marker.wait_count(1)
    assert [m.payload["n"] for m in inbox.messages] == [1]


async def test_exact_and_prefix_subscription_each_get_one_copy(make_broker: MakeBroker) -> None:
    a = await make_broker("a")
    b = await make_broker("b")
    exact, wide = Inbox(), Inbox()
    await a.subscribe("room:x", exact)
    await a.subscribe_prefix("room:", wide)
    await b.publish("room:x", {"n": 1})
    await exact.wait_count(1)
    await wide.wait_count(1)
    assert exact.messages == wide.messages  # same channel, origin and origin_seq: one message
    room = a.status()["received_by_family"]["room"]
    assert room["messages"] == 2  # one per subscription, as Redis sends message and pmessage
    assert room["bytes"] == 2 * len(exact.messages[0].encode())


async def test_a_broker_receives_nothing_of_channels_it_did_not_subscribe(
    make_broker: MakeBroker,
) -> None:
    a = await make_broker("a")
    b = await make_broker("b")
    inbox = Inbox()
    await a.subscribe("room:mine", inbox)
    for i in range(50):
        await b.publish(f"room:other{i % 5}", {"i": i})
    await b.publish("room:mine", {"i": "last"})
    await inbox.wait_count(1)
    assert a.status()["received"] == 1
    assert a.status()["received_by_family"] == {
        "room": {"messages": 1, "bytes": len(inbox.messages[0].encode())}
    }


async def test_progress_counts_handled_and_pending(make_broker: MakeBroker) -> None:
    a = await make_broker("a", echo_own=True)
    release = asyncio.Event()
    seen: list[BrokerMessage] = []

    async def slow(msg: BrokerMessage) -> None:
        seen.append(msg)
        await release.wait()

    assert a.progress("room:x", slow) == (0, 0)  # no such subscription
    await a.subscribe("room:x", slow)
    for i in range(3):
        await a.publish("room:x", {"i": i})
    await wait_until(lambda: len(seen) == 1 and a.progress("room:x", slow) == (0, 3))
    release.set()
    await wait_until(lambda: a.progress("room:x", slow) == (3, 0), what="the queue to drain")
    assert len(seen) == 3


async def test_memory_publish_nowait_delivers_to_the_others_and_skips_its_own() -> None:
    bus = MemoryBus()
    a, b = MemoryBroker(bus, hub_id="a"), MemoryBroker(bus, hub_id="b")
    with pytest.raises(DependencyError):
        a.publish_nowait("room:x", {"n": 0})  # not started
    got: dict[str, list[Any]] = {"a": [], "b": []}
    for broker in (a, b):
        await broker.start()
        await broker.subscribe("room:x", lambda m, hub=broker.hub_id: got[hub].append(m.payload))
    a.publish_nowait("room:x", {"n": 1})
    await wait_until(lambda: got["b"] == [{"n": 1}])
    assert got["a"] == []
    assert a.status()["own_skipped"] == 1 and a.status()["received"] == 1
    await a.simulate_outage()
    with pytest.raises(DependencyError):
        a.publish_nowait("room:x", {"n": 2})
    for broker in (a, b):
        await broker.close()


async def test_a_memory_broker_is_alone_only_while_no_other_hub_could_hear_it() -> None:
    bus = MemoryBus()
    a, b = MemoryBroker(bus, hub_id="a"), MemoryBroker(bus, hub_id="b")
    assert not a.alone  # not started: not on the bus at all (publishing fails, not skipped)
    await a.start()
    assert a.alone
    await b.start()
    assert not a.alone and not b.alone
    await b.close()
    assert a.alone
    await a.simulate_outage()
    assert not a.alone  # down: publishing must fail as it does, not be skipped
    await a.end_outage()
    assert a.alone
    await a.close()
    assert not a.alone
    echo = MemoryBroker(MemoryBus(), hub_id="e", echo_own=True)
    await echo.start()
    assert not echo.alone  # it hears itself
    await echo.close()


def test_a_network_broker_is_never_alone() -> None:
    # Another hub may subscribe on the server at any moment: never skipped.
    assert not broker_from_url("redis://127.0.0.1:6379/0", hub_id="x").alone
