"""Pydantic shapes of realized performance on the wire (``/evaluations/realized``) and in the
CLI's ``--json``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.evaluation.realized import parse_window, window_label
from keelwatch.storage.realized import RealizedRecord


class RealizedRunIn(BaseModel):
    """Compute one model's realized performance now, over the window that ends now."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=255, description="Registered model name.")
    window: str = Field(
        "24h",
        max_length=32,
        description="Window length ending now: 24h, 30m, 7d, 90s or seconds.",
        examples=["24h"],
    )
    task: Literal["classification", "regression"] | None = Field(
        None, description="Force the task; by default it is inferred from the labels."
    )
    min_coverage: float | None = Field(
        None, ge=0, le=1, description="Override evaluation.realized_min_coverage."
    )
    min_rows: int | None = Field(None, ge=1, description="Override evaluation.realized_min_rows.")
    reason: str = Field("", max_length=1000, description="Why (audit log).")

    @field_validator("window")
    @classmethod
    def _window_parses(cls, value: str) -> str:
        try:
            parse_window(value)
        except InvalidInputError as exc:  # a ValueError here makes it a 422 naming the field
            raise ValueError(str(exc)) from exc
        return value

    @property
    def window_s(self) -> int:
        """The window in seconds."""
        return parse_window(self.window)


class RealizedOut(BaseModel):
    """One model version's realized performance over one window."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    model_name: str
    model_version: str
    window: str = Field(description="The window as a signal label, e.g. 24h.")
    window_s: int
    window_end: datetime
    alias: str | None = Field(None, description="The alias the version held (champion).")
    task: str | None
    predictions: int
    labelled: int
    coverage: float = Field(description="labelled / predictions.")
    verdict: Literal["ok", "insufficient_data"] | str
    metrics: dict[str, float]
    reason: str
    schedule_id: int | None
    computed_at: datetime
    computed_by: str
    already_recorded: bool = Field(
        False, description="True when an earlier run of the same slot had stored this result."
    )

    @classmethod
    def of(cls, record: RealizedRecord) -> RealizedOut:
        """Stored record → response schema."""
        return cls(
            id=record.id,
            model_name=record.model_name,
            model_version=record.model_version,
            window=window_label(record.window_s),
            window_s=record.window_s,
            window_end=record.window_end,
            alias=record.alias,
            task=record.task,
            predictions=record.predictions,
            labelled=record.labelled,
            coverage=record.coverage,
            verdict=record.verdict,
            metrics=dict(record.metrics),
            reason=record.reason,
            schedule_id=record.schedule_id,
            computed_at=record.computed_at,
            computed_by=record.computed_by,
            already_recorded=record.already_recorded,
        )


class RealizedRunOut(BaseModel):
    """What one run computed: a result per version, and how many signals it wrote."""

    model: str
    window: str
    window_end: datetime
    signals_written: int
    results: list[RealizedOut]
