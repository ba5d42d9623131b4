"""Jobs and their chunks. Chunk completion is idempotent so a retried task changes nothing."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from keelwatch.entities import ChunkStatus, Job, JobChunk, JobStatus
from keelwatch.entities.time import utcnow
from keelwatch.errors import ConflictError, InvalidInputError, NotFoundError
from keelwatch.storage.models import JobChunkRow, JobRow


def create_job(
    session: Session,
    *,
    kind: str,
    params: dict[str, Any],
    submitted_by: str,
    chunk_bounds: Sequence[tuple[int, int]] = (),
    job_id: str | None = None,
) -> Job:
    """Insert a pending job with one pending chunk per ``(row_start, row_stop)`` bound."""
    job_id = job_id or str(uuid.uuid4())
    rows_total = sum(stop - start for start, stop in chunk_bounds)
    session.add(
        JobRow(
            id=job_id,
            kind=kind,
            status=JobStatus.PENDING.value,
            params=params,
            result={},
            chunks_total=len(chunk_bounds),
            rows_total=rows_total,
            submitted_by=submitted_by,
        )
    )
    session.add_all(
        JobChunkRow(
            job_id=job_id,
            chunk_index=index,
            status=ChunkStatus.PENDING.value,
            row_start=start,
            row_stop=stop,
        )
        for index, (start, stop) in enumerate(chunk_bounds)
    )
    session.flush()
    return get_job(session, job_id)


def get_job(session: Session, job_id: str) -> Job:
    """The job with its progress counters; raises NotFoundError for an unknown id."""
    row = session.get(JobRow, job_id)
    if row is None:
        raise NotFoundError(f"unknown job {job_id!r}")
    done, rows_done = session.execute(
        select(
            func.count(JobChunkRow.chunk_index).filter(
                JobChunkRow.status == ChunkStatus.DONE.value
            ),
            func.coalesce(func.sum(JobChunkRow.rows_done), 0),
        ).where(JobChunkRow.job_id == job_id)
    ).one()
    return _to_job(row, chunks_done=int(done), rows_done=int(rows_done))


#: Characters of a job id (a UUID); a prefix of them can name a job.
_JOB_ID_CHARS = frozenset("0123456789abcdef-")


def resolve_job_id(session: Session, id_or_prefix: str) -> str:
    """The full id of the job ``id_or_prefix`` names: its id, or a unique prefix of it (the
    short id the progress bar prints). NotFoundError when none matches, InvalidInputError when
    several do (saying how many)."""
    wanted = id_or_prefix.strip().lower()
    if not wanted or not set(wanted) <= _JOB_ID_CHARS:
        raise NotFoundError(f"unknown job {id_or_prefix!r} (job ids are hexadecimal UUIDs)")
    if session.get(JobRow, wanted) is not None:
        return wanted
    # The characters are checked above, so the prefix holds no LIKE wildcard.
    matches = list(session.scalars(select(JobRow.id).where(JobRow.id.like(f"{wanted}%")).limit(2)))
    if not matches:
        raise NotFoundError(f"unknown job {id_or_prefix!r}")
    if len(matches) > 1:
        count = session.scalar(
            select(func.count()).select_from(JobRow).where(JobRow.id.like(f"{wanted}%"))
        )
        raise InvalidInputError(
            f"job id prefix {id_or_prefix!r} is ambiguous: {count} jobs match; give more characters"
        )
    return matches[0]


def list_jobs(
    session: Session,
    *,
    kind: str | None = None,
    limit: int = 50,
    before: tuple[datetime, str] | None = None,
) -> list[Job]:
    """Newest first (ties by id); ``before`` = (created_at, id) of the previous page's last job."""
    query = select(JobRow.id).order_by(JobRow.created_at.desc(), JobRow.id.desc()).limit(limit)
    if kind is not None:
        query = query.where(JobRow.kind == kind)
    if before is not None:
        created_at, job_id = before
        query = query.where(
            or_(
                JobRow.created_at < created_at,
                and_(JobRow.created_at == created_at, JobRow.id < job_id),
            )
        )
    return [get_job(session, job_id) for job_id in session.scalars(query)]


