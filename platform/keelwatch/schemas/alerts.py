"""Pydantic shapes of alerts on the wire.

Rules, alerts with their history, acknowledgements, silences and dead letters as the
``/alerts`` routes read and write them (``RuleOut``, ``AlertOut``, ``SilenceIn``, ...), and the
webhook payload Prometheus Alertmanager sends to a ``webhook_config`` receiver
(version ``"4"``), accepted by ``POST /alerts/inbound/alertmanager``. Field names are
Alertmanager's own (camelCase aliases), documented at
https://prometheus.io/docs/alerting/latest/configuration/#webhook_config.

:func:`parse_alertmanager_webhook` is the one entry point: it turns raw bytes or decoded JSON
into an :class:`AlertmanagerWebhook`, or raises :class:`~keelwatch.errors.InvalidInputError`
whose message names the field (``alerts[0].labels``) and the problem, never the field's value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from keelwatch.alerting.rules import rule_to_dict
from keelwatch.entities.alerts import Alert, AlertTransition, Silence
from keelwatch.entities.notifications import DeadLetter
from keelwatch.errors import InvalidInputError

if TYPE_CHECKING:
    from keelwatch.storage.alerts import StoredRule

#: The only webhook payload version Alertmanager has shipped since 0.6 and that this parser reads.
ALERTMANAGER_WEBHOOK_VERSION = "4"
#: Label names as Prometheus and Alertmanager accept them (also what signals require).
LabelName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
AlertStatus = Literal["firing", "resolved"]


class _AlertmanagerModel(BaseModel):
    # Unknown fields are ignored: a newer Alertmanager may add some, and that must not break us.
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class AlertmanagerAlert(_AlertmanagerModel):
    """One alert of a webhook notification."""

    status: AlertStatus
    labels: dict[LabelName, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime = Field(alias="startsAt")
    #: Alertmanager sends ``0001-01-01T00:00:00Z`` for an alert that has not ended.
    ends_at: datetime | None = Field(default=None, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL")
    fingerprint: Annotated[str, StringConstraints(min_length=1, max_length=64)]


class AlertmanagerWebhook(_AlertmanagerModel):
    """A whole webhook notification: one group of alerts sent to one receiver."""

    version: Literal["4"]
    group_key: str = Field(alias="groupKey")
    truncated_alerts: int = Field(default=0, ge=0, alias="truncatedAlerts")
    status: AlertStatus
    receiver: str
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field(default="", alias="externalURL")
    alerts: list[AlertmanagerAlert]


class InboundAccepted(BaseModel):
    """The answer to an accepted inbound notification."""

    alerts: int = Field(description="Alerts in the payload.")
    signals: int = Field(description="Signals stored from them.")
    truncated_alerts: int = Field(
        description="Alerts Alertmanager left out of the payload (its max_alerts setting)."
    )


def _location(loc: tuple[int | str, ...]) -> str:
    """``("alerts", 0, "labels", "bad-name")`` → ``alerts[0].labels.bad-name``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "payload"


def _describe(error: ValidationError) -> str:
    # Pydantic's "msg" says what is wrong without echoing the input ("Field required",
    # "Input should be 'firing' or 'resolved'"); the input itself may be anything the sender put
    # in a label, so it is left out.
    problems = [f"{_location(item['loc'])}: {item['msg']}" for item in error.errors()[:5]]
    more = error.error_count() - len(problems)
    suffix = f" (and {more} more)" if more > 0 else ""
    return "; ".join(problems) + suffix


def parse_alertmanager_webhook(payload: bytes | str | Mapping[str, Any]) -> AlertmanagerWebhook:
    """Validate an Alertmanager webhook payload (raw JSON or already decoded).

    Raises :class:`~keelwatch.errors.InvalidInputError` naming the first problems by position,
    e.g. ``alerts[0].status: Input should be 'firing' or 'resolved'``; a payload of another
    version is rejected with the version it should have been.
    """
    if isinstance(payload, bytes | str):
        try:
            data: Any = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            position = f" at position {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
            raise InvalidInputError(
                f"Alertmanager webhook payload is not valid JSON{position}"
            ) from None
    else:
        data = payload
    if not isinstance(data, Mapping):
        raise InvalidInputError(
            f"Alertmanager webhook payload must be a JSON object, got {type(data).__name__}"
        )
    version = data.get("version")
    if version is not None and version != ALERTMANAGER_WEBHOOK_VERSION:
        raise InvalidInputError(
            f"version: Alertmanager webhook payload version {ALERTMANAGER_WEBHOOK_VERSION!r} "
            "is the only one supported"
        )
    try:
        return AlertmanagerWebhook.model_validate(data)
    except ValidationError as exc:
        raise InvalidInputError(f"invalid Alertmanager webhook payload: {_describe(exc)}") from None


# --- rules, alerts, silences, dead letters (the /alerts routes) --------------------------------


class AppliedOut(BaseModel):
    """What an apply did (rules or action policies), names per outcome."""

    created: list[str] = Field(description="New names.")
    updated: list[str] = Field(description="Names whose definition changed.")
    unchanged: list[str] = Field(description="Names given with the definition already stored.")


class RulesIn(BaseModel):
    """The JSON form of ``PUT /alerts/rules`` (the YAML form is the rule file itself)."""

    model_config = ConfigDict(extra="forbid")

    rules: list[Any] = Field(
        description="Rules as in a rule file: name, signal, matchers, comparison, threshold, "
        "for, severity, labels, annotations, runbook_url."
    )


