"""Reads for the fleet's operational series and the alert loop's Prometheus gauges.

Every function takes the caller's session, never commits, and groups in SQL: a window of the
jobs, chunks and prediction-log tables comes back as a few tallies, and the scrape-time gauges
as one ``GROUP BY`` each, never as rows loaded one by one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select, text
from sqlalchemy.orm import Session

from keelwatch.entities.jobs import ChunkStatus
from keelwatch.entities.notifications import DeliveryStatus
from keelwatch.entities.ops import ChunkTally, LatencyTally
from keelwatch.storage.models import (
    ActionExecutionRow,
    AlertRow,
    JobChunkRow,
    JobRow,
    NotificationDeadLetterRow,
    NotificationLogRow,
    NotifierRow,
    PredictionRow,
    SignalRow,
)

# --------------------------------------------------------------------------- ops series


def _job_labels(session: Session, job_ids: Iterable[str]) -> dict[str, tuple[str, str, str]]:
    """job id → (model, version, queue) from the jobs' stored parameters."""
    wanted = sorted(set(job_ids))
    labels: dict[str, tuple[str, str, str]] = {}
    for start in range(0, len(wanted), 500):  # bounded IN lists
        query = select(JobRow.id, JobRow.params).where(JobRow.id.in_(wanted[start : start + 500]))
        for job_id, params in session.execute(query):
            p: Mapping[str, Any] = params or {}
            labels[job_id] = (
                str(p.get("model_name") or ""),
                str(p.get("model_version") or ""),
                str(p.get("queue") or ""),
            )
    return labels


def finished_chunk_tallies(
    session: Session, start: datetime, end: datetime, *, kind: str
) -> list[ChunkTally]:
    """Chunks of jobs of ``kind`` that finished (done or failed) with
    ``start <= updated_at < end``, counted per job in SQL and labelled with the job's model,
    version and queue (``model_name``, ``model_version`` and ``queue`` of its parameters)."""
    done = JobChunkRow.status == ChunkStatus.DONE.value
    failed = JobChunkRow.status == ChunkStatus.FAILED.value
    query = (
        select(
            JobChunkRow.job_id,
            func.count().filter(done),
            func.count().filter(failed),
            func.coalesce(func.sum(case((done, JobChunkRow.rows_done), else_=0)), 0),
        )
        .join(JobRow, JobRow.id == JobChunkRow.job_id)
        .where(
            JobRow.kind == kind,
            JobChunkRow.status.in_([ChunkStatus.DONE.value, ChunkStatus.FAILED.value]),
            JobChunkRow.updated_at >= start,
            JobChunkRow.updated_at < end,
        )
        .group_by(JobChunkRow.job_id)
    )
    counts = [(str(j), int(d), int(f), int(r)) for j, d, f, r in session.execute(query)]
    labels = _job_labels(session, (job_id for job_id, *_ in counts))
    return [
        ChunkTally(*labels.get(job_id, ("", "", "")), done=d, failed=f, rows=r)
        for job_id, d, f, r in counts
    ]


def logged_latency_tallies(session: Session, start: datetime, end: datetime) -> list[LatencyTally]:
    """Prediction-log rows written with ``start <= created_at < end``, counted per model,
    version, job and latency value in SQL (a batch chunk logs one latency on all its rows)."""
    query = (
        select(
            PredictionRow.model_name,
            PredictionRow.model_version,
            PredictionRow.job_id,
            PredictionRow.latency_ms,
            func.count(),
        )
        .where(PredictionRow.created_at >= start, PredictionRow.created_at < end)
        .group_by(
            PredictionRow.model_name,
            PredictionRow.model_version,
            PredictionRow.job_id,
            PredictionRow.latency_ms,
        )
    )
    grouped = list(session.execute(query))
    queues = _job_labels(session, (str(job) for _, _, job, _, _ in grouped if job))
    return [
        LatencyTally(
            model=str(model),
            version=str(version),
            queue=queues.get(str(job), ("", "", ""))[2] if job else "",
            latency_s=float(latency_ms) / 1000.0,
            count=int(count),
        )
        for model, version, job, latency_ms, count in grouped
    ]


