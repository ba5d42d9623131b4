"""Wire shape of a job, shared by the API (``/jobs``) and the CLI's ``--json`` output."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from keelwatch.entities import Job, JobChunk


class ChunkView(BaseModel):
    """One chunk of a job."""

    index: int
    status: str
    row_start: int
    row_stop: int
    rows_done: int
    attempts: int
    device: str | None
    error: str | None

    @classmethod
    def from_chunk(cls, chunk: JobChunk) -> ChunkView:
        """Entity → view."""
        return cls(
            index=chunk.index,
            status=chunk.status.value,
            row_start=chunk.row_start,
            row_stop=chunk.row_stop,
            rows_done=chunk.rows_done,
            attempts=chunk.attempts,
            device=chunk.device,
            error=chunk.error,
        )


class JobView(BaseModel):
    """A job with its progress (chunks and rows done out of total)."""

    id: str
    kind: str
    status: str
    submitted_by: str
    created_at: datetime
    updated_at: datetime
    chunks_done: int
    chunks_total: int
    rows_done: int
    rows_total: int
    params: dict[str, Any]
    result: dict[str, Any]
    error: str | None
    chunks: list[ChunkView] | None = None

    @classmethod
    def from_job(cls, job: Job, chunks: list[JobChunk] | None = None) -> JobView:
        """Entity → view (``chunks`` only when asked for)."""
        return cls(
            id=job.id,
            kind=job.kind,
            status=job.status.value,
            submitted_by=job.submitted_by,
            created_at=job.created_at,
            updated_at=job.updated_at,
            chunks_done=job.chunks_done,
            chunks_total=job.chunks_total,
            rows_done=job.rows_done,
            rows_total=job.rows_total,
            params=job.params,
            result=job.result,
            error=job.error,
            chunks=[ChunkView.from_chunk(c) for c in chunks] if chunks is not None else None,
        )


class JobActionIn(BaseModel):
    """Why a job is cancelled or retried (audit log; optional)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = ""
