"""Fault injection for the course: peers that go silent, networks that misbehave, processes that freeze.

A heartbeat exists because TCP cannot tell a quiet peer from a dead one, and a chat's guarantees
only mean something under a bad network. The tools, one module each, all on real sockets and
real processes so that the hub cannot tell them from the real thing:

- :mod:`.zombie` — :class:`ZombieClient` completes the handshake and then goes silent;
- :mod:`.proxy` — :class:`TcpProxy`, a TCP relay that adds latency, jitter and a bandwidth cap,
  stalls, partitions, heals and resets, per direction and while traffic flows;
- :mod:`.shaping` — :class:`LinkShape` and the bounded delay line that shape one direction;
- :mod:`.tap` — :class:`Tap`, a read-only view of the bytes and WebSocket frames it relays;
- :mod:`.process` — :class:`FrozenProcess`, a client in a child process frozen with ``SIGSTOP``.
"""

from .process import CHAT_CLIENT_SCRIPT as CHAT_CLIENT_SCRIPT
from .process import FrozenProcess as FrozenProcess
from .proxy import DEFAULT_PORTS as DEFAULT_PORTS
from .proxy import TcpProxy as TcpProxy
from .shaping import LinkShape as LinkShape
from .tap import Tap as Tap
from .zombie import ZombieClient as ZombieClient

__all__ = [
    "CHAT_CLIENT_SCRIPT",
    "DEFAULT_PORTS",
    "FrozenProcess",
    "LinkShape",
    "Tap",
    "TcpProxy",
    "ZombieClient",
]
