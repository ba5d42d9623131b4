"""Job control: cancel a pending or running job, retry a failed or cancelled one.

Each is one transaction (state change and audit entry): a cancel runs in the caller's session; a
retry commits its own and enqueues its chunks only after that commit. Workers see a cancelled job
when a chunk of it starts and skip the chunk; chunks already running finish and keep their
output, which a later retry does not redo.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keelwatch.contract import JOB_BATCH_INFERENCE
from keelwatch.errors import ConflictError
from keelwatch.storage.audit import record_audit
from keelwatch.storage.jobs import cancel_job as cancel_job_row
from keelwatch.storage.jobs import get_job, reopen_job_for_retry, resolve_job_id

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from keelwatch.contract import TaskSender
    from keelwatch.entities import Job
    from keelwatch.storage.db import Database


def cancel_job(session: Session, job_id: str, *, actor: str, reason: str = "") -> Job:
    """Cancel job ``job_id`` (a full id or a unique prefix) in the caller's transaction; audited
    ``job.cancel``. ConflictError when the job already finished (succeeded, failed or cancelled).
    """
    why = reason.strip()
    full_id = resolve_job_id(session, job_id)
    skipped = cancel_job_row(
        session, full_id, error=f"cancelled by {actor}" + (f": {why}" if why else "")
    )
    record_audit(
        session,
        actor=actor,
        action="job.cancel",
        target=f"job:{full_id}",
        reason=why,
        details={"chunks_cancelled": len(skipped)},
    )
    return get_job(session, full_id)


def retry_job(
    db: Database, sender: TaskSender, job_id: str, *, actor: str, reason: str = ""
) -> Job:
    """Run the chunks of a failed or cancelled batch-inference job that are not done again;
    audited ``job.retry``. ConflictError for any other state or kind of job.

    Reopening and auditing commit together; the chunks are enqueued only after that commit.
    """
    from keelwatch.inference.submit import enqueue_chunks, job_params

    with db.session() as session:
        full_id = resolve_job_id(session, job_id)
        job = get_job(session, full_id)
        if job.kind != JOB_BATCH_INFERENCE:
            raise ConflictError(
                f"job {full_id} is a {job.kind} job; only batch-inference jobs are retried "
                "(a drift check runs again on its schedule or with `monitors check`)"
            )
        queue = job_params(job).queue
        chunks = reopen_job_for_retry(session, full_id)
        record_audit(
            session,
            actor=actor,
            action="job.retry",
            target=f"job:{full_id}",
            reason=reason.strip(),
            details={"chunks": chunks, "previous_state": job.status.value, "queue": queue},
        )
    # Committed: now the workers may see the chunks.
    enqueue_chunks(db, sender, full_id, chunks, queue)
    with db.session() as session:
        return get_job(session, full_id)
