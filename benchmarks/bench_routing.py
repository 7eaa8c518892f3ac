"""How much broker traffic does each hub receive: per-room routing against hub-wide channels?

For each number of hubs H (2 and 4 by default) the script starts H hubs in this process over
one broker (the real Redis on 127.0.0.1:6379 by default, ``--broker memory`` for the in-process
one), twice — once with per-room routing (``broker_routing="room"``, the default) and once
with the old hub-wide ``rooms``/``direct`` channels (``hub``), in alternating order — and plays
the same chat on both:

- ``--users`` clients per hub (real WebSocket clients, ``ChatClient``), ``--rooms`` rooms, each
  room spread over ``--span`` consecutive hubs, so each hub hosts ``rooms * span / H`` of them;
- every client joins ``--rooms-per-user`` of its hub's rooms and sends ``--messages`` room
  messages and ``--dms`` direct messages to users picked at random (seeded) on any hub.

It counts what each hub's broker received through its subscriptions
(``status()["received_by_family"]``, messages and bytes) during the chat, for room traffic and
for direct messages, and prints the mean per hub of each mode and the ratio hub-wide /
per-room (how many times less each hub receives). As a check, the clients' deliveries must be
the same in both modes. Presence is not routed per room (it stays hub-wide) and its periodic
snapshots are switched off here (``presence_interval`` one hour), so they do not blur the counts.

    python benchmarks/bench_routing.py [--hubs 2 4] [--rooms 16] [--span 2] [--users 8]
                                       [--messages 5] [--dms 2] [--broker redis://...|memory]

Counts, not timings: they do not depend on the machine, and one round is enough.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import uuid
from typing import Any

from wslab.client import ChatClient
from wslab.hub import Hub

SECRET = "bench-routing-secret-0123456789abcdef0123"
ROOM_FAMILIES = {"room": "room", "rooms": "room", "user": "direct", "direct": "direct"}


def traffic(hub: Hub) -> dict[str, list[int]]:
    """[messages, bytes] received by kind: room traffic, direct messages, everything."""
    out = {"room": [0, 0], "direct": [0, 0], "all": [0, 0]}
    for family, counts in hub.broker.status()["received_by_family"].items():
        kind = ROOM_FAMILIES.get(family)
        for key in (kind, "all") if kind else ("all",):
            out[key][0] += counts["messages"]
            out[key][1] += counts["bytes"]
    return out


async def settle(hubs: list[Hub]) -> None:
    """Wait until no hub's broker has received anything new for a moment."""
    last: list[Any] = []
    quiet = 0
    while quiet < 5:
        now = [hub.broker.status()["received"] for hub in hubs]
        quiet = quiet + 1 if now == last else 0
        last = now
        await asyncio.sleep(0.1)


async def run(mode: str, n_hubs: int, args: argparse.Namespace, db_dir: str) -> dict[str, Any]:
    """One chat on ``n_hubs`` fresh hubs in ``mode``; per-hub traffic and client deliveries."""
    run_id = uuid.uuid4().hex[:8]
    broker = f"memory://bench-{run_id}" if args.broker == "memory" else args.broker
    hubs: list[Hub] = []
    clients: list[ChatClient] = []
    try:
        for i in range(n_hubs):
            hubs.append(
                await Hub.start(
                    port=0,
                    database=f"sqlite:///{db_dir}/{mode}-{n_hubs}-{run_id}.db",
                    broker=broker,
                    broker_prefix=f"wslab-bench:{run_id}:",
                    hub_id=f"{mode}-{i}",
                    broker_routing=mode,
                    jwt_secret=SECRET,
                    presence_interval=3600,
                    rate_messages_per_second=10_000,
                    rate_burst=10_000,
                    connections_per_ip_per_minute=100_000,
                )
            )
        hosted: list[list[str]] = [[] for _ in hubs]
        for r in range(args.rooms):
            for j in range(args.span):
                hosted[(r + j) % n_hubs].append(f"r{r}")
        placement: list[tuple[ChatClient, str, list[str]]] = []
        for h, hub in enumerate(hubs):
            for u in range(args.users):
                user = f"u{h}-{u}"
                client = await ChatClient(hub.ws_url, token=hub.token(user)).connect()
                clients.append(client)
                rooms = [
                    hosted[h][(u * args.rooms_per_user + k) % len(hosted[h])]
                    for k in range(args.rooms_per_user)
                ]
                for room in dict.fromkeys(rooms):
                    await client.join(room)
                placement.append((client, user, list(dict.fromkeys(rooms))))
        await settle(hubs)
        before = [traffic(hub) for hub in hubs]

        users = [user for _, user, _ in placement]

        async def chat(client: ChatClient, user: str, rooms: list[str]) -> None:
            # One generator per user: the same DMs in both modes, whatever the interleaving.
            rng = random.Random(f"{args.seed}-{user}")
            for i in range(args.messages):
                await client.send_message(f"{user} says {i}", room=rooms[i % len(rooms)])
            for i in range(args.dms):
                await client.send_message(f"{user} whispers {i}", to_user=rng.choice(users))

        await asyncio.gather(*(chat(c, u, rooms) for c, u, rooms in placement))
        await settle(hubs)
        after = [traffic(hub) for hub in hubs]
        per_hub = [
            {k: [a[k][0] - b[k][0], a[k][1] - b[k][1]] for k in a}
            for a, b in zip(after, before, strict=True)
        ]
        delivered = 0
        for client, _user, rooms in placement:
            delivered += sum(len(client.messages(room)) for room in rooms)
            delivered += sum(len(client.messages(with_user=other)) for other in users)
        return {"per_hub": per_hub, "delivered": delivered}
    finally:
        for client in clients:
            await client.close()
        for hub in reversed(hubs):
            await hub.stop()


