"""The job reconciler on the platform: read the unfinished jobs, decide, write, then resend.

Beat runs it every ``jobs.reconcile_interval_s`` (task ``keelwatch.housekeeping.reconcile_jobs``).
:mod:`keelwatch.inference.reconcile` decides; this module reads the rows it decides from, writes
the outcome (requeue counters, failed jobs) with one ``job.reconcile`` audit entry per job in one
transaction, and only after that commit sends the messages again. A send that fails leaves the
chunk ``pending`` with a fresh clock: the next pass after ``jobs.lost_after_s`` tries again.

Batch jobs are resent chunk by chunk; drift checks, evaluations and gate checks whole (their
start task again, to the queue the job was sent to). An evaluation given up on fails its run
too, so ``GET /evaluations`` says why.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from keelwatch.contract import (
    DRIFT_CHECK_START,
    EVALUATION_GATE_CHECK,
    EVALUATION_RUN,
    INFERENCE_CHUNK,
    JOB_BATCH_INFERENCE,
    JOB_DRIFT_CHECK,
    JOB_EVALUATION,
    JOB_GATE_CHECK,
    QUEUE_CPU,
    QUEUE_MONITORING,
    DriftCheckPayload,
    EvaluationPayload,
    InferenceChunkPayload,
    TaskSender,
)
from keelwatch.inference.reconcile import (
    ChunkProgress,
    JobProgress,
    ReconcilePolicy,
    Requeue,
    plan_reconcile,
)
from keelwatch.storage.audit import record_audit
from keelwatch.storage.evaluations import finish_run
from keelwatch.storage.jobs import (
    UnfinishedJob,
    fail_lost_job,
    list_unfinished_jobs,
    requeue_lost_chunks,
    restart_lost_job,
)

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.orm import Session

    from keelwatch.settings import JobsSettings
    from keelwatch.storage.db import Database

logger = logging.getLogger(__name__)

#: Who the reconciler's audit entries name.
RECONCILER_ACTOR = "housekeeping:reconciler"

#: Jobs restarted whole: kind → (start task, what a give-up reason calls the job). Their tasks
#: are idempotent (a finished job does nothing), so a resent copy that meets a late original
#: does no harm.
WHOLE_JOBS: dict[str, tuple[str, str]] = {
    JOB_DRIFT_CHECK: (DRIFT_CHECK_START, "check"),
    JOB_EVALUATION: (EVALUATION_RUN, "evaluation"),
    JOB_GATE_CHECK: (EVALUATION_GATE_CHECK, "gate check"),
}
#: Every kind the reconciler watches.
RECONCILED_KINDS = (JOB_BATCH_INFERENCE, *WHOLE_JOBS)


@dataclass(frozen=True)
class ReconcileOutcome:
    """What one pass did: chunks (or whole checks) sent again, jobs failed, jobs left waiting
    behind a backlog, and sends the broker refused (retried by the next pass)."""

    requeued: dict[str, list[int]] = field(default_factory=dict)
    restarted: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    waiting: list[str] = field(default_factory=list)
    send_errors: dict[str, str] = field(default_factory=dict)


def policy_from_settings(settings: JobsSettings) -> ReconcilePolicy:
    """The reconciler's policy from ``KEELWATCH_JOBS__*``."""
    return ReconcilePolicy(
        lost_after=timedelta(seconds=settings.lost_after_s), max_requeues=settings.max_requeues
    )


