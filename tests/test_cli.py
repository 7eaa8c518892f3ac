"""The ``wslab`` command as a user runs it: real subprocesses, a clean environment, signals.

Each server is started with ``--port 0`` and found through the URL it prints; ``HOME`` points
into the test's temporary directory so the default data directory is fresh, and no ``WSLAB_*``
variable leaks in from the environment running the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import jwt
import pytest

from wslab.infrastructure.engines.wslab import connect
from wslab.testing import http_request

pytestmark = pytest.mark.timeout(90)

#: Start-up of a fresh interpreter on a busy machine: generous, and only an upper bound.
STARTUP = 30.0
WAIT = 20.0
URL = re.compile(r"\b((?:http|ws)://127\.0\.0\.1:(\d+))")


def clean_env(home: Path) -> dict[str, str]:
    """The environment a new user would have: fresh HOME, no wslab settings, no XDG overrides."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WSLAB_", "XDG_")) and k not in ("HOME",)
    }
    env["HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Running:
    """A ``wslab`` subprocess and what it printed."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []

    async def read_until(self, pattern: re.Pattern[str], timeout: float = STARTUP) -> re.Match[str]:
        """Read stdout lines until one matches ``pattern``."""
        assert self.process.stdout is not None

        async def scan() -> re.Match[str]:
            while True:
                raw = await self.process.stdout.readline()  # type: ignore[union-attr]
                if not raw:
                    pytest.fail(f"wslab exited before printing {pattern.pattern}: {self.lines}")
                line = raw.decode().rstrip("\n")
                self.lines.append(line)
                match = pattern.search(line)
                if match:
                    return match

        try:
            return await asyncio.wait_for(scan(), timeout)
        except asyncio.TimeoutError:
            pytest.fail(f"wslab printed no {pattern.pattern} in {timeout:g}s: {self.lines}")

    async def interrupt(self) -> int:
        """Ctrl-C: send SIGINT and wait for the exit status."""
        self.process.send_signal(signal.SIGINT)
        try:
            return await asyncio.wait_for(self.process.wait(), WAIT)
        except asyncio.TimeoutError:
            pytest.fail("wslab did not exit within 10 s of SIGINT")


Launch = Callable[..., Awaitable[Running]]


@pytest.fixture
async def wslab(tmp_path: Path) -> AsyncIterator[Launch]:
    """``await wslab("serve", "--port", "0")``: the command running in a clean environment."""
    running: list[Running] = []
    home = tmp_path / "home"
    home.mkdir()

    async def launch(*args: str) -> Running:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "wslab.cli",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=(tmp_path / "stderr.log").open("ab"),
            env=clean_env(home),
            cwd=tmp_path,
        )
        running.append(Running(process))
        return running[-1]

    yield launch
    for item in running:
        if item.process.returncode is None:
            item.process.kill()
            with contextlib.suppress(Exception):
                await item.process.wait()


# -- wslab serve -----------------------------------------------------------------------------------


async def test_serve_starts_answers_and_stops_on_sigint(wslab: Launch, tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    server = await wslab("serve", "--port", "0", "--db", f"sqlite:///{db}")
    url = (await server.read_until(URL)).group(1)
    await server.read_until(re.compile(r"compression permessage-deflate \(window 2\*\*12"))
    status, _, body = await http_request(url, "/healthz", timeout=WAIT)
    assert status == 200 and json.loads(body)["status"] == "ok"

    # The banner's development token is accepted by the running hub.
    token = (await server.read_until(re.compile(r"dev token .*: (\S+)$"))).group(1)
    ws_url = url.replace("http://", "ws://") + "/ws"
    conn = await connect(ws_url, headers=[("Authorization", f"Bearer {token}")])
    hello = json.loads(await asyncio.wait_for(conn.recv(), WAIT))
    assert hello["type"] == "system:connected" and hello["user_id"] == "dev"
    assert conn.extensions == (  # compression is on by default, as browsers expect
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=12; client_max_window_bits=12"
    )

    assert await server.interrupt() == 0
    await asyncio.wait_for(conn.wait_closed(), WAIT)
    assert conn.close_code == 1001  # clients were told the hub is going away
    assert db.exists()


async def test_serve_without_db_uses_the_user_data_dir(wslab: Launch, tmp_path: Path) -> None:
    server = await wslab("serve", "--port", "0")
    url = (await server.read_until(URL)).group(1)
    store = (await server.read_until(re.compile(r"store sqlite:///(\S+),"))).group(1)
    status, _, body = await http_request(url, "/healthz", timeout=WAIT)
    assert status == 200 and json.loads(body)["status"] == "ok"
    assert await server.interrupt() == 0
    created = list((tmp_path / "home").rglob("wslab.db"))
    assert len(created) == 1, "the default store lives in the (temporary) user's data dir"
    assert Path(store) == created[0]


async def test_serve_no_auth(wslab: Launch, tmp_path: Path) -> None:
    server = await wslab(
        "serve", "--port", "0", "--db", f"sqlite:///{tmp_path / 'g.db'}", "--no-auth",
        "--no-compression",
    )  # fmt: skip
    url = (await server.read_until(URL)).group(1)
    await server.read_until(re.compile(r"compression off \(--no-compression\)"))
    await server.read_until(re.compile("authentication OFF"))
    conn = await connect(url.replace("http://", "ws://") + "/ws")
    assert conn.extensions is None
    hello = json.loads(await asyncio.wait_for(conn.recv(), WAIT))
    assert hello["user_id"].startswith("guest-")
    await conn.close()
    assert await server.interrupt() == 0


# -- wslab echo ------------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", [True, False])
async def test_echo_on_port_zero_prints_the_real_port(wslab: Launch, compression: bool) -> None:
    server = await wslab("echo", "--port", "0", *([] if compression else ["--no-compression"]))
    match = await server.read_until(URL)
    assert match.group(2) != "0"
    conn = await connect(match.group(1) + "/any/path")
    assert (conn.extensions is not None) is compression  # our client always offers it
    await conn.send("héllo")
    assert await asyncio.wait_for(conn.recv(), WAIT) == "héllo"
    await conn.send(b"\x00\xff")
    assert await asyncio.wait_for(conn.recv(), WAIT) == b"\x00\xff"
    await conn.close()
    assert await server.interrupt() == 0


# -- wslab token -----------------------------------------------------------------------------------


def run_token(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wslab.cli", "token", *args],
        capture_output=True,
        text=True,
        env=clean_env(tmp_path),
        cwd=tmp_path,
        timeout=STARTUP,
        check=False,
    )


def test_token_verifies_with_its_secret(tmp_path: Path) -> None:
    secret = "cli-test-secret-0123456789abcdef0123456789"
    result = run_token(tmp_path, "alice", "--secret", secret, "--role", "admin", "--ttl", "600")
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    claims = jwt.decode(token, secret, algorithms=["HS256"])
    assert claims["sub"] == "alice"
    assert claims["roles"] == ["admin"]
    assert 590 <= claims["exp"] - claims["iat"] <= 602
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, "another-secret-0123456789abcdef0123456789", algorithms=["HS256"])


def test_token_takes_the_secret_from_the_environment(tmp_path: Path) -> None:
    secret = "env-secret-0123456789abcdef0123456789abcdef"
    result = subprocess.run(
        [sys.executable, "-m", "wslab.cli", "token", "bob", "--username", "Bob"],
        capture_output=True,
        text=True,
        env={**clean_env(tmp_path), "WSLAB_JWT_SECRET": secret},
        cwd=tmp_path,
        timeout=STARTUP,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), secret, algorithms=["HS256"])
    assert claims["sub"] == "bob" and claims["username"] == "Bob"
    assert "roles" not in claims


def test_token_without_a_secret_says_what_to_do(tmp_path: Path) -> None:
    result = run_token(tmp_path, "alice")
    assert result.returncode == 2
    assert "--secret" in result.stdout + result.stderr
