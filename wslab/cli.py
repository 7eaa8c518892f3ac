"""The ``wslab`` command: ``serve``, ``config``, ``token``, ``echo``, ``lab``, ``bench``.

Errors are one line on stderr, ``wslab COMMAND: error: WHAT``, naming the flag, environment
variable or file key the wrong value came from; the exit status is 2 for a wrong command line or
configuration and 1 when something fails at run time (a busy port, an unreachable database or
broker). ``--debug`` adds the Python traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import difflib
import importlib.util
import ipaddress
import json
import os
import re
import signal
import ssl
import sys
import traceback
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import wslab
from wslab.cli_errors import (
    RUNTIME,
    USAGE,
    Failure,
    in_user_terms,
    runtime_failure,
)
from wslab.foundation.errors import ConfigError
from wslab.infrastructure.config import HubConfig, settings, unknown_env_vars
from wslab.infrastructure.config_flags import add_arguments, overrides_from_args
from wslab.infrastructure.config_sources import CONFIG_FILE_ENV
from wslab.infrastructure.config_values import as_text
from wslab.integration.dev_secret import dev_secret_path, load_or_create_dev_secret

__all__ = ["main"]


_DESCRIPTION = """\
wslab: a WebSocket chat hub that runs in Jupyter, and a course that takes it apart.

  wslab lab                 open the course in JupyterLab
  wslab serve               run the chat hub: the page at http://127.0.0.1:8765/, /ws,
                            /healthz, /metrics
  wslab token alice         a token the hub accepts (serve and token share a development
                            secret unless one is configured)
  wslab config              the effective configuration and where each value came from
  wslab echo                an RFC 6455 echo server on every path (conformance runs)
  wslab bench [--quick]     run the benchmark suite of a checkout (benchmarks/bench_*.py)
