"""One hostile connection must not hurt anyone else.

Each test runs a real hub with well-behaved clients chatting while a hostile one, authenticated
like them, does its worst through raw frames: endless empty continuation frames, a message in
2-byte fragments, a ping flood. The hostile connection is closed with the right code; the others
keep chatting and are never closed. And what a connection buffered is given back when it closes,
without waiting for the cyclic garbage collector.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
import tracemalloc
from collections.abc import Iterator

import pytest

from tests.application.conftest import Connect, RawClient, StartHub, both_engines
from wslab.foundation.codes import CloseCode, Opcode
from wslab.foundation.frames import Frame, encode_frame
from wslab.foundation.handshake import build_upgrade_request
from wslab.hub import Hub

GUARD = 20.0


def masked(opcode: Opcode, payload: bytes = b"", *, fin: bool = True) -> bytes:
    """One frame as a client must send it."""
    return encode_frame(Frame(opcode, payload, fin), os.urandom(4))


def write_raw(client: RawClient, data: bytes) -> None:
    """Bytes straight onto the hostile client's socket, past its own protocol."""
    client.connection.transport.write(data)  # type: ignore[attr-defined]


async def chat_goes_on(alice: RawClient, bob: RawClient, rounds: int = 5) -> None:
    """Alice's messages reach Bob, acknowledged, while the hostile client does its worst."""
    for n in range(rounds):
        text = f"still here {n}"
        ack = await alice.request({"type": "chat:message", "content": text}, timeout=GUARD)
        assert ack["type"] == "ack", ack
        message = await bob.expect("chat:message", content=text, timeout=GUARD)
        assert message["seq"] == ack["seq"]


@pytest.fixture
async def pair(hub: Hub, client_for: Connect) -> tuple[RawClient, RawClient]:
    return await client_for(hub, "alice"), await client_for(hub, "bob")


async def test_endless_empty_continuations_are_cut_at_the_fragment_cap(
    hub: Hub, client_for: Connect, pair: tuple[RawClient, RawClient]
) -> None:
    alice, bob = pair
    mallory = await client_for(hub, "mallory")
    write_raw(mallory, masked(Opcode.TEXT, b"x", fin=False))
    burst = masked(Opcode.CONT, fin=False) * 5000  # 30 KB of frames that carry nothing
    for _ in range(20):
        write_raw(mallory, burst)
    await chat_goes_on(alice, bob)
    assert await mallory.closed_with(GUARD) == 1009
    assert not alice.closed and not bob.closed
    assert not hub.errors


async def test_a_message_in_tiny_fragments_holds_no_more_than_its_size(
    start_hub: StartHub, client_for: Connect
) -> None:
    limit = 64 * 1024
    # Only the message limit stands in the way here: no fragment cap, no frame budget.
    hub = await start_hub(
        max_message_size=limit,
        max_fragments_per_message=1_000_000,
        max_frames_per_second=1e9,
        frame_burst=1_000_000_000,
        event_log_level="lifecycle",  # the frame log is bounded, but it is not the message
    )
    alice, bob = await client_for(hub, "alice"), await client_for(hub, "bob")
    mallory = await client_for(hub, "mallory")
    # Just under the limit in 2-byte fragments: a list of parts would hold ~20x the bytes.
    fragments = (limit - 1024) // 2
    data = masked(Opcode.BINARY, b"ab", fin=False) + masked(Opcode.CONT, b"ab", fin=False) * (
        fragments - 1
    )
    (server_side,) = [c for c in hub.manager if c.id == mallory.connection_id]
    gc.collect()
    tracemalloc.start()
    try:
        baseline, _ = tracemalloc.get_traced_memory()
        write_raw(mallory, data)
        deadline = time.monotonic() + GUARD
        while server_side.protocol.assembler.buffered < 2 * fragments:  # type: ignore[attr-defined]
            assert time.monotonic() < deadline, "the hub did not take the fragments"
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # What the open message costs while it waits for its last fragment: about its own size.
    assert held - baseline < 3 * limit, held - baseline
    write_raw(mallory, masked(Opcode.CONT, b"a" * 2048, fin=True))  # and now past the limit
    assert await mallory.closed_with(GUARD) == 1009
    await chat_goes_on(alice, bob, rounds=2)


