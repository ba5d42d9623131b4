"""Plain entities passed between layers. Storage converts ORM rows into these; nothing above
``storage/`` ever sees an ORM object."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class JobStatus(StrEnum):
    """Lifecycle of a job; terminal states are ``succeeded`` and ``failed``."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class ChunkStatus(StrEnum):
    """Lifecycle of one chunk of a fanned-out job."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class Job:
    """A unit of accepted work (batch inference, drift check, ...) and its progress."""

    id: str
    kind: str
    status: JobStatus
    params: dict[str, Any]
    chunks_total: int
    chunks_done: int
    rows_total: int
    rows_done: int
    created_at: datetime
    updated_at: datetime
    submitted_by: str
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def finished(self) -> bool:
        """True once the job reached a terminal state."""
        return self.status in (JobStatus.SUCCEEDED, JobStatus.FAILED)


@dataclass(frozen=True)
class JobChunk:
    """One slice of a job processed by one task."""

    job_id: str
    index: int
    status: ChunkStatus
    row_start: int
    row_stop: int
    rows_done: int
    attempts: int
    device: str | None
    output_path: str | None
    error: str | None


@dataclass(frozen=True)
class PredictionRecord:
    """One scored row copied to the prediction log."""

    request_id: str
    model_name: str
    model_version: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    latency_ms: float
    created_at: datetime
    job_id: str | None = None


@dataclass(frozen=True)
class AuditEntry:
    """Who did what, when and why."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    reason: str
    details: dict[str, Any]


@dataclass(frozen=True)
class AliasChange:
    """One change of a registry alias: ``version`` is None when the alias was cleared."""

    id: int
    model_name: str
    alias: str
    version: str | None
    previous_version: str | None
    at: datetime
    actor: str
    reason: str