def rows_done_by_kind(session: Session) -> dict[str, int]:
    """Rows processed so far, summed over every job of each kind (for fleet-wide metrics)."""
    query = (
        select(JobRow.kind, func.coalesce(func.sum(JobChunkRow.rows_done), 0))
        .join(JobChunkRow, JobChunkRow.job_id == JobRow.id)
        .group_by(JobRow.kind)
    )
    return {kind: int(rows) for kind, rows in session.execute(query)}


def count_jobs_by_status(session: Session) -> dict[str, int]:
    """How many jobs are in each state (one ``GROUP BY``; for the ``keelwatch_jobs`` gauge)."""
    query = select(JobRow.status, func.count()).group_by(JobRow.status)
    return {str(status): int(count) for status, count in session.execute(query)}


def list_chunks(session: Session, job_id: str) -> list[JobChunk]:
    """All chunks of a job in index order."""
    query = (
        select(JobChunkRow).where(JobChunkRow.job_id == job_id).order_by(JobChunkRow.chunk_index)
    )
    return [_to_chunk(row) for row in session.scalars(query)]


def get_chunk(session: Session, job_id: str, index: int) -> JobChunk:
    """One chunk; raises NotFoundError if absent."""
    row = session.get(JobChunkRow, (job_id, index))
    if row is None:
        raise NotFoundError(f"job {job_id!r} has no chunk {index}")
    return _to_chunk(row)


def start_chunk(session: Session, job_id: str, index: int, *, device: str) -> JobChunk:
    """Mark a chunk running and count the attempt; a done chunk is returned unchanged."""
    row = session.get(JobChunkRow, (job_id, index), with_for_update=True)
    if row is None:
        raise NotFoundError(f"job {job_id!r} has no chunk {index}")
    if row.status != ChunkStatus.DONE.value:
        row.status = ChunkStatus.RUNNING.value
        row.attempts += 1
        row.device = device
    session.execute(
        update(JobRow)
        .where(JobRow.id == job_id, JobRow.status == JobStatus.PENDING.value)
        .values(status=JobStatus.RUNNING.value, updated_at=utcnow())
    )
    session.flush()
    return _to_chunk(row)


