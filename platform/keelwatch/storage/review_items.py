"""The human review queue's rows: texts a person approves or rejects.

Every function takes the caller's session and never commits. State changes are single
conditional UPDATEs (``... WHERE id = ? AND <the state allows it>``) whose row count says
whether this caller won, so two reviewers acting at once never both succeed; the oldest-first
pick of :func:`claim_next` additionally uses ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so racing
reviewers take different items instead of queueing behind one row lock.

A claim lapses after ``claim_timeout_s`` seconds without a decision: the item is claimable
again (its stored status stays ``claimed`` until someone claims it).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from keelwatch.entities.moderation import ReviewFinding, ReviewItem, ReviewStatus
from keelwatch.storage.models import ReviewItemRow

#: Statuses a reviewer can claim from (a lapsed claim too, see :func:`claimable`).
OPEN_STATUSES = (ReviewStatus.PENDING.value, ReviewStatus.APPEALED.value)
DECIDED_STATUSES = (ReviewStatus.APPROVED.value, ReviewStatus.REJECTED.value)
#: Rows :func:`claim_next` tries on PostgreSQL before giving up (a locked row is skipped, so
#: the conditional UPDATE fails only when the row changed between the pick and the claim).
CLAIM_ATTEMPTS = 8
EXPORT_PAGE = 1_000


@dataclass(frozen=True)
class NewReviewItem:
    """What :func:`insert_item` stores (already reduced to what a reviewer may see)."""

    source_key: str
    model_name: str
    model_version: str
    direction: str
    text: str
    findings: Sequence[Mapping[str, Any]]
    categories: Sequence[str]
    reasons: Sequence[str]
    created_at: datetime


def insert_item(session: Session, item: NewReviewItem) -> ReviewItem | None:
    """Insert a pending item unless its ``source_key`` is stored; the new item, or None.

    ``INSERT ... ON CONFLICT (source_key) DO NOTHING RETURNING id``: two writers enqueueing the
    same source at once store one row, and only one of them gets it back.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(ReviewItemRow)
        .values(
            source_key=item.source_key,
            status=ReviewStatus.PENDING.value,
            model_name=item.model_name,
            model_version=item.model_version,
            direction=item.direction,
            text=item.text,
            findings=[dict(f) for f in item.findings],
            categories=list(item.categories),
            reasons=list(item.reasons),
            created_at=item.created_at,
            decision_reason="",
            labels=[],
            appeal_reason="",
        )
        .on_conflict_do_nothing(index_elements=["source_key"])
        .returning(ReviewItemRow.id)
    )
    new_id = session.execute(stmt).scalar()
    if new_id is None:
        return None
    return get_item(session, int(new_id))


