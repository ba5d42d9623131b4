"""Silences: mute notifications for alerts matching a set of matchers, for a while.

A silence is *pending* before ``starts_at``, *active* until ``ends_at``, then *expired*. While
active it mutes the notifications of every alert whose labels match all its matchers; the
alerts themselves still change state and keep their history. Muting applies to *firing*
notices only: an alert notified as firing and silenced afterwards still gets its resolved
notice, so the receiver (a PagerDuty incident, a ticket) is closed (alertmanager#226; the
grouping planner implements that part).

With ``ends_when_resolved`` a silence also ends as soon as the alerts it matches have resolved:
:func:`end_resolved_silences` moves its ``ends_at`` to that moment.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from enum import StrEnum

from keelwatch.alerting.matchers import matches_all
from keelwatch.entities.alerts import Alert, AlertState, Matcher, Silence
from keelwatch.errors import InvalidInputError

__all__ = [
    "SilenceState",
    "end_resolved_silences",
    "new_silence",
    "silence_state",
    "silenced_by",
]


class SilenceState(StrEnum):
    """Where a silence is in time."""

    PENDING = "pending"
    ACTIVE = "active"
    EXPIRED = "expired"


def new_silence(
    *,
    id: str,
    matchers: Sequence[Matcher],
    author: str,
    comment: str,
    starts_at: datetime,
    ends_at: datetime,
    ends_when_resolved: bool = False,
) -> Silence:
    """Validate and build a silence: at least one matcher, an author, a comment, and an end
    after the start, all times timezone-aware."""
    if not matchers:
        raise InvalidInputError("a silence needs at least one matcher (it would mute everything)")
    if not author.strip():
        raise InvalidInputError("a silence needs an author")
    if not comment.strip():
        raise InvalidInputError("a silence needs a comment saying why")
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise InvalidInputError("silence start and end must be timezone-aware")
    if ends_at <= starts_at:
        raise InvalidInputError("a silence must end after it starts")
    return Silence(
        id=id,
        matchers=tuple(matchers),
        author=author.strip(),
        comment=comment.strip(),
        starts_at=starts_at,
        ends_at=ends_at,
        ends_when_resolved=ends_when_resolved,
    )


def silence_state(silence: Silence, now: datetime) -> SilenceState:
    """Pending before ``starts_at``, active in [starts_at, ends_at), expired from ``ends_at``."""
    if now < silence.starts_at:
        return SilenceState.PENDING
    if now < silence.ends_at:
        return SilenceState.ACTIVE
    return SilenceState.EXPIRED


def silenced_by(labels: Mapping[str, str], silences: Iterable[Silence], now: datetime) -> list[str]:
    """Ids of the active silences that match ``labels`` (empty: not silenced)."""
    return [
        s.id
        for s in silences
        if silence_state(s, now) is SilenceState.ACTIVE and matches_all(s.matchers, labels)
    ]


def end_resolved_silences(
    silences: Iterable[Silence], alerts: Iterable[Alert], now: datetime
) -> list[Silence]:
    """Silences with ``ends_when_resolved`` whose alerts have all resolved, ended at ``now``.

    A silence ends when no alert it matches is pending or firing and at least one it matches
    resolved while it was active. Returns only the silences that changed.
    """
    alerts = list(alerts)
    ended: list[Silence] = []
    for silence in silences:
        if not silence.ends_when_resolved or silence_state(silence, now) is not SilenceState.ACTIVE:
            continue
        matched = [a for a in alerts if matches_all(silence.matchers, a.labels)]
        if any(a.state.active for a in matched):
            continue
        if any(
            a.state is AlertState.RESOLVED
            and a.resolved_at is not None
            and a.resolved_at >= silence.starts_at
            for a in matched
        ):
            ended.append(replace(silence, ends_at=now))
    return ended
