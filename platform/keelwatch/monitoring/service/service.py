"""Monitor CRUD and submitting checks: validate, write (with an audit entry), then enqueue.

Functions take what they use (a session, the registry, the sender), never the whole
``Services``; the caller owns the transaction. Nothing is written for bad input (unknown model
or alias, malformed window or schedule, missing dataset), every mutation is audited in the
caller's transaction (target ``monitor:<name>``), and a check's message is sent only after its
job row is committed: :func:`create_check` writes, the caller commits, :func:`enqueue_check`
sends (:func:`submit_check` does the three in that order).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from keelwatch.contract import (
    DRIFT_CHECK_START,
    JOB_DRIFT_CHECK,
    QUEUE_MONITORING,
    BrokerUnavailableError,
    DriftCheckPayload,
)
from keelwatch.entities import Job, JobStatus
from keelwatch.entities.monitors import CheckMode, DriftMonitor, DriftResult
from keelwatch.entities.time import utcnow
from keelwatch.errors import InvalidInputError, KeelwatchError
from keelwatch.monitoring.service.schedule import is_due
from keelwatch.monitoring.service.specs import MonitorConfig, MonitorSpec, WindowSpec, validated
from keelwatch.monitoring.service.windows import plan_window
from keelwatch.storage import monitors as monitor_store
from keelwatch.storage import profiles as profile_store
from keelwatch.storage.audit import record_audit
from keelwatch.storage.jobs import create_job, finish_job

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from keelwatch.contract import TaskSender
    from keelwatch.registry import ModelRegistry
    from keelwatch.storage.db import Database

DEFAULT_RESULTS_LIMIT = 50


def monitor_target(name: str) -> str:
    """Audit-log target of a monitor."""
    return f"monitor:{name}"


def create_monitor(
    session: Session, registry: ModelRegistry, spec: MonitorSpec | dict[str, Any], actor: str
) -> DriftMonitor:
    """Validate and store a monitor; ConflictError if the name is taken."""
    actor = _actor(actor)
    spec = spec if isinstance(spec, MonitorSpec) else validated(MonitorSpec, spec, "monitor")
    resolved = registry.resolve(spec.model)
    _check_window_source(session, spec.window)
    monitor = monitor_store.create_monitor(
        session,
        name=spec.name,
        model_name=resolved.name,
        model_ref=spec.model,
        window=spec.window.as_json(),
        schedule_interval_s=spec.schedule_interval_s,
        schedule_cron=spec.schedule_cron,
        config=spec.config.model_dump(mode="json"),
        enabled=spec.enabled,
        description=spec.description,
        actor=actor,
    )
    record_audit(
        session,
        actor=actor,
        action="monitor.create",
        target=monitor_target(spec.name),
        reason=spec.description or f"drift monitor of {spec.model}",
        details=spec.model_dump(mode="json"),
    )
    return monitor


def update_monitor(
    session: Session,
    registry: ModelRegistry,
    name: str,
    changes: dict[str, Any],
    actor: str,
    *,
    reason: str = "",
) -> DriftMonitor:
    """Change fields of a monitor (same validation as creating it).

    The API's ``PATCH /monitors/{name}`` and the CLI's ``monitors update|enable|disable`` all
    come here; the audit entry records which fields changed and their new values.
    """
    actor = _actor(actor)
    current = monitor_store.get_monitor(session, name)
    merged = {**spec_of(current), **changes, "name": current.name}
    spec = validated(MonitorSpec, merged, "monitor")
    resolved = registry.resolve(spec.model)
    if "window" in changes:
        _check_window_source(session, spec.window)
    monitor = monitor_store.update_monitor(
        session,
        name,
        actor=actor,
        changes={
            "model_name": resolved.name,
            "model_ref": spec.model,
            "window": spec.window.as_json(),
            "schedule_interval_s": spec.schedule_interval_s,
            "schedule_cron": spec.schedule_cron,
            "config": spec.config.model_dump(mode="json"),
            "enabled": spec.enabled,
            "description": spec.description,
        },
    )
    record_audit(
        session,
        actor=actor,
        action="monitor.update",
        target=monitor_target(name),
        reason=reason,
        details={"changes": sorted(changes), "values": changes},
    )
    return monitor


def delete_monitor(session: Session, name: str, actor: str, reason: str = "") -> DriftMonitor:
    """Delete a monitor and its result history."""
    actor = _actor(actor)
    monitor = monitor_store.delete_monitor(session, name)
    record_audit(
        session,
        actor=actor,
        action="monitor.delete",
        target=monitor_target(name),
        reason=reason,
        details=spec_of(monitor),
    )
    return monitor


def get_monitor(session: Session, name: str) -> DriftMonitor:
    """One monitor by name."""
    return monitor_store.get_monitor(session, name)


def list_monitors(session: Session, model_name: str | None = None) -> list[DriftMonitor]:
    """Every monitor, by name."""
    return monitor_store.list_monitors(session, model_name=model_name)


def monitor_results(
    session: Session,
    name: str,
    limit: int = DEFAULT_RESULTS_LIMIT,
    *,
    before: tuple[datetime, int] | None = None,
) -> list[DriftResult]:
    """A monitor's check history, newest first (``before``: see ``list_results``)."""
    monitor = monitor_store.get_monitor(session, name)
    return monitor_store.list_results(session, monitor.id, limit=limit, before=before)


