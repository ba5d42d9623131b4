"""The reconciler's decision (inference.reconcile) on hand-built rows and a fixed clock."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path

from keelwatch.celery_config import celery_config
from keelwatch.contract import HOUSEKEEPING_RECONCILE_JOBS, QUEUE_MONITORING
from keelwatch.entities import ChunkStatus, JobStatus
from keelwatch.inference import reconcile
from keelwatch.inference.reconcile import (
    ChunkProgress,
    GiveUp,
    JobProgress,
    ReconcilePolicy,
    Requeue,
    plan_reconcile,
)
from keelwatch.settings import Settings

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
POLICY = ReconcilePolicy(lost_after=timedelta(minutes=10), max_requeues=2)
P, R, D = ChunkStatus.PENDING, ChunkStatus.RUNNING, ChunkStatus.DONE


def ago(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


def batch(*chunks: ChunkProgress, status: JobStatus = JobStatus.RUNNING) -> JobProgress:
    return JobProgress("job-1", status, "cpu", ago(30), chunks=chunks)


def plan(*jobs: JobProgress, busy: tuple[str, ...] = ()) -> reconcile.ReconcilePlan:
    return plan_reconcile(jobs, now=NOW, policy=POLICY, busy_queues=busy)


def test_fresh_work_is_left_alone() -> None:
    job = batch(
        ChunkProgress(0, D, ago(20)), ChunkProgress(1, R, ago(9.9)), ChunkProgress(2, P, ago(1))
    )
    assert plan(job) == reconcile.ReconcilePlan()


def test_running_and_pending_chunks_idle_past_the_deadline_are_sent_again() -> None:
    job = batch(
        ChunkProgress(0, D, ago(50)),
        ChunkProgress(3, R, ago(10)),  # exactly the deadline: lost
        ChunkProgress(1, P, ago(11), requeues=1),
        ChunkProgress(2, R, ago(5)),
    )
    assert plan(job).requeue == (Requeue("job-1", "cpu", chunks=(1, 3)),)


def test_a_backlog_holds_back_pending_chunks_but_not_running_ones() -> None:
    job = batch(ChunkProgress(0, P, ago(60)), ChunkProgress(1, R, ago(60)))
    outcome = plan(job, busy=("cpu",))
    assert outcome.requeue == (Requeue("job-1", "cpu", chunks=(1,)),)
    assert outcome.waiting == ()
    only_pending = plan(batch(ChunkProgress(0, P, ago(60))), busy=("cpu",))
    assert only_pending == reconcile.ReconcilePlan(waiting=("job-1",))
    # Another queue's backlog does not count.
    assert plan(batch(ChunkProgress(0, P, ago(60))), busy=("gpu",)).requeue


def test_a_chunk_lost_once_more_than_allowed_fails_the_job() -> None:
    job = batch(ChunkProgress(0, R, ago(15), requeues=1), ChunkProgress(3, P, ago(15), requeues=2))
    outcome = plan(job)
    assert outcome.requeue == ()
    assert outcome.give_up == (
        GiveUp(
            "job-1",
            "chunk 3 lost 3 times: no worker finished it (no progress for 10 min each time)",
            chunk_index=3,
        ),
    )


def test_finished_jobs_and_finished_chunks_are_ignored() -> None:
    done = JobProgress(
        "job-2", JobStatus.SUCCEEDED, "cpu", ago(90), (ChunkProgress(0, R, ago(90)),)
    )
    failed_chunk = batch(ChunkProgress(0, ChunkStatus.FAILED, ago(90)))
    cancelled = batch(ChunkProgress(0, ChunkStatus.CANCELLED, ago(90)))
    assert plan(done, failed_chunk, cancelled) == reconcile.ReconcilePlan()


def test_a_drift_check_restarts_whole_then_gives_up() -> None:
    def check(
        requeues: int, status: JobStatus = JobStatus.RUNNING, *chunks: ChunkProgress
    ) -> JobProgress:
        return JobProgress(
            "check-1", status, "monitoring", ago(12), chunks, whole_job=True, requeues=requeues
        )

    assert plan(check(0)).requeue == (Requeue("check-1", "monitoring", whole_job=True),)
    # A partition that moved recently is progress.
    assert (
        plan(check(0, JobStatus.RUNNING, ChunkProgress(0, D, ago(2)))) == reconcile.ReconcilePlan()
    )
    # Not started yet, behind a backlog: waiting; started and silent: lost anyway.
    assert plan(check(0, JobStatus.PENDING), busy=("monitoring",)).waiting == ("check-1",)
    assert plan(check(0), busy=("monitoring",)).requeue
    assert plan(check(2)).give_up == (
        GiveUp(
            "check-1",
            "check lost 3 times: no worker finished it (no progress for 10 min each time)",
        ),
    )


def test_durations_read_naturally() -> None:
    odd = ReconcilePolicy(lost_after=timedelta(seconds=90), max_requeues=0)
    outcome = plan_reconcile(
        [batch(ChunkProgress(0, R, ago(5)))], now=NOW, policy=odd, busy_queues=()
    )
    assert outcome.give_up[0].reason.endswith("(no progress for 90 s each time)")


def test_the_decision_module_imports_no_framework() -> None:
    tree = ast.parse(Path(reconcile.__file__).read_text())
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported <= {
        "__future__",
        "collections.abc",
        "dataclasses",
        "datetime",
        "keelwatch.entities",
    }


def test_beat_runs_the_reconciler_on_the_monitoring_queue(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, jobs={"reconcile_interval_s": 42})
    config = celery_config(settings)
    entry = config["beat_schedule"]["keelwatch-job-reconcile"]
    assert entry == {
        "task": HOUSEKEEPING_RECONCILE_JOBS,
        "schedule": 42.0,
        "options": {"queue": QUEUE_MONITORING},
    }
    assert config["task_routes"][HOUSEKEEPING_RECONCILE_JOBS] == {"queue": QUEUE_MONITORING}
    assert Settings(data_dir=tmp_path).jobs.lost_after_s == 600.0


def test_evaluations_and_gate_checks_restart_whole_and_give_up_by_name() -> None:
    def job(
        job_id: str, what: str, queue: str, status: JobStatus, idle_min: float, requeues: int = 0
    ) -> JobProgress:
        return JobProgress(
            job_id, status, queue, ago(idle_min), whole_job=True, requeues=requeues, what=what
        )

    never_sent = job("eval-1", "evaluation", "gpu", JobStatus.PENDING, 11)
    worker_gone = job("gate-1", "gate check", "cpu", JobStatus.RUNNING, 10)
    fresh = job("eval-2", "evaluation", "cpu", JobStatus.RUNNING, 9.9)
    assert plan(never_sent, worker_gone, fresh).requeue == (
        Requeue("eval-1", "gpu", whole_job=True),
        Requeue("gate-1", "cpu", whole_job=True),
    )
    # A pending evaluation may be in line behind its own queue's backlog, not another's.
    assert plan(never_sent, busy=("gpu",)) == reconcile.ReconcilePlan(waiting=("eval-1",))
    assert plan(never_sent, busy=("cpu",)).requeue == (Requeue("eval-1", "gpu", whole_job=True),)
    # Lost once more than allowed: failed, the reason naming what was lost.
    outcome = plan(
        job("eval-3", "evaluation", "cpu", JobStatus.RUNNING, 30, requeues=2),
        job("gate-2", "gate check", "cpu", JobStatus.PENDING, 30, requeues=2),
        job("gate-3", "gate check", "cpu", JobStatus.SUCCEEDED, 30, requeues=2),
    )
    assert outcome.requeue == ()
    assert outcome.give_up == (
        GiveUp(
            "eval-3",
            "evaluation lost 3 times: no worker finished it (no progress for 10 min each time)",
        ),
        GiveUp(
            "gate-2",
            "gate check lost 3 times: no worker finished it (no progress for 10 min each time)",
        ),
    )
