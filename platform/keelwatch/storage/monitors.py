"""Drift monitors and their results. Results are written once per check job (``job_id`` is
unique), so a retried or redelivered check cannot add a second row."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from keelwatch.entities import JobStatus
from keelwatch.entities.monitors import DriftMonitor, DriftResult, DriftStatus
from keelwatch.entities.time import utcnow
from keelwatch.errors import ConflictError, NotFoundError
from keelwatch.storage.models import DriftMonitorRow, DriftResultRow, JobRow

#: Fields of a monitor that :func:`update_monitor` may change.
MUTABLE_FIELDS = frozenset(
    {
        "model_name",
        "model_ref",
        "window",
        "schedule_interval_s",
        "schedule_cron",
        "config",
        "enabled",
        "description",
    }
)


def create_monitor(
    session: Session,
    *,
    name: str,
    model_name: str,
    model_ref: str,
    window: dict[str, Any],
    schedule_interval_s: int | None,
    schedule_cron: str | None,
    config: dict[str, Any],
    enabled: bool,
    description: str,
    actor: str,
) -> DriftMonitor:
    """Insert a monitor; ConflictError if the name is taken."""
    if _row_by_name(session, name) is not None:
        raise ConflictError(f"a monitor named {name!r} already exists")
    now = utcnow()
    row = DriftMonitorRow(
        name=name,
        model_name=model_name,
        model_ref=model_ref,
        window=window,
        schedule_interval_s=schedule_interval_s,
        schedule_cron=schedule_cron,
        config=config,
        enabled=enabled,
        description=description,
        created_by=actor,
        created_at=now,
        updated_by=actor,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    return to_monitor(row)


def get_monitor(session: Session, name: str) -> DriftMonitor:
    """One monitor by name; NotFoundError if unknown."""
    return to_monitor(_required_row(session, name))


def get_monitor_by_id(session: Session, monitor_id: int) -> DriftMonitor:
    """One monitor by id; NotFoundError if unknown (e.g. deleted while a check ran)."""
    row = session.get(DriftMonitorRow, monitor_id)
    if row is None:
        raise NotFoundError(f"unknown monitor id {monitor_id}")
    return to_monitor(row)


def list_monitors(
    session: Session, *, model_name: str | None = None, enabled: bool | None = None
) -> list[DriftMonitor]:
    """Monitors by name, optionally of one model and/or by enabled flag."""
    query = select(DriftMonitorRow).order_by(DriftMonitorRow.name)
    if model_name is not None:
        query = query.where(DriftMonitorRow.model_name == model_name)
    if enabled is not None:
        query = query.where(DriftMonitorRow.enabled.is_(enabled))
    return [to_monitor(row) for row in session.scalars(query)]


def update_monitor(
    session: Session, name: str, *, actor: str, changes: dict[str, Any]
) -> DriftMonitor:
    """Change some fields of a monitor (see :data:`MUTABLE_FIELDS`)."""
    unknown = set(changes) - MUTABLE_FIELDS
    if unknown:
        raise ValueError(f"cannot change {sorted(unknown)}")
    row = _required_row(session, name)
    for key, value in changes.items():
        setattr(row, key, value)
    row.updated_by = actor
    row.updated_at = utcnow()
    session.flush()
    return to_monitor(row)


def delete_monitor(session: Session, name: str) -> DriftMonitor:
    """Delete a monitor and its result history; returns what was deleted."""
    row = _required_row(session, name)
    monitor = to_monitor(row)
    # Explicit: SQLite does not enforce ON DELETE CASCADE unless foreign keys are switched on.
    session.execute(delete(DriftResultRow).where(DriftResultRow.monitor_id == row.id))
    session.delete(row)
    session.flush()
    return monitor


def insert_result(
    session: Session,
    *,
    monitor_id: int,
    job_id: str | None,
    model_name: str,
    model_version: str,
    status: DriftStatus,
    dataset_drift: bool | None,
    share_drifted: float | None,
    columns: dict[str, Any],
    report: dict[str, Any],
    window_rows: int,
    mode: str,
    started_at: datetime,
    finished_at: datetime,
    mlflow_run_id: str | None = None,
    report_artifact_uri: str | None = None,
    error: str | None = None,
) -> tuple[DriftResult, bool]:
    """Store the result of check ``job_id`` once; returns (result, inserted).

    A second call for the same job (a retried task) inserts nothing and returns the stored row.
    """
    values = {
        "monitor_id": monitor_id,
        "job_id": job_id,
        "model_name": model_name,
        "model_version": model_version,
        "status": status.value,
        "dataset_drift": dataset_drift,
        "share_drifted": share_drifted,
        "columns": columns,
        "report": report,
        "window_rows": window_rows,
        "mode": mode,
        "started_at": started_at,
        "finished_at": finished_at,
        "mlflow_run_id": mlflow_run_id,
        "report_artifact_uri": report_artifact_uri,
        "error": error,
    }
    if job_id is None:
        row = DriftResultRow(**values)
        session.add(row)
        session.flush()
        return to_result(row), True
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(DriftResultRow).values(**values).on_conflict_do_nothing(index_elements=["job_id"])
    # RETURNING, not rowcount: the ORM's insert path does not report skipped conflicts.
    inserted = session.execute(stmt.returning(DriftResultRow.id)).first() is not None
    row = session.scalars(select(DriftResultRow).where(DriftResultRow.job_id == job_id)).one()
    return to_result(row), inserted


def set_result_outputs(
    session: Session,
    result_id: int,
    *,
    mlflow_run_id: str | None,
    report_artifact_uri: str | None,
) -> None:
    """Record where the check's MLflow run and HTML report are."""
    row = session.get(DriftResultRow, result_id)
    if row is None:
        raise NotFoundError(f"unknown drift result {result_id}")
    row.mlflow_run_id = mlflow_run_id
    row.report_artifact_uri = report_artifact_uri


