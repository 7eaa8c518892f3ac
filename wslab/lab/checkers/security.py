"""The checker for the exercise of chapter 6 (``06_security.ipynb``): rate limits that fit.

The exercise: choose the hub's three rate settings — ``rate_messages_per_second``,
``rate_burst`` and ``rate_flood_close_after`` — so that people chatting quickly are **never**
refused while scripts that flood the room are **closed quickly** and get little through first.

The checker does not judge the numbers by a formula. It replays a few traffic profiles
(:data:`TRAFFIC_PROFILES`: two people, two abusers) against the hub's own
:class:`~wslab.infrastructure.ratelimit.ConnectionLimiter`, built exactly as the hub builds one
for each connection, and driven by a simulated clock, so a minute of traffic takes milliseconds
and every run gives the same verdicts. The rules:

- a **person** must never get ``RATE_LIMITED``;
- an **abuser** must be closed (1008) within :data:`CLOSE_WITHIN` seconds of its first message,
  and at most :data:`MAX_ABUSER_ACCEPTED` of its messages may be accepted before that (each of
  them reached everyone in the room).

Like the other checkers, :func:`check_rate_limit_exercise` prints a one-line success message
when every profile passes and raises :class:`AssertionError` with a hint at the first that does
not. A hint names the profile, what happened to it and which kind of setting governs that, never
the numbers to use. :func:`rate_limit_report` shows every profile's outcome as a table, and
:func:`simulate_rate_limit` replays one profile, for plots.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from wslab.foundation.errors import ConfigError
from wslab.infrastructure.config import HubConfig
from wslab.infrastructure.ratelimit import ConnectionLimiter, Verdict

from .verdicts import exercise, hint, success

__all__ = [
    "CLOSE_WITHIN",
    "MAX_ABUSER_ACCEPTED",
    "RATE_SETTINGS",
    "TRAFFIC_PROFILES",
    "ProfileOutcome",
    "RateSettings",
    "TrafficProfile",
    "check_rate_limit_exercise",
    "rate_limit_report",
    "rate_settings",
    "simulate_rate_limit",
]

#: An abuser must be closed this many seconds after its first message at the latest.
CLOSE_WITHIN = 2.0
#: At most this many of an abuser's messages may be accepted before it is closed.
MAX_ABUSER_ACCEPTED = 30
#: The three settings the exercise asks for (the names of :class:`HubConfig` fields).
RATE_SETTINGS = ("rate_messages_per_second", "rate_burst", "rate_flood_close_after")


# -- traffic profiles ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrafficProfile:
    """One kind of sender: the times (seconds after connecting) at which it sends messages.

    ``kind`` is ``"person"`` (must never be refused) or ``"abuser"`` (must be closed quickly).
    """

    name: str
    kind: Literal["person", "abuser"]
    description: str
    times: tuple[float, ...]

    @property
    def messages(self) -> int:
        """How many messages the profile sends if nothing stops it."""
        return len(self.times)

    @property
    def duration(self) -> float:
        """Seconds from the first message to the last."""
        return self.times[-1] - self.times[0] if self.times else 0.0


def _bursts(size: int, spacing: float, every: float, count: int) -> tuple[float, ...]:
    # Rounded so that 0.1 * 3 is 0.3: the times are shown in hints.
    return tuple(
        round(burst * every + i * spacing, 6) for burst in range(count) for i in range(size)
    )


def _steady(per_second: float, seconds: float) -> tuple[float, ...]:
    return tuple(round(i / per_second, 6) for i in range(round(per_second * seconds)))


#: The profiles the checker replays, people first.
TRAFFIC_PROFILES: tuple[TrafficProfile, ...] = (
    TrafficProfile(
        "quick replies",
        "person",
        "a person firing off 10 short replies 0.1 s apart, then reading for 4 s; 6 times",
        _bursts(size=10, spacing=0.1, every=5.0, count=6),
    ),
    TrafficProfile(
        "heated discussion",
        "person",
        "a fast typist keeping up 4 messages per second for 30 s",
        _steady(per_second=4, seconds=30),
    ),
    TrafficProfile(
        "spam script",
        "abuser",
        "a script sending 1000 messages per second for 5 s",
        _steady(per_second=1000, seconds=5),
    ),
    TrafficProfile(
        "runaway bot",
        "abuser",
        "a bot stuck in a loop, sending 50 messages per second for 10 s",
        _steady(per_second=50, seconds=10),
    ),
)


# -- settings ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateSettings:
    """The three rate settings of a hub, validated by :class:`HubConfig`'s own rules."""

    rate_messages_per_second: float
    rate_burst: int
    rate_flood_close_after: int

    def limiter(self) -> ConnectionLimiter:
        """A limiter as the hub builds one per connection, on a clock that starts at 0.

        The hub also limits bytes per second; the profiles send short chat lines, far below that
        limit, so it is left out here.
        """
        return ConnectionLimiter(
            self.rate_messages_per_second,
            self.rate_burst,
            flood_close_after=self.rate_flood_close_after,
            clock=lambda: 0.0,
        )


