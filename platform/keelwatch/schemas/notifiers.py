"""Pydantic shapes of notifiers on the wire (``/notifiers``).

A notifier's ``config`` is validated by its type (``keelwatch.alerting.notifiers``) and shown
only through ``keelwatch.alerting.delivery.masked_config``: every secret field (webhook keys,
routing keys, passwords) comes back as ``**********``, never as given.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from keelwatch.entities.notifications import NotifierTarget


class RouteIn(BaseModel):
    """How alerts are grouped into notifications for this notifier (Alertmanager's route)."""

    model_config = ConfigDict(extra="forbid")

    group_by: list[str] = Field(
        default_factory=lambda: ["alertname"],
        description='Labels whose values make a group; ["..."] groups by every label.',
    )
    group_wait_s: float = Field(30.0, ge=0, description="A new group waits this long.")
    group_interval_s: float = Field(300.0, gt=0, description="Between updates of a group.")
    repeat_interval_s: float = Field(14400.0, gt=0, description="Re-send an unchanged group.")
    send_resolved: bool = True


class NotifierIn(BaseModel):
    """A new notifier."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
    type: str = Field(description="webhook, slack, pagerduty, alertmanager or email.")
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="The type's fields, e.g. webhook: url and secret (never shown again).",
    )
    route: RouteIn = Field(default_factory=RouteIn)


class NotifierOut(BaseModel):
    """A notifier with its config, secrets masked."""

    name: str
    type: str
    config: dict[str, Any] = Field(description="Secret fields are shown as **********.")
    route: dict[str, Any]
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, target: NotifierTarget, masked: dict[str, Any]) -> NotifierOut:
        """Entity and its masked config → response (the raw config is never put here)."""
        return cls(
            name=target.name,
            type=target.type,
            config=masked,
            route=dict(target.route),
            created_by=target.created_by,
            created_at=target.created_at,
        )


class NotifierTestOut(BaseModel):
    """The outcome of one synthetic notification."""

    name: str
    target: str = Field(description="Where it went (URL or address; no secret).")
    delivered: bool
    attempts: list[str] = Field(description="One line per request sent.")
    error: str | None = Field(description="Why it failed (None when delivered).")
