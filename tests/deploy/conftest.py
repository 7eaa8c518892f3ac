"""Fixtures for deployment tests: hubs sharing PostgreSQL and Redis behind a real proxy.

The hubs come from the end-to-end tests' ``start_hub`` (re-exported here so pytest finds it);
:mod:`.proxies` starts HAProxy or nginx in front of them.
"""

from __future__ import annotations

from tests.application.conftest import db_url, engine, start_hub

__all__ = ["db_url", "engine", "start_hub"]