def rate_settings(settings: object) -> RateSettings:
    """Read the student's answer: a mapping with exactly the keys of :data:`RATE_SETTINGS`, a
    :class:`HubConfig`, or a :class:`RateSettings`. Wrong shapes and values raise a hint."""
    if isinstance(settings, RateSettings):
        return settings
    if isinstance(settings, HubConfig):
        values: dict[str, Any] = {name: getattr(settings, name) for name in RATE_SETTINGS}
    elif isinstance(settings, Mapping):
        missing = [name for name in RATE_SETTINGS if name not in settings]
        if missing:
            raise hint(f"the settings have no {', '.join(repr(m) for m in missing)}.")
        extra = [str(name) for name in settings if name not in RATE_SETTINGS]
        if extra:
            raise hint(
                f"only the three rate settings are asked for; remove {', '.join(map(repr, extra))}."
            )
        values = dict(settings)
    else:
        raise hint(
            f"expected a dict with the keys {', '.join(RATE_SETTINGS)}, "
            f"got {type(settings).__name__}."
        )
    try:
        # The hub's own validation: the same rules, the same messages as Hub.start(...).
        config = HubConfig.load(env={}, **values)
    except ConfigError as error:
        raise hint(f"the hub would refuse these settings: {error.message}") from None
    return RateSettings(*(getattr(config, name) for name in RATE_SETTINGS))


# -- simulation --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileOutcome:
    """What the hub's limiter did to one profile.

    ``timeline`` has one ``(time, verdict)`` pair per message that reached the hub; after a
    ``CLOSE`` the connection is gone, so the profile's later messages are never sent.
    """

    profile: TrafficProfile
    settings: RateSettings
    timeline: tuple[tuple[float, Verdict], ...]

    @property
    def accepted(self) -> int:
        """Messages the hub handled."""
        return sum(1 for _, verdict in self.timeline if verdict is Verdict.ALLOW)

    @property
    def rejected(self) -> int:
        """Messages answered with ``RATE_LIMITED`` (the closing one not counted)."""
        return sum(1 for _, verdict in self.timeline if verdict is Verdict.REJECT)

    @property
    def first_rejected_at(self) -> float | None:
        """Seconds after connecting of the first refused message, or None."""
        return next((t for t, v in self.timeline if v is not Verdict.ALLOW), None)

    @property
    def closed_at(self) -> float | None:
        """Seconds after connecting at which the connection was closed with 1008, or None."""
        return next((t for t, v in self.timeline if v is Verdict.CLOSE), None)

    @property
    def seconds_to_close(self) -> float | None:
        """Seconds from the profile's first message to the close, or None if never closed."""
        closed_at = self.closed_at
        return None if closed_at is None else closed_at - self.profile.times[0]

    @property
    def problem(self) -> str | None:
        """Why this outcome breaks the exercise's rules (a hint), or None if it is fine."""
        profile = self.profile
        if profile.kind == "person":
            return None if self.first_rejected_at is None else self._person_hint()
        seconds = self.seconds_to_close
        if seconds is None or seconds > CLOSE_WITHIN:
            return self._late_close_hint()
        if self.accepted > MAX_ABUSER_ACCEPTED:
            head = (
                f"{profile.name} ({profile.description}): {self.accepted} of its messages were "
                f"accepted before it was closed, and each reached everyone in the room (at most "
                f"{MAX_ABUSER_ACCEPTED} may)."
            )
            if self.settings.rate_burst >= MAX_ABUSER_ACCEPTED:
                return (
                    f"{head} Which setting decides how many messages a brand-new connection may "
                    "send at once?"
                )
            return (
                f"{head} The full bucket accounts for {self.settings.rate_burst} of them; the "
                f"rest came in as the bucket refilled during the {seconds:g} s before "
                "the close. Which settings decide how fast it refills, and how soon the close "
                "comes?"
            )
        return None

    def _person_hint(self) -> str:
        profile = self.profile
        t = self.first_rejected_at
        assert t is not None
        index = next(i for i, (_, v) in enumerate(self.timeline) if v is not Verdict.ALLOW)
        head = (
            f"{profile.name} ({profile.description}) got RATE_LIMITED at t = {t:g} s, "
            f"on its message #{index + 1}: a person would see their message refused."
        )
        pause = _first_pause(profile.times)
        if pause is not None and t < pause:
            return (
                f"{head} The very first burst does not fit: which setting decides how many "
                "messages may arrive at once, and how much does the refill add during the burst?"
            )
        if pause is not None:
            return (
                f"{head} The first burst fitted, but the bucket had not refilled during the "
                "pause before this one: which setting decides how fast it refills?"
            )
        return (
            f"{head} A full bucket only postpones this: over 30 s, what matters is how many "
            "messages per second the bucket refills compared with how many the person sends."
        )

    def _late_close_hint(self) -> str:
        profile = self.profile
        closed_at = self.closed_at
        when = (
            f"was closed only at t = {closed_at:g} s"
            if closed_at is not None
            else f"was never closed (it sent all of its {profile.messages} messages)"
        )
        if self.rejected == 0:
            why = (
                "It was never even refused: the sustained rate lets all of its messages "
                "through. Is that rate one a person needs?"
            )
        else:
            why = (
                f"It was refused {self.rejected} times. The hub closes a connection "
                f"when enough refusals fall within {self.settings.limiter().flood_window:g} s: "
                "which setting says how many are enough, and how fast do this sender's "
                "refusals pile up?"
            )
        return (
            f"{profile.name} ({profile.description}) {when}; it must be closed within "
            f"{CLOSE_WITHIN:g} s of its first message. {why}"
        )