def get_item(session: Session, item_id: int) -> ReviewItem | None:
    """One item, or None."""
    row = session.execute(
        select(ReviewItemRow)
        .where(ReviewItemRow.id == item_id)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    return None if row is None else _to_item(row)


def list_items(
    session: Session,
    *,
    status: ReviewStatus | None = None,
    model_name: str | None = None,
    claimed_by: str | None = None,
    after_id: int | None = None,
    limit: int = 50,
) -> list[ReviewItem]:
    """Items in queue order (oldest first, by id), after ``after_id``, at most ``limit``."""
    query = select(ReviewItemRow).order_by(ReviewItemRow.id).limit(limit)
    if claimed_by is not None:
        query = query.where(ReviewItemRow.claimed_by == claimed_by)
    if status is not None:
        query = query.where(ReviewItemRow.status == status.value)
    if model_name is not None:
        query = query.where(ReviewItemRow.model_name == model_name)
    if after_id is not None:
        query = query.where(ReviewItemRow.id > after_id)
    return [_to_item(row) for row in session.scalars(query)]


def claimable(reviewer: str, cutoff: datetime) -> ColumnElement[bool]:
    """The rows ``reviewer`` may claim: open ones, lapsed claims (claimed at or before
    ``cutoff``) and their own live claim; never an appealed item they decided themselves."""
    return and_(
        or_(
            ReviewItemRow.status.in_(OPEN_STATUSES),
            and_(
                ReviewItemRow.status == ReviewStatus.CLAIMED.value,
                or_(ReviewItemRow.claimed_at <= cutoff, ReviewItemRow.claimed_by == reviewer),
            ),
        ),
        or_(
            ReviewItemRow.appealed_at.is_(None),
            ReviewItemRow.decided_by.is_(None),
            ReviewItemRow.decided_by != reviewer,
        ),
    )


def claim(
    session: Session, item_id: int, *, reviewer: str, now: datetime, claim_timeout_s: float
) -> bool:
    """Claim one item for ``reviewer`` when :func:`claimable`; whether this call did."""
    cutoff = now - timedelta(seconds=claim_timeout_s)
    result = session.execute(
        update(ReviewItemRow)
        .where(ReviewItemRow.id == item_id, claimable(reviewer, cutoff))
        .values(status=ReviewStatus.CLAIMED.value, claimed_by=reviewer, claimed_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


def claim_next(
    session: Session,
    *,
    reviewer: str,
    now: datetime,
    claim_timeout_s: float,
    model_name: str | None = None,
) -> int | None:
    """Claim the oldest item ``reviewer`` may claim; its id, or None when there is none.

    PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1`` picks a row no concurrent
    transaction holds, then the conditional UPDATE claims it (a row count of 0, when the
    claim lapsed rules changed in between, tries the next one). SQLite (one writer at a time):
    one statement, ``UPDATE ... WHERE id = (SELECT the oldest claimable id) RETURNING id``,
    which holds the write lock from the pick to the claim.
    """
    cutoff = now - timedelta(seconds=claim_timeout_s)
    condition = claimable(reviewer, cutoff)
    if model_name is not None:
        condition = and_(condition, ReviewItemRow.model_name == model_name)
    if session.get_bind().dialect.name != "postgresql":
        oldest = (
            select(ReviewItemRow.id)
            .where(condition)
            .order_by(ReviewItemRow.id)
            .limit(1)
            .scalar_subquery()
        )
        claimed_id = session.execute(
            update(ReviewItemRow)
            .where(ReviewItemRow.id == oldest)
            .values(status=ReviewStatus.CLAIMED.value, claimed_by=reviewer, claimed_at=now)
            .returning(ReviewItemRow.id)
            .execution_options(synchronize_session=False)
        ).scalar()
        return None if claimed_id is None else int(claimed_id)
    for _ in range(CLAIM_ATTEMPTS):
        picked = session.scalar(
            select(ReviewItemRow.id)
            .where(condition)
            .order_by(ReviewItemRow.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if picked is None:
            return None
        if claim(session, int(picked), reviewer=reviewer, now=now, claim_timeout_s=claim_timeout_s):
            return int(picked)
    return None


def decide(
    session: Session,
    item_id: int,
    *,
    reviewer: str,
    status: ReviewStatus,
    reason: str,
    labels: Sequence[str],
    now: datetime,
) -> bool:
    """Record ``reviewer``'s decision on an item they hold; whether this call did (False: not
    claimed by them)."""
    if not status.decided:
        raise ValueError(f"{status.value} is not a decision")
    result = session.execute(
        update(ReviewItemRow)
        .where(
            ReviewItemRow.id == item_id,
            ReviewItemRow.status == ReviewStatus.CLAIMED.value,
            ReviewItemRow.claimed_by == reviewer,
        )
        .values(
            status=status.value,
            decided_by=reviewer,
            decided_at=now,
            decision_reason=reason,
            labels=list(labels),
            claimed_by=None,
            claimed_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


def appeal(session: Session, item_id: int, *, actor: str, reason: str, now: datetime) -> bool:
    """Put a decided item back in the queue as appealed; whether this call did (False: not
    decided). The previous decision stays on the row until the next one replaces it."""
    result = session.execute(
        update(ReviewItemRow)
        .where(ReviewItemRow.id == item_id, ReviewItemRow.status.in_(DECIDED_STATUSES))
        .values(
            status=ReviewStatus.APPEALED.value,
            appealed_by=actor,
            appealed_at=now,
            appeal_reason=reason,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


def decided_items(
    session: Session,
    *,
    since: datetime | None = None,
    model_name: str | None = None,
    page: int = EXPORT_PAGE,
) -> Iterator[ReviewItem]:
    """Approved and rejected items (not appealed ones), by id, read ``page`` rows at a time."""
    after = 0
    while True:
        query = (
            select(ReviewItemRow)
            .where(ReviewItemRow.status.in_(DECIDED_STATUSES), ReviewItemRow.id > after)
            .order_by(ReviewItemRow.id)
            .limit(page)
        )
        if since is not None:
            query = query.where(ReviewItemRow.decided_at >= since)
        if model_name is not None:
            query = query.where(ReviewItemRow.model_name == model_name)
        rows = list(session.scalars(query))
        for row in rows:
            yield _to_item(row)
        if len(rows) < page:
            return
        after = rows[-1].id


def count_by_status(session: Session) -> dict[str, int]:
    """Items per stored status (every status, zero when none)."""
    counts = {status.value: 0 for status in ReviewStatus}
    query = select(ReviewItemRow.status, func.count()).group_by(ReviewItemRow.status)
    for status, count in session.execute(query):
        counts[str(status)] = int(count)
    return counts


def _to_item(row: ReviewItemRow) -> ReviewItem:
    return ReviewItem(
        id=row.id,
        source_key=row.source_key,
        status=ReviewStatus(row.status),
        model_name=row.model_name,
        model_version=row.model_version,
        direction=row.direction,
        text=row.text,
        findings=tuple(
            ReviewFinding(
                category=str(f["category"]),
                start=int(f["start"]),
                end=int(f["end"]),
                score=float(f["score"]),
                source=str(f["source"]),
                kind=str(f.get("kind", "")),
            )
            for f in row.findings or ()
        ),
        categories=tuple(row.categories or ()),
        reasons=tuple(row.reasons or ()),
        created_at=row.created_at,
        claimed_by=row.claimed_by,
        claimed_at=row.claimed_at,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        decision_reason=row.decision_reason,
        appeal_reason=row.appeal_reason,
        appealed_by=row.appealed_by,
        appealed_at=row.appealed_at,
        labels=tuple(row.labels or ()),
    )
