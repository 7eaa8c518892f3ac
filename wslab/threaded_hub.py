"""``ThreadedHub``: a hub on its own event loop in a background thread, and its views.

``Hub.start_in_thread()`` builds one, for dashboards and scripts that must keep a hub serving
while the calling thread blocks (a notebook cell running a load test). Every call crosses
threads safely: coroutines run on the hub's loop with :meth:`ThreadedHub.call`, and the
read-only views (:class:`OnLoop`) read the hub's state on its loop so nothing is seen
mid-update. :class:`ConnectionsView` is ``Hub.connections`` itself (the view both shapes
share). ``from wslab.hub import ThreadedHub`` keeps working.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from wslab.infrastructure.config import HubConfig
from wslab.infrastructure.connection import Connection

if TYPE_CHECKING:  # the hub imports this module; the classes only name it in annotations
    from wslab.hub import Hub

__all__ = ["ConnectionsView", "OnLoop", "ThreadedHub"]

T = TypeVar("T")


class ConnectionsView:
    """The hub's live connections: iterate, count, or look at them as a DataFrame."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    def rows(self) -> list[dict[str, Any]]:
        """One dict per connection: id, user, state, RTT, queue depth, rooms, counters."""
        rows = []
        for connection in self._hub.manager:
            session = self._hub.chat.sessions.get(connection.id)
            row = connection.info()
            row["user_id"] = session.user_id if session else None
            row["rooms"] = ",".join(sorted(session.rooms)) if session else ""
            rows.append(row)
        return rows

    def to_dataframe(self) -> Any:
        """The connections as a pandas DataFrame (one row each)."""
        import pandas as pd

        return pd.DataFrame(self.rows())

    def __len__(self) -> int:
        return len(self._hub.manager)

    def __iter__(self) -> Iterator[Connection]:
        return iter(self._hub.manager)

    def _repr_html_(self) -> str:
        return self.to_dataframe()._repr_html_()

    def __repr__(self) -> str:
        return f"<{len(self)} connections>"


class ThreadedHub:
    """A hub on its own event loop in a daemon thread; every call crosses threads safely."""

    def __init__(self, cls: type[Hub], config: HubConfig | None, overrides: dict[str, Any]) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="wslab-hub", daemon=True)
        self._thread.start()
        try:
            self.hub: Hub = self.call(cls.start(config, **overrides))
        except BaseException:
            self._shutdown_loop()
            raise

    def call(self, coroutine: Awaitable[T], timeout: float | None = 30.0) -> T:
        """Run a coroutine on the hub's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)  # type: ignore[arg-type]

    def run(self, function: Callable[[], T], timeout: float | None = 30.0) -> T:
        """Run a plain function on the hub's loop (to read live state without races)."""

        async def wrapper() -> T:
            return function()

        return self.call(wrapper(), timeout)

    def stop(self) -> None:
        """Stop the hub and its thread."""
        if self.loop.is_closed():
            return
        try:
            self.call(self.hub.stop(), timeout=self.hub.config.shutdown_timeout + 10)
        finally:
            self._shutdown_loop()

    def _shutdown_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    # The read-only views go through the hub's loop so that nothing is read mid-update.
    @property
    def url(self) -> str:
        return self.hub.url

    @property
    def ws_url(self) -> str:
        return self.hub.ws_url

    @property
    def port(self) -> int:
        return self.hub.port

    @property
    def hub_id(self) -> str:
        return self.hub.hub_id

    @property
    def errors(self) -> list[dict[str, Any]]:
        """The hub's recent internal errors (a copy, as :attr:`Hub.errors` holds them)."""
        return self.run(lambda: list(self.hub.errors))

    def token(self, user_id: str, **kwargs: Any) -> str:
        """A token this hub accepts (see :meth:`Hub.token`)."""
        return self.hub.token(user_id, **kwargs)

    @property
    def connections(self) -> OnLoop:
        """:attr:`Hub.connections` read on the hub's loop: ``.to_dataframe()``, ``.rows()``, len."""
        return OnLoop(self, lambda: self.hub.connections, "to_dataframe")

    @property
    def events(self) -> OnLoop:
        """:attr:`Hub.events` read on the hub's loop: ``.to_dataframe(**filters)``, ``.last()``..."""
        return OnLoop(self, lambda: self.hub.events, "to_dataframe")

    @property
    def metrics(self) -> OnLoop:
        """:attr:`Hub.metrics` read on the hub's loop: ``.snapshot()``, ``.to_prometheus()``..."""
        return OnLoop(self, lambda: self.hub.metrics, "snapshot")

    def health(self) -> dict[str, Any]:
        """:meth:`Hub.health`, waited for from this thread."""
        return self.call(self.hub.health())

    def __enter__(self) -> ThreadedHub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<ThreadedHub {self.hub!r}>"


class OnLoop:
    """One of the hub's views (connections, events, metrics) with each read done on its loop.

    It has the shape of the view it stands for — ``threaded.events.to_dataframe(kind=...)`` as
    ``hub.events.to_dataframe(kind=...)`` — and the call shorthand ``threaded.events(...)`` is
    its ``to_dataframe(...)`` (``snapshot()`` for metrics), as before these views existed. Each attribute is read, and each method
    run, on the hub's loop, so nothing is seen mid-update.
    """

    def __init__(self, threaded: ThreadedHub, view: Callable[[], Any], default: str) -> None:
        self._threaded = threaded
        self._view = view
        self._default = default

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        value = self._threaded.run(lambda: getattr(self._view(), name))
        if not callable(value):
            return value

        def on_loop(*args: Any, **kwargs: Any) -> Any:
            return self._threaded.run(lambda: getattr(self._view(), name)(*args, **kwargs))

        return on_loop

    def __call__(self, **filters: Any) -> Any:
        return self._threaded.run(lambda: getattr(self._view(), self._default)(**filters))

    def __len__(self) -> int:
        return self._threaded.run(lambda: len(self._view()))

    def __iter__(self) -> Iterator[Any]:
        return iter(self._threaded.run(lambda: list(self._view())))

    def _repr_html_(self) -> str:
        return self._threaded.run(lambda: self._view().to_dataframe()._repr_html_())

    def __repr__(self) -> str:
        return self._threaded.run(lambda: repr(self._view()))
