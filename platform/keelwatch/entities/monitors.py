"""Plain values of the monitoring service (storage converts ORM rows into these)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class DriftStatus(StrEnum):
    """Outcome of one drift check.

    ``insufficient_data`` means the window was empty or too small to test: it is never reported
    as drift. ``error`` means the check could not run (the message says why).
    """

    OK = "ok"
    DRIFT = "drift"
    INSUFFICIENT_DATA = "insufficient_data"
    ERROR = "error"


class CheckMode(StrEnum):
    """How a check computed the window's statistics."""

    IN_PROCESS = "in_process"
    """The whole window was read by one task; statistics are exact."""
    DISTRIBUTED = "distributed"
    """Partition profiles computed in parallel and merged; see ``docs/monitoring.md``."""
    JOB_PROFILE = "job_profile"
    """The profile a batch-inference job built while scoring (no data re-read)."""


@dataclass(frozen=True)
class ReferenceProfileInfo:
    """Metadata of the reference profile attached to one model version."""

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


@dataclass(frozen=True)
class DriftMonitor:
    """A monitor: model reference, window, schedule and per-column test configuration."""

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


@dataclass(frozen=True)
class DriftResult:
    """One check of a monitor and what it found."""

    id: int
    monitor_id: int
    job_id: str | None
    model_name: str
    model_version: str
    status: DriftStatus
    dataset_drift: bool | None
    share_drifted: float | None
    window_rows: int
    mode: str
    started_at: datetime
    finished_at: datetime
    mlflow_run_id: str | None = None
    report_artifact_uri: str | None = None
    error: str | None = None
    columns: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
