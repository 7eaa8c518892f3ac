"""The hub's abuse cool-down at the door: :class:`AbuseGate`.

The rules (who cools down, for how long, the bound) are
:class:`wslab.infrastructure.admission.AbuseCoolDown`'s; this is where the hub meets them:

- :meth:`AbuseGate.check` is the first of the upgrade checks. An upgrade from a user or address
  cooling down is refused with **429** and ``Retry-After`` before any connection, session,
  lobby join, presence or store work exists for it (reason ``cooldown`` in
  ``wslab_handshakes_refused_total``). The user is the subject of a valid token on the upgrade
  request (``Authorization: Bearer`` or ``?token=``); it is verified only while someone is
  cooling down, and the verifier's cache makes the session's own check of it free.
- :meth:`AbuseGate.opened` remembers an authenticated user on its connection (guests' ids are
  new each time and identify nobody), and :meth:`AbuseGate.closed` counts a close the hub sent
  with 1008 or 1009 against that user, or, when there is none (a guest, a connection that
  never authenticated), against the client's address.

Log (INFO, on ``wslab.hub``, throttled): ``abuse cool-down`` (user_id, remote, code,
seconds) when a close puts someone in a cool-down.
"""

from __future__ import annotations

import logging

from wslab.foundation.errors import AuthenticationError, HandshakeError
from wslab.foundation.handshake import Upgrade
from wslab.infrastructure.admission import AbuseCoolDown, retry_after_header
from wslab.infrastructure.config import HubConfig
from wslab.infrastructure.connection import Connection
from wslab.infrastructure.logs import ThrottledLog
from wslab.integration.auth.sources import token_from_upgrade
from wslab.integration.auth.tokens import TokenVerifier

__all__ = ["USER_CONTEXT_KEY", "AbuseGate"]

log = logging.getLogger("wslab.hub")

#: Where :meth:`AbuseGate.opened` keeps an authenticated user in ``connection.context``.
USER_CONTEXT_KEY = "abuse_user"


def _closed_by_hub(connection: Connection) -> bool:
    """True if the hub's close frame came first: its own decision, or the peer's violation."""
    if connection.closed_locally:  # the hub chose to close (1008 flooding)
        return True
    # A peer's protocol violation (1009 past the fragment cap or the size limit) is failed by
    # the protocol itself, which counts it as the peer's doing rather than a local close. Each
    # engine shows it its own way; a close the peer started (and the hub echoed) is neither.
    protocol = getattr(connection, "protocol", None)  # wslab's engine: the sans-I/O protocol
    if protocol is not None:
        return getattr(protocol, "failure", None) is not None
    ws = getattr(connection, "ws", None)  # the websockets engine: its connection object
    state = getattr(ws, "protocol", None)
    return (
        getattr(state, "close_sent", None) is not None
        and getattr(state, "close_rcvd_then_sent", None) is not True
    )


class AbuseGate:
    """Refuses users and addresses cooling down after an abusive close (see the module docstring).

    ``cooldown`` is None when ``abuse_cooldown_seconds`` is 0: then every method does nothing.
    """

    def __init__(self, config: HubConfig, verifier: TokenVerifier | None) -> None:
        self.verifier = verifier
        self.cooldown: AbuseCoolDown | None = None
        if config.abuse_cooldown_seconds > 0:
            self.cooldown = AbuseCoolDown(
                config.abuse_cooldown_seconds,
                config.abuse_cooldown_max_seconds,
                config.abuse_memory_seconds,
                address_threshold=config.abuse_address_threshold,
                max_keys=config.abuse_table_size,
            )
        self._log = ThrottledLog(log, 10)

    def check(self, upgrade: Upgrade, remote: tuple[str, int] | None) -> None:
        """Raise the 429 for an upgrade whose user or address is cooling down."""
        cooldown = self.cooldown
        if cooldown is None:
            return
        wait = cooldown.refusal(remote[0] if remote else None, lambda: self._user_of(upgrade))
        if not wait:
            return
        refusal = HandshakeError(
            "connection closed for abuse recently; retry after the cool-down",
            status=429,
            headers={"Retry-After": retry_after_header(wait)},
        )
        refusal.refusal_reason = "cooldown"  # type: ignore[attr-defined]  # the metric's label
        raise refusal

    def _user_of(self, upgrade: Upgrade) -> str | None:
        """The user a valid token on the upgrade request proves, or None."""
        if self.verifier is None:
            return None
        try:
            token, _ = token_from_upgrade(upgrade.headers, upgrade.query)
            return None if token is None else self.verifier.verify(token).user_id
        except AuthenticationError:
            return None  # proves nobody; the session refuses it with 4001 if it gets that far

    def opened(self, connection: Connection, user_id: str, *, anonymous: bool) -> None:
        """An authenticated session starts: remember its user for :meth:`closed`."""
        if self.cooldown is not None and not anonymous:
            connection.context[USER_CONTEXT_KEY] = user_id

    def closed(self, connection: Connection) -> None:
        """TCP is closed: a close the hub sent for abuse counts against the user and address."""
        cooldown = self.cooldown
        sent = connection.close_sent
        if cooldown is None or sent is None or not _closed_by_hub(connection):
            return
        code = sent[0]
        address = connection.remote[0] if connection.remote else None
        user = connection.context.get(USER_CONTEXT_KEY)
        seconds = cooldown.closed(code, address, user)
        if seconds:
            self._log.info(
                "abuse cool-down",
                user_id=user,
                remote=address,
                code=code,
                seconds=round(seconds, 3),
            )
