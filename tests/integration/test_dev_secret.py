"""The development secret shared by ``wslab serve`` and ``wslab token``: one per user, private,
created once even when several commands start together, and never silently replaced."""

from __future__ import annotations

import os
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from wslab.foundation.errors import ConfigError
from wslab.integration.auth import AuthConfig, TokenVerifier, issue_token
from wslab.integration.dev_secret import dev_secret_path, load_or_create_dev_secret

posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


def test_the_path_follows_xdg_data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert dev_secret_path() == tmp_path / "data" / "wslab" / "dev-secret"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    if os.name == "posix" and os.uname().sysname != "Darwin":
        assert dev_secret_path() == tmp_path / "home" / ".local" / "share" / "wslab" / "dev-secret"


@posix_only
def test_created_once_private_and_then_reused(tmp_path: Path) -> None:
    path = tmp_path / "wslab" / "dev-secret"
    secret, where, created = load_or_create_dev_secret(path)
    assert (where, created) == (path, True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(secret.encode()) >= 64  # enough for HS512
    again, _, created_again = load_or_create_dev_secret(path)
    assert (again, created_again) == (secret, False)
    assert [p.name for p in path.parent.iterdir()] == ["dev-secret"]  # no temporary left over


def test_it_signs_tokens_the_hubs_verifier_accepts(tmp_path: Path) -> None:
    secret, _, _ = load_or_create_dev_secret(tmp_path / "dev-secret")
    config = AuthConfig(secret=secret, algorithms=("HS256",))
    identity = TokenVerifier(config).verify(issue_token(config, "alice", roles=("admin",)))
    assert identity.user_id == "alice" and identity.roles == ("admin",)


def test_commands_starting_together_agree(tmp_path: Path) -> None:
    path = tmp_path / "wslab" / "dev-secret"
    start = threading.Barrier(8)

    def race(_: int) -> tuple[str, bool]:
        start.wait()
        secret, _, created = load_or_create_dev_secret(path)
        return secret, created

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(race, range(8)))
    assert len({secret for secret, _ in results}) == 1
    assert sum(created for _, created in results) == 1


@posix_only
def test_a_file_others_can_read_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "dev-secret"
    load_or_create_dev_secret(path)
    path.chmod(0o644)
    with pytest.raises(ConfigError) as info:
        load_or_create_dev_secret(path)
    assert str(info.value) == (
        f"development secret {path}: readable by other users (mode 0644); run: chmod 600 {path}"
    )


@posix_only
@pytest.mark.parametrize("content", [b"", b"short\n", b"two words " * 10])
def test_a_file_without_a_secret_is_refused_not_replaced(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "dev-secret"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="does not hold a secret; delete it to make a new one"):
        load_or_create_dev_secret(path)
    assert path.read_bytes() == content


@posix_only
def test_an_unwritable_folder_is_one_clear_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o500)
    with pytest.raises(ConfigError, match=r"cannot be created .*set WSLAB_JWT_SECRET instead"):
        load_or_create_dev_secret(folder / "wslab" / "dev-secret")
