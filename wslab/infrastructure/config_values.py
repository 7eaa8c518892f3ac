"""How one setting of :class:`~wslab.infrastructure.config.HubConfig` is parsed, checked and shown.

Each field of ``HubConfig`` carries a :class:`_Spec` (made by :func:`_setting`): its kind, its
range, its extra rule and its documentation. This module holds that declaration, the rules of
individual settings (hosts, paths, JWT algorithms, origins, URLs), and the conversion of one raw
value from any source -- text from the environment or a flag, typed values from TOML or Python
-- into its canonical form, or a :class:`~wslab.foundation.errors.ConfigError` that names the key
as its source spells it. Rules that involve several settings stay with ``HubConfig``.
"""

from __future__ import annotations

import math
import os
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import platformdirs

from wslab.foundation.errors import ConfigError
from wslab.infrastructure.urls import redact_url

__all__ = ["KiB", "MiB", "as_text", "default_database", "sqlite_path"]

KiB = 1024
MiB = 1024 * KiB

_Kind = Literal["int", "float", "bool", "str", "choice", "strs"]
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_SECRET_MASK = "***"


class _Invalid(Exception):
    """A value does not fit its setting; carries what was expected (the caller adds the key) and,
    for a list, the one item that is wrong."""

    def __init__(self, expected: str, item: str | None = None) -> None:
        super().__init__(expected)
        self.expected = expected
        self.item = item


@dataclass(frozen=True)
class _Spec:
    """How one setting is parsed, checked, documented and shown."""

    kind: _Kind
    help: str
    group: str
    ge: float | None = None  # inclusive minimum
    gt: float | None = None  # exclusive minimum
    le: float | None = None  # inclusive maximum
    choices: tuple[str, ...] = ()
    optional: bool = False  # None is allowed
    redact: Literal["secret", "url"] | None = None
    # Extra rule run after the type and range checks: returns the canonical value or raises
    # _Invalid. ``expected`` replaces the generated description in error messages.
    validate: Callable[[Any], Any] | None = None
    expected: str | None = None
    # The default as documentation shows it, when the real one depends on the machine.
    shown_default: str | None = None
    # Further command-line spellings (``--db`` for ``--database``).
    aliases: tuple[str, ...] = ()


def _setting(default: Any, help: str, group: str, kind: _Kind, **rules: Any) -> Any:
    """A dataclass field carrying its :class:`_Spec`; a callable default is a factory."""
    spec = _Spec(kind=kind, help=help, group=group, **rules)
    if callable(default):
        return field(default_factory=default, metadata={"spec": spec})
    return field(default=default, metadata={"spec": spec})


# -- rules for individual settings ---------------------------------------------------------------

_JWT_ALGORITHMS = (
    "HS256", "HS384", "HS512",
    "RS256", "RS384", "RS512",
    "PS256", "PS384", "PS512",
    "ES256", "ES384", "ES512",
    "EdDSA",
)  # fmt: skip
_HMAC_MIN_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _check_host(value: str) -> str:
    if not value or any(c.isspace() for c in value):
        raise _Invalid("a host name or IP address")
    return value


def _check_path(value: str) -> str:
    if not value.startswith("/") or any(c in value for c in "?# "):
        raise _Invalid("a URL path starting with '/' (no query or spaces)")
    return value


def _check_algorithms(value: tuple[str, ...]) -> tuple[str, ...]:
    # "none" is left out on purpose: an unsigned token must never authenticate anyone.
    wrong = next((a for a in value if a not in _JWT_ALGORITHMS), None)
    if not value or wrong is not None:
        raise _Invalid("one or more of " + ", ".join(_JWT_ALGORITHMS), wrong)
    return value


def _check_public_key(value: str) -> str:
    # PEM text, or the path of a PEM file (handy in an environment variable); the auth layer
    # reads the file, we only make sure it is there.
    if value.lstrip().startswith("-----BEGIN") or Path(value).is_file():
        return value
    raise _Invalid("PEM text or the path of an existing PEM file")


def _check_origins(value: tuple[str, ...]) -> tuple[str, ...]:
    origins = []
    for origin in value:
        parts = urlsplit(origin)
        if (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
        ):
            raise _Invalid(
                "origins like 'https://chat.example.org' or 'http://localhost:8765'", origin
            )
        # Browsers send scheme and host in lower case and without a trailing slash.
        origins.append(f"{parts.scheme}://{parts.netloc.lower()}")
    return tuple(origins)


def _check_database(value: str) -> str:
    if value.startswith("sqlite:///") and len(value) > len("sqlite:///"):
        return value
    if value.startswith(("postgresql://", "postgres://")):
        return value
    raise _Invalid("'sqlite:///<path>', 'sqlite:///:memory:' or 'postgresql://...'")


def _check_broker(value: str) -> str:
    if value.startswith(("memory://", "redis://", "rediss://", "unix://")):
        return value
    raise _Invalid("'memory://' or a Redis URL ('redis://', 'rediss://', 'unix://')")


def _check_hub_id(value: str) -> str:
    if not _HUB_ID.fullmatch(value):
        raise _Invalid("1-64 letters, digits, '.', '_' or '-' (starting with a letter or digit)")
    return value


def _check_file(value: str) -> str:
    if not Path(value).is_file():
        raise _Invalid("the path of an existing file")
    return value


def default_database() -> str:
    """``sqlite:///<user data dir>/wslab.db``: per user, survives restarts, needs no server.

    The directory may not exist yet; the store creates it when it opens the file.
    """
    return "sqlite:///" + str(Path(platformdirs.user_data_dir("wslab")) / "wslab.db")


