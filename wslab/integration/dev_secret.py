"""The development secret that ``wslab serve`` and ``wslab token`` share on one machine.

A hub needs an HMAC secret to check tokens, and ``wslab token`` needs the same one to make them.
When neither was given a secret (no ``--secret``, ``WSLAB_JWT_SECRET`` or ``jwt_secret`` in the
file), both read it from one file in the user's data folder, which the first of them creates::

    $XDG_DATA_HOME/wslab/dev-secret        (else ~/.local/share/wslab/dev-secret on Linux;
                                            the platform's user data folder elsewhere)

so ``wslab serve`` in one terminal and ``wslab token alice`` in another agree without anyone
copying a secret around. The file is the user's alone (mode 0600, like an SSH key): one that
others can read or that does not hold a usable secret is refused with a one-line
:class:`~wslab.foundation.errors.ConfigError` saying how to fix it, never silently replaced
(tokens already handed out would stop working).

Creation is atomic: the secret is written to a private temporary file that is then hard-linked
into place, so two commands starting at once end up with the same secret and nobody ever reads
a half-written file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

import platformdirs

from wslab.foundation.errors import ConfigError

__all__ = ["DEV_SECRET_FILE", "dev_secret_path", "load_or_create_dev_secret"]

DEV_SECRET_FILE = "dev-secret"
#: 64 random bytes, URL-safe: long enough for HS256, HS384 and HS512.
_NBYTES = 64
#: Enough for HS512; a shorter file was not written by us.
_MIN_LENGTH = 64


def dev_secret_path() -> Path:
    """Where the development secret lives (the folder may not exist yet)."""
    return Path(platformdirs.user_data_dir("wslab")) / DEV_SECRET_FILE


def _read(path: Path) -> str:
    """The secret in ``path``, after checking the file is private and well-formed."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise ConfigError(f"development secret {path}: cannot be read ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if os.name == "posix" and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"development secret {path}: readable by other users "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); run: chmod 600 {path}"
            )
        data = fh.read(4096)
    text = data.decode("ascii", "replace").strip()
    if len(text) < _MIN_LENGTH or any(c.isspace() for c in text):
        raise ConfigError(
            f"development secret {path}: does not hold a secret; delete it to make a new one"
        )
    return text


def _new_secret() -> bytes:
    return secrets.token_urlsafe(_NBYTES).encode("ascii") + b"\n"


def _create(path: Path) -> bool:
    """Write a new secret to ``path`` unless one is there first; True if this call wrote it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(_new_secret())
            fh.flush()
            os.fsync(fh.fileno())
        try:
            # link() never replaces: whoever links first wins, the others read the winner's.
            os.link(temporary, path)
            return True
        except FileExistsError:
            return False
        except OSError:
            pass  # a file system without hard links
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    # O_EXCL still lets only one writer in (a reader racing it may see a short file, refused).
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as fh:
        fh.write(_new_secret())
    return True


def load_or_create_dev_secret(path: Path | None = None) -> tuple[str, Path, bool]:
    """The development secret, the file it is kept in, and whether it was created just now."""
    path = dev_secret_path() if path is None else path
    created = False
    if not path.exists():
        try:
            created = _create(path)
        except OSError as exc:
            raise ConfigError(
                f"development secret {path}: cannot be created ({exc.strerror}); "
                "set WSLAB_JWT_SECRET instead"
            ) from None
    return _read(path), path, created
