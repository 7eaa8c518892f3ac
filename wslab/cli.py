"""The ``wslab`` command: ``serve``, ``echo``, ``token``, ``lab``.

- ``wslab serve`` — the chat hub: the page at ``/``, the WebSocket at ``/ws``, ``/healthz``,
  ``/metrics`` (see ``docs/protocol.md``).
- ``wslab echo`` — an RFC 6455 echo server on every path, the target of conformance runs.
- ``wslab token USER`` — a signed JWT for the configured secret.
- ``wslab lab`` — copy the course into a working folder and become JupyterLab on it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import signal
import ssl
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from wslab.hub import Hub
from wslab.infrastructure.config import HubConfig
from wslab.integration.auth import AuthConfig, issue_token

__all__ = ["main"]


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
    from wslab.infrastructure.echo import DEFAULT_COMPRESSION, serve_echo

    async def run() -> None:
        server = await serve_echo(
            args.host,
            args.port,
            max_size=args.max_size,
            ssl=_ssl_context(args.certfile, args.keyfile),
            compression=None if args.no_compression else DEFAULT_COMPRESSION,
        )
        await _run_until_signalled(
            server.close, f"wslab echo: listening on {server.url}/ (every path)"
        )

    asyncio.run(run())
    return 0


def _cmd_lab(args: argparse.Namespace) -> int:
    """List the course, or copy what is missing of it into the working folder and become
    JupyterLab there (see ``wslab/course.py``)."""
    from wslab import course
    from wslab.foundation.errors import ConfigError, WslabError

    def fail(message: str, status: int) -> int:
        print(f"wslab lab: error: {message}", file=sys.stderr)
        return status

    if args.list:
        try:
            listing = course.format_listing()
        except WslabError as exc:
            return fail(str(exc), 1)
        print(listing)
        return 0
    if importlib.util.find_spec("jupyterlab") is None:
        return fail('JupyterLab is not installed: pip install "wslab[lab]"', 2)
    try:
        report = course.prepare(args.dir or course.DEFAULT_DIR)
    except ConfigError as exc:
        return fail(str(exc), 2)
    except WslabError as exc:
        return fail(str(exc), 1)
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        return fail(f"cannot fill the working folder{where}: {exc.strerror or exc}", 1)
    for line in report.lines():
        print(f"wslab lab: {line}")
    # Everything after `--` is JupyterLab's; argparse may or may not keep the `--` itself.
    passed_on = list(args.jupyter_args)
    if passed_on[:1] == ["--"]:
        passed_on = passed_on[1:]
    command = course.lab_command(report.folder, passed_on)
    print("wslab lab:", " ".join(command), flush=True)
    course.become(command)  # exec: this process is JupyterLab from here on


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
    echo.add_argument(
        "--no-compression", action="store_true", help="answer permessage-deflate offers without it"
    )
    echo.set_defaults(run=_cmd_echo)

    lab = commands.add_parser(
        "lab",
        help="open the course in JupyterLab",
        description="Copy the course's notebooks into a working folder (only those missing: "
        "your edits are never overwritten) and run JupyterLab on it, in this process.",
        usage="%(prog)s [--dir DIR] [--list] [-- JUPYTERLAB_ARGS ...]",
    )
    lab.add_argument(
        "--dir", help="working folder, created and filled the first time (default: ./wslab-course)"
    )
    lab.add_argument("--list", action="store_true", help="list the course's notebooks and exit")
    lab.add_argument(
        "jupyter_args",
        nargs=argparse.REMAINDER,
        metavar="-- JUPYTERLAB_ARGS",
        help="passed on to JupyterLab, e.g. -- --no-browser --ServerApp.port=8888",
    )
    lab.set_defaults(run=_cmd_lab)

    _add_application_commands(commands)
    return parser


def _add_application_commands(commands: argparse._SubParsersAction) -> None:
    """``serve`` and ``token``: the chat hub and its tokens."""
    add_cli_commands(commands)


def add_cli_commands(commands: argparse._SubParsersAction) -> None:
    """Add ``wslab serve`` and ``wslab token`` to the ``wslab`` command."""
    serve_cmd = commands.add_parser(
        "serve", help="run the chat hub (page, /ws, /healthz, /metrics)"
    )
    serve_cmd.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve_cmd.add_argument("--port", type=int, help="port (default 8765; 0 picks a free one)")
    serve_cmd.add_argument("--engine", choices=("wslab", "websockets"))
    serve_cmd.add_argument("--db", dest="database", help="sqlite:///PATH or postgresql://...")
    serve_cmd.add_argument("--broker", help="memory:// or redis://host:port/db")
    serve_cmd.add_argument("--secret", dest="jwt_secret", help="HS256 secret (default: generated)")
    serve_cmd.add_argument(
        "--no-auth", action="store_true", help="admit anyone as a guest (teaching only)"
    )
    serve_cmd.add_argument(
        "--allowed-origin", action="append", dest="allowed_origins", metavar="ORIGIN"
    )
    serve_cmd.add_argument(
        "--no-compression", action="store_true", help="never negotiate permessage-deflate"
    )
    serve_cmd.add_argument("--config", help="TOML file with a [hub] table")
    serve_cmd.set_defaults(run=_cmd_serve)

    token_cmd = commands.add_parser("token", help="print a token for the configured secret")
    token_cmd.add_argument("user")
    token_cmd.add_argument("--username")
    token_cmd.add_argument("--role", action="append", dest="roles", default=[])
    token_cmd.add_argument("--ttl", type=float, default=3600.0, help="seconds (default 3600)")
    token_cmd.add_argument(
        "--secret", dest="jwt_secret", help="default: WSLAB_JWT_SECRET or --config"
    )
    token_cmd.add_argument("--config", help="TOML file with a [hub] table")
    token_cmd.set_defaults(run=_cmd_token)


def _cli_overrides(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    overrides = {
        name: getattr(args, name) for name in names if getattr(args, name, None) is not None
    }
    if "allowed_origins" in overrides:
        overrides["allowed_origins"] = tuple(overrides["allowed_origins"])
    return overrides


def _compression_summary(config: HubConfig) -> str:
    """One line on what the hub negotiates: ``off`` or the permessage-deflate settings."""
    if not config.compression:
        return "off (--no-compression)"
    context = (
        "no context takeover" if config.compression_no_context_takeover else "context takeover"
    )
    return (
        f"permessage-deflate (window 2**{config.compression_window_bits}, {context}, "
        f"messages from {config.compression_threshold} bytes)"
    )


def _cmd_serve(args: argparse.Namespace) -> int:
    from wslab.infrastructure.logs import configure_logging

    names = ("host", "port", "engine", "database", "broker", "jwt_secret", "allowed_origins")
    overrides = _cli_overrides(args, names)
    if args.no_auth:
        overrides["auth_required"] = False
    if args.no_compression:
        overrides["compression"] = False
    config = HubConfig.load(file=args.config, argv_overrides=overrides)
    configure_logging(config.log_level, json=config.log_json)

    async def run() -> None:
        hub = await Hub.start(config)
        lines = [f"wslab serve: hub {hub.hub_id} on {hub.url}  (WebSocket {hub.ws_url})"]
        shown = config.to_dict()  # passwords in URLs redacted
        lines.append(
            f"  store {shown['database']}, broker {shown['broker']}, engine {config.engine}"
        )
        lines.append(f"  compression {_compression_summary(config)}")
        if not config.auth_required:
            lines.append("  authentication OFF: everyone is a guest (--no-auth)")
        else:
            if hub.generated_secret:
                lines.append(
                    f"  generated secret (set WSLAB_JWT_SECRET to keep it): {hub.config.jwt_secret}"
                )
            lines.append(
                f"  dev token for 'dev' (1 h): {hub.token('dev', username='dev', ttl=3600)}"
            )
        await _run_until_signalled(hub.stop, "\n".join(lines))

    asyncio.run(run())
    return 0


def _cmd_token(args: argparse.Namespace) -> int:
    config = HubConfig.load(file=args.config, argv_overrides=_cli_overrides(args, ("jwt_secret",)))
    if not config.jwt_secret:
        print(
            "wslab token: no secret configured; pass --secret or set WSLAB_JWT_SECRET", flush=True
        )
        return 2
    auth = AuthConfig(
        secret=config.jwt_secret,
        algorithms=tuple(config.jwt_algorithms),
        issuer=config.jwt_issuer,
        audience=config.jwt_audience,
    )
    print(
        issue_token(auth, args.user, username=args.username, roles=tuple(args.roles), ttl=args.ttl)
    )
    return 0


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