def newest_observed_at(session: Session, name: str, fingerprints: Iterable[str]) -> datetime | None:
    """When the newest signal ``name`` of any of the series ``fingerprints`` was observed."""
    wanted = list(fingerprints)
    if not wanted:
        return None
    query = select(func.max(SignalRow.observed_at)).where(
        SignalRow.name == name, SignalRow.fingerprint.in_(wanted)
    )
    newest: datetime | None = session.scalar(query)
    return newest


def has_signals_from(session: Session, source: str) -> bool:
    """True when some signal was written with ``source`` (a tick that already ran)."""
    return (
        session.scalar(select(SignalRow.id).where(SignalRow.source == source).limit(1)) is not None
    )


def lock_tick(session: Session, key: int) -> None:
    """Serialise transactions of one tick until they end.

    PostgreSQL: a transaction-level advisory lock on ``key``, so of two concurrent runs of one
    tick the second sees the first's signals. SQLite already serialises writers (the second
    fails to upgrade its stale read and its task is retried), so nothing is done there.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


# --------------------------------------------------------------------------- alert loop gauges


def count_alerts(session: Session) -> dict[tuple[str, str], int]:
    """(state, severity) → alerts in that state, one ``GROUP BY``."""
    query = select(AlertRow.state, AlertRow.severity, func.count()).group_by(
        AlertRow.state, AlertRow.severity
    )
    return {(str(state), str(sev)): int(n) for state, sev, n in session.execute(query)}


#: Outcome label of a notification-log row (see :func:`count_notifications`).
NOTIFICATION_OUTCOMES = ("pending", "failed", "sent", "dead_lettered")


def count_notifications(session: Session) -> dict[tuple[str, str], int]:
    """(notifier, outcome) → notification-log rows, one ``GROUP BY``.

    Outcomes: ``sent``; ``dead_lettered`` (given up on); ``failed`` (pending after at least one
    failed attempt: a retry is scheduled); ``pending`` (not tried yet, or put back by a replay).
    A status this list does not know is reported as itself.
    """
    retried = case((NotificationLogRow.attempts > 0, 1), else_=0)
    query = select(
        NotificationLogRow.notifier, NotificationLogRow.status, retried, func.count()
    ).group_by(NotificationLogRow.notifier, NotificationLogRow.status, retried)
    counts: dict[tuple[str, str], int] = {}
    for notifier, status, was_retried, n in session.execute(query):
        if status == DeliveryStatus.SENT.value:
            outcome = "sent"
        elif status == DeliveryStatus.DEAD.value:
            outcome = "dead_lettered"
        elif status == DeliveryStatus.PENDING.value:
            outcome = "failed" if was_retried else "pending"
        else:
            outcome = str(status)
        key = (str(notifier), outcome)
        counts[key] = counts.get(key, 0) + int(n)
    return counts


def count_action_executions(session: Session) -> dict[tuple[str, str], int]:
    """(action, status) → action executions, one ``GROUP BY``."""
    query = select(ActionExecutionRow.action, ActionExecutionRow.status, func.count()).group_by(
        ActionExecutionRow.action, ActionExecutionRow.status
    )
    return {(str(a), str(s)): int(n) for a, s, n in session.execute(query)}


def count_open_dead_letters(session: Session) -> dict[str, int]:
    """notifier → dead letters not replayed yet; every configured notifier is present (0 when
    it has none), so an alert on the gauge has a series from the first scrape."""
    counts = {str(name): 0 for name in session.scalars(select(NotifierRow.name))}
    query = (
        select(NotificationDeadLetterRow.notifier, func.count())
        .where(NotificationDeadLetterRow.replayed_at.is_(None))
        .group_by(NotificationDeadLetterRow.notifier)
    )
    for notifier, n in session.execute(query):
        counts[str(notifier)] = int(n)
    return counts
