"""A long run's progress bar: ``tqdm.auto`` when installed, else an ipywidgets bar, else text.

The bar counts messages sent out of those the run plans (``messages``, or ``rate * duration``).
In Jupyter without tqdm it is an ``ipywidgets.IntProgress``; outside Jupyter it is one line of
text rewritten at most once a second (``\\r``) on stderr, so a log file is not flooded.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

__all__ = ["KINDS", "Progress", "make_progress"]

#: What ``progress=`` may name: a kind, or True for the best one available, False for none.
KINDS = ("tqdm", "widget", "text")


class Progress:
    """One bar: :meth:`update` by the messages just sent, :meth:`close` at the end of the run."""

    def __init__(self, kind: str, total: int, *, stream: TextIO | None = None,
                 every: float = 1.0) -> None:
        self.kind = kind
        self.total = max(1, total)
        self.value = 0
        self.state = "connecting"
        self.bar: Any = None
        self.stream = stream if stream is not None else sys.stderr
        self.every = every
        self._last_write = 0.0
        self.lines_written = 0
        if kind == "tqdm":
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, unit="msg", desc="load")
        elif kind == "widget":
            import ipywidgets

            self.bar = ipywidgets.IntProgress(min=0, max=self.total, value=0,
                                              description="load", bar_style="info")
            _display(self.bar)
        elif kind != "text":
            raise ValueError(f"progress must be one of {KINDS}, True or False, got {kind!r}")

    def connecting(self, connected: int, clients: int) -> None:
        """Say how far connecting has got (before any message is sent)."""
        self.state = f"connecting {connected}/{clients}"
        if self.kind == "widget":
            self.bar.description = f"{connected}/{clients}"
        elif self.kind == "tqdm":
            self.bar.set_description(f"connecting {connected}/{clients}", refresh=False)
        else:
            self._write()

    def update(self, sent: int) -> None:
        """``sent`` more messages went out."""
        self.state = "sending"
        self.value = min(self.total, self.value + sent)
        if self.kind == "tqdm":
            self.bar.set_description("load", refresh=False)
            self.bar.update(sent)
        elif self.kind == "widget":
            self.bar.description = "load"
            self.bar.value = self.value
        else:
            self._write()

    def close(self, outcome: str = "done") -> None:
        """The run ended (``done``, ``stopped`` or ``failed``)."""
        self.state = outcome
        if self.kind == "tqdm":
            self.bar.set_description(f"load {outcome}", refresh=False)
            self.bar.close()
        elif self.kind == "widget":
            self.bar.description = outcome
            self.bar.bar_style = {"done": "success", "stopped": "warning"}.get(outcome, "danger")
        else:
            self._write(force=True, end="\n")

    def _write(self, force: bool = False, end: str = "") -> None:
        now = time.monotonic()
        if not force and now - self._last_write < self.every:
            return
        self._last_write = now
        percent = 100 * self.value // self.total
        self.stream.write(f"\rload: {self.value}/{self.total} messages sent ({percent}%), "
                          f"{self.state}{end}")
        self.stream.flush()
        self.lines_written += 1


def _display(widget: Any) -> None:
    from IPython.display import display

    display(widget)


def _in_jupyter() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def best_kind() -> str:
    """tqdm if installed, an ipywidgets bar in Jupyter, else text."""
    try:
        import tqdm.auto  # noqa: F401
    except ImportError:
        pass
    else:
        return "tqdm"
    if _in_jupyter():
        try:
            import ipywidgets  # noqa: F401
        except ImportError:
            return "text"
        return "widget"
    return "text"


def make_progress(choice: bool | str | None, total: int, *, auto: bool) -> Progress | None:
    """The bar ``progress=choice`` asks for: None means ``auto`` decides (a long run gets one)."""
    if choice is None:
        choice = auto
    if choice is False:
        return None
    kind = best_kind() if choice is True else choice
    if kind not in KINDS:
        raise ValueError(f"progress must be one of {KINDS}, True or False, got {choice!r}")
    return Progress(kind, total)
