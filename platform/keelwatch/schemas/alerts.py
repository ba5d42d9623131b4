"""Pydantic shapes of alerts on the wire.

Today: the webhook payload Prometheus Alertmanager sends to a ``webhook_config`` receiver
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
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from keelwatch.errors import InvalidInputError

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
