"""The ``wslab`` command as a user runs it: real subprocesses, a clean environment, signals.

Each server is started with ``--port 0`` and found through the URL it prints; ``HOME`` points
into the test's temporary directory so the default data directory (and the development secret in
it) is fresh, no ``WSLAB_*`` variable leaks in from the environment running the tests, and
``PYTHONPATH`` points at this checkout. Every mistake a user can make is one line on stderr with
exit status 2 (usage, configuration) or 1 (a failure at run time), never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import jwt
import pytest

from wslab.infrastructure.transport import connect
from wslab.testing import http_request

pytestmark = pytest.mark.timeout(90)

#: Start-up of a fresh interpreter on a busy machine: generous, and only an upper bound.
STARTUP = 30.0
WAIT = 20.0
ROOT = Path(__file__).resolve().parents[1]
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
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
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
            "wslab",
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
        [sys.executable, "-m", "wslab", "token", *args],
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
        [sys.executable, "-m", "wslab", "token", "bob", "--username", "Bob"],
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


def run(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``wslab ARGS`` to completion in a clean environment (plus ``env``)."""
    return subprocess.run(
        [sys.executable, "-m", "wslab", *args],
        capture_output=True,
        text=True,
        env={**clean_env(home), **env},
        cwd=home,
        timeout=STARTUP,
        check=False,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single line a failing command printed on stderr (and nothing else)."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_token_without_a_secret_uses_the_development_secret(tmp_path: Path) -> None:
    first = run(tmp_path, "token", "alice")
    assert first.returncode == 0 and first.stderr == "", first.stderr
    secret_file = tmp_path / ".local" / "share" / "wslab" / "dev-secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = secret_file.read_text().strip()
    assert jwt.decode(first.stdout.strip(), secret, algorithms=["HS256"])["sub"] == "alice"
    second = run(tmp_path, "token", "bob")  # the same secret the next time
    assert jwt.decode(second.stdout.strip(), secret, algorithms=["HS256"])["sub"] == "bob"


def test_the_development_secret_follows_xdg_data_home(tmp_path: Path) -> None:
    result = run(tmp_path, "token", "alice", XDG_DATA_HOME=str(tmp_path / "xdg"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "xdg" / "wslab" / "dev-secret").is_file()
    assert not (tmp_path / ".local").exists()


async def test_wslab_token_works_against_a_default_wslab_serve(
    wslab: Launch, tmp_path: Path
) -> None:
    """The sign-in page's hint, as a new user follows it: `wslab serve`, then `wslab token alice`
    in another terminal, and the token connects. Token before serve works as well."""
    home = tmp_path / "home"
    early = await asyncio.to_thread(run, home, "token", "early")
    server = await wslab("serve", "--port", "0")
    url = (await server.read_until(URL)).group(1)
    await server.read_until(re.compile(r"development secret .*dev-secret"))
    late = await asyncio.to_thread(run, home, "token", "alice", "--role", "admin")
    assert early.returncode == late.returncode == 0, early.stderr + late.stderr
    ws_url = url.replace("http://", "ws://") + "/ws"
    for token, user, roles in (
        (late.stdout.strip(), "alice", ["admin"]),
        (early.stdout.strip(), "early", []),
    ):
        conn = await connect(ws_url, headers=[("Authorization", f"Bearer {token}")])
        hello = json.loads(await asyncio.wait_for(conn.recv(), WAIT))
        assert hello["type"] == "system:connected" and hello["user_id"] == user
        assert hello["roles"] == roles
        await conn.close()
    # A token signed with another secret is refused, and the refusal is logged.
    other = run(home, "token", "mallory", "--secret", "another-secret-0123456789abcdef0123456789")
    conn = await connect(ws_url, headers=[("Authorization", f"Bearer {other.stdout.strip()}")])
    await asyncio.wait_for(conn.wait_closed(), WAIT)
    assert conn.close_code == 4001
    assert await server.interrupt() == 0
    log = (tmp_path / "stderr.log").read_text()
    opened = [json.loads(line) for line in log.splitlines() if '"connection opened"' in line]
    assert {line["user_id"] for line in opened} == {"alice", "early"}  # INFO logs by default
    assert '"connection closed"' in log and '"token refused"' in log


# -- one-line errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["serve", "--port", "99999"], {},
         "wslab serve: error: --port: expected an integer 0..65535, got 99999"),
        (["serve"], {"WSLAB_PORT": "abc"},
         "wslab serve: error: WSLAB_PORT: expected an integer 0..65535, got abc"),
        (["serve", "--db", "mysql://db/x"], {},
         "wslab serve: error: --db: expected 'sqlite:///<path>', 'sqlite:///:memory:' or "
         "'postgresql://...', got mysql://db/x"),
        (["serve", "--allowed-origin", "chat.example.org"], {},
         "wslab serve: error: --allowed-origin: expected origins like 'https://chat.example.org' "
         "or 'http://localhost:8765', got chat.example.org"),
        (["serve", "--prot", "9000"], {},
         "wslab serve: error: unrecognized arguments: --prot 9000; did you mean --port?"),
        (["serve", "--db"], {}, "wslab serve: error: --db: expected one argument"),
        (["serve", "--config", "nowhere.toml"], {},
         "wslab serve: error: --config nowhere.toml: not found"),
        (["serve"], {"WSLAB_CONFIG": "nowhere.toml"},
         "wslab serve: error: WSLAB_CONFIG=nowhere.toml: not found"),
        (["srve"], {}, "wslab: error: unknown command 'srve'; did you mean serve?"),
        (["token", "alice", "--ttl", "-5"], {},
         "wslab token: error: --ttl: expected a number of seconds > 0, got -5"),
        (["token", "alice", "--ttl", "0"], {},
         "wslab token: error: --ttl: expected a number of seconds > 0, got 0"),
        (["token", "alice", "--role", "admin", "--secret", "S"], {},
         "wslab token: error: --secret: HS256 needs a secret of at least 32 bytes; this one has 1"),
        (["token", "alice"], {"WSLAB_JWT_SECRET": "short"},
         "wslab token: error: WSLAB_JWT_SECRET: HS256 needs a secret of at least 32 bytes; "
         "this one has 5"),
        (["token", "alice", "--jwt-algorithms", "RS256"], {},
         "wslab token: error: --jwt-algorithms: RS256 needs jwt_public_key, which is not set"),
        (["serve", "--broker", "memory://a/b"], {},
         "wslab serve: error: --broker memory://a/b: broker URL memory://NAME takes only a name"),
        (["echo", "--port", "99999"], {},
         "wslab echo: error: --port: expected an integer 0..65535, got 99999"),
    ],
)  # fmt: skip
def test_usage_and_configuration_errors_are_one_line_exit_2(
    tmp_path: Path, args: list[str], env: dict[str, str], expected: str
) -> None:
    result = run(tmp_path, *args, **env)
    assert (result.returncode, one_line(result)) == (2, expected)


