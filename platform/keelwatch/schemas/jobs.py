"""Pydantic shapes of jobs on the wire: the API's ``/jobs`` and ``keelwatch jobs ... --json``."""

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
        return cls.model_validate(chunk, from_attributes=True)


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
        view = cls.model_validate(job, from_attributes=True)
        if chunks is not None:
            view.chunks = [ChunkView.from_chunk(chunk) for chunk in chunks]
        return view


class JobActionIn(BaseModel):
    """Why a job is cancelled or retried (audit log; optional)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = ""
