"""How the ``wslab`` command says what went wrong: one line, in the user's terms.

A :class:`Failure` ends a command with one line on stderr and an exit status: :data:`USAGE` (2)
for a wrong command line or configuration, :data:`RUNTIME` (1) for something that failed while
running. The layers below speak to Python callers ("auth.secret", "the store url", an
``OSError``); :func:`in_user_terms` and :func:`runtime_failure` say the same in the words of the
flag, variable or file key the user actually gave.
"""

from __future__ import annotations

import errno
import re
import ssl
import traceback

from wslab.foundation.errors import ConfigError, DependencyError, WslabError
from wslab.infrastructure.config import HubConfig

__all__ = ["RUNTIME", "USAGE", "Failure", "in_user_terms", "runtime_failure", "setting_value"]

#: Exit statuses: 2 for a wrong command line or configuration, 1 for a failure at run time.
USAGE, RUNTIME = 2, 1


class Failure(Exception):
    """Ends the command with one line on stderr and ``status``."""

    def __init__(self, message: str, status: int = USAGE, prog: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.prog = prog  # the (sub)command that failed, when known where it is raised


#: How the auth layer names the settings it is built from (its messages are for Python callers).
_AUTH_NAMES = {
    "auth.secret": "jwt_secret",
    "auth.public_key": "jwt_public_key",
    "auth.algorithms": "jwt_algorithms",
    "auth.issuer": "jwt_issuer",
    "auth.audience": "jwt_audience",
    "auth.leeway": "jwt_leeway",
    "auth.cache_size": "token_cache_size",
}


def in_user_terms(config: HubConfig, exc: ConfigError) -> str:
    """A message from a layer below the configuration, with the settings named as the user gave
    them and no advice meant for Python code."""
    message = re.sub(r" - use wslab\.integration\.auth\.generate_secret\(\)$", "", str(exc))
    for internal, name in _AUTH_NAMES.items():
        message = re.sub(rf"\b{re.escape(internal)}\b", config.label(name), message)
    if message == str(exc):
        blamed = _blamed(exc)
        if blamed is None and "store url" in message:
            blamed = "database"
        elif blamed is None and "broker URL" in message:
            blamed = "broker"
        if blamed is not None:
            message = f"{setting_value(config, blamed)}: {message}"
    return message


def _blamed(exc: BaseException) -> str | None:
    """``"database"`` or ``"broker"`` when ``exc`` was raised by the store's or the broker's
    code (their messages say what failed, not which setting it came from)."""
    modules = [
        frame.f_globals.get("__name__", "") for frame, _ in traceback.walk_tb(exc.__traceback__)
    ]
    for module in reversed(modules):  # the innermost wslab frame decides
        if module.startswith("wslab.integration."):
            if "store" in module:
                return "database"
            if "broker" in module:
                return "broker"
        if module == "wslab.integration.backends":
            return None
    return None


def setting_value(config: HubConfig, name: str) -> str:
    """``--port 8765``, ``WSLAB_PORT=8765`` or ``port 8765``: a setting and its value, as given."""
    value = config.to_dict()[name]
    label = config.label(name)
    if label.startswith("WSLAB_"):
        return f"{label}={value}"
    return f"{label} {value}"


def runtime_failure(config: HubConfig, exc: BaseException) -> Failure | None:
    """A failure while the hub starts, said in the user's terms (None: not one we know)."""
    if isinstance(exc, ssl.SSLError):
        given = ", ".join(setting_value(config, n) for n in ("tls_certfile", "tls_keyfile"))
        reason = exc.reason or exc.strerror or str(exc)
        return Failure(f"cannot load the TLS certificate and key ({given}): {reason}", USAGE)
    listen = f"{config.host}:{config.port}"
    context = exc.__context__ if isinstance(exc, ConfigError) else exc
    if (
        isinstance(context, OSError)
        and context.errno is not None
        and not isinstance(exc, DependencyError)
    ):
        given = ", ".join(setting_value(config, n) for n in ("host", "port"))
        if context.errno == errno.EADDRINUSE:
            return Failure(
                f"cannot listen on {listen} ({given}): the address is in use by another program; "
                "stop it or choose another port (0 picks a free one)",
                RUNTIME,
            )
        return Failure(f"cannot listen on {listen} ({given}): {context.strerror}", RUNTIME)
    if isinstance(exc, ConfigError):  # a store or broker option found wrong as it opens
        return Failure(in_user_terms(config, exc), USAGE)
    if isinstance(exc, DependencyError):
        name = _blamed(exc) or "database"
        message = str(exc)
        # The store's message is safe for peers (the error's type only); an operator also
        # wants the reason: 'database "chat" does not exist', 'Name or service not known'.
        cause = " ".join(str(exc.__cause__ or "").split())
        if cause and cause not in message:
            message += f": {cause}"
        url = config.to_dict()[name]
        given = config.label(name) if url in message else setting_value(config, name)
        return Failure(f"{given}: {message}", RUNTIME)
    if isinstance(exc, WslabError):
        return Failure(str(exc), RUNTIME)
    return None
