"""The hub's settings as command-line flags and as a reference document.

:func:`add_arguments` gives an :mod:`argparse` parser one ``--kebab-case`` flag per
:class:`~wslab.infrastructure.config.HubConfig` setting (plus the short spellings people type:
``--db``, ``--secret``, ``--no-auth``, ``--allowed-origin``, ``--log-format``), each with its
default and its ``WSLAB_*`` variable in ``--help``. The flags keep the text as typed and remember
which spelling was used; :func:`overrides_from_args` hands both to :meth:`HubConfig.load`, which
converts and checks the values, so a wrong one is reported like a wrong environment variable or
file key, under the flag the user typed (``--db: expected ...``).

:func:`markdown_reference` writes ``docs/configuration.md``::

    python -m wslab.infrastructure.config_flags > docs/configuration.md
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from wslab.infrastructure.config import (
    Setting,
    _require_known,
    settings,
)
from wslab.infrastructure.config_sources import CONFIG_FILE_ENV

__all__ = ["ArgvOverrides", "add_arguments", "markdown_reference", "overrides_from_args"]

#: Where the parser keeps the spelling of each flag used (``{"database": "--db"}``).
_FLAGS_ATTR = "_wslab_flags"

#: Flags with their own vocabulary for a boolean setting: flag -> (setting, {word: value}).
_WORD_FLAGS: dict[str, tuple[str, dict[str, bool]]] = {
    "--log-format": ("log_json", {"json": True, "text": False}),
}


class ArgvOverrides(dict[str, Any]):
    """Settings given on the command line (text as typed) and ``flags``, the spelling used."""

    def __init__(self, values: dict[str, Any], flags: dict[str, str]) -> None:
        super().__init__(values)
        self.flags = flags


def _remember(namespace: argparse.Namespace, dest: str, option_string: str | None) -> None:
    flags = getattr(namespace, _FLAGS_ATTR, None)
    if flags is None:
        flags = {}
        setattr(namespace, _FLAGS_ATTR, flags)
    if option_string:
        flags[dest] = option_string


class _Text(argparse.Action):
    """Keeps the text as typed; a list setting collects repeated flags (``a`` then ``b`` is
    ``a,b``), so ``--allowed-origin A --allowed-origin B`` and ``--allowed-origins A,B`` agree."""

    def __init__(self, *args: Any, collect: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.collect = collect

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        previous = getattr(namespace, self.dest, None)
        if self.collect and isinstance(previous, str) and previous:
            values = f"{previous},{values}"
        setattr(namespace, self.dest, values)
        _remember(namespace, self.dest, option_string)


class _Switch(argparse.Action):
    """A boolean: ``--flag`` is true and ``--no-flag`` false (and ``--no-auth`` style aliases)."""

    def __init__(self, *args: Any, negative: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **{**kwargs, "nargs": 0})
        self.negative = frozenset(negative)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, option_string not in self.negative)
        _remember(namespace, self.dest, option_string)


class _Words(argparse.Action):
    """A boolean set by a word: ``--log-format text``."""

    def __init__(self, *args: Any, words: dict[str, bool], **kwargs: Any) -> None:
        super().__init__(*args, **{**kwargs, "choices": tuple(words)})
        self.words = words

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, self.words[values])
        _remember(namespace, self.dest, option_string)


def _help(setting: Setting) -> str:
    extra = ""
    if setting.secret:
        extra = " Visible to other users in `ps`: prefer the environment or the file."
    text = f"{setting.help}{extra} [default: {setting.default_text}; env {setting.env}]"
    return text.replace("%", "%%")  # argparse %-formats help strings


def _switch_flags(setting: Setting) -> tuple[list[str], list[str]]:
    """The flags of a boolean: (all of them, the ones that mean false)."""
    negative = ["--no-" + setting.flag[2:], *(a for a in setting.aliases if a.startswith("--no-"))]
    positive = [setting.flag, *(a for a in setting.aliases if not a.startswith("--no-"))]
    return positive + negative, negative


def add_arguments(parser: argparse.ArgumentParser, fields: Iterable[str] | None = None) -> None:
    """Give ``parser`` a flag for each setting in ``fields`` (default: all), grouped by concern.

    A flag's default is "not given" (``argparse.SUPPRESS``), so :func:`overrides_from_args`
    returns only what was typed and lower sources keep their say. Booleans get ``--flag`` and
    ``--no-flag``; lists take comma-separated values or the flag repeated.
    """
    chosen = None if fields is None else list(fields)
    for name in chosen or ():
        _require_known(name, "add_arguments()")
    groups: dict[str, argparse._ArgumentGroup] = {}
    for setting in settings():
        if chosen is not None and setting.name not in chosen:
            continue
        group = groups.get(setting.group)
        if group is None:
            group = groups[setting.group] = parser.add_argument_group(f"hub: {setting.group}")
        common: dict[str, Any] = {
            "dest": setting.name,
            "default": argparse.SUPPRESS,
            "help": _help(setting),
        }
        if setting.kind == "bool":
            flags, negative = _switch_flags(setting)
            group.add_argument(*flags, action=_Switch, negative=negative, **common)
        else:
            if setting.choices:
                metavar = "{" + ",".join(setting.choices) + "}"
            elif setting.kind == "strs":
                metavar = setting.name.upper().removesuffix("S") + "[,...]"
            elif setting.kind in ("int", "float"):
                metavar = "N"
            else:
                metavar = setting.name.upper()
            group.add_argument(
                setting.flag,
                *setting.aliases,
                action=_Text,
                collect=setting.kind == "strs",
                metavar=metavar,
                **common,
            )
        for flag, (name, words) in _WORD_FLAGS.items():
            if name == setting.name:
                group.add_argument(
                    flag,
                    action=_Words,
                    words=words,
                    dest=name,
                    default=argparse.SUPPRESS,
                    help=f"Same as --{name.replace('_', '-')} / --no-{name.replace('_', '-')}.",
                )


def overrides_from_args(ns: argparse.Namespace) -> ArgvOverrides:
    """The settings given on the command line, for ``HubConfig.load(argv_overrides=...)``."""
    names = {s.name for s in settings()}
    values = {name: value for name, value in vars(ns).items() if name in names}
    flags = {k: v for k, v in getattr(ns, _FLAGS_ATTR, {}).items() if k in values}
    return ArgvOverrides(values, flags)


def flags_of(setting: Setting) -> list[str]:
    """Every flag that sets ``setting``, the canonical one first."""
    if setting.kind == "bool":
        flags = _switch_flags(setting)[0]
    else:
        flags = [setting.flag, *setting.aliases]
    flags += [flag for flag, (name, _) in _WORD_FLAGS.items() if name == setting.name]
    return flags


# -- the reference document ----------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_reference() -> str:
    """``docs/configuration.md``: every setting with its flags, variable, default and rules."""
    lines = [
        "# Configuration",
        "",
        "<!-- Generated from wslab/infrastructure/config.py by",
        "     `python -m wslab.infrastructure.config_flags > docs/configuration.md`;",
        "     tests/infrastructure/test_config_flags.py fails when this file is out of date. -->",
        "",
        "Every setting of the hub can come from five places; each later one beats the earlier",
        "ones:",
        "",
        "1. its default (below);",
        "2. the `[hub]` table of a TOML file, given with `--config FILE` or named by",
        f"   `{CONFIG_FILE_ENV}` (keys are the setting names: `port = 9000`);",
        "3. the environment: `WSLAB_<NAME>` (`WSLAB_PORT=9000`); booleans as",
        "   `1/0 true/false yes/no on/off`, lists comma-separated, an empty value means none",
        "   where none is allowed;",
        "4. the command line of `wslab serve` (and `wslab config`): `--port 9000`;",
        "5. keyword arguments in Python: `await Hub.start(port=0)`.",
        "",
        "A wrong value stops the hub before it starts, with one line naming the flag, variable",
        "or file key it came from. `wslab config` prints the effective configuration and where",
        "each value came from; unknown `WSLAB_*` variables draw a warning with the closest name.",
        "",
        "With no `jwt_secret` configured, `wslab serve` and `wslab token` share a development",
        "secret kept in the user's data folder (`$XDG_DATA_HOME/wslab/dev-secret`, else",
        "`~/.local/share/wslab/dev-secret` on Linux; owner-only permissions), so",
        "`wslab token alice` makes a token the default hub accepts.",
        "",
    ]
    groups: dict[str, list[Setting]] = {}
    for setting in settings():
        groups.setdefault(setting.group, []).append(setting)
    for group, members in groups.items():
        lines += [
            f"## {group[0].upper()}{group[1:]}",
            "",
            "| setting | flags | environment | default | value |",
            "|---|---|---|---|---|",
        ]
        for s in members:
            flags = ", ".join(f"`{f}`" for f in flags_of(s))
            rule = f" Expected: {s.expected}." if s.kind in ("int", "float") else ""
            lines.append(
                f"| `{s.name}` | {flags} | `{s.env}` | `{_cell(s.default_text)}` "
                f"| {_cell(s.help + rule)} |"
            )
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(markdown_reference())
