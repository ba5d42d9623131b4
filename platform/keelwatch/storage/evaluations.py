"""Evaluation datasets and runs: rows in, :mod:`keelwatch.entities.evaluation` values out."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from keelwatch.entities.evaluation import EvalDataset, EvalRun
from keelwatch.entities.time import utcnow
from keelwatch.errors import NotFoundError
from keelwatch.storage.models import EvalDatasetRow, EvalRunRow, JobRow


def insert_dataset(
    session: Session,
    *,
    name: str,
    uri: str,
    content_hash: str,
    rows: int,
    columns: Sequence[str],
    label_column: str,
    task: str,
    description: str,
    created_by: str,
) -> EvalDataset:
    """A new version of dataset ``name`` (one more than its latest; 1 for a new name)."""
    latest = session.scalar(
        select(func.max(EvalDatasetRow.version)).where(EvalDatasetRow.name == name)
    )
    row = EvalDatasetRow(
        name=name,
        version=int(latest or 0) + 1,
        uri=uri,
        content_hash=content_hash,
        rows=rows,
        columns=list(columns),
        label_column=label_column,
        task=task,
        description=description,
        created_by=created_by,
    )
    session.add(row)
    session.flush()
    return to_dataset(row)


def find_dataset(session: Session, name: str, version: int | None = None) -> EvalDataset | None:
    """Version ``version`` of dataset ``name`` (the latest when None), or None."""
    query = select(EvalDatasetRow).where(EvalDatasetRow.name == name)
    if version is None:
        query = query.order_by(EvalDatasetRow.version.desc()).limit(1)
    else:
        query = query.where(EvalDatasetRow.version == version)
    row = session.scalars(query).first()
    return to_dataset(row) if row is not None else None


def get_dataset(session: Session, name: str, version: int | None = None) -> EvalDataset:
    """Like :func:`find_dataset`; NotFoundError naming the dataset (and version)."""
    found = find_dataset(session, name, version)
    if found is None:
        which = f"{name!r}" if version is None else f"{name!r} version {version}"
        raise NotFoundError(f"unknown evaluation dataset {which}")
    return found


def list_datasets(session: Session, name: str | None = None) -> list[EvalDataset]:
    """Every dataset version, by name then version (only ``name``'s when given)."""
    query = select(EvalDatasetRow).order_by(EvalDatasetRow.name, EvalDatasetRow.version)
    if name is not None:
        query = query.where(EvalDatasetRow.name == name)
    return [to_dataset(row) for row in session.scalars(query)]


def insert_run(
    session: Session,
    *,
    job_id: str,
    model_name: str,
    model_version: str,
    dataset_name: str,
    dataset_version: int,
    suites: Sequence[str],
    trigger: str,
) -> EvalRun:
    """The pending run of evaluation job ``job_id``."""
    row = EvalRunRow(
        job_id=job_id,
        model_name=model_name,
        model_version=model_version,
        dataset_name=dataset_name,
        dataset_version=dataset_version,
        suites=list(suites),
        status="pending",
        trigger=trigger,
        metrics={},
    )
    session.add(row)
    session.flush()
    return to_run(row)


def run_for_job(session: Session, job_id: str) -> EvalRun:
    """The run of job ``job_id``; NotFoundError when the job is not an evaluation."""
    found = session.execute(_with_job().where(EvalRunRow.job_id == job_id)).first()
    if found is None:
        raise NotFoundError(f"no evaluation run for job {job_id!r}")
    return to_run(*found)


def get_run(session: Session, run_id: int) -> EvalRun:
    """One run by id; NotFoundError when unknown."""
    found = session.execute(_with_job().where(EvalRunRow.id == run_id)).first()
    if found is None:
        raise NotFoundError(f"unknown evaluation run {run_id}")
    return to_run(*found)


def list_runs(
    session: Session,
    *,
    model_name: str | None = None,
    model_version: str | None = None,
    status: str | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> list[EvalRun]:
    """Newest first (by id), optionally of one model (and version) or in one state;
    ``before_id`` resumes after the previous page's last run."""
    query = _with_job().order_by(EvalRunRow.id.desc())
    if before_id is not None:
        query = query.where(EvalRunRow.id < before_id)
    if model_name is not None:
        query = query.where(EvalRunRow.model_name == model_name)
    if model_version is not None:
        query = query.where(EvalRunRow.model_version == model_version)
    if status is not None:
        query = query.where(_status_column() == status)
    return [to_run(*found) for found in session.execute(query.limit(limit))]


def latest_succeeded_runs(session: Session) -> list[EvalRun]:
    """The newest succeeded run of every (model, version, dataset) (for the gauges)."""
    newest = (
        select(func.max(EvalRunRow.id))
        .where(EvalRunRow.status == "succeeded")
        .group_by(EvalRunRow.model_name, EvalRunRow.model_version, EvalRunRow.dataset_name)
    )
    query = select(EvalRunRow).where(EvalRunRow.id.in_(newest)).order_by(EvalRunRow.id)
    return [to_run(row) for row in session.scalars(query)]


def mark_running(session: Session, job_id: str) -> None:
    """Pending → running (no-op otherwise)."""
    session.execute(
        update(EvalRunRow)
        .where(EvalRunRow.job_id == job_id, EvalRunRow.status == "pending")
        .values(status="running")
    )


def finish_run(
    session: Session,
    job_id: str,
    *,
    status: str,
    metrics: dict[str, dict[str, float]] | None = None,
    mlflow_run_id: str | None = None,
    error: str | None = None,
    finished_at: datetime | None = None,
) -> bool:
    """Record a run's outcome once; False when it had already finished."""
    values: dict[str, Any] = {
        "status": status,
        "error": error,
        "finished_at": finished_at or utcnow(),
    }
    if metrics is not None:
        values["metrics"] = metrics
    if mlflow_run_id is not None:
        values["mlflow_run_id"] = mlflow_run_id
    outcome = session.execute(
        update(EvalRunRow)
        .where(EvalRunRow.job_id == job_id, EvalRunRow.status.in_(["pending", "running"]))
        .values(**values)
    )
    return bool(outcome.rowcount)  # type: ignore[attr-defined]


def to_dataset(row: EvalDatasetRow) -> EvalDataset:
    """The entity of one dataset row."""
    return EvalDataset(
        id=row.id,
        name=row.name,
        version=row.version,
        uri=row.uri,
        content_hash=row.content_hash,
        rows=int(row.rows),
        columns=tuple(row.columns or ()),
        label_column=row.label_column,
        task=row.task,
        description=row.description or "",
        created_by=row.created_by,
        created_at=row.created_at,
    )


def _with_job() -> Any:
    """Runs with their job's state and error: the job row is the truth once it finished (a job
    cancelled before any worker took it never updates its run)."""
    return select(EvalRunRow, JobRow.status, JobRow.error).join(
        JobRow, JobRow.id == EvalRunRow.job_id
    )


_OPEN = ("pending", "running")


def _status_column() -> Any:
    """The run's status as :func:`to_run` reports it, for filtering in SQL."""
    from sqlalchemy import case

    return case(
        (EvalRunRow.status.in_(_OPEN) & JobRow.status.not_in(_OPEN), JobRow.status),
        (EvalRunRow.status == "pending", JobRow.status),
        else_=EvalRunRow.status,
    )


def to_run(row: EvalRunRow, job_status: str | None = None, job_error: str | None = None) -> EvalRun:
    """The entity of one run row (its status and error from the job once the job moved on)."""
    status, error = row.status, row.error
    moved_on = job_status is not None and job_status != status and status in _OPEN
    if moved_on and (job_status not in _OPEN or status == "pending"):
        assert job_status is not None
        status, error = job_status, error or job_error
    return EvalRun(
        id=row.id,
        job_id=row.job_id,
        model_name=row.model_name,
        model_version=row.model_version,
        dataset_name=row.dataset_name,
        dataset_version=row.dataset_version,
        suites=tuple(row.suites or ()),
        status=status,
        trigger=row.trigger,
        created_at=row.created_at,
        metrics={
            suite: {k: float(v) for k, v in values.items()}
            for suite, values in (row.metrics or {}).items()
        },
        mlflow_run_id=row.mlflow_run_id,
        error=error,
        finished_at=row.finished_at,
    )
