"""Alerting values: rules, alerts and their transitions, silences, inhibition and grouping state.

Plain frozen dataclasses: the pure engine in ``keelwatch.alerting`` computes with them, storage
(later) turns rows into them, the API and the CLI render them. Behaviour (matching, parsing,
evaluation, planning) lives in ``keelwatch.alerting``, not here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from keelwatch.entities.notifications import NotificationState


class MatchOp(StrEnum):
    """Alertmanager's four label-matcher operators."""

    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label matcher, e.g. ``column=~"f[0-9]+"``; regexes are fully anchored when applied."""

    name: str
    op: MatchOp
    value: str

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op.value}"{escaped}"'


class Comparison(StrEnum):
    """How a rule compares a signal's value with its threshold."""

    GT = ">"
    GE = ">="
    LT = "<"
    LE = "<="
    EQ = "=="
    NE = "!="


class Severity(StrEnum):
    """Alert severity, lowest first."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class Rule:
    """A condition on one signal: ``signal{matchers} comparison threshold`` held for ``hold_for``.

    ``labels`` are added to every alert the rule raises (and override the signal's labels of the
    same name); ``annotations`` are templates (``{{ $labels.column }}``, ``{{ $value }}``)
    rendered per alert.
    """

    name: str
    signal: str
    comparison: Comparison
    threshold: float
    matchers: tuple[Matcher, ...] = ()
    hold_for: timedelta = timedelta(0)
    severity: Severity = Severity.WARNING
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    runbook_url: str | None = None


class AlertState(StrEnum):
    """Where an alert is in its episode.

    ``pending`` (condition true, ``for`` not yet elapsed) → ``firing`` → ``resolved`` (condition
    stopped). A pending alert whose condition stops before firing becomes ``inactive`` (it was
    never notified, so there is nothing to resolve), as Prometheus does.
    """

    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"
    INACTIVE = "inactive"

    @property
    def active(self) -> bool:
        """True while the condition holds (pending or firing)."""
        return self in (AlertState.PENDING, AlertState.FIRING)


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """A person took the alert: who, when, and an optional note. Cleared by a new episode."""

    assignee: str
    at: datetime
    comment: str = ""


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert: one fingerprint (hash of ``labels``), across every evaluation and episode.

    ``episode`` counts firing episodes (1 for the first); an action runs at most once per
    (fingerprint, episode). ``active_since`` is when the current episode began (pending),
    ``fired_at``/``resolved_at`` when it fired/resolved (None if not, or not yet).
    """

    fingerprint: str
    rule_name: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    severity: Severity
    state: AlertState
    value: float
    episode: int
    active_since: datetime
    last_evaluated_at: datetime
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    runbook_url: str | None = None
    acknowledgement: Acknowledgement | None = None


@dataclass(frozen=True, slots=True)
class AlertTransition:
    """One change of state, kept as history. ``from_state`` is None for a new alert."""

    fingerprint: str
    rule_name: str
    episode: int
    from_state: AlertState | None
    to_state: AlertState
    at: datetime
    value: float


@dataclass(frozen=True, slots=True)
class Silence:
    """Mutes notifications for alerts matching every matcher between ``starts_at`` and
    ``ends_at``. With ``ends_when_resolved`` the silence ends as soon as the alerts it muted
    have all resolved (``ends_at`` is then moved to that moment by the engine)."""

    id: str
    matchers: tuple[Matcher, ...]
    author: str
    comment: str
    starts_at: datetime
    ends_at: datetime
    ends_when_resolved: bool = False


@dataclass(frozen=True, slots=True)
class InhibitRule:
    """A firing alert matching ``source`` mutes alerts matching ``target`` whose ``equal``
    labels have the same values (missing on both sides counts as equal, as in Alertmanager)."""

    source: tuple[Matcher, ...] = (Matcher("severity", MatchOp.EQUAL, Severity.CRITICAL.value),)
    target: tuple[Matcher, ...] = (Matcher("severity", MatchOp.EQUAL, Severity.WARNING.value),)
    equal: tuple[str, ...] = ("model",)


@dataclass(frozen=True, slots=True)
class Route:
    """How alerts are grouped into notifications for one receiver (Alertmanager's route).

    ``group_by`` names the labels whose values make a group; ``("...",)`` groups by all labels
    (one alert per group). ``group_wait``: a new group waits this long before its first
    notification. ``group_interval``: after that, the group is looked at every interval and a
    notification goes out if it changed (new firing alerts, or resolved ones). ``repeat_interval``:
    an unchanged firing group is re-sent once this long has passed since the last notification.
    """

    receiver: str
    group_by: tuple[str, ...] = ("alertname",)
    group_wait: timedelta = timedelta(seconds=30)
    group_interval: timedelta = timedelta(minutes=5)
    repeat_interval: timedelta = timedelta(hours=4)
    send_resolved: bool = True


@dataclass(frozen=True, slots=True)
class GroupState:
    """What the planner remembers about one aggregation group between ticks.

    A group whose alerts have all resolved (and been notified) ends: ``ended_at`` is set and it
    is kept dormant so its ``sequence`` keeps growing when the same key fires again; otherwise
    the next episode's first notification would repeat an old (group key, state, sequence) and
    be dropped as a replay. Dormant groups may be pruned after the notification log's retention.
    """

    key: str
    labels: Mapping[str, str]
    created_at: datetime
    next_flush_at: datetime
    has_flushed: bool = False
    notified_firing: frozenset[str] = frozenset()
    notified_resolved: frozenset[str] = frozenset()
    last_sent_at: datetime | None = None
    sequence: int = 0
    ended_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class NotificationIntent:
    """A notification the planner decided to send: (group key, state, sequence) is its identity.

    ``firing``/``resolved`` are alert fingerprints. ``keelwatch.alerting.grouping.to_notification``
    turns it into the :class:`~keelwatch.entities.notifications.Notification` notifiers send,
    whose ``idempotency_key`` is derived from that triple, so a replayed or redelivered intent
    never pages twice."""

    receiver: str
    group_key: str
    group_labels: Mapping[str, str]
    state: NotificationState
    sequence: int
    firing: tuple[str, ...]
    resolved: tuple[str, ...]
    at: datetime