def reconcile_jobs(
    db: Database,
    sender: TaskSender,
    *,
    policy: ReconcilePolicy,
    queue_depths: Mapping[str, int],
    now: datetime,
) -> ReconcileOutcome:
    """One reconciler pass at ``now``; ``queue_depths`` are the broker's messages per queue.

    Audited ``job.reconcile`` (actor ``housekeeping:reconciler``) for every job it touches.
    """
    busy = {queue for queue, depth in queue_depths.items() if depth > 0}
    with db.session() as session:
        unfinished = list_unfinished_jobs(session, RECONCILED_KINDS)
        kinds = {job.job.id: job.job.kind for job in unfinished}
        plan = plan_reconcile(
            [_progress(job) for job in unfinished], now=now, policy=policy, busy_queues=busy
        )
        idle_since = now - policy.lost_after
        outcome = ReconcileOutcome(waiting=list(plan.waiting))
        sends: list[tuple[str, Requeue]] = []
        for requeue in plan.requeue:
            if requeue.whole_job:
                if restart_lost_job(session, requeue.job_id, idle_since=idle_since):
                    outcome.restarted.append(requeue.job_id)
                    sends.append((kinds[requeue.job_id], requeue))
                    _audit(session, requeue.job_id, "restarted: no progress", policy, {})
                continue
            changed = requeue_lost_chunks(
                session, requeue.job_id, requeue.chunks, idle_since=idle_since
            )
            if changed:
                outcome.requeued[requeue.job_id] = changed
                sends.append(
                    (
                        kinds[requeue.job_id],
                        Requeue(requeue.job_id, requeue.queue, chunks=tuple(changed)),
                    )
                )
                _audit(
                    session,
                    requeue.job_id,
                    f"chunks {', '.join(map(str, changed))} sent again: no progress",
                    policy,
                    {"requeued_chunks": changed},
                )
        for give_up in plan.give_up:
            if fail_lost_job(
                session, give_up.job_id, reason=give_up.reason, chunk_index=give_up.chunk_index
            ):
                outcome.failed[give_up.job_id] = give_up.reason
                if kinds[give_up.job_id] == JOB_EVALUATION:  # its run says so too
                    finish_run(session, give_up.job_id, status="failed", error=give_up.reason)
                _audit(session, give_up.job_id, give_up.reason, policy, {"failed": True})
    # Committed: now the messages may go out (a worker must find the rows as written above).
    for kind, requeue in sends:
        try:
            _send(sender, kind, requeue)
        except Exception as exc:  # noqa: BLE001 - any broker error: the next pass sends again
            outcome.send_errors[requeue.job_id] = type(exc).__name__
            logger.warning(
                "reconciler could not resend work of job %s (%s); the next pass retries",
                requeue.job_id,
                type(exc).__name__,
            )
    return outcome


def _progress(unfinished: UnfinishedJob) -> JobProgress:
    job = unfinished.job
    drift = job.kind == JOB_DRIFT_CHECK
    # Evaluations and gate checks record the queue they were sent to (cpu or gpu), as batch
    # jobs do; drift checks always start on the monitoring queue.
    queue = QUEUE_MONITORING if drift else str(job.params.get("queue") or QUEUE_CPU)
    whole = WHOLE_JOBS.get(job.kind)
    return JobProgress(
        job_id=job.id,
        status=job.status,
        queue=queue,
        updated_at=job.updated_at,
        chunks=tuple(
            ChunkProgress(c.index, c.status, c.updated_at, c.requeues) for c in unfinished.chunks
        ),
        whole_job=whole is not None,
        requeues=unfinished.requeues,
        what=whole[1] if whole is not None else "job",
    )


def _send(sender: TaskSender, kind: str, requeue: Requeue) -> None:
    if requeue.whole_job:
        task = WHOLE_JOBS[kind][0]
        payload = (
            DriftCheckPayload(job_id=requeue.job_id)
            if kind == JOB_DRIFT_CHECK
            else EvaluationPayload(job_id=requeue.job_id)
        )
        sender.send_task(
            task,
            kwargs=payload.model_dump(),
            queue=requeue.queue,
            ignore_result=True,  # the job row is the truth: no result subscription
        )
        return
    for index in requeue.chunks:
        chunk = InferenceChunkPayload(job_id=requeue.job_id, chunk_index=index)
        sender.send_task(
            INFERENCE_CHUNK, kwargs=chunk.model_dump(), queue=requeue.queue, ignore_result=True
        )


def _audit(
    session: Session,
    job_id: str,
    reason: str,
    policy: ReconcilePolicy,
    details: dict[str, Any],
) -> None:
    record_audit(
        session,
        actor=RECONCILER_ACTOR,
        action="job.reconcile",
        target=f"job:{job_id}",
        reason=reason,
        details={
            **details,
            "lost_after_s": policy.lost_after.total_seconds(),
            "max_requeues": policy.max_requeues,
        },
    )