#: A gap between two messages at least this long is a pause (a person reading), not typing.
_PAUSE = 1.0


def _first_pause(times: tuple[float, ...]) -> float | None:
    """When the first pause of a profile ends (its next message is sent), or None if it has none."""
    return next((b for a, b in itertools.pairwise(times) if b - a >= _PAUSE), None)


def simulate_rate_limit(settings: object, profile: TrafficProfile) -> ProfileOutcome:
    """Replay ``profile`` against a fresh limiter with ``settings`` (see :func:`rate_settings`)."""
    rates = rate_settings(settings)
    limiter = rates.limiter()
    timeline: list[tuple[float, Verdict]] = []
    for t in profile.times:
        verdict = limiter.check(0, now=t)
        timeline.append((t, verdict))
        if verdict is Verdict.CLOSE:
            break  # the hub closes the connection: nothing more arrives from this sender
    return ProfileOutcome(profile, rates, tuple(timeline))


def rate_limit_report(settings: object) -> Any:
    """Every profile's outcome with ``settings`` as a pandas DataFrame (one row per profile)."""
    import pandas as pd

    rows = []
    for profile in TRAFFIC_PROFILES:
        outcome = simulate_rate_limit(settings, profile)
        rows.append(
            {
                "profile": profile.name,
                "kind": profile.kind,
                "sent": len(outcome.timeline),
                "accepted": outcome.accepted,
                "refused": outcome.rejected,
                "first refused at (s)": outcome.first_rejected_at,
                "closed at (s)": outcome.closed_at,
                "ok": outcome.problem is None,
            }
        )
    return pd.DataFrame(rows)


@exercise('06.rate_limit', 'Replace each `...` in `my_settings` with a number.')
def check_rate_limit_exercise(settings: object) -> None:
    """Check rate settings against every profile of :data:`TRAFFIC_PROFILES`.

    ``settings`` is a dict like ``{"rate_messages_per_second": ..., "rate_burst": ...,
    "rate_flood_close_after": ...}`` (or a :class:`HubConfig`).
    """
    rates = rate_settings(settings)
    outcomes = [simulate_rate_limit(rates, profile) for profile in TRAFFIC_PROFILES]
    for outcome in outcomes:
        problem = outcome.problem
        if problem is not None:
            raise hint(problem)
    abusers = [
        f"{o.profile.name} closed after {o.seconds_to_close:.2f} s with {o.accepted} messages through"
        for o in outcomes
        if o.profile.kind == "abuser"
    ]
    success(
        f"{rates.rate_messages_per_second:g} messages/s, bursts of {rates.rate_burst}, closed "
        f"after {rates.rate_flood_close_after} refusals: no person was ever refused; "
        + "; ".join(abusers)
        + "."
    )
