"""The judge of a conformance case: what the server did (an :class:`.session.Observation`)
against the case's strict expectation, as a :class:`.report.Verdict` and the observation in words.
"""

from __future__ import annotations

import hashlib

from .cases import (
    Case,
    Ev,
    as_bytes,
    data_length,
)
from .report import Verdict
from .session import Observation

__all__ = ["describe", "judge"]


# -- judging --------------------------------------------------------------------------------------


def judge(case: Case, obs: Observation) -> tuple[Verdict, str]:
    """The verdict for ``case`` given what was observed, and the observation in words."""
    observed = describe(obs)
    if obs.error is not None:
        return Verdict.FAILED, observed
    if obs.unimplemented is not None:
        return Verdict.UNIMPLEMENTED, observed
    if case.informational:
        return Verdict.INFORMATIONAL, observed
    problems: list[str] = []
    lenient: list[str] = []
    expected = [Ev(e.kind, as_bytes(e.data), e.opcode) for e in case.expected]
    if obs.events != expected or obs.events_dropped:
        non_strict = None
        if case.non_strict is not None:
            non_strict = [Ev(e.kind, as_bytes(e.data), e.opcode) for e in case.non_strict]
        if non_strict is not None and obs.events == non_strict and not obs.events_dropped:
            lenient.append("events match only the non-strict outcome")
        else:
            problems.append(_event_difference(expected, obs))
    problems += obs.violations
    problems += _takeover_problems(obs)
    if obs.frames_after_close:
        problems.append(f"server sent {obs.frames_after_close} frame(s) after its close frame")
    closing = case.closing
    if not obs.close_seen:
        if obs.tcp == "client":
            problems.append("server did not end the connection in time")
        elif closing.require_clean:
            problems.append("server dropped TCP without a close frame")
        else:
            lenient.append("server dropped TCP without sending a close frame")
    else:
        if closing.initiator == "client" and obs.server_closed_first:
            problems.append("server started the closing handshake; it should have answered ours")
        if closing.initiator == "server" and not obs.server_closed_first:
            problems.append("server did not fail the connection itself")
        if obs.close_problem is not None:
            problems.append(f"server's close frame is malformed: {obs.close_problem}")
        if obs.close_code not in closing.codes:
            wanted = "/".join(
                "empty" if c is None else str(c)
                for c in sorted(closing.codes, key=lambda c: c or 0)
            )
            got = "empty" if obs.close_code is None else str(obs.close_code)
            text = f"close code {got}, expected {wanted}"
            (lenient if obs.close_code in closing.lenient_codes else problems).append(text)
        if obs.tcp == "client":
            problems.append("server did not close TCP after the closing handshake")
    if problems:
        return Verdict.FAILED, f"{observed} -- " + "; ".join(problems)
    if lenient:
        return Verdict.NON_STRICT, f"{observed} -- " + "; ".join(lenient)
    return Verdict.OK, observed


def _takeover_problems(obs: Observation) -> list[str]:
    """With server_no_context_takeover agreed, the server compresses each message from a fresh
    state: identical messages must then be identical deflate bytes (context kept would make
    later copies shorter). The inflater, reset per message, already fails on back-references
    into an earlier message; this catches a server whose copies merely differ."""
    agreement = obs.agreement
    if agreement is None or not agreement.params.server_no_context_takeover:
        return []
    forms: dict[tuple[int, bytes], set[bytes]] = {}
    messages = [e for e in obs.events if e.kind == "message"]
    for ev, wire in zip(messages, obs.message_wire, strict=False):
        if wire.compressed:
            key = (ev.opcode, hashlib.sha256(as_bytes(ev.data)).digest())
            forms.setdefault(key, set()).add(wire.digest)
    if any(len(digests) > 1 for digests in forms.values()):
        return [
            "server_no_context_takeover agreed, but identical messages were echoed as different "
            "deflate bytes (context kept between messages?)"
        ]
    return []


def _event_difference(expected: list[Ev], obs: Observation) -> str:
    got = obs.events
    for i, (e, g) in enumerate(zip(expected, got, strict=False)):
        if e != g:
            return f"event {i + 1}: expected {e.describe()}, got {g.describe()}"
    if len(got) < len(expected):
        more = len(expected) - len(got) - 1
        return f"missing: {expected[len(got)].describe()}" + (f" (and {more} more)" if more else "")
    extra = len(got) - len(expected) + obs.events_dropped
    return f"unexpected: {got[len(expected)].describe()} ({extra} extra event(s))"


def describe(obs: Observation) -> str:
    """The observation in one line."""
    if obs.error is not None:
        return obs.error
    if obs.unimplemented is not None:
        return obs.unimplemented
    # Runs of identical events (round-trip cases) are shown once with a count.
    runs: list[tuple[Ev, int]] = []
    for ev in obs.events:
        if runs and runs[-1][0] == ev:
            runs[-1] = (ev, runs[-1][1] + 1)
        else:
            runs.append((ev, 1))
    shown = [e.describe() if n == 1 else f"{n} x {e.describe()}" for e, n in runs[:6]]
    rest = sum(n for _, n in runs[6:]) + obs.events_dropped
    if rest:
        shown.append(f"... {rest} more")
    parts = [f"events [{', '.join(shown)}]"]
    if obs.agreement is not None:
        # First, so that the agreement survives when a long observation is cut for a table.
        wire = obs.message_wire
        packed = [w for w in wire if w.compressed]
        messages = zip(_messages(obs), wire, strict=False)
        plain = sum(data_length(e.data) for e, w in messages if w.compressed)
        parts.insert(
            0,
            f"agreed {obs.agreement.answer!r}, {len(packed)}/{len(wire)} echoes compressed"
            + (f" ({sum(w.wire_bytes for w in packed)} B for {plain} B)" if packed else ""),
        )
    if obs.close_seen:
        code = "empty" if obs.close_code is None else str(obs.close_code)
        reason = obs.close_reason.decode("utf-8", "replace")
        who = "unprompted" if obs.server_closed_first else "answering ours"
        parts.append(f"close {code}{f' {reason!r}' if reason else ''} from server ({who})")
    else:
        parts.append("no close frame")
    parts.append(
        {
            "server": "TCP closed by server",
            "reset": "TCP reset by server",
            "client": "runner dropped TCP after timeout",
        }.get(obs.tcp or "", "TCP state unknown")
    )
    if obs.server_pings:
        parts.append(f"{obs.server_pings} ping(s) from server")
    return "; ".join(parts)


def _messages(obs: Observation) -> list[Ev]:
    return [e for e in obs.events if e.kind == "message"]