def result_for_job(session: Session, job_id: str) -> DriftResult | None:
    """The result a check job stored, if any."""
    row = session.scalars(select(DriftResultRow).where(DriftResultRow.job_id == job_id)).first()
    return to_result(row) if row is not None else None


def list_results(
    session: Session,
    monitor_id: int,
    *,
    limit: int = 50,
    before: tuple[datetime, int] | None = None,
) -> list[DriftResult]:
    """A monitor's result history, newest first; ``before`` = (finished_at, id) of the previous
    page's last result."""
    query = (
        select(DriftResultRow)
        .where(DriftResultRow.monitor_id == monitor_id)
        .order_by(DriftResultRow.finished_at.desc(), DriftResultRow.id.desc())
        .limit(limit)
    )
    if before is not None:
        finished_at, result_id = before
        query = query.where(
            or_(
                DriftResultRow.finished_at < finished_at,
                and_(DriftResultRow.finished_at == finished_at, DriftResultRow.id < result_id),
            )
        )
    return [to_result(row) for row in session.scalars(query)]


def latest_results(session: Session) -> list[tuple[DriftMonitor, DriftResult]]:
    """The newest result of every monitor that has one (for metrics)."""
    newest = (
        select(DriftResultRow.monitor_id, func.max(DriftResultRow.id).label("result_id"))
        .group_by(DriftResultRow.monitor_id)
        .subquery()
    )
    query = (
        select(DriftMonitorRow, DriftResultRow)
        .join(newest, newest.c.monitor_id == DriftMonitorRow.id)
        .join(DriftResultRow, DriftResultRow.id == newest.c.result_id)
        .order_by(DriftMonitorRow.name)
    )
    return [(to_monitor(m), to_result(r)) for m, r in session.execute(query)]


def last_started_at(session: Session, *, check_job_kind: str) -> dict[int, datetime]:
    """When each monitor's newest check started, from results and from pending/running jobs.

    ``jobs`` of ``check_job_kind`` (the caller names the worker contract's kind, so storage
    does not import the contract) are consulted too: a check that is still running counts as
    the last run, and beat does not enqueue a second one meanwhile.
    """
    latest: dict[int, datetime] = {}
    for monitor_id, at in session.execute(
        select(DriftResultRow.monitor_id, func.max(DriftResultRow.started_at)).group_by(
            DriftResultRow.monitor_id
        )
    ):
        latest[int(monitor_id)] = at
    jobs = session.execute(
        select(JobRow.params, JobRow.created_at).where(
            JobRow.kind == check_job_kind,
            JobRow.status.in_((JobStatus.PENDING.value, JobStatus.RUNNING.value)),
        )
    )
    for params, created_at in jobs:
        job_monitor = (params or {}).get("monitor_id")
        if job_monitor is None:
            continue
        previous = latest.get(int(job_monitor))
        if previous is None or created_at > previous:
            latest[int(job_monitor)] = created_at
    return latest


def _row_by_name(session: Session, name: str) -> DriftMonitorRow | None:
    return session.scalars(
        select(DriftMonitorRow).where(DriftMonitorRow.name == name)
    ).one_or_none()


def _required_row(session: Session, name: str) -> DriftMonitorRow:
    row = _row_by_name(session, name)
    if row is None:
        raise NotFoundError(f"unknown monitor {name!r}")
    return row


def to_monitor(row: DriftMonitorRow) -> DriftMonitor:
    """ORM row → entity."""
    return DriftMonitor(
        id=row.id,
        name=row.name,
        model_name=row.model_name,
        model_ref=row.model_ref,
        window=dict(row.window or {}),
        schedule_interval_s=row.schedule_interval_s,
        schedule_cron=row.schedule_cron,
        config=dict(row.config or {}),
        enabled=bool(row.enabled),
        description=row.description or "",
        created_by=row.created_by,
        created_at=row.created_at,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


def to_result(row: DriftResultRow) -> DriftResult:
    """ORM row → entity."""
    return DriftResult(
        id=row.id,
        monitor_id=row.monitor_id,
        job_id=row.job_id,
        model_name=row.model_name,
        model_version=row.model_version,
        status=DriftStatus(row.status),
        dataset_drift=row.dataset_drift,
        share_drifted=row.share_drifted,
        window_rows=int(row.window_rows),
        mode=row.mode,
        started_at=row.started_at,
        finished_at=row.finished_at,
        mlflow_run_id=row.mlflow_run_id,
        report_artifact_uri=row.report_artifact_uri,
        error=row.error,
        columns=dict(row.columns or {}),
        report=dict(row.report or {}),
    )
