"""Notifiers, the planner's group states, the notification log and dead letters.

Every function takes the caller's session and never commits, so a dispatcher stores the group
states and the log rows of one tick in one transaction and enqueues only after the commit. The
notification log's UNIQUE ``idempotency_key`` is the guard against double pages:
:func:`insert_notifications` inserts with ``ON CONFLICT DO NOTHING`` and returns only the rows
this call created, so of two dispatchers that planned the same notification exactly one
enqueues its delivery.

A delivery claims its row before sending (:func:`claim_notification`, a conditional UPDATE
pending → sending that stamps ``claimed_at``), so two deliveries of one row (a redelivered
message, a sweeper's re-enqueue) send it once; a claim older than the lease is taken over,
because the worker that made it died. :func:`requeue_stale_notifications` finds the rows whose
delivery was lost (the enqueue after the commit, or the worker holding the claim).

Notifier secrets are encrypted at rest by a :class:`ConfigSecrets` the caller passes in
(:class:`keelwatch.secrets_at_rest.NotifierSecrets`, built from settings by the entry point):
:func:`add_notifier` seals the config's secret fields before the row is written, and
:func:`get_notifier` / :func:`list_notifiers` open them. Without one, configs are written and
read as they are (encrypted values stay encrypted: enough for names and routes, never for
building a notifier).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from keelwatch.entities.notifications import (
    DeadLetter,
    DeliveryStatus,
    NotificationRecord,
    NotificationState,
    NotifierTarget,
)
from keelwatch.entities.time import utcnow
from keelwatch.errors import ConflictError, NotFoundError
from keelwatch.storage.models import (
    NotificationDeadLetterRow,
    NotificationGroupRow,
    NotificationLogRow,
    NotifierRow,
)

# --------------------------------------------------------------------------- notifiers


class ConfigSecrets(Protocol):
    """Encrypts a notifier config's secret fields for storage and decrypts them on the way
    out (a decryption failure raises an error naming the notifier)."""

    def seal(self, notifier: str, type_name: str, config: Mapping[str, Any]) -> dict[str, Any]:
        """The config as it is stored."""
        ...

    def open(self, notifier: str, type_name: str, config: Mapping[str, Any]) -> dict[str, Any]:
        """The config as it was given."""
        ...


def _to_target(row: NotifierRow, secrets: ConfigSecrets | None = None) -> NotifierTarget:
    config = dict(row.config)
    return NotifierTarget(
        name=row.name,
        type=row.type,
        config=secrets.open(row.name, row.type, config) if secrets is not None else config,
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
    secrets: ConfigSecrets | None = None,
) -> NotifierTarget:
    """Store a new notifier, its secret fields sealed by ``secrets``; :class:`ConflictError`
    when the name is taken. The returned target holds the config as given."""
    if session.scalar(select(NotifierRow.id).where(NotifierRow.name == name)) is not None:
        raise ConflictError(f"notifier {name!r} already exists")
    stored = secrets.seal(name, type, config) if secrets is not None else dict(config)
    row = NotifierRow(name=name, type=type, config=stored, route=dict(route), created_by=created_by)
    session.add(row)
    session.flush()
    return _to_target(row, secrets)


def get_notifier(
    session: Session, name: str, *, secrets: ConfigSecrets | None = None
) -> NotifierTarget:
    """The notifier ``name``, its secrets opened by ``secrets``; :class:`NotFoundError` when
    there is none."""
    row = session.scalar(select(NotifierRow).where(NotifierRow.name == name))
    if row is None:
        raise NotFoundError(f"no notifier named {name!r}")
    return _to_target(row, secrets)


def list_notifiers(
    session: Session, *, secrets: ConfigSecrets | None = None
) -> list[NotifierTarget]:
    """Every notifier, by name, its secrets opened by ``secrets`` (the first that cannot be
    opened raises)."""
    rows = session.scalars(select(NotifierRow).order_by(NotifierRow.name))
    return [_to_target(row, secrets) for row in rows]


def delete_notifier(session: Session, name: str) -> None:
    """Delete notifier ``name``; :class:`NotFoundError` when absent.

    Its groups are ended and forget what they told, but keep their sequence: a notification's
    idempotency key is (group key, state, sequence), and the notification log keeps the old
    sends, so a notifier created again under the same name must number its sends after them
    (restarting at 1 made every new send collide with an old log row and vanish unsent).
    """
    deleted = session.execute(delete(NotifierRow).where(NotifierRow.name == name))
    if not deleted.rowcount:  # type: ignore[attr-defined]
        raise NotFoundError(f"no notifier named {name!r}")
    ended = utcnow().isoformat()
    rows = session.scalars(
        select(NotificationGroupRow).where(NotificationGroupRow.receiver == name)
    )
    for row in rows:
        state = dict(row.state)
        state.update(
            ended_at=state.get("ended_at") or ended,
            notified_firing=[],
            notified_resolved=[],
            has_flushed=False,
            last_sent_at=None,
        )
        row.state = state


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
        claimed_at=row.claimed_at,
        next_attempt_at=row.next_attempt_at,
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


def claim_notification(
    session: Session, log_id: int, *, now: datetime, lease: timedelta
) -> NotificationRecord | None:
    """Claim row ``log_id`` for sending: pending → sending with ``claimed_at = now``.

    A row another delivery claimed less than ``lease`` ago is left alone (None); an older
    claim is taken over, its worker having died mid-send. None too when the row is sent or
    dead. Commit the claim before sending, so a concurrent delivery sees it.
    """
    claimable = or_(
        NotificationLogRow.status == DeliveryStatus.PENDING.value,
        and_(
            NotificationLogRow.status == DeliveryStatus.SENDING.value,
            or_(
                NotificationLogRow.claimed_at.is_(None),
                NotificationLogRow.claimed_at <= now - lease,
            ),
        ),
    )
    result = session.execute(
        update(NotificationLogRow)
        .where(NotificationLogRow.id == log_id, claimable)
        .values(status=DeliveryStatus.SENDING.value, claimed_at=now)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return None
    return get_notification(session, log_id)


def mark_sent(session: Session, log_id: int, at: datetime, attempts: int) -> bool:
    """Mark a claimed (or released) row sent; False when it was sent or dead already."""
    result = session.execute(
        update(NotificationLogRow)
        .where(
            NotificationLogRow.id == log_id,
            NotificationLogRow.status.in_(
                [DeliveryStatus.SENDING.value, DeliveryStatus.PENDING.value]
            ),
        )
        .values(
            status=DeliveryStatus.SENT.value,
            sent_at=at,
            attempts=attempts,
            last_error=None,
            next_attempt_at=None,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _held(log_id: int, claimed_at: datetime) -> Any:
    # The row is still this delivery's: a delivery that took over a stale claim owns it now.
    return and_(
        NotificationLogRow.id == log_id,
        NotificationLogRow.status == DeliveryStatus.SENDING.value,
        NotificationLogRow.claimed_at == claimed_at,
    )


def record_failed_attempt(
    session: Session,
    log_id: int,
    attempts: int,
    error: str,
    *,
    claimed_at: datetime,
    next_attempt_at: datetime,
) -> bool:
    """Count a failed attempt, keep its (scrubbed) error and release the claim: the row is
    pending again, due at ``next_attempt_at``. False when the claim was taken over."""
    result = session.execute(
        update(NotificationLogRow)
        .where(_held(log_id, claimed_at))
        .values(
            status=DeliveryStatus.PENDING.value,
            attempts=attempts,
            last_error=error,
            claimed_at=None,
            next_attempt_at=next_attempt_at,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def dead_letter(
    session: Session,
    log_id: int,
    *,
    reason: str,
    attempts: int,
    at: datetime,
    claimed_at: datetime,
) -> DeadLetter | None:
    """Give up on a row this delivery claimed (at ``claimed_at``): mark it dead and add one
    dead letter.

    Returns None (and adds nothing) when the row is no longer held by that claim, so a
    redelivered failing task never writes a second dead letter.
    """
    result = session.execute(
        update(NotificationLogRow)
        .where(_held(log_id, claimed_at))
        .values(
            status=DeliveryStatus.DEAD.value,
            attempts=attempts,
            last_error=reason,
            next_attempt_at=None,
        )
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


def requeue_stale_notifications(
    session: Session, *, now: datetime, grace: timedelta, lease: timedelta, limit: int = 500
) -> list[int]:
    """Ids of rows whose delivery was lost, marked so that the caller enqueues them (after
    its commit) and a concurrent sweeper does not.

    Lost: still ``pending`` ``grace`` after it was due (created, or due for its retry: the
    enqueue after the commit never happened, or the message is gone), or ``sending`` under a
    claim older than ``lease`` (the worker died mid-send; the claim is released). Each row is
    taken with a conditional UPDATE that pushes its due time to ``now``, so of two sweepers
    exactly one re-enqueues it, and the next sweep waits ``grace`` again.
    """
    due = func.coalesce(NotificationLogRow.next_attempt_at, NotificationLogRow.created_at)
    lost_pending = and_(
        NotificationLogRow.status == DeliveryStatus.PENDING.value, due <= now - grace
    )
    stale_claim = and_(
        NotificationLogRow.status == DeliveryStatus.SENDING.value,
        or_(
            NotificationLogRow.claimed_at.is_(None),
            NotificationLogRow.claimed_at <= now - lease,
        ),
    )
    candidates = session.scalars(
        select(NotificationLogRow.id)
        .where(or_(lost_pending, stale_claim))
        .order_by(NotificationLogRow.id)
        .limit(limit)
    ).all()
    taken: list[int] = []
    for log_id in candidates:
        result = session.execute(
            update(NotificationLogRow)
            .where(NotificationLogRow.id == log_id, or_(lost_pending, stale_claim))
            .values(status=DeliveryStatus.PENDING.value, claimed_at=None, next_attempt_at=now)
        )
        if result.rowcount:  # type: ignore[attr-defined]
            taken.append(int(log_id))
    return taken


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
        .values(
            status=DeliveryStatus.PENDING.value, attempts=0, claimed_at=None, next_attempt_at=None
        )
    )
    session.refresh(row)
    return _to_dead_letter(row)