async def test_a_ping_flood_is_paused_then_closed_and_owed_few_pongs(
    start_hub: StartHub, client_for: Connect
) -> None:
    hub = await start_hub(max_frames_per_second=500, frame_burst=500)
    alice, bob = await client_for(hub, "alice"), await client_for(hub, "bob")
    mallory = await client_for(hub, "mallory")
    pongs = 0

    def count(_payload: bytes) -> None:
        nonlocal pongs
        pongs += 1

    mallory.connection._pong = count  # type: ignore[method-assign]
    burst = masked(Opcode.PING, b"p") * 2000
    sent = 0
    started = time.monotonic()
    while not mallory.closed and time.monotonic() - started < GUARD:
        if mallory.connection.transport.get_write_buffer_size() < 1 << 20:  # type: ignore[attr-defined]
            write_raw(mallory, burst)
            sent += 2000
        await asyncio.sleep(0.01)
        if sent % 20_000 == 0:
            await chat_goes_on(alice, bob, rounds=1)
    assert await mallory.closed_with(GUARD) == 1008
    # Pings were read at the budget's pace only, and answered at most once each.
    assert pongs <= 500 + 500 * (time.monotonic() - started) + 2000
    assert pongs < sent
    await chat_goes_on(alice, bob, rounds=2)
    assert not alice.closed and not bob.closed


def stall(hub: Hub, seconds: float) -> None:
    """Block the hub's event loop, as a slow synchronous call in a handler would."""
    hub.run(lambda: time.sleep(seconds))  # type: ignore[attr-defined]


@pytest.fixture
def threaded_hub(db_url: str, unique_name: str) -> Iterator[Hub]:
    """A hub on its own thread, so the test can stall its loop while clients keep sending."""
    hub = Hub.start_in_thread(
        port=0,
        database=db_url,
        broker=f"memory://{unique_name}",
        auth_required=False,
        rate_messages_per_second=20,
        rate_burst=40,
        rate_flood_close_after=20,
    )
    yield hub  # type: ignore[misc]
    hub.stop()


async def test_a_backlog_the_hubs_own_stall_created_is_not_a_flood(threaded_hub: Hub) -> None:
    from tests.application.conftest import open_client

    alice = await open_client(threaded_hub.ws_url, name="alice")
    try:
        # The hub stalls for 3 s; meanwhile Alice sends as a chat client would (20/s): the
        # 60 messages arrive at once when the hub comes back.
        blocked = asyncio.get_running_loop().run_in_executor(None, stall, threaded_hub, 3.0)
        await asyncio.sleep(0.2)
        for n in range(60):
            await alice.send({"type": "chat:message", "content": f"m{n}", "ref": f"m{n}"})
            await asyncio.sleep(0.05)
        await blocked
        # Past the burst some are refused (RATE_LIMITED, she may retry); she is not closed.
        await alice.expect(ref="m59", timeout=GUARD)
        await asyncio.sleep(0.5)
        assert not alice.closed, alice.connection.close_code
        assert threaded_hub.hub.stalls.stalls >= 1  # type: ignore[attr-defined]
    finally:
        await alice.close()