def test_a_bad_key_in_the_config_file_is_named_with_the_file(tmp_path: Path) -> None:
    config = tmp_path / "wslab.toml"
    config.write_text('[hub]\nport = "8765"\n')
    result = run(tmp_path, "serve", "--config", str(config))
    expected = f"wslab serve: error: port (file {config}): expected an integer 0..65535, got '8765'"
    assert (result.returncode, one_line(result)) == (2, expected)


def test_auth_layer_errors_name_the_users_settings(tmp_path: Path) -> None:
    env = {"WSLAB_JWT_ALGORITHMS": "HS256,RS256", "WSLAB_JWT_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-"}
    result = run(tmp_path, "serve", "--port", "0", **env)
    assert (result.returncode, one_line(result)) == (
        2,
        "wslab serve: error: WSLAB_JWT_ALGORITHMS must not mix HMAC (HS*) with RSA/EC algorithms: "
        "one key read two ways enables key-confusion attacks",
    )


def test_a_certificate_that_is_not_one_is_a_configuration_error(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("not a certificate\n")
    result = run(
        tmp_path, "serve", "--port", "0", "--tls-certfile", "c.pem", "--tls-keyfile", "c.pem"
    )
    assert result.returncode == 2
    assert one_line(result).startswith(
        "wslab serve: error: cannot load the TLS certificate and key "
        "(--tls-certfile c.pem, --tls-keyfile c.pem): "
    )


def test_a_busy_port_is_one_line_exit_1(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        db = f"sqlite:///{tmp_path / 'x.db'}"
        result = run(tmp_path, "serve", "--port", str(port), "--db", db)
        debug = run(tmp_path, "serve", "--port", str(port), "--db", db, "--debug")
    expected = (
        f"wslab serve: error: cannot listen on 127.0.0.1:{port} (host 127.0.0.1, --port {port}): "
        "the address is in use by another program; stop it or choose another port "
        "(0 picks a free one)"
    )
    assert (result.returncode, one_line(result)) == (1, expected)
    # --debug adds the traceback; the last line is still the one line.
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    assert debug.stderr.splitlines()[-1] == expected


def test_an_unreachable_postgresql_is_one_line_exit_1(tmp_path: Path) -> None:
    pytest.importorskip("asyncpg")
    result = run(tmp_path, "serve", "--port", "0", "--db", "postgresql://127.0.0.1:1/x")
    assert (result.returncode, one_line(result)) == (
        1,
        "wslab serve: error: --db postgresql://127.0.0.1:1/x: message store (PostgreSQL) "
        "unavailable: connect failed (ConnectionRefusedError): [Errno 111] Connect call failed "
        "('127.0.0.1', 1)",
    )


def test_an_unreachable_redis_is_one_line_exit_1(tmp_path: Path) -> None:
    pytest.importorskip("redis")
    db = f"sqlite:///{tmp_path / 'x.db'}"
    result = run(tmp_path, "serve", "--port", "0", "--db", db, "--broker", "redis://127.0.0.1:1")
    assert result.returncode == 1
    assert one_line(result).startswith(
        "wslab serve: error: --broker: cannot reach the Redis broker at redis://127.0.0.1:1: "
    )
    by_env = run(tmp_path, "serve", "--port", "0", "--db", db, WSLAB_BROKER="redis://127.0.0.1:1")
    assert by_env.returncode == 1
    assert one_line(by_env).startswith("wslab serve: error: WSLAB_BROKER: cannot reach the Redis")


def test_an_import_error_in_the_hub_is_an_error_not_invalid_choice(tmp_path: Path) -> None:
    """A broken dependency (here a ``jwt`` module that fails to import) must not look like a
    missing command."""
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "jwt.py").write_text('raise ImportError("jwt is broken on purpose")\n')
    path = os.pathsep.join([str(broken), str(ROOT)])
    result = run(tmp_path, "serve", "--port", "0", PYTHONPATH=path)
    line = one_line(result)
    assert result.returncode == 1 and "invalid choice" not in line
    assert line == (
        "wslab serve: error: cannot import: ImportError: jwt is broken on purpose "
        "(--debug shows the traceback)"
    )
    debug = run(tmp_path, "--debug", "serve", "--port", "0", PYTHONPATH=path)
    assert "Traceback" in debug.stderr and debug.stderr.splitlines()[-1] == line


# -- help, version, wslab config, warnings ---------------------------------------------------------


def test_version_and_plain_text_help(tmp_path: Path) -> None:
    from wslab import __version__

    version = run(tmp_path, "--version")
    assert (version.returncode, version.stdout.strip()) == (0, f"wslab {__version__}")
    top = run(tmp_path, "--help")
    assert top.returncode == 0 and "wslab serve" in top.stdout
    for rst in ("``", ":class:", ":func:", ".. "):
        assert rst not in top.stdout
    serve = run(tmp_path, "serve", "--help")
    text = " ".join(serve.stdout.split())
    from wslab.infrastructure.config import settings

    for setting in settings():  # every setting, its default and its variable
        assert setting.flag in text and f"env {setting.env}]" in text, setting.name
    for alias in ("--db", "--secret", "--no-auth", "--allowed-origin", "--no-compression",
                  "--config", "--log-format"):  # fmt: skip
        assert alias in text


def test_config_shows_values_and_sources_and_masks_the_secret(tmp_path: Path) -> None:
    secret = "config-test-secret-0123456789abcdef0123456789"
    file = tmp_path / "wslab.toml"
    file.write_text("[hub]\nmax_queue = 10\n")
    args = ("config", "--config", str(file), "--db", "sqlite:///x.db", "--no-auth")
    env = {"WSLAB_PORT": "9000", "WSLAB_JWT_SECRET": secret}
    result = run(tmp_path, *args, **env)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    rows = {line.split()[0]: line.split(None, 2)[1:] for line in result.stdout.splitlines()[1:]}
    assert rows["port"] == ["9000", "env WSLAB_PORT"]
    assert rows["max_queue"] == ["10", f"file {file} [hub] max_queue"]
    assert rows["database"] == ["sqlite:///x.db", "flag --db"]
    assert rows["auth_required"] == ["false", "flag --no-auth"]
    assert rows["host"] == ["127.0.0.1", "default"]
    assert rows["jwt_secret"] == ["***", "env WSLAB_JWT_SECRET"]
    assert secret not in result.stdout
    as_json = json.loads(run(tmp_path, *args, "--json", **env).stdout)
    assert as_json["port"] == {"value": 9000, "source": "env WSLAB_PORT"}
    assert as_json["jwt_secret"]["value"] == "***"
    # Database passwords are masked too.
    masked = run(tmp_path, "config", "--db", "postgresql://u:pg-pass@db/x")
    assert "pg-pass" not in masked.stdout and "postgresql://u:***@db/x" in masked.stdout


def test_config_names_the_development_secret(tmp_path: Path) -> None:
    before = run(tmp_path, "config")
    path = tmp_path / ".local" / "share" / "wslab" / "dev-secret"
    assert f"serve and token create a development secret {path}" in before.stdout
    assert not path.exists()  # looking does not create it
    run(tmp_path, "token", "alice")
    after = run(tmp_path, "config")
    assert re.search(rf"^jwt_secret +\*\*\* +development secret {re.escape(str(path))}$",
                     after.stdout, re.M)  # fmt: skip


def test_unknown_wslab_variable_warns_with_a_suggestion(tmp_path: Path) -> None:
    result = run(tmp_path, "config", WSLAB_PROT="9000")
    assert result.returncode == 0
    assert result.stderr.splitlines() == [
        "wslab config: warning: WSLAB_PROT is not a wslab setting, ignored; did you mean "
        "WSLAB_PORT?"
    ]
    assert re.search(r"^port +8765 +default$", result.stdout, re.M)


async def test_log_format_text(wslab: Launch, tmp_path: Path) -> None:
    server = await wslab(
        "serve", "--port", "0", "--db", f"sqlite:///{tmp_path / 't.db'}", "--no-auth",
        "--log-format", "text",
    )  # fmt: skip
    url = (await server.read_until(URL)).group(1)
    conn = await connect(url.replace("http://", "ws://") + "/ws")
    await asyncio.wait_for(conn.recv(), WAIT)
    await conn.close()
    assert await server.interrupt() == 0
    lines = [line for line in (tmp_path / "stderr.log").read_text().splitlines() if line]
    opened = [line for line in lines if "connection opened" in line]
    assert opened and " INFO wslab.hub connection opened " in opened[0]
    assert not opened[0].startswith("{")
