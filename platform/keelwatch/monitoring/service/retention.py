"""Retention: rows older than their table's policy (``settings.privacy.retention_days``, days
per table, 0 = keep forever) are deleted by a scheduled purge (task ``RETENTION_PURGE``, beat
every ``privacy.purge_interval_s``), by ``POST /privacy/purge`` and by ``keelwatch retention
purge``. ``GET /privacy/retention`` and ``keelwatch retention show`` say what each table would
lose now.

Deletes go in batches of ``batch_rows`` so that a huge table never holds one long lock: the
caller passes ``on_batch=session.commit`` to commit each batch (the scheduled purge, the API
and the CLI do), or nothing to purge in its one transaction. A purge is idempotent: run again,
it deletes what has aged since. Each purge that is not a dry run is audited (action
``retention.purge``, the actor, the days, cutoffs and counts per table; never row content).

Tables whose feature is not built yet in this deployment (no ORM class, no migration) are
reported ``available: false`` and skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from keelwatch.errors import InvalidInputError
from keelwatch.storage import retention as store
from keelwatch.storage.audit import record_audit

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

AUDIT_ACTION = "retention.purge"
AUDIT_TARGET = "retention"
#: Rows per delete statement (and per commit, with ``on_batch=session.commit``).
DEFAULT_BATCH_ROWS = 5_000
#: The longest retention accepted (100 years: beyond it, say 0 for "keep forever").
MAX_DAYS = 36_500


@dataclass(frozen=True)
class TableRetention:
    """One table's policy and what it means now: ``expired`` rows are older than ``cutoff``
    (None when ``days`` is 0: kept forever). ``available`` is false for a table this
    deployment does not have yet."""

    table: str
    days: int
    cutoff: datetime | None
    available: bool
    expired: int


def check_policy(retention_days: Mapping[str, int]) -> dict[str, int]:
    """The policy as ``{table: days}`` in :data:`~keelwatch.storage.retention.RETENTION_TABLES`
    order; InvalidInputError naming an unknown table or a bad number of days."""
    unknown = sorted(set(retention_days) - set(store.RETENTION_TABLES))
    if unknown:
        raise InvalidInputError(
            f"retention: unknown table(s) {', '.join(repr(t[:64]) for t in unknown[:5])}; "
            f"known: {', '.join(store.RETENTION_TABLES)}"
        )
    policy: dict[str, int] = {}
    for table in store.RETENTION_TABLES:
        if table not in retention_days:
            continue
        days = retention_days[table]
        if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= MAX_DAYS:
            raise InvalidInputError(
                f"retention of {table}: days must be a whole number from 0 (keep forever) "
                f"to {MAX_DAYS}"
            )
        policy[table] = days
    return policy


def retention_status(
    session: Session, retention_days: Mapping[str, int], *, now: datetime
) -> list[TableRetention]:
    """Each table of the policy with how many rows a purge now would delete."""
    _check_now(now)
    status: list[TableRetention] = []
    for table, days in check_policy(retention_days).items():
        available = store.table_available(session, table)
        if days == 0:
            status.append(TableRetention(table, 0, None, available, 0))
            continue
        cutoff = now - timedelta(days=days)
        expired = store.count_older_than(session, table, cutoff) if available else 0
        status.append(TableRetention(table, days, cutoff, available, expired))
    return status


def purge_expired(
    session: Session,
    retention_days: Mapping[str, int],
    *,
    now: datetime,
    actor: str,
    dry_run: bool = False,
    reason: str = "",
    batch_rows: int = DEFAULT_BATCH_ROWS,
    on_batch: Callable[[], None] | None = None,
) -> dict[str, int]:
    """Delete every row older than its table's retention; returns ``{table: rows deleted}``
    for each table of the policy (0 for kept-forever and unavailable tables).

    ``dry_run``: count instead, delete nothing, audit nothing. ``on_batch`` is called after
    each delete batch (``session.commit`` keeps locks short); the audit entry is written in
    the caller's last transaction.
    """
    if not actor or not actor.strip():
        raise InvalidInputError("a purge needs an actor")
    if batch_rows <= 0:
        raise InvalidInputError("batch_rows must be positive")
    _check_now(now)
    policy = check_policy(retention_days)
    if dry_run:
        return {s.table: s.expired for s in retention_status(session, policy, now=now)}
    deleted: dict[str, int] = {}
    cutoffs: dict[str, str] = {}
    for table, days in policy.items():
        deleted[table] = 0
        if days == 0 or not store.table_available(session, table):
            continue
        cutoff = now - timedelta(days=days)
        cutoffs[table] = cutoff.isoformat()
        while True:
            removed = store.delete_older_than(session, table, cutoff, limit=batch_rows)
            deleted[table] += removed
            if on_batch is not None and removed:
                on_batch()
            if removed < batch_rows:
                break
    record_audit(
        session,
        actor=actor.strip(),
        action=AUDIT_ACTION,
        target=AUDIT_TARGET,
        reason=reason,
        details={"deleted": deleted, "retention_days": policy, "cutoffs": cutoffs},
        at=now,
    )
    return deleted


def _check_now(now: datetime) -> None:
    if now.tzinfo is None:
        raise InvalidInputError("now must be timezone-aware")
