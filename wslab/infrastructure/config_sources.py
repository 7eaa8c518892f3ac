"""Where :class:`~wslab.infrastructure.config.HubConfig` finds values outside Python: the
``WSLAB_*`` environment and the ``[hub]`` table of a TOML file.

The names of the environment variables (``WSLAB_`` + the setting's name in upper case) and the
variable that names the TOML file live here; :meth:`HubConfig.load
<wslab.infrastructure.config.HubConfig.load>` merges what these sources hold with the defaults,
the command line and the runtime overrides.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from wslab.foundation.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["CONFIG_FILE_ENV", "ENV_PREFIX"]

ENV_PREFIX = "WSLAB_"
#: Names the TOML file when :meth:`HubConfig.load` is not given one. Not a setting itself.
CONFIG_FILE_ENV = "WSLAB_CONFIG"


def _read_toml(path: Path) -> dict[str, Any]:
    """The ``[hub]`` table of a TOML file."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path}: not found") from None
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot be read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: invalid TOML ({exc})") from None
    stray = [key for key, value in data.items() if not isinstance(value, dict)]
    if stray:
        raise ConfigError(
            f"config file {path}: top-level key {stray[0]!r}; hub settings belong in a [hub] table"
        )
    if "hub" not in data:
        raise ConfigError(f"config file {path}: no [hub] table")
    return data["hub"]