"""

_EPILOG = """\
Run 'wslab COMMAND --help' for a command's options. Every hub setting is a flag of
'wslab serve', a WSLAB_* environment variable and a key of the [hub] table in a TOML
file (--config FILE): see docs/configuration.md.
"""

#: The command line being parsed, so that messages repeat a flag as it was typed.
_ARGV: list[str] = []

_COMMANDS = ("serve", "config", "token", "echo", "lab", "bench")


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line (no usage block) and flags are never abbreviated
    (a script that says ``--po`` must not change meaning when a new flag appears)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        # "argument --database/--db: expected one argument" -> "--db: expected one argument",
        # with the spelling found on the command line.
        match = re.match(r"argument ([^:]+): ", message)
        wrong = re.search(r"invalid choice: '([^']*)'", message)
        if match and match.group(1) == "COMMAND" and wrong:
            guess = difflib.get_close_matches(wrong.group(1), _COMMANDS, n=1)
            hint = f"; did you mean {guess[0]}?" if guess else f" (one of {', '.join(_COMMANDS)})"
            message = f"unknown command {wrong.group(1)!r}{hint}"
        elif match:
            spellings = match.group(1).split("/")
            typed = [a.split("=", 1)[0] for a in _ARGV if a.split("=", 1)[0] in spellings]
            name = typed[-1] if typed else spellings[0]
            message = ("" if name == "command" else f"{name}: ") + message[match.end() :]
        raise Failure(message, USAGE, prog=self.prog) from None


def _prog_error(prog: str, message: str) -> None:
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)


def _warn(prog: str, message: str) -> None:
    print(f"{prog}: warning: {message}", file=sys.stderr, flush=True)


# -- values checked by the parser itself (commands without a HubConfig) ----------------------------


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected an integer 0..65535, got {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected an integer > 0, got {text}")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text}")
    return value


# -- configuration shared by serve, config and token -------------------------------------------------


def _warn_unknown_env(prog: str) -> None:
    """A ``WSLAB_*`` variable that is no setting is most likely a typo: say so, never stop."""
    for var, guess in sorted(unknown_env_vars().items()):
        hint = f"; did you mean {guess}?" if guess else ""
        _warn(prog, f"{var} is not a wslab setting, ignored{hint}")


def _load_config(args: argparse.Namespace, prog: str) -> HubConfig:
    _warn_unknown_env(prog)
    try:
        return HubConfig.load(file=args.config, argv_overrides=overrides_from_args(args))
    except ConfigError as exc:
        message = str(exc)
        if message.startswith("config file "):  # name the file the way the user named it
            named_by = "--config" if args.config else f"{CONFIG_FILE_ENV}="
            message = named_by + ("" if named_by.endswith("=") else " ") + message[12:]
        raise Failure(message, USAGE) from None


def _needs_dev_secret(config: HubConfig) -> bool:
    """No secret or public key configured, and HMAC tokens accepted."""
    return (
        config.jwt_secret is None
        and config.jwt_public_key is None
        and any(a.startswith("HS") for a in config.jwt_algorithms)
    )


def _with_dev_secret(config: HubConfig) -> tuple[HubConfig, Path | None]:
    """``config`` with the shared development secret filled in when none is configured."""
    if not _needs_dev_secret(config):
        return config, None
    try:
        secret, path, _ = load_or_create_dev_secret()
    except ConfigError as exc:
        raise Failure(str(exc), USAGE) from None
    return config.replace_from(f"dev-secret:{path}", jwt_secret=secret), path


def _source_text(source: str, name: str) -> str:
    """A source as ``wslab config`` shows it."""
    kind, _, detail = source.partition(":")
    if kind == "env":
        return f"env {detail}"
    if kind == "file":
        return f"file {detail} [hub] {name}"
    if kind == "cli":
        return f"flag {detail or '--' + name.replace('_', '-')}"
    if kind == "dev-secret":
        return f"development secret {detail}"
    return kind


# -- wslab config ------------------------------------------------------------------------------------


def _cmd_config(args: argparse.Namespace) -> int:
    config = _load_config(args, "wslab config")
    shown = config.to_dict()  # secrets masked, URL passwords too
    sources = {name: _source_text(config.sources[name], name) for name in shown}
    if config.auth_required and _needs_dev_secret(config):
        path = dev_secret_path()
        if path.exists():
            shown["jwt_secret"] = "***"
            sources["jwt_secret"] = f"development secret {path}"
        else:
            sources["jwt_secret"] = f"default (serve and token create a development secret {path})"
    if args.json:
        report = {name: {"value": shown[name], "source": sources[name]} for name in shown}
        print(json.dumps(report, indent=2))
        return 0
    width = max(len(name) for name in shown)
    values = {name: as_text(value) for name, value in shown.items()}
    value_width = min(40, max(len(v) for v in values.values()))
    print(f"{'setting':<{width}}  {'value':<{value_width}}  source")
    for setting in settings():
        name = setting.name
        print(f"{name:<{width}}  {values[name]:<{value_width}}  {sources[name]}")
    return 0


# -- wslab serve -------------------------------------------------------------------------------------


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


def _compression_summary(config: HubConfig) -> str:
    """One line on what the hub negotiates: ``off`` or the permessage-deflate settings."""
    if not config.compression:
        given = config.sources["compression"] != "default"
        return f"off ({config.label('compression')})" if given else "off"
    context = (
        "no context takeover" if config.compression_no_context_takeover else "context takeover"
    )
    return (
        f"permessage-deflate (window 2**{config.compression_window_bits}, {context}, "
        f"messages from {config.compression_threshold} bytes)"
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _cmd_serve(args: argparse.Namespace) -> int:
    from wslab.hub import Hub  # here, so that a broken install fails as an error of `serve`
    from wslab.infrastructure.gc_tuning import tune_for_serving
    from wslab.infrastructure.logs import configure_logging

    config = _load_config(args, "wslab serve")
    dev_secret: Path | None = None
    if config.auth_required:
        config, dev_secret = _with_dev_secret(config)
    try:
        # What the hub builds from the configuration (keys, the store's URL) checks it too.
        hub = Hub(config)
    except ConfigError as exc:
        raise Failure(in_user_terms(config, exc), USAGE) from exc
    configure_logging(config.log_level, json=config.log_json)

    async def run() -> None:
        try:
            await hub.__aenter__()  # starts it; stopped by _run_until_signalled
        except Exception as exc:
            failure = runtime_failure(config, exc)
            if failure is None:
                raise
            raise failure from exc
        tune_for_serving()  # start-up is over and this process is the hub's alone
        lines = [f"wslab serve: hub {hub.hub_id} on {hub.url}  (WebSocket {hub.ws_url})"]
        shown = config.to_dict()  # passwords in URLs redacted
        lines.append(
            f"  store {shown['database']}, broker {shown['broker']}, engine {config.engine}"
        )
        lines.append(f"  compression {_compression_summary(config)}")
        if not config.auth_required:
            lines.append(
                f"  authentication OFF: everyone is a guest ({config.label('auth_required')})"
            )
        else:
            if dev_secret is not None:
                lines.append(
                    f"  development secret {dev_secret} (wslab token uses it too; "
                    "set WSLAB_JWT_SECRET for a real deployment)"
                )
                if not _is_loopback(config.host):
                    lines.append(
                        f"  warning: listening on {config.host} with the development secret"
                    )
            if config.jwt_secret is not None:
                lines.append(
                    f"  dev token for 'dev' (1 h): {hub.token('dev', username='dev', ttl=3600)}"
                )
                lines.append("  more tokens: wslab token alice [--role admin] [--ttl SECONDS]")
        await _run_until_signalled(hub.stop, "\n".join(lines))

    asyncio.run(run())
    return 0


# -- wslab token -------------------------------------------------------------------------------------


def _cmd_token(args: argparse.Namespace) -> int:
    from wslab.integration.auth import AuthConfig, issue_token

    config = _load_config(args, "wslab token")
    hmac = [a for a in config.jwt_algorithms if a.startswith("HS")]
    if not hmac:
        raise Failure(
            f"{config.label('jwt_algorithms')} is {','.join(config.jwt_algorithms)}: wslab token "
            "signs HS256/HS384/HS512 tokens only (sign others with your identity provider)"
        )
    config, _ = _with_dev_secret(config)
    try:
        auth = AuthConfig(
            secret=config.jwt_secret,
            algorithms=tuple(hmac),
            issuer=config.jwt_issuer,
            audience=config.jwt_audience,
        )
        roles = tuple(args.roles)
        token = issue_token(auth, args.user, username=args.username, roles=roles, ttl=args.ttl)
    except ConfigError as exc:
        raise Failure(in_user_terms(config, exc), USAGE) from exc
    print(token)
    return 0


# -- wslab echo --------------------------------------------------------------------------------------


def _ssl_context(certfile: str | None, keyfile: str | None) -> ssl.SSLContext | None:
    if not certfile and not keyfile:
        return None
    if not (certfile and keyfile):
        raise Failure("--certfile and --keyfile go together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise Failure(f"--certfile/--keyfile: cannot load ({exc.strerror or exc})") from None
    return context


def _cmd_echo(args: argparse.Namespace) -> int:
    from wslab.infrastructure.echo import DEFAULT_COMPRESSION, serve_echo

    context = _ssl_context(args.certfile, args.keyfile)

    async def run() -> None:
        try:
            server = await serve_echo(
                args.host,
                args.port,
                max_size=args.max_size,
                ssl=context,
                compression=None if args.no_compression else DEFAULT_COMPRESSION,
            )
        except OSError as exc:
            raise Failure(
                f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", RUNTIME
            ) from exc
        await _run_until_signalled(
            server.close, f"wslab echo: listening on {server.url}/ (every path)"
        )

    asyncio.run(run())
    return 0


# -- wslab lab ---------------------------------------------------------------------------------------


def _cmd_lab(args: argparse.Namespace) -> int:
    """List the course, or copy what is missing of it into the working folder and become
    JupyterLab there (see ``wslab/course.py``)."""
    from wslab import course
    from wslab.foundation.errors import WslabError

    if args.list:
        try:
            listing = course.format_listing()
        except WslabError as exc:
            raise Failure(str(exc), RUNTIME) from exc
        print(listing)
        return 0
    if importlib.util.find_spec("jupyterlab") is None:
        raise Failure('JupyterLab is not installed: pip install "wslab[lab]"', USAGE)
    try:
        report = course.prepare(args.dir or course.DEFAULT_DIR)
    except ConfigError as exc:
        raise Failure(str(exc), USAGE) from exc
    except WslabError as exc:
        raise Failure(str(exc), RUNTIME) from exc
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise Failure(
            f"cannot fill the working folder{where}: {exc.strerror or exc}", RUNTIME
        ) from exc
    for line in report.lines():
        print(f"wslab lab: {line}")
    # Everything after `--` is JupyterLab's; argparse may or may not keep the `--` itself.
    passed_on = list(args.jupyter_args)
    if passed_on[:1] == ["--"]:
        passed_on = passed_on[1:]
    command = course.lab_command(report.folder, passed_on)
    print("wslab lab:", " ".join(command), flush=True)
    course.become(command)  # exec: this process is JupyterLab from here on
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from wslab.bench import run_suite

    try:
        return run_suite(args.names, quick=args.quick, directory=args.dir)
    except ConfigError as exc:  # no suite here, or an unknown name
        raise Failure(str(exc), USAGE) from exc


def _add_bench_parser(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    """``wslab bench [NAME ...] [--quick] [--dir DIR]`` (see ``wslab/bench.py``)."""
    bench = commands.add_parser(
        "bench", parents=parents, help="run the benchmark suite of a checkout",
        description="Run benchmarks/bench_*.py of a wslab checkout (all, or those named: "
        "`wslab bench echo crosshub`), each printing its table.",
    )  # fmt: skip
    bench.add_argument("names", nargs="*", metavar="NAME", help="bench_NAME.py; none: all")
    bench.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run in seconds")
    bench.add_argument("--dir", help="the benchmarks/ folder [default: ./benchmarks]")
    bench.set_defaults(run=_cmd_bench)


# -- the parser --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``wslab`` command."""
    parser = _Parser(prog="wslab", description=_DESCRIPTION, epilog=_EPILOG)
    parser.add_argument("--version", action="version", version=f"wslab {wslab.__version__}")
    debug = _Parser(add_help=False)
    debug.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS,
        help="show the Python traceback of an error",
    )  # fmt: skip
    parser.add_argument(
        "--debug", action="store_true", help="show the Python traceback of an error"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve", parents=[debug], help="run the chat hub (page, /ws, /healthz, /metrics)",
        usage="wslab serve [--config FILE] [--debug] [SETTING FLAGS...]",
        description="Run the chat hub: the page at /, the WebSocket at /ws, /healthz, /metrics.\n"
        "Every setting is also a WSLAB_* variable and a key of the [hub] table of --config FILE;\n"
        "a flag beats the environment, which beats the file.",
    )  # fmt: skip
    serve.add_argument(
        "--config", metavar="FILE", help=f"TOML file with a [hub] table [env {CONFIG_FILE_ENV}]"
    )
    add_arguments(serve)
    serve.set_defaults(run=_cmd_serve)

    config = commands.add_parser(
        "config", parents=[debug], help="print the effective configuration and its sources",
        usage="wslab config [--json] [--config FILE] [SETTING FLAGS...]",
        description="Print every setting as `wslab serve` with the same flags, environment and\n"
        "file would use it, and where its value came from. Secrets are masked.",
    )  # fmt: skip
    config.add_argument("--json", action="store_true", help="one JSON object")
    config.add_argument(
        "--config", metavar="FILE", help=f"TOML file with a [hub] table [env {CONFIG_FILE_ENV}]"
    )
    add_arguments(config)
    config.set_defaults(run=_cmd_config)

    token = commands.add_parser(
        "token", parents=[debug], help="print a token the hub accepts",
        description="Print a signed JWT for USER. Without a configured secret it is signed\n"
        "with the development secret that a default `wslab serve` uses too.",
    )  # fmt: skip
    token.add_argument("user", help="the user id (the token's 'sub')")
    token.add_argument("--username", help="display name (default: the user id)")
    token.add_argument(
        "--role", action="append", dest="roles", default=[], metavar="ROLE",
        help="a role (repeat for several), e.g. admin",
    )  # fmt: skip
    token.add_argument(
        "--ttl", type=_positive_seconds, default=3600.0, metavar="SECONDS",
        help="lifetime in seconds, > 0 [default: 3600]",
    )  # fmt: skip
    token.add_argument(
        "--config", metavar="FILE", help=f"TOML file with a [hub] table [env {CONFIG_FILE_ENV}]"
    )
    add_arguments(token, ["jwt_secret", "jwt_algorithms", "jwt_issuer", "jwt_audience"])
    token.set_defaults(run=_cmd_token)

    echo = commands.add_parser("echo", parents=[debug], help="RFC 6455 echo server on every path")
    echo.add_argument("--host", default="127.0.0.1", help="[default: 127.0.0.1]")
    echo.add_argument("--port", type=_port, default=9001, help="0 picks a free one [default: 9001]")
    echo.add_argument(
        "--max-size", type=_positive_int, default=16 << 20, metavar="BYTES",
        help="largest message in bytes [default: 16 MiB]",
    )  # fmt: skip
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
    _add_bench_parser(commands, [debug])
    return parser