def sqlite_path(database: str) -> str:
    """The file path (or ``":memory:"``) inside a ``sqlite:///`` URL.

    The URL convention is SQLAlchemy's: ``sqlite:///relative.db``, ``sqlite:////abs/path.db``.
    """
    if not database.startswith("sqlite:///"):
        raise ConfigError(f"database: expected a 'sqlite:///' URL, got {database!r}")
    return database[len("sqlite:///") :]


# -- conversion of one value ---------------------------------------------------------------------


def _label(name: str, source: str) -> str:
    """How an error message names a setting: as its source spells it."""
    if source.startswith("env:"):
        return source[len("env:") :]
    if source == "cli":
        return "--" + name.replace("_", "-")
    if source.startswith("cli:"):
        return source[len("cli:") :]
    if source.startswith("file:"):
        return f"{name} (file {source[len('file:') :]})"
    return f"{name} ({source})"


def _describe(spec: _Spec) -> str:
    """What a setting expects, for error messages: 'an integer 0..65535'."""
    if spec.expected:
        text = spec.expected
    elif spec.kind in ("int", "float"):
        noun = "an integer" if spec.kind == "int" else "a number"
        if spec.ge is not None and spec.le is not None:
            text = f"{noun} {spec.ge:g}..{spec.le:g}"
        elif spec.gt is not None:
            text = f"{noun} > {spec.gt:g}"
        elif spec.ge is not None:
            text = f"{noun} >= {spec.ge:g}"
        else:
            text = noun
    elif spec.kind == "bool":
        text = "a boolean (true/false, 1/0, yes/no, on/off)"
    elif spec.kind == "choice":
        text = "one of " + ", ".join(repr(c) for c in spec.choices)
    elif spec.kind == "strs":
        text = "a list of strings (or one comma-separated string)"
    else:
        text = "a string"
    return text + " or None" if spec.optional else text


def _parse_text(spec: _Spec, raw: str) -> Any:
    """Text (environment, command line) -> a typed value, before range and rule checks."""
    stripped = raw.strip()
    if spec.kind == "strs":
        return tuple(item.strip() for item in raw.split(",") if item.strip())
    if spec.optional and not stripped:
        return None
    if spec.kind == "int":
        try:
            return int(stripped)
        except ValueError:
            raise _Invalid(_describe(spec)) from None
    if spec.kind == "float":
        try:
            return float(stripped)
        except ValueError:
            raise _Invalid(_describe(spec)) from None
    if spec.kind == "bool":
        if stripped.lower() in _TRUE:
            return True
        if stripped.lower() in _FALSE:
            return False
        raise _Invalid(_describe(spec))
    return raw  # str and choice: checked as typed values


def _check_typed(spec: _Spec, raw: Any) -> Any:
    """A typed value (TOML, keyword override, or parsed text) -> its canonical form."""
    kind = spec.kind
    is_number = isinstance(raw, (int, float)) and not isinstance(raw, bool)
    if kind == "int" and is_number and isinstance(raw, int):
        return raw
    elif kind == "float" and is_number and math.isfinite(raw):
        return float(raw)
    elif kind in ("bool", "str") and isinstance(raw, bool if kind == "bool" else str):
        return raw
    elif kind == "choice" and isinstance(raw, str):
        for choice in spec.choices:  # any case in, the canonical spelling out
            if raw.strip().lower() == choice.lower():
                return choice
    elif kind == "strs":
        if isinstance(raw, str):
            return _parse_text(spec, raw)
        if isinstance(raw, (list, tuple)) and all(isinstance(x, str) for x in raw):
            return raw if isinstance(raw, tuple) else tuple(raw)
    raise _Invalid(_describe(spec))


def _convert(spec: _Spec, raw: Any, *, text: bool) -> Any:
    if isinstance(raw, os.PathLike):
        raw = os.fspath(raw)
    value = _parse_text(spec, raw) if text and isinstance(raw, str) else raw
    if value is None:
        if spec.optional:
            return None
        raise _Invalid(_describe(spec))
    value = _check_typed(spec, value)
    if (
        (spec.ge is not None and value < spec.ge)
        or (spec.gt is not None and value <= spec.gt)
        or (spec.le is not None and value > spec.le)
    ):
        raise _Invalid(_describe(spec))
    if spec.validate is not None:
        value = spec.validate(value)
    return value


def _shown(spec: _Spec, raw: Any, *, text: bool) -> str:
    """A wrong value as an error message repeats it: typed text as the shell would take it back,
    typed values (TOML, Python) as Python writes them; secrets never, URL passwords masked."""
    if spec.redact == "secret":
        return "a value (not shown)"
    if spec.redact == "url" and isinstance(raw, str):
        raw = redact_url(raw)
    if text and isinstance(raw, str):
        return shlex.quote(raw)
    return repr(raw)


def _convert_or_raise(name: str, spec: _Spec, raw: Any, source: str, *, text: bool) -> Any:
    try:
        return _convert(spec, raw, text=text)
    except _Invalid as exc:
        shown = _shown(spec, exc.item if exc.item is not None else raw, text=text)
        raise ConfigError(f"{_label(name, source)}: expected {exc.expected}, got {shown}") from None


def as_text(value: Any) -> str:
    """A setting's value as one writes it in the environment: ``true``, ``a,b``, ``none``."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value) if value else "(empty)"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
