"""The settings as flags (every one, with aliases, as typed) and the generated reference."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from wslab.foundation.errors import ConfigError
from wslab.infrastructure.config import HubConfig, settings
from wslab.infrastructure.config_flags import add_arguments, markdown_reference, overrides_from_args

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def parser(fields: list[str] | None = None) -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(prog="wslab serve")
    add_arguments(result, fields)
    return result


def load(argv: list[str], **env: str) -> HubConfig:
    return HubConfig.load(env=env, argv_overrides=overrides_from_args(parser().parse_args(argv)))


def test_every_setting_has_a_flag_with_default_and_variable_in_help() -> None:
    text = " ".join(parser().format_help().split())  # help strings with '%' must not break argparse
    for setting in settings():
        assert setting.flag in text, setting.name
        assert f"env {setting.env}]" in text, setting.name
    assert "[default: 8765; env WSLAB_PORT]" in text
    assert "[default: sqlite:///<user data dir>/wslab.db; env WSLAB_DATABASE]" in text


def test_flags_not_given_override_nothing() -> None:
    assert overrides_from_args(parser().parse_args([])) == {}
    assert load([], WSLAB_PORT="9000").port == 9000


def test_flags_are_converted_by_the_config_and_beat_the_environment() -> None:
    config = load(
        [
            "--port", "9100",
            "--no-auth-required",
            "--ping-interval", "1.5",
            "--allowed-origins", "http://a.test,https://b.test",
            "--log-level", "debug",
            "--slow-consumer-policy", "drop_oldest",
        ],
        WSLAB_PORT="9000", WSLAB_AUTH_REQUIRED="1",
    )  # fmt: skip
    assert (config.port, config.auth_required, config.ping_interval) == (9100, False, 1.5)
    assert config.allowed_origins == ("http://a.test", "https://b.test")
    assert (config.log_level, config.slow_consumer_policy) == ("DEBUG", "drop_oldest")
    assert config.sources["port"] == "cli:--port"
    assert config.sources["auth_required"] == "cli:--no-auth-required"


def test_aliases_set_the_same_setting_and_are_named_as_typed() -> None:
    config = load(
        [
            "--db", "sqlite:///:memory:",
            "--secret", "s" * 32,
            "--no-auth",
            "--allowed-origin", "http://a.test", "--allowed-origin", "http://b.test",
            "--no-compression",
            "--log-format", "text",
        ]
    )  # fmt: skip
    assert config.database == "sqlite:///:memory:" and config.label("database") == "--db"
    assert config.jwt_secret == "s" * 32 and config.label("jwt_secret") == "--secret"
    assert config.auth_required is False and config.label("auth_required") == "--no-auth"
    assert config.allowed_origins == ("http://a.test", "http://b.test")
    assert config.compression is False and config.log_json is False
    assert config.label("log_json") == "--log-format"
    assert load(["--log-format", "json"]).log_json is True
    assert load(["--auth-required"]).auth_required is True


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--port", "99999"], "--port: expected an integer 0..65535, got 99999"),
        (["--port", "http"], "--port: expected an integer 0..65535, got http"),
        (["--db", "mysql://x"], "--db: expected 'sqlite:///<path>', 'sqlite:///:memory:' or "
         "'postgresql://...', got mysql://x"),
        (["--allowed-origin", "http://ok.test", "--allowed-origin", "nope"],
         "--allowed-origin: expected origins like 'https://chat.example.org' or "
         "'http://localhost:8765', got nope"),
        (["--secret", "S"], "--secret: HS256 needs a secret of at least 32 bytes; this one has 1"),
        (["--max-queue", "two words"], "--max-queue: expected an integer >= 1, got 'two words'"),
    ],
)  # fmt: skip
def test_a_wrong_value_names_the_flag_as_typed(argv: list[str], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(argv)
    assert str(info.value) == expected


def test_field_subsets() -> None:
    subset = parser(["host", "port"])
    assert "--ping-interval" not in subset.format_help()
    assert overrides_from_args(subset.parse_args(["--port", "0"])) == {"port": "0"}
    with pytest.raises(ConfigError, match="did you mean 'port'"):
        add_arguments(argparse.ArgumentParser(), fields=["prot"])


def test_overrides_from_args_ignores_other_arguments() -> None:
    result = parser(["port"])
    result.add_argument("--verbose", action="store_true")
    overrides = overrides_from_args(result.parse_args(["--verbose", "--port", "0"]))
    assert overrides == {"port": "0"} and overrides.flags == {"port": "--port"}


def test_the_reference_lists_every_setting() -> None:
    text = markdown_reference()
    for setting in settings():
        assert f"| `{setting.name}` | `{setting.flag}`" in text
        assert f"`{setting.env}`" in text
    assert "`--db`" in text and "`--no-auth`" in text and "`--log-format`" in text


def test_docs_configuration_md_is_up_to_date() -> None:
    """Regenerate with: python -m wslab.infrastructure.config_flags > docs/configuration.md"""
    assert DOC.read_text(encoding="utf-8") == markdown_reference(), (
        "docs/configuration.md is out of date: "
        "python -m wslab.infrastructure.config_flags > docs/configuration.md"
    )
