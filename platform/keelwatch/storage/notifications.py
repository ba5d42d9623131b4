"""Notifiers, the planner's group states, the notification log and dead letters.

Every function takes the caller's session and never commits, so a dispatcher stores the group
states and the log rows of one tick in one transaction and enqueues only after the commit. The
notification log's UNIQUE ``idempotency_key`` is the guard against double pages:
:func:`insert_notifications` inserts with ``ON CONFLICT DO NOTHING`` and returns only the rows
this call created, so of two dispatchers that planned the same notification exactly one
enqueues its delivery.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from keelwatch.entities.notifications import (
    DeadLetter,
    DeliveryStatus,
    NotificationRecord,
    NotificationState,
    NotifierTarget,
)
from keelwatch.errors import ConflictError, NotFoundError
from keelwatch.storage.models import (
    NotificationDeadLetterRow,
    NotificationGroupRow,
    NotificationLogRow,
    NotifierRow,
)

# --------------------------------------------------------------------------- notifiers


def _to_target(row: NotifierRow) -> NotifierTarget:
    return NotifierTarget(
        name=row.name,
        type=row.type,
        config=dict(row.config),
        route=dict(row.route),
        created_by=row.created_by,
        created_at=row.created_at,
    )


def add_notifier(
    session: Session,
    *,
    name: str,
    type: str,
    config: Mapping[str, Any],
    route: Mapping[str, Any],
    created_by: str,
) -> NotifierTarget:
    """Store a new notifier; :class:`ConflictError` when the name is taken."""
    if session.scalar(select(NotifierRow.id).where(NotifierRow.name == name)) is not None:
        raise ConflictError(f"notifier {name!r} already exists")
    row = NotifierRow(
        name=name, type=type, config=dict(config), route=dict(route), created_by=created_by
    )
    session.add(row)
    session.flush()
    return _to_target(row)


def get_notifier(session: Session, name: str) -> NotifierTarget:
    """The notifier ``name``; :class:`NotFoundError` when there is none."""
    row = session.scalar(select(NotifierRow).where(NotifierRow.name == name))
    if row is None:
        raise NotFoundError(f"no notifier named {name!r}")
    return _to_target(row)


def list_notifiers(session: Session) -> list[NotifierTarget]:
    """Every notifier, by name."""
    return [_to_target(r) for r in session.scalars(select(NotifierRow).order_by(NotifierRow.name))]


def delete_notifier(session: Session, name: str) -> None:
    """Delete notifier ``name`` and its group states; :class:`NotFoundError` when absent."""
    deleted = session.execute(delete(NotifierRow).where(NotifierRow.name == name))
    if not deleted.rowcount:  # type: ignore[attr-defined]
        raise NotFoundError(f"no notifier named {name!r}")
    session.execute(delete(NotificationGroupRow).where(NotificationGroupRow.receiver == name))


# --------------------------------------------------------------------------- group states


def load_group_states(session: Session, receiver: str) -> dict[str, dict[str, Any]]:
    """The stored group states of ``receiver`` by group key (JSON, see ``alerting.delivery``)."""
    rows = session.scalars(
        select(NotificationGroupRow).where(NotificationGroupRow.receiver == receiver)
    )
    return {row.group_key: dict(row.state) for row in rows}


def save_group_states(
    session: Session, receiver: str, states: Mapping[str, Mapping[str, Any]], now: datetime
) -> None:
    """Upsert the group states of ``receiver`` (two dispatchers write the same values)."""
    if not states:
        return
    values = [
        {"receiver": receiver, "group_key": key, "state": dict(state), "updated_at": now}
        for key, state in states.items()
    ]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(NotificationGroupRow).values(values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["receiver", "group_key"],
        set_={"state": stmt.excluded.state, "updated_at": stmt.excluded.updated_at},
    )
    session.execute(stmt)


# --------------------------------------------------------------------------- notification log


def _to_record(row: NotificationLogRow) -> NotificationRecord:
    return NotificationRecord(
        id=row.id,
        idempotency_key=row.idempotency_key,
        notifier=row.notifier,
        group_key=row.group_key,
        state=NotificationState(row.state),
        sequence=row.sequence,
        payload=dict(row.payload),
        status=DeliveryStatus(row.status),
        attempts=row.attempts,
        created_at=row.created_at,
        last_error=row.last_error,
        sent_at=row.sent_at,
    )


def insert_notifications(session: Session, rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """Insert log rows (``idempotency_key``, ``notifier``, ``group_key``, ``state``,
    ``sequence``, ``payload``, ``created_at``) unless their key exists; ids of the new ones.

    One statement per row with ``ON CONFLICT DO NOTHING ... RETURNING id``: a key already there
    (another dispatcher won) returns nothing, so the caller enqueues only what it created.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    created: list[int] = []
    for row in rows:
        stmt = (
            insert(NotificationLogRow)
            .values(status=DeliveryStatus.PENDING.value, attempts=0, **dict(row))
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
            .returning(NotificationLogRow.id)
        )
        new_id = session.execute(stmt).scalar()
        if new_id is not None:
            created.append(int(new_id))
    return created


