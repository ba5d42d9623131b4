"""Evaluation schedules, their firings, and the new-version watcher's watermarks.

Every function takes the caller's session and never commits. "At most once" is the database's
job: a firing is unique per (schedule, slot) and a watermark only moves by a conditional UPDATE
from the value the caller read, so two beat processes (or a beat and a webhook) never both win.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from keelwatch.entities.eval_schedules import EvalSchedule, ScheduleFiring, ScheduleKind
from keelwatch.storage.models import (
    EvalScheduleFiringRow,
    EvalScheduleRow,
    ModelVersionWatermarkRow,
)


def _to_schedule(row: EvalScheduleRow) -> EvalSchedule:
    return EvalSchedule(
        id=row.id,
        name=row.name,
        model=row.model,
        cron=row.cron,
        kind=ScheduleKind(row.kind),
        dataset=row.dataset,
        suites=tuple(row.suites or ()),
        window_s=row.window_s,
        enabled=row.enabled,
        armed_at=row.armed_at,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
        attributes=tuple(row.attributes or ()),
    )


def _to_firing(row: EvalScheduleFiringRow) -> ScheduleFiring:
    return ScheduleFiring(
        id=row.id,
        schedule_id=row.schedule_id,
        slot=row.slot,
        fired_at=row.fired_at,
        fired_by=row.fired_by,
        job_id=row.job_id,
        error=row.error,
    )


# ----------------------------------------------------------------------------- schedules


def find_schedule(session: Session, name: str) -> EvalSchedule | None:
    """The schedule called ``name``, or None."""
    row = session.scalars(select(EvalScheduleRow).where(EvalScheduleRow.name == name)).first()
    return _to_schedule(row) if row is not None else None


def insert_schedule(session: Session, *, actor: str, now: datetime, **fields: Any) -> EvalSchedule:
    """A new schedule (``fields``: name, model, cron, kind, dataset, suites, window_s,
    attributes, enabled); armed, created and updated at ``now``."""
    row = EvalScheduleRow(
        **fields,
        armed_at=now,
        created_by=actor,
        created_at=now,
        updated_by=actor,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    return _to_schedule(row)


def update_schedule(
    session: Session, name: str, *, actor: str, now: datetime, rearm: bool, **fields: Any
) -> EvalSchedule:
    """Replace the fields of schedule ``name`` (which must exist); ``rearm``: slots up to
    ``now`` no longer fire."""
    row = session.scalars(
        select(EvalScheduleRow).where(EvalScheduleRow.name == name).with_for_update()
    ).one()
    for key, value in fields.items():
        setattr(row, key, value)
    if rearm:
        row.armed_at = now
    row.updated_by = actor
    row.updated_at = now
    session.flush()
    return _to_schedule(row)


def delete_schedule(session: Session, schedule_id: int) -> None:
    """Delete a schedule and its firings (explicitly: SQLite does not enforce the cascade)."""
    session.execute(
        delete(EvalScheduleFiringRow).where(EvalScheduleFiringRow.schedule_id == schedule_id)
    )
    session.execute(delete(EvalScheduleRow).where(EvalScheduleRow.id == schedule_id))


def list_schedules(session: Session, *, enabled: bool | None = None) -> list[EvalSchedule]:
    """Every schedule by name (only the enabled or disabled ones when ``enabled`` is given)."""
    query = select(EvalScheduleRow).order_by(EvalScheduleRow.name)
    if enabled is not None:
        query = query.where(EvalScheduleRow.enabled == enabled)
    return [_to_schedule(row) for row in session.scalars(query)]


# ----------------------------------------------------------------------------- firings


def latest_slots(session: Session) -> dict[int, datetime]:
    """The newest fired slot of every schedule that has fired."""
    rows = session.execute(
        select(EvalScheduleFiringRow.schedule_id, func.max(EvalScheduleFiringRow.slot)).group_by(
            EvalScheduleFiringRow.schedule_id
        )
    )
    return {int(schedule_id): slot for schedule_id, slot in rows}


def insert_firing(
    session: Session, *, schedule_id: int, slot: datetime, actor: str, now: datetime
) -> int:
    """Claim ``slot`` of a schedule; flushes, so a second claim raises IntegrityError (at the
    flush, or on PostgreSQL once the first claim's transaction commits)."""
    row = EvalScheduleFiringRow(schedule_id=schedule_id, slot=slot, fired_at=now, fired_by=actor)
    session.add(row)
    session.flush()
    return row.id


def record_firing_outcome(
    session: Session, firing_id: int, *, job_id: str | None, error: str | None
) -> None:
    """What the firing submitted (the job or task id) or why it could not."""
    session.execute(
        update(EvalScheduleFiringRow)
        .where(EvalScheduleFiringRow.id == firing_id)
        .values(job_id=job_id, error=error)
    )


def list_firings(
    session: Session, *, schedule_ids: Sequence[int] | None = None, limit: int = 100
) -> list[ScheduleFiring]:
    """Firings, newest slot first (of ``schedule_ids`` only when given)."""
    query = select(EvalScheduleFiringRow).order_by(
        EvalScheduleFiringRow.slot.desc(), EvalScheduleFiringRow.id.desc()
    )
    if schedule_ids is not None:
        query = query.where(EvalScheduleFiringRow.schedule_id.in_(list(schedule_ids)))
    return [_to_firing(row) for row in session.scalars(query.limit(limit))]


# ----------------------------------------------------------------------------- watermarks


def version_watermarks(session: Session) -> dict[str, int]:
    """The highest version seen of every model the watcher has seen."""
    rows = session.execute(
        select(ModelVersionWatermarkRow.model_name, ModelVersionWatermarkRow.max_version)
    )
    return {str(name): int(version) for name, version in rows}


def insert_watermark(session: Session, model_name: str, version: int, now: datetime) -> None:
    """First sight of a model; flushes, so a concurrent first sight raises IntegrityError."""
    session.add(
        ModelVersionWatermarkRow(model_name=model_name, max_version=version, updated_at=now)
    )
    session.flush()


def advance_watermark(
    session: Session, model_name: str, *, seen: int, to: int, now: datetime
) -> bool:
    """Move a model's watermark from ``seen`` (what the caller read) to ``to``; False when
    another watcher moved it first (that one handles the versions in between)."""
    result = session.execute(
        update(ModelVersionWatermarkRow)
        .where(
            ModelVersionWatermarkRow.model_name == model_name,
            ModelVersionWatermarkRow.max_version == seen,
        )
        .values(max_version=to, updated_at=now)
    )
    return bool(getattr(result, "rowcount", 0) == 1)