def result_of_job(session: Session, job_id: str) -> DriftResult | None:
    """The result a check job stored, once it has."""
    return monitor_store.result_for_job(session, job_id)


def spec_of(monitor: DriftMonitor) -> dict[str, Any]:
    """A monitor as the spec that would create it."""
    return {
        "name": monitor.name,
        "model": monitor.model_ref,
        "window": monitor.window,
        "schedule_interval_s": monitor.schedule_interval_s,
        "schedule_cron": monitor.schedule_cron,
        "config": monitor.config,
        "enabled": monitor.enabled,
        "description": monitor.description,
    }


def create_check(
    session: Session, registry: ModelRegistry, name: str, actor: str, *, reason: str = ""
) -> Job:
    """Pin the monitor's model version and window, create the check job and audit it.

    Nothing is sent: the caller commits, then calls :func:`enqueue_check`. Raises NotFoundError
    when the model reference no longer resolves or the version has no reference profile,
    InvalidInputError when the window cannot be read.
    """
    actor = _actor(actor)
    monitor = get_monitor(session, name)
    resolved = registry.resolve(monitor.model_ref)
    window = validated(WindowSpec, monitor.window, "window")
    config = validated(MonitorConfig, monitor.config, "monitor config")
    profile = profile_store.get_reference_profile(session, resolved.name, resolved.version)
    plan = plan_window(
        session,
        window,
        model_name=resolved.name,
        model_version=resolved.version,
        partition_rows=config.partition_rows,
        now=utcnow(),
    )
    if plan.source == "job_profile":
        mode = CheckMode.JOB_PROFILE
    elif len(plan.partitions) > 1:
        mode = CheckMode.DISTRIBUTED
    else:
        mode = CheckMode.IN_PROCESS
    params = {
        "monitor_id": monitor.id,
        "monitor_name": monitor.name,
        "model_name": resolved.name,
        "model_version": resolved.version,
        "profile": {
            "id": profile.id,
            "artifact_uri": profile.artifact_uri,
            "rows": profile.rows,
            "columns": profile.columns,
            "updated_at": profile.updated_at.isoformat(),
        },
        "window": monitor.window,
        "plan": plan.as_json(),
        "config": monitor.config,
        "mode": mode.value,
    }
    chunk_bounds = plan.partitions if mode is CheckMode.DISTRIBUTED else []
    job = create_job(
        session,
        kind=JOB_DRIFT_CHECK,
        params=params,
        submitted_by=actor,
        chunk_bounds=chunk_bounds,
    )
    record_audit(
        session,
        actor=actor,
        action="monitor.run",
        target=monitor_target(monitor.name),
        reason=reason or f"drift check of {resolved.model_uri}",
        details={
            "job_id": job.id,
            "model_uri": resolved.model_uri,
            "mode": mode.value,
            "window_rows": plan.rows,
            "partitions": len(plan.partitions),
        },
    )
    return job