async def test_a_flood_sent_during_the_hubs_stall_is_still_a_flood(threaded_hub: Hub) -> None:
    from tests.application.conftest import open_client

    alice = await open_client(threaded_hub.ws_url, name="alice")
    mallory = await open_client(threaded_hub.ws_url, name="mallory")
    try:
        blocked = asyncio.get_running_loop().run_in_executor(None, stall, threaded_hub, 3.0)
        await asyncio.sleep(0.2)
        # While the hub cannot read, Alice keeps to 20/s and Mallory sends 600 at once: the
        # stall explains Alice's backlog, and at most a stall's worth of Mallory's.
        for n in range(600):
            await mallory.send({"type": "chat:message", "content": f"x{n}"})
        for n in range(40):
            await alice.send({"type": "chat:message", "content": f"m{n}", "ref": f"m{n}"})
            await asyncio.sleep(0.05)
        await blocked
        await asyncio.wait_for(mallory.connection.wait_closed(), GUARD)
        assert mallory.connection.close_code == CloseCode.POLICY_VIOLATION
        await alice.expect(ref="m39", timeout=GUARD)
        assert not alice.closed, alice.connection.close_code
    finally:
        await alice.close()
        await mallory.close()


async def test_closed_connections_give_their_buffers_back_without_the_gc(
    start_hub: StartHub, client_for: Connect
) -> None:
    limit = 4 << 20
    hub = await start_hub(max_message_size=limit)
    clients = [await client_for(hub, f"user{n}") for n in range(3)]
    half = masked(Opcode.BINARY, b"x" * (1 << 20), fin=False)  # 1 MiB of a message, then silence
    gc.collect()
    gc.disable()
    tracemalloc.start()
    try:
        baseline, _ = tracemalloc.get_traced_memory()
        for client in clients:
            write_raw(client, half)
        deadline = time.monotonic() + GUARD
        while time.monotonic() < deadline:
            held = sum(c.protocol.assembler.buffered for c in hub.manager)  # type: ignore[attr-defined]
            if held >= 3 << 20:
                break
            await asyncio.sleep(0.02)
        assert held >= 3 << 20  # the hub holds the three halves
        for client in clients:
            client.connection.abort()
        while len(hub.manager) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        gc.enable()
    assert len(hub.manager) == 0
    # 3 MiB were held; without a collection, (nearly) all of it is back.
    assert after - baseline < 1 << 20, after - baseline


# -- coming back after an abusive close: the cool-down at the upgrade ------------------------------


async def upgrade_status(hub: Hub, token: str | None = None) -> tuple[int, dict[str, str]]:
    """Ask ``hub`` for an upgrade (with ``token`` as a Bearer header); its status and headers."""
    host, port = hub.ws_url.split("//")[1].split("/")[0].split(":")
    request, _ = build_upgrade_request(
        f"{host}:{port}",
        hub.config.path,
        extra_headers=[("Authorization", f"Bearer {token}")] if token else [],
    )
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GUARD)
    finally:
        writer.close()
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers


async def offences_counted(hub: Hub, n: int) -> None:
    """Wait until the hub has counted ``n`` abusive closes (its close callbacks run after TCP)."""
    cooldown = hub.abuse.cooldown
    assert cooldown is not None
    deadline = time.monotonic() + GUARD
    while cooldown.offences < n:
        assert time.monotonic() < deadline, "the abusive close was never counted"
        await asyncio.sleep(0.01)


async def cut_at_the_fragment_cap(mallory: RawClient) -> None:
    write_raw(mallory, masked(Opcode.TEXT, b"x", fin=False))
    write_raw(mallory, masked(Opcode.CONT, fin=False) * 2000)  # past the 1,024-fragment cap
    assert await mallory.closed_with(GUARD) == 1009


async def test_an_abuser_is_refused_with_429_and_retry_after_but_its_neighbours_are_not(
    hub: Hub, client_for: Connect
) -> None:
    mallory = await client_for(hub, "mallory")
    await cut_at_the_fragment_cap(mallory)
    await offences_counted(hub, 1)
    status, headers = await upgrade_status(hub, hub.token("mallory"))
    assert status == 429
    assert 1 <= int(headers["retry-after"]) <= hub.config.abuse_cooldown_seconds
    assert hub.abuse.cooldown is not None and hub.abuse.cooldown.refusals == 1
    # Everyone else on the same address is admitted: alice by her token, and an upgrade that
    # proves nobody yet (its token comes in the first message) because mallory's offence is
    # held against mallory, not the address.
    alice = await client_for(hub, "alice")
    bob = await client_for(hub, "bob", via="message")
    await chat_goes_on(alice, bob, rounds=1)
    assert (await upgrade_status(hub))[0] == 101


