"""Pydantic shapes of evaluation schedules on the wire (``/evaluations/schedules``) and in the
CLI's ``--json``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from keelwatch.entities.eval_schedules import EvalSchedule, ScheduleFiring
from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.evaluation.realized import parse_window, window_label


class ScheduleIn(BaseModel):
    """Create a schedule or replace its fields (``PUT /evaluations/schedules/{name}``)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        min_length=1,
        max_length=255,
        description="'name' (its champion), 'name@alias' or 'name/version'.",
        examples=["churn"],
    )
    cron: str = Field(
        min_length=1,
        max_length=255,
        description="Five-field cron expression in UTC (minute hour day month weekday).",
        examples=["0 * * * *"],
    )
    kind: Literal["evaluation", "realized", "audit"] = Field(
        "evaluation",
        description="evaluation: evaluate on `dataset`; realized: realized performance over "
        "`window` of the prediction log; audit: a bias audit of `window` across `attributes`.",
    )
    dataset: str | None = Field(
        None, max_length=255, description="Evaluation dataset: 'name' (latest) or 'name:N'."
    )
    suites: list[str] = Field(
        default_factory=list,
        max_length=8,
        description="Suites to run; empty: the dataset task's defaults.",
    )
    window: str | None = Field(
        None,
        max_length=32,
        description="Realized or audit window: 24h, 30m, 7d, 90s.",
        examples=["24h"],
    )
    attributes: list[str] = Field(
        default_factory=list,
        max_length=8,
        description="Audit schedules: the sensitive attributes to slice by (at least one).",
        examples=[["gender", "age_band"]],
    )
    enabled: bool = True
    reason: str = Field("", max_length=1000, description="Why (audit log).")

    @field_validator("window")
    @classmethod
    def _window_parses(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_window(value)
            except InvalidInputError as exc:  # a ValueError makes it a 422 naming the field
                raise ValueError(str(exc)) from exc
        return value

    @property
    def window_s(self) -> int | None:
        """The realized window in seconds (None when not given)."""
        return parse_window(self.window) if self.window is not None else None


class FiringOut(BaseModel):
    """One firing of a schedule: the slot, and the job (or task) it submitted or why not."""

    slot: datetime
    fired_at: datetime
    fired_by: str
    job_id: str | None = Field(None, description="Evaluation job id, or realized or audit task id.")
    error: str | None = None

    @classmethod
    def from_entity(cls, firing: ScheduleFiring) -> FiringOut:
        """The wire shape of a firing."""
        return cls(
            slot=firing.slot,
            fired_at=firing.fired_at,
            fired_by=firing.fired_by,
            job_id=firing.job_id,
            error=firing.error,
        )


class ScheduleOut(BaseModel):
    """One evaluation schedule (with its recent firings on ``GET .../{name}``)."""

    name: str
    model: str
    cron: str
    kind: str
    dataset: str | None
    suites: list[str]
    window: str | None = Field(description="Realized or audit window, e.g. 24h.")
    attributes: list[str] = Field(
        default_factory=list, description="Sensitive attributes of an audit schedule."
    )
    enabled: bool
    armed_at: datetime = Field(description="Slots at or before this never fire.")
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime
    firings: list[FiringOut] = Field(
        default_factory=list,
        description="Newest slot first (lists carry the latest firing only).",
    )

    @classmethod
    def from_entity(
        cls, schedule: EvalSchedule, firings: list[ScheduleFiring] | None = None
    ) -> ScheduleOut:
        """The wire shape of a schedule (and, when given, its firings)."""
        return cls(
            name=schedule.name,
            model=schedule.model,
            cron=schedule.cron,
            kind=schedule.kind.value,
            dataset=schedule.dataset,
            suites=list(schedule.suites),
            window=window_label(schedule.window_s) if schedule.window_s is not None else None,
            attributes=list(schedule.attributes),
            enabled=schedule.enabled,
            armed_at=schedule.armed_at,
            created_by=schedule.created_by,
            created_at=schedule.created_at,
            updated_by=schedule.updated_by,
            updated_at=schedule.updated_at,
            firings=[FiringOut.from_entity(f) for f in firings or ()],
        )