class RuleOut(BaseModel):
    """A stored alerting rule, as a rule file would write it, with who changed it last."""

    model_config = ConfigDict(populate_by_name=True)

    name: str
    signal: str
    matchers: str = Field(description='Alertmanager matchers, e.g. {model="credit"}.')
    comparison: str
    threshold: float
    hold_for: str = Field(alias="for", description="How long the condition must hold.")
    severity: str
    labels: dict[str, str]
    annotations: dict[str, str]
    runbook_url: str | None = None
    source: str = Field(description="Where the rule came from (file name, or api).")
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime

    @classmethod
    def of(cls, stored: StoredRule) -> RuleOut:
        """Stored rule → response."""
        return cls.model_validate(
            {
                **rule_to_dict(stored.rule),
                "source": stored.source,
                "created_by": stored.created_by,
                "created_at": stored.created_at,
                "updated_by": stored.updated_by,
                "updated_at": stored.updated_at,
            }
        )


class AcknowledgementOut(BaseModel):
    """Who took the alert, when, and their note."""

    assignee: str
    at: datetime
    comment: str


class AlertOut(BaseModel):
    """One alert (one fingerprint, across its episodes)."""

    fingerprint: str
    rule: str
    state: str = Field(description="pending, firing, resolved or inactive.")
    severity: str
    value: float = Field(description="The signal value at the last evaluation.")
    episode: int = Field(description="Firing episodes so far (1 for the first).")
    labels: dict[str, str]
    annotations: dict[str, str]
    runbook_url: str | None
    active_since: datetime
    fired_at: datetime | None
    resolved_at: datetime | None
    last_evaluated_at: datetime
    acknowledgement: AcknowledgementOut | None

    @classmethod
    def of(cls, alert: Alert) -> AlertOut:
        """Entity → response."""
        ack = alert.acknowledgement
        return cls(
            fingerprint=alert.fingerprint,
            rule=alert.rule_name,
            state=alert.state.value,
            severity=alert.severity.value,
            value=alert.value,
            episode=alert.episode,
            labels=dict(alert.labels),
            annotations=dict(alert.annotations),
            runbook_url=alert.runbook_url,
            active_since=alert.active_since,
            fired_at=alert.fired_at,
            resolved_at=alert.resolved_at,
            last_evaluated_at=alert.last_evaluated_at,
            acknowledgement=None
            if ack is None
            else AcknowledgementOut(assignee=ack.assignee, at=ack.at, comment=ack.comment),
        )


class TransitionOut(BaseModel):
    """One change of an alert's state."""

    model_config = ConfigDict(populate_by_name=True)

    at: datetime
    episode: int
    from_state: str | None = Field(alias="from", description="None for a new alert.")
    to_state: str = Field(alias="to")
    value: float

    @classmethod
    def of(cls, step: AlertTransition) -> TransitionOut:
        """Entity → response."""
        return cls(
            at=step.at,
            episode=step.episode,
            from_state=None if step.from_state is None else step.from_state.value,
            to_state=step.to_state.value,
            value=step.value,
        )


class AlertDetailOut(AlertOut):
    """One alert with its history, oldest transition first."""

    history: list[TransitionOut]


class AckIn(BaseModel):
    """Take an alert: who is on it, and a note for the audit log."""

    model_config = ConfigDict(extra="forbid")

    assignee: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    comment: str = ""


class SilenceIn(BaseModel):
    """A new silence. Give ``ends_at`` or ``duration`` (not both); ``starts_at`` defaults to now."""

    model_config = ConfigDict(extra="forbid")

    matchers: str | list[str] = Field(
        description='Alertmanager matchers: one string such as {model="credit", column=~"f.*"}, '
        'or a list of strings such as ["model=\\"credit\\""]; every one must match.'
    )
    author: Annotated[str, StringConstraints(max_length=255)] | None = Field(
        None, description="Who owns the silence (default: the actor)."
    )
    comment: str = Field(description="Why (required).")
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    duration: str | None = Field(None, description="How long from starts_at, e.g. 30m, 2h, 1d.")
    ends_when_resolved: bool = Field(
        False, description="End early once the alerts it mutes have resolved."
    )


class SilenceOut(BaseModel):
    """A silence and where it is in time."""

    id: str
    matchers: list[str]
    author: str
    comment: str
    starts_at: datetime
    ends_at: datetime
    ends_when_resolved: bool
    state: str = Field(description="pending (starts later), active or expired.")
    active: bool = Field(description="Whether it mutes notifications now.")

    @classmethod
    def of(cls, silence: Silence, state: str) -> SilenceOut:
        """Entity and its state (``keelwatch.alerting.silences.silence_state``) → response."""
        return cls(
            id=silence.id,
            matchers=[str(m) for m in silence.matchers],
            author=silence.author,
            comment=silence.comment,
            starts_at=silence.starts_at,
            ends_at=silence.ends_at,
            ends_when_resolved=silence.ends_when_resolved,
            state=state,
            active=state == "active",
        )


class DeadLetterOut(BaseModel):
    """A notification given up on."""

    id: int
    log_id: int = Field(description="The notification-log row it replays.")
    notifier: str
    reason: str
    failed_at: datetime
    replayed_at: datetime | None

    @classmethod
    def of(cls, letter: DeadLetter) -> DeadLetterOut:
        """Entity → response."""
        return cls.model_validate(letter, from_attributes=True)