async def test_a_message_flood_closed_with_1008_cools_down_too(
    start_hub: StartHub, client_for: Connect
) -> None:
    hub = await start_hub(rate_messages_per_second=1, rate_burst=2, rate_flood_close_after=3)
    mallory = await client_for(hub, "mallory")
    for n in range(10):
        await mallory.send({"type": "chat:message", "content": f"spam {n}"})
    assert await mallory.closed_with(GUARD) == 1008
    await offences_counted(hub, 1)
    assert (await upgrade_status(hub, hub.token("mallory")))[0] == 429
    assert (await upgrade_status(hub, hub.token("alice")))[0] == 101


async def test_past_its_threshold_an_address_cools_down_for_upgrades_proving_no_user(
    start_hub: StartHub, client_for: Connect
) -> None:
    hub = await start_hub(abuse_address_threshold=2)
    for _ in range(2):  # floods before authenticating: nobody to hold to it but the address
        await cut_at_the_fragment_cap(await client_for(hub, "mallory", via="message", greet=False))
    await offences_counted(hub, 2)
    status, headers = await upgrade_status(hub)  # no token on the upgrade: judged by address
    assert status == 429 and int(headers["retry-after"]) >= 1
    assert (await upgrade_status(hub, "not-a-token"))[0] == 429  # an invalid one proves nobody
    alice = await client_for(hub, "alice")  # a valid token: judged as alice, admitted
    assert alice.hello["user_id"] == "alice"


async def test_the_cool_down_can_be_turned_off(start_hub: StartHub, client_for: Connect) -> None:
    hub = await start_hub(abuse_cooldown_seconds=0)
    assert hub.abuse.cooldown is None
    await cut_at_the_fragment_cap(await client_for(hub, "mallory"))
    again = await client_for(hub, "mallory")
    assert again.hello["user_id"] == "mallory"


async def test_a_close_that_is_not_abuse_does_not_cool_anyone_down(
    hub: Hub, client_for: Connect
) -> None:
    alice = await client_for(hub, "alice")
    await alice.close()
    again = await client_for(hub, "alice")
    assert again.hello["user_id"] == "alice"
    assert hub.abuse.cooldown is not None and hub.abuse.cooldown.offences == 0


async def test_the_cool_down_table_is_bounded_and_a_full_one_forgets_the_oldest(
    start_hub: StartHub, client_for: Connect
) -> None:
    hub = await start_hub(abuse_table_size=1)
    await cut_at_the_fragment_cap(await client_for(hub, "mallory"))
    await offences_counted(hub, 1)
    await cut_at_the_fragment_cap(await client_for(hub, "trudy"))
    await offences_counted(hub, 2)
    cooldown = hub.abuse.cooldown
    assert cooldown is not None and len(cooldown.users) == 1 and cooldown.users.evicted == 1
    assert (await upgrade_status(hub, hub.token("trudy")))[0] == 429
    assert (await upgrade_status(hub, hub.token("mallory")))[0] == 101  # evicted: forgiven


@both_engines
async def test_a_message_too_big_cools_its_user_down_on_either_engine(
    start_hub: StartHub, client_for: Connect
) -> None:
    hub = await start_hub(max_message_size=1024)
    mallory = await client_for(hub, "mallory")
    write_raw(mallory, masked(Opcode.TEXT, b"x" * 4096))
    assert await mallory.closed_with(GUARD) == 1009
    await offences_counted(hub, 1)
    assert (await upgrade_status(hub, hub.token("mallory")))[0] == 429
    assert (await upgrade_status(hub, hub.token("alice")))[0] == 101
