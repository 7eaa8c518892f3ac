"""Building stores and brokers from URLs: bad URLs are one clear ConfigError, found up front."""

from __future__ import annotations

import pytest

from wslab.foundation.errors import ConfigError
from wslab.integration.backends import broker_from_url

pytest.importorskip("redis")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://127.0.0.1:6379?op_timeout=1", "unknown Redis option 'op_timeout'"),
        ("redis://127.0.0.1:6379?socket_timout=1", "did you mean socket_timeout?"),
        ("redis://127.0.0.1:6379?socket_timeout=soon", "socket_timeout='soon' is not valid"),
    ],
)
def test_a_redis_url_option_redis_py_would_choke_on_is_refused_up_front(
    url: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("?", r"\?")):
        broker_from_url(url, "hub-a")


def test_known_redis_url_options_are_accepted() -> None:
    broker = broker_from_url("redis://127.0.0.1:6379/0?socket_timeout=1.5&client_name=hub", "h")
    assert broker is not None