def get_notification(session: Session, log_id: int) -> NotificationRecord:
    """Log row ``log_id``; :class:`NotFoundError` when there is none."""
    row = session.get(NotificationLogRow, log_id)
    if row is None:
        raise NotFoundError(f"no notification log entry {log_id}")
    return _to_record(row)


def list_notifications(
    session: Session, *, status: DeliveryStatus | None = None, limit: int = 100
) -> list[NotificationRecord]:
    """The newest log rows first, optionally of one status."""
    query = select(NotificationLogRow).order_by(NotificationLogRow.id.desc()).limit(limit)
    if status is not None:
        query = query.where(NotificationLogRow.status == status.value)
    return [_to_record(r) for r in session.scalars(query)]


def mark_sent(session: Session, log_id: int, at: datetime, attempts: int) -> bool:
    """Mark a pending row sent; False when it was not pending (another delivery finished it)."""
    result = session.execute(
        update(NotificationLogRow)
        .where(
            NotificationLogRow.id == log_id,
            NotificationLogRow.status == DeliveryStatus.PENDING.value,
        )
        .values(status=DeliveryStatus.SENT.value, sent_at=at, attempts=attempts, last_error=None)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def record_failed_attempt(session: Session, log_id: int, attempts: int, error: str) -> None:
    """Count a failed attempt and keep its (scrubbed) error; the row stays pending."""
    session.execute(
        update(NotificationLogRow)
        .where(NotificationLogRow.id == log_id)
        .values(attempts=attempts, last_error=error)
    )


def dead_letter(
    session: Session, log_id: int, *, reason: str, attempts: int, at: datetime
) -> DeadLetter | None:
    """Give up on a pending row: mark it dead and add one dead letter.

    Returns None (and adds nothing) when the row was no longer pending, so a redelivered
    failing task never writes a second dead letter.
    """
    result = session.execute(
        update(NotificationLogRow)
        .where(
            NotificationLogRow.id == log_id,
            NotificationLogRow.status == DeliveryStatus.PENDING.value,
        )
        .values(status=DeliveryStatus.DEAD.value, attempts=attempts, last_error=reason)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return None
    notifier = session.scalar(
        select(NotificationLogRow.notifier).where(NotificationLogRow.id == log_id)
    )
    row = NotificationDeadLetterRow(
        log_id=log_id, notifier=notifier or "", reason=reason, failed_at=at
    )
    session.add(row)
    session.flush()
    return _to_dead_letter(row)


# --------------------------------------------------------------------------- dead letters


def _to_dead_letter(row: NotificationDeadLetterRow) -> DeadLetter:
    return DeadLetter(
        id=row.id,
        log_id=row.log_id,
        notifier=row.notifier,
        reason=row.reason,
        failed_at=row.failed_at,
        replayed_at=row.replayed_at,
    )


def list_dead_letters(session: Session, *, include_replayed: bool = False) -> list[DeadLetter]:
    """Dead letters, oldest first; replayed ones only with ``include_replayed``."""
    query = select(NotificationDeadLetterRow).order_by(NotificationDeadLetterRow.id)
    if not include_replayed:
        query = query.where(NotificationDeadLetterRow.replayed_at.is_(None))
    return [_to_dead_letter(r) for r in session.scalars(query)]


def replay_dead_letter(session: Session, dead_letter_id: int, at: datetime) -> DeadLetter:
    """Mark dead letter ``dead_letter_id`` replayed and put its log row back to pending with
    its attempts reset; the caller enqueues the delivery after the commit.

    :class:`NotFoundError` for an unknown id; :class:`ConflictError` when it was replayed
    already (replay it again from the new dead letter if that delivery failed too).
    """
    row = session.get(NotificationDeadLetterRow, dead_letter_id)
    if row is None:
        raise NotFoundError(f"no dead letter {dead_letter_id}")
    claimed = session.execute(
        update(NotificationDeadLetterRow)
        .where(
            NotificationDeadLetterRow.id == dead_letter_id,
            NotificationDeadLetterRow.replayed_at.is_(None),
        )
        .values(replayed_at=at)
    )
    if not claimed.rowcount:  # type: ignore[attr-defined]
        raise ConflictError(f"dead letter {dead_letter_id} was replayed already")
    session.execute(
        update(NotificationLogRow)
        .where(NotificationLogRow.id == row.log_id)
        .values(status=DeliveryStatus.PENDING.value, attempts=0)
    )
    session.refresh(row)
    return _to_dead_letter(row)
