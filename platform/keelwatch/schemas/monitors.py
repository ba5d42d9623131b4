"""Pydantic shapes of drift monitors on the wire: monitors, results, runs, reference profiles.

The monitor definition itself (``MonitorSpec``, ``WindowSpec``, ``MonitorConfig``) stays in
``keelwatch.monitoring.service.specs``: it carries the domain's validation rules and the
service, the scheduler and the CLI validate with it, not only the API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from keelwatch.entities.monitors import DriftMonitor, DriftResult, ReferenceProfileInfo
from keelwatch.monitoring.service.specs import MonitorConfig, WindowSpec


class MonitorOut(BaseModel):
    """A stored monitor."""

    id: int
    name: str
    model_name: str
    model_ref: str
    window: dict[str, Any]
    schedule_interval_s: int | None
    schedule_cron: str | None
    config: dict[str, Any]
    enabled: bool
    description: str
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime

    @classmethod
    def of(cls, monitor: DriftMonitor) -> MonitorOut:
        """Entity → response."""
        return cls.model_validate(monitor, from_attributes=True)


class MonitorPatch(BaseModel):
    """Fields to change (others keep their value)."""

    model: str | None = None
    window: WindowSpec | None = None
    schedule_interval_s: int | None = Field(None, ge=10)
    schedule_cron: str | None = None
    config: MonitorConfig | None = None
    enabled: bool | None = None
    description: str | None = None
    reason: str = Field("", description="Why (audit log); not stored on the monitor.")


class ResultOut(BaseModel):
    """One drift check result."""

    id: int
    monitor_id: int
    job_id: str | None
    model_name: str
    model_version: str
    status: str
    dataset_drift: bool | None
    share_drifted: float | None
    window_rows: int
    mode: str
    started_at: datetime
    finished_at: datetime
    mlflow_run_id: str | None
    report_artifact_uri: str | None
    error: str | None
    columns: dict[str, Any]
    report: dict[str, Any]

    @classmethod
    def of(cls, result: DriftResult) -> ResultOut:
        """Entity → response (``status`` as its string value)."""
        return cls.model_validate(result, from_attributes=True)


class RunOut(BaseModel):
    """A submitted check."""

    job_id: str
    monitor: str
    status: str


class ProfileAttach(BaseModel):
    """Training data to profile: a Parquet or CSV file the API can read."""

    data_uri: str = Field(min_length=1)
    target: str | None = Field(
        None, description="Ground-truth column, profiled for target drift once labels arrive."
    )
    predictions: bool = Field(
        True, description="Score the data with the version's model for prediction drift."
    )
    reason: str = ""


class ProfileOut(BaseModel):
    """A reference profile attached to a model version."""

    id: int
    model_name: str
    model_version: str
    artifact_uri: str
    rows: int
    columns: list[str]
    source: str
    created_by: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, info: ReferenceProfileInfo) -> ProfileOut:
        """Entity → response."""
        return cls.model_validate(info, from_attributes=True)
