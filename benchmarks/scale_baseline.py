"""The baseline of ``bench_scale.py``: a bare ``websockets`` broadcast server, as little as it takes.

What a competent user would write without wslab: ``process_request`` checks the JWT on the
upgrade request (the same HS256 token the hub checks, with PyJWT), the connection gets a greeting
and joins the one room, and every text message is sent to every connection with
``websockets.broadcast`` (encoded once, as the hub does).

    python benchmarks/scale_baseline.py --port 0 --secret S   # prints "listening on ws://..."
"""

from __future__ import annotations

import argparse
import asyncio
import http
import json
import signal
from typing import Any

import jwt
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--secret", required=True)
    args = parser.parse_args()
    asyncio.run(run(args.host, args.port, args.secret))


async def run(host: str, port: int, secret: str) -> None:
    room: set[ServerConnection] = set()
    users: dict[ServerConnection, str] = {}

    def check_token(connection: ServerConnection, request: Request) -> Response | None:
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        try:
            claims: dict[str, Any] = jwt.decode(token, secret, algorithms=["HS256"])
        except jwt.PyJWTError:
            return Response(http.HTTPStatus.UNAUTHORIZED, "Unauthorized", Headers(), b"")
        users[connection] = str(claims["sub"])
        return None

    async def handler(connection: ServerConnection) -> None:
        user = users.pop(connection, "?")
        await connection.send(json.dumps({"type": "connected", "user_id": user}))
        room.add(connection)
        try:
            async for message in connection:
                broadcast(room, message)
        finally:
            room.discard(connection)

    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with serve(
        handler, host, port, process_request=check_token, compression=None, max_queue=None
    ) as server:
        bound = next(iter(server.sockets)).getsockname()
        print(f"listening on ws://{bound[0]}:{bound[1]}/ws", flush=True)
        await stop


if __name__ == "__main__":
    main()
