"""The ``wslab`` command: ``serve``, ``echo``, ``token``, ``lab``.

- ``wslab serve`` — the chat hub: the page at ``/``, the WebSocket at ``/ws``, ``/healthz``,
  ``/metrics`` (see ``docs/protocol.md``).
- ``wslab echo`` — an RFC 6455 echo server on every path, the target of conformance runs.
- ``wslab token USER`` — a signed JWT for the configured secret.
- ``wslab lab`` — open the course in JupyterLab.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

__all__ = ["main"]


def _notebooks_dir() -> Path:
    """The course's folder: next to the package in a checkout, else ./notebooks, else here."""
    for candidate in (Path(__file__).resolve().parents[1] / "notebooks", Path.cwd() / "notebooks"):
        if candidate.is_dir():
            return candidate
    return Path.cwd()


def _ssl_context(certfile: str | None, keyfile: str | None) -> ssl.SSLContext | None:
    if not certfile and not keyfile:
        return None
    if not (certfile and keyfile):
        raise SystemExit("wslab: --certfile and --keyfile go together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    return context


async def _run_until_signalled(server_close: Callable[[], Awaitable[None]], banner: str) -> None:
    """Print the banner, wait for Ctrl-C / SIGTERM, then close gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    print(banner, flush=True)
    try:
        await stop.wait()
    finally:
        print("wslab: shutting down (1001 to every client)", flush=True)
        await server_close()


def _cmd_echo(args: argparse.Namespace) -> int:
    from wslab.infrastructure.echo import serve_echo

    async def run() -> None:
        server = await serve_echo(
            args.host,
            args.port,
            max_size=args.max_size,
            ssl=_ssl_context(args.certfile, args.keyfile),
        )
        await _run_until_signalled(
            server.close, f"wslab echo: listening on {server.url}/ (every path)"
        )

    asyncio.run(run())
    return 0


def _cmd_lab(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("jupyterlab") is None:
        print('wslab lab needs JupyterLab: pip install -e ".[lab]"', file=sys.stderr)
        return 2
    folder = Path(args.dir) if args.dir else _notebooks_dir()
    passed_on = [a for a in args.jupyter_args if a != "--"]
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in passed_on:
        # Containers and CI machines often run as root, where JupyterLab refuses to start.
        passed_on.append("--allow-root")
    command = [sys.executable, "-m", "jupyterlab", f"--notebook-dir={folder}", *passed_on]
    print("wslab lab:", " ".join(command), flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        return subprocess.call(command, env=os.environ.copy())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``wslab`` command."""
    parser = argparse.ArgumentParser(prog="wslab", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    echo = commands.add_parser("echo", help="RFC 6455 echo server on every path")
    echo.add_argument("--host", default="127.0.0.1")
    echo.add_argument("--port", type=int, default=9001)
    echo.add_argument("--max-size", type=int, default=16 << 20, help="largest message in bytes")
    echo.add_argument("--certfile", help="TLS certificate (PEM) for wss://")
    echo.add_argument("--keyfile", help="TLS private key (PEM) for wss://")
    echo.set_defaults(run=_cmd_echo)

    lab = commands.add_parser("lab", help="open the course in JupyterLab")
    lab.add_argument("--dir", help="folder to open (default: the course's notebooks/)")
    lab.add_argument("jupyter_args", nargs=argparse.REMAINDER, help="passed on to jupyter lab")
    lab.set_defaults(run=_cmd_lab)

    _add_application_commands(commands)
    return parser


def _add_application_commands(commands: argparse._SubParsersAction) -> None:
    """``serve`` and ``token`` live with the hub; they are added where available."""
    with contextlib.suppress(ImportError):
        from wslab.hub import add_cli_commands

        add_cli_commands(commands)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``wslab`` command."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # Only `wslab lab` passes options on (to JupyterLab: --no-browser, --ServerApp.port=...).
        if args.command != "lab":
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.jupyter_args = [*extra, *args.jupyter_args]
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
