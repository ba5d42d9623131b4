"""Plain entities passed between layers. Storage converts ORM rows into these; nothing above
``storage/`` ever sees an ORM object."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple


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
    #: The log row's id once stored (orders the log; the API's list cursor resumes after it).
    log_id: int | None = None


#: A ground-truth label: a JSON scalar (never null, NaN, infinity, a list or an object).
LabelValue = bool | int | float | str


@dataclass(frozen=True)
class LabelRecord:
    """A ground-truth label for one logged prediction, identified by its request id."""

    request_id: str
    label: LabelValue


@dataclass(frozen=True)
class PredictionLabel:
    """A stored label: its value, when it was last set and by whom."""

    request_id: str
    label: LabelValue
    labelled_at: datetime
    submitted_by: str


@dataclass(frozen=True)
class LabelWriteResult:
    """What one call recording labels did, per distinct request id.

    ``unknown`` lists the request ids that are not in the prediction log; their labels were
    not stored.
    """

    inserted: int
    updated: int
    unchanged: int
    unknown: tuple[str, ...] = ()

    @property
    def received(self) -> int:
        """Distinct request ids in the call."""
        return self.inserted + self.updated + self.unchanged + len(self.unknown)


class LabelledPrediction(NamedTuple):
    """A logged prediction joined with its label (a tuple, cheap for large windows)."""

    id: int
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    label: LabelValue


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