def complete_chunk(
    session: Session,
    job_id: str,
    index: int,
    *,
    rows_done: int,
    output_path: str,
    device: str,
) -> bool:
    """Mark a chunk done; returns False when it already was (a retry), changing nothing."""
    result = session.execute(
        update(JobChunkRow)
        .where(
            JobChunkRow.job_id == job_id,
            JobChunkRow.chunk_index == index,
            JobChunkRow.status != ChunkStatus.DONE.value,
        )
        .values(
            status=ChunkStatus.DONE.value,
            rows_done=rows_done,
            output_path=output_path,
            device=device,
            error=None,
            updated_at=utcnow(),
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def fail_chunk(session: Session, job_id: str, index: int, *, error: str) -> None:
    """Record a chunk failure (the job fails with it)."""
    session.execute(
        update(JobChunkRow)
        .where(
            JobChunkRow.job_id == job_id,
            JobChunkRow.chunk_index == index,
            JobChunkRow.status != ChunkStatus.DONE.value,
        )
        .values(status=ChunkStatus.FAILED.value, error=error, updated_at=utcnow())
    )
    finish_job(session, job_id, status=JobStatus.FAILED, error=f"chunk {index}: {error}")


def lock_job(session: Session, job_id: str) -> None:
    """Touch the job row so this transaction holds its write lock until it ends.

    Writing the row first serialises concurrent transactions on one job (a row lock on
    PostgreSQL, the database write lock on SQLite): a later "all chunks done?" count in the same
    transaction then sees every other completion.
    """
    session.execute(update(JobRow).where(JobRow.id == job_id).values(updated_at=utcnow()))


def set_job_running(session: Session, job_id: str) -> None:
    """Pending → running (no-op otherwise)."""
    session.execute(
        update(JobRow)
        .where(JobRow.id == job_id, JobRow.status == JobStatus.PENDING.value)
        .values(status=JobStatus.RUNNING.value, updated_at=utcnow())
    )


def finish_job(
    session: Session,
    job_id: str,
    *,
    status: JobStatus,
    result: dict[str, Any] | None = None,
    error: str | None = None,
) -> bool:
    """Move a job to a terminal state once; returns False if it already was terminal."""
    values: dict[str, Any] = {"status": status.value, "updated_at": utcnow(), "error": error}
    if result is not None:
        values["result"] = result
    outcome = session.execute(
        update(JobRow)
        .where(
            JobRow.id == job_id,
            JobRow.status.in_([JobStatus.PENDING.value, JobStatus.RUNNING.value]),
        )
        .values(**values)
    )
    return bool(outcome.rowcount)  # type: ignore[attr-defined]


def cancel_job(session: Session, job_id: str, *, error: str) -> list[int]:
    """Pending/running → cancelled; its chunks that have not started become ``cancelled`` (the
    running ones finish). Returns the indexes of the chunks cancelled; ConflictError if the job
    already finished."""
    row = session.get(JobRow, job_id, with_for_update=True)
    if row is None:
        raise NotFoundError(f"unknown job {job_id!r}")
    if row.status not in (JobStatus.PENDING.value, JobStatus.RUNNING.value):
        raise ConflictError(
            f"job {job_id} is {row.status}; only a pending or running job is cancelled"
        )
    row.status = JobStatus.CANCELLED.value
    row.error = error
    row.updated_at = utcnow()
    pending = list(
        session.scalars(
            select(JobChunkRow.chunk_index).where(
                JobChunkRow.job_id == job_id, JobChunkRow.status == ChunkStatus.PENDING.value
            )
        )
    )
    session.execute(
        update(JobChunkRow)
        .where(JobChunkRow.job_id == job_id, JobChunkRow.status == ChunkStatus.PENDING.value)
        .values(status=ChunkStatus.CANCELLED.value, updated_at=utcnow())
    )
    session.flush()
    return pending


def reopen_job_for_retry(session: Session, job_id: str) -> list[int]:
    """Failed/cancelled → pending, with every chunk not done back to pending (errors cleared).

    Returns the indexes of the chunks to enqueue again; ConflictError for a job that is not
    failed or cancelled. Chunks already done keep their output (completion is idempotent).
    """
    row = session.get(JobRow, job_id, with_for_update=True)
    if row is None:
        raise NotFoundError(f"unknown job {job_id!r}")
    if row.status not in (JobStatus.FAILED.value, JobStatus.CANCELLED.value):
        raise ConflictError(
            f"job {job_id} is {row.status}; only a failed or cancelled job is retried"
        )
    again = list(
        session.scalars(
            select(JobChunkRow.chunk_index)
            .where(JobChunkRow.job_id == job_id, JobChunkRow.status != ChunkStatus.DONE.value)
            .order_by(JobChunkRow.chunk_index)
        )
    )
    if not again:
        raise ConflictError(f"job {job_id} has no chunk left to run (every chunk is done)")
    session.execute(
        update(JobChunkRow)
        .where(JobChunkRow.job_id == job_id, JobChunkRow.status != ChunkStatus.DONE.value)
        # A retry by a person starts the reconciler's count again.
        .values(status=ChunkStatus.PENDING.value, error=None, requeues=0, updated_at=utcnow())
    )
    row.status = JobStatus.PENDING.value
    row.error = None
    row.requeues = 0
    row.updated_at = utcnow()
    session.flush()
    return again


# --------------------------------------------------------------------------- reconciliation


@dataclass(frozen=True)
class ChunkClock:
    """A chunk's state, when it last moved and how often the reconciler sent it again."""

    index: int
    status: ChunkStatus
    updated_at: datetime
    requeues: int


@dataclass(frozen=True)
class UnfinishedJob:
    """A pending or running job as the reconciler reads it (every chunk, in index order)."""

    job: Job
    requeues: int
    chunks: tuple[ChunkClock, ...]


def list_unfinished_jobs(session: Session, kinds: Collection[str]) -> list[UnfinishedJob]:
    """Every pending or running job of ``kinds``, oldest first, with its chunks' clocks."""
    unfinished = (JobStatus.PENDING.value, JobStatus.RUNNING.value)
    rows = list(
        session.scalars(
            select(JobRow)
            .where(JobRow.status.in_(unfinished), JobRow.kind.in_(list(kinds)))
            .order_by(JobRow.created_at, JobRow.id)
        )
    )
    clocks: dict[str, list[ChunkClock]] = {row.id: [] for row in rows}
    if rows:
        query = (
            select(
                JobChunkRow.job_id,
                JobChunkRow.chunk_index,
                JobChunkRow.status,
                JobChunkRow.updated_at,
                JobChunkRow.requeues,
            )
            .where(JobChunkRow.job_id.in_(list(clocks)))
            .order_by(JobChunkRow.job_id, JobChunkRow.chunk_index)
        )
        for job_id, index, status, updated_at, requeues in session.execute(query):
            clocks[job_id].append(ChunkClock(index, ChunkStatus(status), updated_at, requeues))
    return [
        UnfinishedJob(
            job=get_job(session, row.id), requeues=row.requeues, chunks=tuple(clocks[row.id])
        )
        for row in rows
    ]


def requeue_lost_chunks(
    session: Session, job_id: str, indexes: Sequence[int], *, idle_since: datetime
) -> list[int]:
    """Put lost chunks back to ``pending`` and count the resend; returns those changed.

    Only a chunk still pending or running and unchanged since ``idle_since`` is touched: one
    that moved meanwhile (its worker was only slow) is left to finish, so two reconcilers, or a
    reconciler and a late worker, never count one loss twice.
    """
    changed: list[int] = []
    for index in indexes:
        outcome = session.execute(
            update(JobChunkRow)
            .where(
                JobChunkRow.job_id == job_id,
                JobChunkRow.chunk_index == index,
                JobChunkRow.status.in_([ChunkStatus.PENDING.value, ChunkStatus.RUNNING.value]),
                JobChunkRow.updated_at <= idle_since,
            )
            .values(
                status=ChunkStatus.PENDING.value,
                requeues=JobChunkRow.requeues + 1,
                updated_at=utcnow(),
            )
        )
        if outcome.rowcount:  # type: ignore[attr-defined]
            changed.append(index)
    return changed


def restart_lost_job(session: Session, job_id: str, *, idle_since: datetime) -> bool:
    """Count one restart of a whole job (a drift check) unchanged since ``idle_since``."""
    outcome = session.execute(
        update(JobRow)
        .where(
            JobRow.id == job_id,
            JobRow.status.in_([JobStatus.PENDING.value, JobStatus.RUNNING.value]),
            JobRow.updated_at <= idle_since,
        )
        .values(requeues=JobRow.requeues + 1, updated_at=utcnow())
    )
    return bool(outcome.rowcount)  # type: ignore[attr-defined]


def fail_lost_job(
    session: Session, job_id: str, *, reason: str, chunk_index: int | None = None
) -> bool:
    """Fail a job whose work keeps getting lost (and the chunk that did, if one is named);
    returns False when the job had already finished."""
    if not finish_job(session, job_id, status=JobStatus.FAILED, error=reason):
        return False
    if chunk_index is not None:
        session.execute(
            update(JobChunkRow)
            .where(
                JobChunkRow.job_id == job_id,
                JobChunkRow.chunk_index == chunk_index,
                JobChunkRow.status != ChunkStatus.DONE.value,
            )
            .values(status=ChunkStatus.FAILED.value, error=reason, updated_at=utcnow())
        )
    return True


def _to_job(row: JobRow, *, chunks_done: int, rows_done: int) -> Job:
    return Job(
        id=row.id,
        kind=row.kind,
        status=JobStatus(row.status),
        params=dict(row.params or {}),
        chunks_total=row.chunks_total,
        chunks_done=chunks_done,
        rows_total=row.rows_total,
        rows_done=rows_done,
        created_at=row.created_at,
        updated_at=row.updated_at,
        submitted_by=row.submitted_by,
        result=dict(row.result or {}),
        error=row.error,
    )


def _to_chunk(row: JobChunkRow) -> JobChunk:
    return JobChunk(
        job_id=row.job_id,
        index=row.chunk_index,
        status=ChunkStatus(row.status),
        row_start=row.row_start,
        row_stop=row.row_stop,
        rows_done=row.rows_done,
        attempts=row.attempts,
        device=row.device,
        output_path=row.output_path,
        error=row.error,
    )


def chunk_requeues(session: Session, job_id: str) -> dict[int, int]:
    """How often the reconciler sent each chunk of ``job_id`` again, by chunk index."""
    query = select(JobChunkRow.chunk_index, JobChunkRow.requeues).where(
        JobChunkRow.job_id == job_id
    )
    return {int(index): int(count) for index, count in session.execute(query)}
