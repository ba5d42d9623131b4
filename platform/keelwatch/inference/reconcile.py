"""Which lost work to send again, and which jobs to give up on: the reconciler's decision (pure).

A broker restart without persistence, or a worker host that dies, can lose the message of a
chunk: its row then says ``pending`` or ``running`` forever. :func:`plan_reconcile` looks at the
unfinished jobs (plain values read by :mod:`keelwatch.inference.reconciler`) and the clock, and
says what to do; it reads nothing and writes nothing.

The rules, with ``lost_after`` longer than the longest chunk:

* a **running** chunk with no progress for ``lost_after`` is lost: the worker that took it is
  gone (killed, or cut off from a broker that forgot the message);
* a **pending** chunk with no progress for ``lost_after`` is lost only when its queue holds no
  message: while the queue has a backlog the chunk may simply still be in line behind it;
* a lost chunk is sent again (chunk writes are idempotent, so a copy that turns up later does
  no harm) at most ``max_requeues`` times; lost once more, its job fails with the reason;
* a drift check is one unit (its chord cannot be resumed part by part): it is started again,
  which is idempotent too, under the same rules, counted on the job;
* so are an evaluation and a gate check (one task each, no chunks): a lost one is sent again
  whole (their tasks do nothing for a finished job, and reuse what a lost run left behind),
  and fails with the reason once it was lost more than ``max_requeues`` times.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from keelwatch.entities import ChunkStatus, JobStatus

_UNFINISHED_JOB = (JobStatus.PENDING, JobStatus.RUNNING)
_UNFINISHED_CHUNK = (ChunkStatus.PENDING, ChunkStatus.RUNNING)


@dataclass(frozen=True)
class ChunkProgress:
    """One chunk as the reconciler sees it: its state and when it last moved."""

    index: int
    status: ChunkStatus
    updated_at: datetime
    requeues: int = 0


@dataclass(frozen=True)
class JobProgress:
    """An unfinished job: its chunks, the queue its work goes to, and how it is resent.

    ``whole_job``: the job restarts as one unit (a drift check, an evaluation, a gate check)
    rather than chunk by chunk; ``requeues`` counts those restarts; ``what`` names the job in
    the reason it fails with ("evaluation lost 4 times: ...").
    """

    job_id: str
    status: JobStatus
    queue: str
    updated_at: datetime
    chunks: tuple[ChunkProgress, ...] = ()
    whole_job: bool = False
    requeues: int = 0
    what: str = "check"


@dataclass(frozen=True)
class ReconcilePolicy:
    """How long without progress counts as lost, and how often lost work is sent again."""

    lost_after: timedelta
    max_requeues: int


@dataclass(frozen=True)
class Requeue:
    """Send this work again: the chunks listed, or (``whole_job``) the job's start task."""

    job_id: str
    queue: str
    chunks: tuple[int, ...] = ()
    whole_job: bool = False


@dataclass(frozen=True)
class GiveUp:
    """Fail this job: its work was lost more often than the policy allows."""

    job_id: str
    reason: str
    chunk_index: int | None = None


@dataclass(frozen=True)
class ReconcilePlan:
    """What one reconciler pass does; ``waiting`` names jobs left alone behind a backlog."""

    requeue: tuple[Requeue, ...] = ()
    give_up: tuple[GiveUp, ...] = ()
    waiting: tuple[str, ...] = ()


def plan_reconcile(
    jobs: Iterable[JobProgress],
    *,
    now: datetime,
    policy: ReconcilePolicy,
    busy_queues: Collection[str],
) -> ReconcilePlan:
    """Decide, for every unfinished job, whether its work was lost and what to do about it.

    ``busy_queues`` are the queues holding at least one message right now. Jobs come back in
    the order given; within a job, chunks in index order.
    """
    requeue: list[Requeue] = []
    give_up: list[GiveUp] = []
    waiting: list[str] = []
    for job in jobs:
        if job.status not in _UNFINISHED_JOB:
            continue
        decide = _decide_whole_job if job.whole_job else _decide_chunks
        outcome = decide(job, now, policy, job.queue in busy_queues)
        if isinstance(outcome, Requeue):
            requeue.append(outcome)
        elif isinstance(outcome, GiveUp):
            give_up.append(outcome)
        elif outcome == "waiting":
            waiting.append(job.job_id)
    return ReconcilePlan(tuple(requeue), tuple(give_up), tuple(waiting))


def _decide_chunks(
    job: JobProgress, now: datetime, policy: ReconcilePolicy, queue_busy: bool
) -> Requeue | GiveUp | str | None:
    lost: list[ChunkProgress] = []
    held_back = False
    for chunk in sorted(job.chunks, key=lambda c: c.index):
        if chunk.status not in _UNFINISHED_CHUNK or now - chunk.updated_at < policy.lost_after:
            continue
        if chunk.status is ChunkStatus.PENDING and queue_busy:
            held_back = True
            continue
        lost.append(chunk)
    for chunk in lost:
        if chunk.requeues >= policy.max_requeues:
            return GiveUp(
                job.job_id,
                f"chunk {chunk.index} lost {chunk.requeues + 1} times: no worker finished it "
                f"(no progress for {_duration(policy.lost_after)} each time)",
                chunk_index=chunk.index,
            )
    if lost:
        return Requeue(job.job_id, job.queue, chunks=tuple(chunk.index for chunk in lost))
    return "waiting" if held_back else None


def _decide_whole_job(
    job: JobProgress, now: datetime, policy: ReconcilePolicy, queue_busy: bool
) -> Requeue | GiveUp | str | None:
    last_progress = max([job.updated_at, *(chunk.updated_at for chunk in job.chunks)])
    if now - last_progress < policy.lost_after:
        return None
    # Work not started yet (the job, or one of its partitions) may be in line behind a backlog.
    not_started = job.status is JobStatus.PENDING or any(
        chunk.status is ChunkStatus.PENDING for chunk in job.chunks
    )
    if not_started and queue_busy:
        return "waiting"
    if job.requeues >= policy.max_requeues:
        return GiveUp(
            job.job_id,
            f"{job.what} lost {job.requeues + 1} times: no worker finished it "
            f"(no progress for {_duration(policy.lost_after)} each time)",
        )
    return Requeue(job.job_id, job.queue, whole_job=True)


def _duration(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)} min"
    return f"{seconds:g} s"
