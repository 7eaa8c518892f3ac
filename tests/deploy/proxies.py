"""HAProxy and nginx running the repository's own configs (``deploy/``) in front of test hubs.

Each proxy runs in the foreground as the current user, in a session of its own, with its config,
pid and log files in the test's temporary directory, listening on a free loopback port.
``deploy/haproxy.cfg`` is run as shipped (HAProxy fills in ``"${WSLAB_...}"`` from the
environment); ``deploy/nginx.conf`` gets the addresses substituted (as ``envsubst`` would) and is
included from a minimal main config that keeps nginx's files in the temporary directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KINDS = ("haproxy", "nginx")
#: Upper bound for a proxy to start listening or to exit (only a broken one reaches it).
STARTUP = 10.0


def proxy_binary(kind: str) -> str | None:
    """The path of the ``haproxy`` or ``nginx`` executable, if installed (Debian: /usr/sbin)."""
    found = shutil.which(kind) or f"/usr/sbin/{kind}"
    return found if os.access(found, os.X_OK) else None


def free_port() -> int:
    """A TCP port nothing listens on right now (the proxy binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Proxy:
    """One running proxy: where it listens, its process, and the log it writes."""

    kind: str
    port: int
    backends: tuple[str, ...]  # "host:port" of hub1, hub2 in config order
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def took_out(self, backend: str) -> bool:
        """True once the proxy's log says it stopped sending new connections to ``backend``.

        HAProxy: its health check marked the server DOWN. nginx (no active checks): a failed
        connect made it disable the upstream server for ``fail_timeout``.
        """
        lines = self.log_text().splitlines()
        if self.kind == "haproxy":
            name = f"hub{self.backends.index(backend) + 1}"
            return any(f"Server wslab_hubs/{name} is DOWN" in line for line in lines)
        return any(
            "upstream server temporarily disabled" in line and f"//{backend}/" in line
            for line in lines
        )

    def put_back(self, backend: str) -> bool:
        """HAProxy only: True once its health check marked ``backend`` UP again."""
        name = f"hub{self.backends.index(backend) + 1}"
        return any(
            f"Server wslab_hubs/{name} is UP" in line for line in self.log_text().splitlines()
        )

    def stop(self) -> None:
        """Stop the proxy and anything left in its session (nginx workers)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STARTUP)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STARTUP)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # its own session: pgid == pid


def start_proxy(kind: str, binary: str, backends: Sequence[str], tmp: Path) -> Proxy:
    """Start ``kind`` in front of the two ``backends`` and wait until it accepts connections."""
    if len(backends) != 2:
        raise ValueError("the shipped configs name two hubs")
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = tmp / f"{kind}.log"
    env = {
        **os.environ,
        "WSLAB_LISTEN": f"127.0.0.1:{port}",
        "WSLAB_HUB1": backends[0],
        "WSLAB_HUB2": backends[1],
    }
    if kind == "haproxy":
        command = [binary, "-f", str(DEPLOY / "haproxy.cfg"), "-db", "-p", str(tmp / "haproxy.pid")]
    elif kind == "nginx":
        command = [binary, "-p", str(tmp), "-c", str(_nginx_main_config(tmp, env)), "-e", str(log)]
    else:
        raise ValueError(f"unknown proxy {kind!r}")
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    proxy = Proxy(kind, port, tuple(backends), process, log)
    deadline = time.monotonic() + STARTUP
    while not _accepts(port):
        if process.poll() is not None or time.monotonic() > deadline:
            proxy.stop()
            raise RuntimeError(f"{kind} did not start listening on {port}:\n{proxy.log_text()}")
        time.sleep(0.05)
    return proxy


def _nginx_main_config(tmp: Path, env: dict[str, str]) -> Path:
    """deploy/nginx.conf with the addresses filled in, inside a main config of the test's own."""
    text = (DEPLOY / "nginx.conf").read_text()
    for name in ("WSLAB_LISTEN", "WSLAB_HUB1", "WSLAB_HUB2"):
        text = text.replace("${" + name + "}", env[name])
    (tmp / "wslab.conf").write_text(text)
    main = tmp / "nginx-main.conf"
    main.write_text(
        f"""daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx.log info;
events {{ worker_connections 256; }}
http {{
    access_log {tmp}/nginx-access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/wslab.conf;
}}
"""
    )
    return main


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