def mean(values: list[int]) -> float:
    return sum(values) / len(values)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hubs", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--rooms", type=int, default=16)
    parser.add_argument("--span", type=int, default=2, help="hubs each room has members on")
    parser.add_argument("--users", type=int, default=8, help="clients per hub")
    parser.add_argument("--rooms-per-user", type=int, default=2)
    parser.add_argument("--messages", type=int, default=5, help="room messages per client")
    parser.add_argument("--dms", type=int, default=2, help="direct messages per client")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/0", help="URL or 'memory'")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    for n in args.hubs:
        if not 1 <= args.span <= n:
            parser.error(f"--span must be between 1 and the number of hubs ({n})")
    if min(args.rooms, args.users, args.rooms_per_user) < 1:
        parser.error("--rooms, --users and --rooms-per-user must be at least 1")
    return args


async def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One row per (hubs, traffic kind): mean per hub of each mode and the ratios."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as db_dir:
        for index, n in enumerate(args.hubs):
            order = ("hub", "room") if index % 2 == 0 else ("room", "hub")  # alternate
            results = {mode: await run(mode, n, args, db_dir) for mode in order}
            old, new = results["hub"], results["room"]
            if old["delivered"] != new["delivered"]:
                raise SystemExit(
                    f"deliveries differ: hub-wide {old['delivered']}, per-room {new['delivered']}"
                )
            for kind in ("room", "direct", "all"):
                row: dict[str, Any] = {"hubs": n, "traffic": kind, "delivered": new["delivered"]}
                for unit, i in (("msgs", 0), ("bytes", 1)):
                    row[f"hub-wide {unit}"] = mean([h[kind][i] for h in old["per_hub"]])
                    row[f"per-room {unit}"] = mean([h[kind][i] for h in new["per_hub"]])
                    row[f"{unit} ratio"] = row[f"hub-wide {unit}"] / max(
                        row[f"per-room {unit}"], 1e-9
                    )
                rows.append(row)
    return rows


async def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    print(
        f"broker {args.broker}; {args.rooms} rooms over {args.span} hubs each; {args.users} "
        f"clients per hub in {args.rooms_per_user} rooms; {args.messages} room messages and "
        f"{args.dms} DMs per client"
    )
    print(
        f"{'hubs':>4} {'traffic':<7} {'hub-wide msgs':>13} {'per-room msgs':>13} {'ratio':>6}"
        f" {'hub-wide bytes':>14} {'per-room bytes':>14} {'ratio':>6}"
    )
    for row in await measure(args):
        print(
            f"{row['hubs']:>4} {row['traffic']:<7} {row['hub-wide msgs']:>13.1f} "
            f"{row['per-room msgs']:>13.1f} {row['msgs ratio']:>5.2f}x "
            f"{row['hub-wide bytes']:>14.0f} {row['per-room bytes']:>14.0f} "
            f"{row['bytes ratio']:>5.2f}x"
        )
        if row["traffic"] == "all":
            print(f"{'':>4} (client deliveries, the same in both modes: {row['delivered']})")


if __name__ == "__main__":
    asyncio.run(main())
