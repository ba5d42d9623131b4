"""What a notifier is asked to send: one notification for one alert group at one moment.

The alert engine builds a :class:`Notification` from its group state (``group_key``, the
group's alerts, a ``sequence`` that grows with each send of the group) and hands it to a
notifier; every notifier renders the same value into its own wire format. The triple
``(group_key, state, sequence)`` is the notification's identity: two replicas or a broker
redelivery that send the same triple send the same notification, so receivers (and the
notification log) can drop the second one.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from keelwatch.errors import InvalidInputError


class NotificationState(enum.StrEnum):
    """The state a notification reports for its group (and each alert reports for itself)."""

    FIRING = "firing"
    RESOLVED = "resolved"
    ACKNOWLEDGED = "acknowledged"


def _frozen(mapping: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class NotifiedAlert:
    """One alert inside a notification, as the receiver should see it.

    ``labels`` identify the alert (``fingerprint`` is the engine's hash of them); well-known
    labels are ``alertname``, ``severity``, ``model``, ``version``, ``alias``, ``monitor``,
    ``column``. ``annotations`` carry the rendered ``summary`` and ``description``. ``value``
    is the signal value that crossed the rule (``None`` when the alert came from outside).
    ``ends_at`` is set once the alert resolved.
    """

    fingerprint: str
    status: NotificationState
    labels: Mapping[str, str]
    starts_at: datetime
    annotations: Mapping[str, str] = field(default_factory=dict)
    value: float | None = None
    ends_at: datetime | None = None
    generator_url: str | None = None
    runbook_url: str | None = None

    def __post_init__(self) -> None:
        if not self.fingerprint:
            raise InvalidInputError("a notified alert needs a fingerprint")
        if self.starts_at.tzinfo is None:
            raise InvalidInputError(f"alert {self.fingerprint}: starts_at must be timezone-aware")
        if self.ends_at is not None and self.ends_at.tzinfo is None:
            raise InvalidInputError(f"alert {self.fingerprint}: ends_at must be timezone-aware")
        object.__setattr__(self, "labels", _frozen(self.labels))
        object.__setattr__(self, "annotations", _frozen(self.annotations))

    @property
    def name(self) -> str:
        """The alert's name (the ``alertname`` label), or ``"alert"`` when it has none."""
        return self.labels.get("alertname", "alert")

    @property
    def severity(self) -> str:
        """The ``severity`` label, ``"warning"`` when absent."""
        return self.labels.get("severity", "warning")

    @property
    def summary(self) -> str:
        """The ``summary`` annotation, else a line built from the name and labels."""
        summary = self.annotations.get("summary")
        if summary:
            return summary
        model = self.labels.get("model")
        return f"{self.name} on {model}" if model else self.name


@dataclass(frozen=True)
class Notification:
    """One send of one alert group.

    ``state`` is the group's state: ``firing`` while any alert fires, ``resolved`` once all
    resolved, ``acknowledged`` when a person acknowledged it. ``links`` are named URLs the
    receiver may show (``mlflow``, ``keelwatch``); ``created_at`` is when the engine decided
    to send, which the renderers use as "now" so rendering stays a pure function.
    """

    group_key: str
    state: NotificationState
    sequence: int
    alerts: tuple[NotifiedAlert, ...]
    created_at: datetime
    receiver: str = ""
    group_labels: Mapping[str, str] = field(default_factory=dict)
    links: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.group_key:
            raise InvalidInputError("a notification needs a group key")
        if self.sequence < 0:
            raise InvalidInputError(f"notification sequence must be >= 0, got {self.sequence}")
        if not self.alerts:
            raise InvalidInputError(f"notification for group {self.group_key} has no alerts")
        if self.created_at.tzinfo is None:
            raise InvalidInputError("notification created_at must be timezone-aware")
        object.__setattr__(self, "alerts", tuple(self.alerts))
        object.__setattr__(self, "group_labels", _frozen(self.group_labels))
        object.__setattr__(self, "links", _frozen(self.links))

    @property
    def idempotency_key(self) -> str:
        """A stable key for ``(group_key, state, sequence)``: the same send always has it."""
        raw = f"{self.group_key}\x1f{self.state.value}\x1f{self.sequence}".encode()
        return hashlib.sha256(raw).hexdigest()[:32]

    @property
    def firing(self) -> tuple[NotifiedAlert, ...]:
        """The alerts still firing."""
        return tuple(a for a in self.alerts if a.status is NotificationState.FIRING)

    @property
    def resolved(self) -> tuple[NotifiedAlert, ...]:
        """The alerts that resolved."""
        return tuple(a for a in self.alerts if a.status is NotificationState.RESOLVED)


class DeliveryStatus(enum.StrEnum):
    """Where one notification's delivery is: waiting or retrying (``pending``), claimed by a
    delivery that is sending it (``sending``), delivered, or given up."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DEAD = "dead"


@dataclass(frozen=True)
class NotifierTarget:
    """A stored notifier: its name (the receiver of its route), type, config and route.

    ``config`` may hold secrets: show it only through ``masked_config`` of the delivery code.
    ``route`` carries ``group_by``, ``group_wait_s``, ``group_interval_s``,
    ``repeat_interval_s`` and ``send_resolved`` (defaults where absent).
    """

    name: str
    type: str
    config: Mapping[str, object]
    route: Mapping[str, object]
    created_by: str
    created_at: datetime


@dataclass(frozen=True)
class NotificationRecord:
    """One row of the notification log: what was decided, for whom, and its delivery outcome.

    ``payload`` is the notification as JSON (it never holds a notifier secret); ``last_error``
    is scrubbed of secrets before it is stored.
    """

    id: int
    idempotency_key: str
    notifier: str
    group_key: str
    state: NotificationState
    sequence: int
    payload: Mapping[str, object]
    status: DeliveryStatus
    attempts: int
    created_at: datetime
    last_error: str | None = None
    sent_at: datetime | None = None
    #: When the delivery now sending it claimed it (``sending`` rows only).
    claimed_at: datetime | None = None
    #: When a row waiting for its retry is due again.
    next_attempt_at: datetime | None = None


@dataclass(frozen=True)
class DeadLetter:
    """A notification given up on: which log row, which notifier, why, and if it was replayed."""

    id: int
    log_id: int
    notifier: str
    reason: str
    failed_at: datetime
    replayed_at: datetime | None = None