def enqueue_check(db: Database, sender: TaskSender, job: Job) -> None:
    """Send a committed check job to the monitoring queue.

    If the broker refuses it, the job is marked failed (in a transaction of its own: the one
    that created it has committed) and BrokerUnavailableError (a KeelwatchError, 503 on the
    API) says why.
    """
    try:
        sender.send_task(
            DRIFT_CHECK_START,
            kwargs=DriftCheckPayload(job_id=job.id).model_dump(),
            queue=QUEUE_MONITORING,
            # Nobody waits on the Celery result (the job row is the truth): no subscription.
            ignore_result=True,
        )
    except Exception as exc:
        # 503 on the API; only the error's type: a broker error's text may name hosts.
        message = (
            f"could not enqueue the drift check: the broker is unreachable "
            f"({type(exc).__name__}); run the monitor again once the broker is back"
        )
        with db.session() as session:
            finish_job(session, job.id, status=JobStatus.FAILED, error=message)
        raise BrokerUnavailableError(f"job {job.id}: {message}") from exc


def submit_check(
    db: Database,
    sender: TaskSender,
    registry: ModelRegistry,
    name: str,
    actor: str,
    *,
    reason: str = "",
) -> Job:
    """What an entry point does to run a check now: create it in one transaction, commit, and
    only then enqueue it."""
    with db.session() as session:
        job = create_check(session, registry, name, actor, reason=reason)
    enqueue_check(db, sender, job)
    return job


@dataclass(frozen=True)
class DispatchOutcome:
    """What one beat tick did: jobs submitted per monitor, and monitors that could not run."""

    submitted: dict[str, str]
    failed: dict[str, str]


def due_monitors(session: Session, now: datetime | None = None) -> list[DriftMonitor]:
    """Enabled monitors whose schedule says they should run now."""
    now = now or utcnow()
    monitors = monitor_store.list_monitors(session, enabled=True)
    last = monitor_store.last_started_at(session, check_job_kind=JOB_DRIFT_CHECK)
    return [
        monitor
        for monitor in monitors
        if is_due(
            now=now,
            last_started=last.get(monitor.id),
            created_at=monitor.created_at,
            interval_s=monitor.schedule_interval_s,
            cron=monitor.schedule_cron,
        )
    ]


def dispatch_due(
    db: Database,
    sender: TaskSender,
    registry: ModelRegistry,
    actor: str = "beat",
    now: datetime | None = None,
) -> DispatchOutcome:
    """Submit a check for every due monitor (a pending or running check counts as started, so a
    monitor is never enqueued twice for one due period).

    Each check commits on its own before it is enqueued, so one monitor that cannot run does not
    hold back the others.
    """
    submitted: dict[str, str] = {}
    failed: dict[str, str] = {}
    with db.session() as session:
        due = due_monitors(session, now)
    for monitor in due:
        try:
            submitted[monitor.name] = submit_check(
                db, sender, registry, monitor.name, actor, reason="scheduled drift check"
            ).id
        except KeelwatchError as exc:
            failed[monitor.name] = str(exc)
    return DispatchOutcome(submitted, failed)


def _check_window_source(session: Session, window: WindowSpec) -> None:
    if window.kind == "dataset":
        from keelwatch.inference.dataset import inspect_input

        assert window.uri is not None
        inspect_input(window.uri)
    elif window.kind == "job":
        from keelwatch.storage.jobs import get_job

        assert window.job_id is not None
        get_job(session, window.job_id)


def _actor(actor: str) -> str:
    if not actor or not actor.strip():
        raise InvalidInputError("actor must not be empty")
    return actor.strip()
