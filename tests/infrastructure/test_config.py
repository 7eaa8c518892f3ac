"""HubConfig: five sources in order, fail-fast validation naming the key, redaction."""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import pickle
from pathlib import Path
from typing import Any

import platformdirs
import pytest

from wslab.foundation.errors import ConfigError
from wslab.infrastructure.config import (
    HubConfig,
    as_text,
    settings,
    sqlite_path,
    unknown_env_vars,
)
from wslab.infrastructure.config_flags import add_arguments, overrides_from_args

PEM_PUBLIC_KEY = "-----BEGIN PUBLIC KEY-----\nMFkw...\n-----END PUBLIC KEY-----\n"


def write_toml(tmp_path: Path, text: str, name: str = "wslab.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def parse_cli(argv: list[str], **kwargs: Any) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="wslab serve")
    add_arguments(parser, **kwargs)
    return overrides_from_args(parser.parse_args(argv))


# -- defaults ------------------------------------------------------------------------------------


def test_defaults_are_valid_and_all_marked_default() -> None:
    config = HubConfig.load(env={})
    assert config == HubConfig()
    assert set(config.sources.values()) == {"default"}
    assert set(config.sources) == {f.name for f in dataclasses.fields(HubConfig)}
    assert (config.host, config.port, config.path, config.engine) == (
        "127.0.0.1",
        8765,
        "/ws",
        "wslab",
    )
    assert config.auth_required is True and config.jwt_secret is None
    assert config.jwt_algorithms == ("HS256",)
    assert config.broker == "memory://"
    assert config.database == "sqlite:///" + str(
        Path(platformdirs.user_data_dir("wslab")) / "wslab.db"
    )
    assert sqlite_path(config.database).endswith("wslab.db")


def test_config_is_frozen_hashable_and_picklable() -> None:
    config = HubConfig.load(env={"WSLAB_PORT": "9000"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.port = 1  # type: ignore[misc]
    assert hash(config) == hash(HubConfig(port=9000))
    clone = pickle.loads(pickle.dumps(config))
    assert clone == config
    assert clone.sources["port"] == "env:WSLAB_PORT"


# -- precedence ----------------------------------------------------------------------------------

LEVELS = ("file", "env", "cli", "override")


@pytest.mark.parametrize(
    "present",
    [combo for n in range(len(LEVELS) + 1) for combo in itertools.combinations(LEVELS, n)],
    ids=lambda combo: "+".join(combo) or "defaults",
)
def test_each_source_beats_the_lower_ones(tmp_path: Path, present: tuple[str, ...]) -> None:
    port = {"file": 1001, "env": 1002, "cli": 1003, "override": 1004}
    kwargs: dict[str, Any] = {"env": {}}
    if "file" in present:
        kwargs["file"] = write_toml(tmp_path, f"[hub]\nport = {port['file']}\n")
    if "env" in present:
        kwargs["env"] = {"WSLAB_PORT": str(port["env"])}
    if "cli" in present:
        kwargs["argv_overrides"] = parse_cli(["--port", str(port["cli"])])
    if "override" in present:
        kwargs["port"] = port["override"]

    config = HubConfig.load(**kwargs)

    if not present:
        assert (config.port, config.sources["port"]) == (8765, "default")
        return
    top = present[-1]  # LEVELS is in increasing precedence
    assert config.port == port[top]
    expected_source = {
        "file": f"file:{tmp_path / 'wslab.toml'}",
        "env": "env:WSLAB_PORT",
        "cli": "cli:--port",
        "override": "override",
    }[top]
    assert config.sources["port"] == expected_source


def test_sources_map_tells_where_each_value_came_from(tmp_path: Path) -> None:
    path = write_toml(tmp_path, '[hub]\nhost = "0.0.0.0"\nmax_queue = 10\n')
    config = HubConfig.load(
        file=path,
        env={"WSLAB_MAX_QUEUE": "20", "WSLAB_PING_INTERVAL": "2.5"},
        argv_overrides={"log_level": "debug"},
        port=0,
    )
    assert config.host == "0.0.0.0" and config.sources["host"] == f"file:{path}"
    assert config.max_queue == 20 and config.sources["max_queue"] == "env:WSLAB_MAX_QUEUE"
    assert config.ping_interval == 2.5
    assert config.log_level == "DEBUG" and config.sources["log_level"] == "cli"
    assert config.port == 0 and config.sources["port"] == "override"
    assert config.sources["engine"] == "default"
    with pytest.raises(TypeError):
        config.sources["port"] = "x"  # type: ignore[index]


def test_config_file_can_be_named_by_wslab_config(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[hub]\nport = 4242\n")
    config = HubConfig.load(env={"WSLAB_CONFIG": str(path)})
    assert config.port == 4242 and config.sources["port"] == f"file:{path}"


def test_direct_construction_validates_and_counts_as_override() -> None:
    config = HubConfig(port=0, max_queue=5)
    assert config.sources["port"] == "override" and config.sources["host"] == "default"
    with pytest.raises(ConfigError, match=r"^port \(override\): expected an integer 0\.\.65535"):
        HubConfig(port="8765")  # type: ignore[arg-type]


def test_replace_validates_and_keeps_sources() -> None:
    base = HubConfig.load(env={"WSLAB_PORT": "9000"})
    changed = base.replace(max_queue=3, slow_consumer_policy="drop_oldest")
    assert (changed.max_queue, changed.slow_consumer_policy, changed.port) == (
        3,
        "drop_oldest",
        9000,
    )
    assert changed.sources["max_queue"] == "override"
    assert changed.sources["port"] == "env:WSLAB_PORT"
    assert base.max_queue == 256  # the original is untouched
    with pytest.raises(ConfigError, match=r"^max_queue \(override\): expected an integer >= 1"):
        base.replace(max_queue=0)
    with pytest.raises(ConfigError, match="did you mean 'max_queue'"):
        base.replace(max_queu=3)


# -- bad values ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("var", "raw", "expected"),
    [
        ("WSLAB_PORT", "abc", "WSLAB_PORT: expected an integer 0..65535, got abc"),
        ("WSLAB_PORT", "70000", "WSLAB_PORT: expected an integer 0..65535, got 70000"),
        ("WSLAB_PORT", "", "WSLAB_PORT: expected an integer 0..65535, got ''"),
        ("WSLAB_MAX_QUEUE", "0", "WSLAB_MAX_QUEUE: expected an integer >= 1, got 0"),
        ("WSLAB_MAX_MESSAGE_SIZE", "1.5", "WSLAB_MAX_MESSAGE_SIZE: expected an integer >= 1"),
        ("WSLAB_PONG_TIMEOUT", "0", "WSLAB_PONG_TIMEOUT: expected a number > 0, got 0"),
        ("WSLAB_PING_INTERVAL", "nan", "WSLAB_PING_INTERVAL: expected a number > 0"),
        ("WSLAB_PING_INTERVAL", "inf", "WSLAB_PING_INTERVAL: expected a number > 0"),
        ("WSLAB_JWT_LEEWAY", "-1", "WSLAB_JWT_LEEWAY: expected a number >= 0"),
        ("WSLAB_AUTH_REQUIRED", "maybe", "WSLAB_AUTH_REQUIRED: expected a boolean"),
        ("WSLAB_ENGINE", "tornado", "WSLAB_ENGINE: expected one of 'wslab', 'websockets'"),
        ("WSLAB_SLOW_CONSUMER_POLICY", "block", "WSLAB_SLOW_CONSUMER_POLICY: expected one of"),
        ("WSLAB_EVENT_LOG_LEVEL", "all", "WSLAB_EVENT_LOG_LEVEL: expected one of 'frames'"),
        ("WSLAB_LOG_LEVEL", "LOUD", "WSLAB_LOG_LEVEL: expected one of 'DEBUG'"),
        ("WSLAB_PATH", "ws", "WSLAB_PATH: expected a URL path starting with '/'"),
        ("WSLAB_HOST", "", "WSLAB_HOST: expected a host name"),
        ("WSLAB_DATABASE", "mysql://db/x", "WSLAB_DATABASE: expected 'sqlite:///<path>'"),
        ("WSLAB_DATABASE", "sqlite:///", "WSLAB_DATABASE: expected 'sqlite:///<path>'"),
        ("WSLAB_BROKER", "http://bus", "WSLAB_BROKER: expected 'memory://' or a Redis URL"),
        ("WSLAB_JWT_ALGORITHMS", "none", "WSLAB_JWT_ALGORITHMS: expected one or more of HS256"),
        ("WSLAB_JWT_ALGORITHMS", "", "WSLAB_JWT_ALGORITHMS: expected one or more of"),
        ("WSLAB_JWT_PUBLIC_KEY", "/no/such.pem", "WSLAB_JWT_PUBLIC_KEY: expected PEM text"),
        ("WSLAB_ALLOWED_ORIGINS", "chat.example.org", "WSLAB_ALLOWED_ORIGINS: expected origins"),
        ("WSLAB_ALLOWED_ORIGINS", "https://a.org/path", "WSLAB_ALLOWED_ORIGINS: expected"),
        ("WSLAB_HUB_ID", "two words", "WSLAB_HUB_ID: expected 1-64 letters"),
        ("WSLAB_TLS_CERTFILE", "/no/such/cert.pem", "WSLAB_TLS_CERTFILE: expected the path"),
    ],
)
def test_bad_env_value_names_the_variable(var: str, raw: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        HubConfig.load(env={var: raw})
    assert str(info.value).startswith(expected)


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('port = "8765"', "port (file {path}): expected an integer 0..65535, got '8765'"),
        ("port = true", "port (file {path}): expected an integer 0..65535, got True"),
        ('auth_required = "yes"', "auth_required (file {path}): expected a boolean"),
        ("jwt_algorithms = [1]", "jwt_algorithms (file {path}): expected a list of strings"),
        ("max_queue = 2.5", "max_queue (file {path}): expected an integer >= 1, got 2.5"),
        ('engine = "x"', "engine (file {path}): expected one of 'wslab', 'websockets', got 'x'"),
    ],
)
def test_bad_file_value_names_the_key_and_the_file(
    tmp_path: Path, toml: str, expected: str
) -> None:
    path = write_toml(tmp_path, f"[hub]\n{toml}\n")
    with pytest.raises(ConfigError) as info:
        HubConfig.load(file=path, env={})
    assert str(info.value).startswith(expected.format(path=path))


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"port": "8765"}, "port (override): expected an integer 0..65535, got '8765'"),
        ({"port": True}, "port (override): expected an integer 0..65535, got True"),
        ({"port": -1}, "port (override): expected an integer 0..65535, got -1"),
        ({"ping_interval": "5"}, "ping_interval (override): expected a number > 0, got '5'"),
        ({"auth_required": 1}, "auth_required (override): expected a boolean"),
        ({"hub_id": 7}, "hub_id (override): expected a string or None, got 7"),
        ({"hub_id": "a b"}, "hub_id (override): expected 1-64 letters"),
        (
            {"jwt_secret": 123},
            "jwt_secret (override): expected a string or None, got a value (not shown)",
        ),
    ],
)
def test_bad_override_names_the_key(overrides: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        HubConfig.load(env={}, **overrides)
    assert str(info.value).startswith(expected)


def test_bad_cli_value_names_the_flag() -> None:
    with pytest.raises(ConfigError, match=r"^--max-queue: expected an integer >= 1, got lots$"):
        HubConfig.load(env={}, argv_overrides={"max_queue": "lots"})


def test_bad_value_in_a_lower_source_fails_even_when_overridden() -> None:
    with pytest.raises(ConfigError, match=r"^WSLAB_PORT"):
        HubConfig.load(env={"WSLAB_PORT": "abc"}, port=0)


def test_watermarks_low_must_not_exceed_high() -> None:
    with pytest.raises(ConfigError) as info:
        HubConfig.load(env={"WSLAB_WRITE_BUFFER_LOW": "100000"})
    message = str(info.value)
    assert message.startswith("WSLAB_WRITE_BUFFER_LOW: must be <= write_buffer_high (default)")
    assert HubConfig.load(env={}, write_buffer_low=10, write_buffer_high=10).write_buffer_low == 10


def test_tls_files_both_or_neither(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    key = tmp_path / "key.pem"
    cert.write_text("cert")
    key.write_text("key")
    with pytest.raises(ConfigError, match=r"^tls_certfile \(override\): is set but tls_keyfile"):
        HubConfig.load(env={}, tls_certfile=cert)
    with pytest.raises(ConfigError, match=r"^WSLAB_TLS_KEYFILE: is set but tls_certfile"):
        HubConfig.load(env={"WSLAB_TLS_KEYFILE": str(key)})
    config = HubConfig.load(env={}, tls_certfile=cert, tls_keyfile=key)
    assert (config.tls_certfile, config.tls_keyfile) == (str(cert), str(key))


def test_asymmetric_jwt_algorithm_needs_a_public_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^WSLAB_JWT_ALGORITHMS: RS256 needs jwt_public_key"):
        HubConfig.load(env={"WSLAB_JWT_ALGORITHMS": "RS256"})
    # PEM text, or the path of a PEM file, will do; without auth nothing is verified at all.
    assert HubConfig(jwt_algorithms=("RS256",), jwt_public_key=PEM_PUBLIC_KEY).jwt_public_key
    pem = tmp_path / "public.pem"
    pem.write_text(PEM_PUBLIC_KEY)
    assert HubConfig(jwt_algorithms=("ES256",), jwt_public_key=str(pem)).jwt_public_key == str(pem)
    assert HubConfig(jwt_algorithms=("RS256",), auth_required=False).auth_required is False


# -- unknown keys --------------------------------------------------------------------------------


def test_unknown_file_key_fails_with_a_suggestion(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[hub]\nprot = 1\n")
    with pytest.raises(ConfigError) as info:
        HubConfig.load(file=path, env={})
    assert str(info.value) == f"unknown setting 'prot' in file {path} [hub]; did you mean 'port'?"


def test_kebab_case_key_suggests_the_real_name(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[hub]\nmax-queue = 1\n")
    with pytest.raises(ConfigError, match="did you mean 'max_queue'"):
        HubConfig.load(file=path, env={})


def test_unknown_override_and_cli_keys_fail() -> None:
    with pytest.raises(ConfigError, match=r"^unknown setting 'pong_timout' in overrides; did you"):
        HubConfig.load(env={}, pong_timout=1.0)
    with pytest.raises(ConfigError, match="in command-line arguments; did you mean 'host'"):
        HubConfig.load(env={}, argv_overrides={"hots": "x"})
    with pytest.raises(ConfigError) as info:
        HubConfig.load(env={}, zzzzzz=1)
    assert "did you mean" not in str(info.value)


def test_unknown_env_vars_are_ignored_but_can_be_listed() -> None:
    env = {"WSLAB_PROT": "1", "WSLAB_TEST_REDIS": "redis://x", "WSLAB_port": "1", "PORT": "1"}
    assert HubConfig.load(env=env) == HubConfig()
    unknown = unknown_env_vars(env)
    assert unknown["WSLAB_PROT"] == "WSLAB_PORT"
    assert unknown["WSLAB_TEST_REDIS"] is None
    assert "PORT" not in unknown
    assert "WSLAB_PORT" not in unknown_env_vars({"WSLAB_PORT": "1"})


# -- environment parsing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("1", True), ("true", True), ("TRUE", True), ("yes", True), ("On", True), (" on ", True),
        ("0", False), ("false", False), ("No", False), ("off", False),
    ],
)  # fmt: skip
def test_env_booleans(raw: str, value: bool) -> None:
    assert HubConfig.load(env={"WSLAB_LOG_JSON": raw}).log_json is value


def test_env_parses_every_kind() -> None:
    env = {
        "WSLAB_HOST": "0.0.0.0",  # str
        "WSLAB_PORT": " 9001 ",  # int, surrounding space tolerated
        "WSLAB_MAX_MESSAGE_SIZE": "2_000_000",  # int with separators
        "WSLAB_PING_INTERVAL": "0.5",  # float
        "WSLAB_CLOSE_TIMEOUT": "3",  # float from an integer
        "WSLAB_AUTH_REQUIRED": "no",  # bool
        "WSLAB_ENGINE": "WebSockets",  # choice, any case
        "WSLAB_LOG_LEVEL": "warning",
        "WSLAB_JWT_ALGORITHMS": "HS256, HS512",  # tuple
        "WSLAB_ALLOWED_ORIGINS": "https://Chat.Example.org/, http://localhost:8765",
        "WSLAB_JWT_SECRET": "s3cret-s3cret-s3cret-s3cret-s3cret-s3cret-s3cret-s3cret-s3cret-s3",  # optional str
        "WSLAB_JWT_ISSUER": "",  # optional, empty -> None
        "WSLAB_DATABASE": "sqlite:///:memory:",
        "WSLAB_BROKER": "redis://127.0.0.1:6379/0",
        "WSLAB_HUB_ID": "hub-1",
    }
    config = HubConfig.load(env=env)
    assert config.host == "0.0.0.0"
    assert config.port == 9001
    assert config.max_message_size == 2_000_000
    assert config.ping_interval == 0.5
    assert config.close_timeout == 3.0 and isinstance(config.close_timeout, float)
    assert config.auth_required is False
    assert config.engine == "websockets"
    assert config.log_level == "WARNING"
    assert config.jwt_algorithms == ("HS256", "HS512")
    assert config.allowed_origins == ("https://chat.example.org", "http://localhost:8765")
    assert config.jwt_secret == "s3cret-s3cret-s3cret-s3cret-s3cret-s3cret-s3cret-s3cret-s3cret-s3"
    assert config.jwt_issuer is None
    assert sqlite_path(config.database) == ":memory:"
    assert config.broker == "redis://127.0.0.1:6379/0"
    assert config.hub_id == "hub-1"
    assert config.sources["jwt_issuer"] == "env:WSLAB_JWT_ISSUER"


def test_env_empty_list_is_the_empty_tuple() -> None:
    assert HubConfig.load(env={"WSLAB_ALLOWED_ORIGINS": " "}).allowed_origins == ()
    assert HubConfig.load(env={"WSLAB_ALLOWED_ORIGINS": ""}).allowed_origins == ()
    assert HubConfig.load(env={"WSLAB_ALLOWED_ORIGINS": "http://a.test"}).allowed_origins == (
        "http://a.test",
    )


def test_overrides_accept_lists_and_paths(tmp_path: Path) -> None:
    config = HubConfig.load(
        env={}, jwt_algorithms=["HS384"], allowed_origins="http://a.test,http://b.test"
    )
    assert config.jwt_algorithms == ("HS384",)
    assert config.allowed_origins == ("http://a.test", "http://b.test")
    pem = tmp_path / "k.pem"
    pem.write_text(PEM_PUBLIC_KEY)
    assert HubConfig(jwt_public_key=pem).jwt_public_key == str(pem)  # type: ignore[arg-type]


# -- TOML file -----------------------------------------------------------------------------------


def test_toml_file_loads_every_kind(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        """
        [hub]
        host = "0.0.0.0"
        port = 0
        ping_interval = 1        # an integer is a fine float
        auth_required = false
        jwt_algorithms = ["HS256", "HS384"]
        slow_consumer_policy = "drop_new"
        database = "postgresql://postgres@127.0.0.1:5432/test"

        [client]                 # another tool's table: ignored
        anything = 1
        """.replace("        ", ""),
    )
    config = HubConfig.load(file=str(path), env={})
    assert (config.host, config.port, config.ping_interval) == ("0.0.0.0", 0, 1.0)
    assert config.auth_required is False
    assert config.jwt_algorithms == ("HS256", "HS384")
    assert config.slow_consumer_policy == "drop_new"
    assert config.database.startswith("postgresql://")
    assert all(config.sources[k] == f"file:{path}" for k in ("host", "port", "database"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("port = 1\n", "top-level key 'port'; hub settings belong in a [hub] table"),
        ("[server]\nport = 1\n", "no [hub] table"),
        ("[hub\nport = 1\n", "invalid TOML"),
    ],
)
def test_malformed_toml_file(tmp_path: Path, text: str, expected: str) -> None:
    path = write_toml(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        HubConfig.load(file=path, env={})
    assert str(info.value).startswith(f"config file {path}: {expected}")


def test_missing_toml_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        HubConfig.load(file=tmp_path / "absent.toml", env={})


# -- redaction and docs --------------------------------------------------------------------------


def test_to_dict_and_repr_redact_secrets() -> None:
    config = HubConfig.load(
        env={"WSLAB_JWT_SECRET": "hunter2-hunter2-hunter2-hunter2-hunter2"},
        database="postgresql://app:pg-pass@db.internal:5432/chat",
        broker="redis://:redis-pass@cache:6379/0",
    )
    shown = config.to_dict()
    assert shown["jwt_secret"] == "***"
    assert shown["database"] == "postgresql://app:***@db.internal:5432/chat"
    assert shown["broker"] == "redis://:***@cache:6379/0"
    assert shown["port"] == 8765 and set(shown) == set(config.sources)
    text = repr(config)
    for secret in ("hunter2", "pg-pass", "redis-pass"):
        assert secret not in text and secret not in str(shown)
    assert "jwt_secret='***'" in text and "port=" not in text  # repr shows non-defaults only
    raw = config.to_dict(redact=False)
    assert (
        raw["jwt_secret"] == "hunter2-hunter2-hunter2-hunter2-hunter2"
        and "pg-pass" in raw["database"]
    )
    assert HubConfig().to_dict()["jwt_secret"] is None  # "not set" stays visible


def test_field_help_and_groups_cover_every_field() -> None:
    names = [f.name for f in dataclasses.fields(HubConfig)]
    help_ = HubConfig.field_help()
    assert list(help_) == names
    assert all(text.strip() for text in help_.values())
    groups = HubConfig.field_groups()
    assert sorted(n for members in groups.values() for n in members) == sorted(names)
    assert "port" in groups["network"]


def test_sqlite_path_rejects_other_urls() -> None:
    assert sqlite_path("sqlite:////var/lib/wslab.db") == "/var/lib/wslab.db"
    assert sqlite_path("sqlite:///rel.db") == "rel.db"
    with pytest.raises(ConfigError):
        sqlite_path("postgresql://x/y")


# -- secrets, labels, descriptions ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WSLAB_JWT_SECRET": "S"}, "WSLAB_JWT_SECRET: HS256 needs a secret of at least 32 bytes; this one has 1"),
        (
            {"WSLAB_JWT_SECRET": "x" * 40, "WSLAB_JWT_ALGORITHMS": "HS256,HS512"},
            "WSLAB_JWT_SECRET: HS512 needs a secret of at least 64 bytes; this one has 40",
        ),
    ],
)  # fmt: skip
def test_short_hmac_secret_is_refused_without_showing_it(
    env: dict[str, str], expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        HubConfig.load(env=env)
    assert str(info.value) == expected
    assert HubConfig.load(env={"WSLAB_JWT_SECRET": "x" * 32}).jwt_secret == "x" * 32


def test_a_wrong_secret_value_is_never_repeated() -> None:
    with pytest.raises(ConfigError) as info:
        HubConfig.load(env={}, jwt_secret=["hunter2"])
    assert "hunter2" not in str(info.value)


def test_a_wrong_list_item_is_named_alone() -> None:
    with pytest.raises(ConfigError) as info:
        HubConfig.load(env={"WSLAB_ALLOWED_ORIGINS": "https://ok.test,chat.example.org"})
    assert str(info.value).endswith(", got chat.example.org")
    with pytest.raises(ConfigError) as info:
        HubConfig.load(env={}, jwt_algorithms=["HS256", "none"])
    assert str(info.value).endswith(", got 'none'")


def test_urls_in_errors_are_redacted() -> None:
    with pytest.raises(ConfigError) as info:
        HubConfig.load(env={"WSLAB_BROKER": "http://u:topsecret@bus"})
    assert "topsecret" not in str(info.value)


def test_label_names_a_setting_as_its_source_does(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[hub]\nmax_queue = 10\n")
    argv = overrides_from_args(_parser(["database"]).parse_args(["--db", "sqlite:///:memory:"]))
    config = HubConfig.load(file=path, env={"WSLAB_PORT": "1"}, argv_overrides=argv, hub_id="h")
    assert config.label("port") == "WSLAB_PORT"
    assert config.label("database") == "--db"
    assert config.label("max_queue") == f"max_queue (file {path})"
    assert config.label("hub_id") == "hub_id"  # a keyword argument
    assert config.label("engine") == "engine"
    with pytest.raises(ConfigError, match="did you mean 'port'"):
        config.label("prot")


def test_replace_from_records_the_given_source() -> None:
    config = HubConfig.load(env={}).replace_from("dev-secret:/x", jwt_secret="y" * 64)
    assert config.sources["jwt_secret"] == "dev-secret:/x"
    assert config.sources["port"] == "default"


def test_settings_describe_every_field_without_machine_paths() -> None:
    described = {s.name: s for s in settings()}
    assert list(described) == [f.name for f in dataclasses.fields(HubConfig)]
    assert described["port"].env == "WSLAB_PORT" and described["port"].flag == "--port"
    assert described["port"].expected == "an integer 0..65535"
    assert described["database"].default_text == "sqlite:///<user data dir>/wslab.db"
    assert described["database"].aliases == ("--db",)
    assert described["jwt_secret"].secret and not described["port"].secret
    assert [as_text(v) for v in (None, True, (), ("a", "b"), 20.0, 7)] == [
        "none", "true", "(empty)", "a,b", "20", "7",
    ]  # fmt: skip


def _parser(fields: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_arguments(parser, fields)
    return parser


def test_the_old_import_path_names_the_same_objects() -> None:
    # The parsing rules and the sources moved out of config.py; code importing them from
    # wslab.infrastructure.config keeps working.
    from wslab.infrastructure import config, config_sources, config_values

    assert config.CONFIG_FILE_ENV is config_sources.CONFIG_FILE_ENV == "WSLAB_CONFIG"
    assert config.ENV_PREFIX is config_sources.ENV_PREFIX == "WSLAB_"
    assert config.as_text is config_values.as_text
    assert config.default_database is config_values.default_database
    assert config.sqlite_path is config_values.sqlite_path
