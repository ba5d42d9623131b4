"""Jobs: units of accepted work (batch inference, drift checks) and the chunks they fan out to."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class JobStatus(StrEnum):
    """Lifecycle of a job; terminal states are ``succeeded``, ``failed`` and ``cancelled``
    (a failed or cancelled job can be retried: it goes back to ``pending``)."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ChunkStatus(StrEnum):
    """Lifecycle of one chunk of a fanned-out job."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"  # never ran: its job was cancelled first


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
        return self.status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


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