def _unrecognized(parser: argparse.ArgumentParser, command: str, extra: list[str]) -> Failure:
    """``unrecognized argument --prot; did you mean --port?``"""
    sub = next(
        (
            action.choices[command]
            for action in parser._actions
            if isinstance(action, argparse._SubParsersAction) and command in action.choices
        ),
        parser,
    )
    first = extra[0].split("=", 1)[0]
    known = [s for action in sub._actions for s in action.option_strings]
    guess = (
        difflib.get_close_matches(first, known, n=1, cutoff=0.6) if first.startswith("-") else []
    )
    hint = f"; did you mean {guess[0]}?" if guess else f" (see wslab {command} --help)"
    noun = "argument" if len(extra) == 1 else "arguments"
    return Failure(f"unrecognized {noun}: {' '.join(extra)}{hint}")


def _debug_requested(argv: Sequence[str]) -> bool:
    """``--debug`` anywhere before ``lab``'s own options (JupyterLab has a --debug too)."""
    for arg in argv:
        if arg == "lab":
            return False
        if arg == "--debug":
            return True
    return False


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``wslab`` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _ARGV[:] = argv
    debug = _debug_requested(argv)
    prog = "wslab"
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        prog = f"wslab {args.command}"
        if extra:
            # Only `wslab lab` passes options on (to JupyterLab: --no-browser, --ServerApp.port=...).
            if args.command != "lab":
                raise _unrecognized(parser, args.command, extra)
            args.jupyter_args = [*extra, *args.jupyter_args]
        return int(args.run(args) or 0)
    except Failure as failure:
        if debug and failure.__cause__ is not None:
            traceback.print_exception(failure.__cause__)
        _prog_error(failure.prog or prog, str(failure))
        return failure.status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `wslab config | head`
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - quiets the flush at exit
        return RUNTIME
    except Exception as exc:
        # A bug or a broken installation (an ImportError in the hub): an error of the command,
        # never argparse's "invalid choice".
        if debug:
            traceback.print_exc()
        kind = "cannot import" if isinstance(exc, ImportError) else "internal error"
        detail = str(exc) or type(exc).__name__
        _prog_error(prog, f"{kind}: {type(exc).__name__}: {detail} (--debug shows the traceback)")
        return RUNTIME


if __name__ == "__main__":
    sys.exit(main())
