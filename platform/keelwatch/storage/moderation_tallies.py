"""Moderation tallies: the decisions of each moderated batch, and their sums over a window.

Every function takes the caller's session and never commits. A tally is unique per
(source, direction): :func:`save_tally` inserts it, or replaces the stored counts of a batch
moderated again (a rerun chunk), and says which it did, so callers count a batch once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from keelwatch.entities.moderation import ModerationTally
from keelwatch.storage.models import ModerationTallyRow

#: Decisions with a count column, least to most severe.
DECISIONS = ("allow", "redact", "review", "block")
#: Tally rows read per page when summing category counts.
SUM_PAGE = 5_000

SaveOutcome = Literal["inserted", "replaced", "unchanged"]


@dataclass(frozen=True)
class TallyTotals:
    """Sums of the tallies of one model version and direction over a window."""

    model_name: str
    model_version: str
    direction: str
    batches: int
    texts: int
    decisions: dict[str, int] = field(default_factory=dict)  # decision -> texts
    categories: dict[str, dict[str, int]] = field(default_factory=dict)
    first_at: datetime | None = None
    last_at: datetime | None = None


def save_tally(session: Session, tally: ModerationTally, *, now: datetime) -> SaveOutcome:
    """Store ``tally`` under its (source, direction): ``inserted`` when new, ``replaced`` when
    the stored counts differed (they are overwritten, the first ``created_at`` kept),
    ``unchanged`` when the same counts were already stored (a rerun of the same batch)."""
    values = _count_values(tally)
    existing = _find_row(session, tally.source, tally.direction, for_update=True)
    if existing is None:
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = (
            insert(ModerationTallyRow)
            .values(
                source=tally.source,
                direction=tally.direction,
                model_name=tally.model_name,
                model_version=tally.model_version,
                created_at=tally.created_at or now,
                updated_at=now,
                **values,
            )
            .on_conflict_do_nothing(index_elements=["source", "direction"])
            .returning(ModerationTallyRow.id)
        )
        if session.execute(stmt).scalar_one_or_none() is not None:
            return "inserted"
        # A concurrent run of the same batch inserted it first: compare with what it stored.
        existing = _find_row(session, tally.source, tally.direction, for_update=True)
        if existing is None:  # pragma: no cover - the conflicting row cannot vanish mid-statement
            raise RuntimeError("moderation tally vanished during its insert")
    if _same_counts(existing, values, tally):
        return "unchanged"
    session.execute(
        update(ModerationTallyRow)
        .where(ModerationTallyRow.id == existing.id)
        .values(
            model_name=tally.model_name,
            model_version=tally.model_version,
            updated_at=now,
            **values,
        )
    )
    return "replaced"


def get_tally(session: Session, source: str, direction: str) -> ModerationTally | None:
    """The stored tally of one batch and direction, or None."""
    row = _find_row(session, source, direction, for_update=False)
    return _to_tally(row) if row is not None else None


def list_tallies(
    session: Session,
    *,
    model_name: str | None = None,
    model_version: str | None = None,
    direction: str | None = None,
    source_prefix: str | None = None,
    since: datetime | None = None,
    limit: int = 1_000,
) -> list[ModerationTally]:
    """Stored tallies, newest first (by ``created_at``, then id)."""
    query = select(ModerationTallyRow)
    if model_name is not None:
        query = query.where(ModerationTallyRow.model_name == model_name)
    if model_version is not None:
        query = query.where(ModerationTallyRow.model_version == model_version)
    if direction is not None:
        query = query.where(ModerationTallyRow.direction == direction)
    if source_prefix is not None:
        query = query.where(ModerationTallyRow.source.startswith(source_prefix, autoescape=True))
    if since is not None:
        query = query.where(ModerationTallyRow.created_at >= since)
    query = query.order_by(
        ModerationTallyRow.created_at.desc(), ModerationTallyRow.id.desc()
    ).limit(limit)
    return [_to_tally(row) for row in session.scalars(query)]


def sum_tallies(
    session: Session,
    *,
    since: datetime,
    until: datetime | None = None,
    model_name: str | None = None,
    model_version: str | None = None,
    direction: str | None = None,
    page: int = SUM_PAGE,
) -> list[TallyTotals]:
    """Per (model, version, direction): the tallies created in ``[since, until)`` summed,
    ordered by model, version, direction. Decision counts are summed in SQL; category counts
    are read ``page`` rows at a time and summed here."""
    filters = [ModerationTallyRow.created_at >= since]
    if until is not None:
        filters.append(ModerationTallyRow.created_at < until)
    if model_name is not None:
        filters.append(ModerationTallyRow.model_name == model_name)
    if model_version is not None:
        filters.append(ModerationTallyRow.model_version == model_version)
    if direction is not None:
        filters.append(ModerationTallyRow.direction == direction)
    key_columns = (
        ModerationTallyRow.model_name,
        ModerationTallyRow.model_version,
        ModerationTallyRow.direction,
    )
    sums = session.execute(
        select(
            *key_columns,
            func.count(),
            func.sum(ModerationTallyRow.texts),
            func.sum(ModerationTallyRow.allow_count),
            func.sum(ModerationTallyRow.redact_count),
            func.sum(ModerationTallyRow.review_count),
            func.sum(ModerationTallyRow.block_count),
            func.min(ModerationTallyRow.created_at),
            func.max(ModerationTallyRow.created_at),
        )
        .where(*filters)
        .group_by(*key_columns)
        .order_by(*key_columns)
    ).all()
    categories: dict[tuple[str, str, str], dict[str, dict[str, int]]] = {}
    after: int | None = None
    while True:
        query = (
            select(ModerationTallyRow.id, *key_columns, ModerationTallyRow.categories)
            .where(*filters)
            .order_by(ModerationTallyRow.id)
            .limit(page)
        )
        if after is not None:
            query = query.where(ModerationTallyRow.id > after)
        rows = session.execute(query).all()
        for row_id, name, version, direction_, counts in rows:
            after = row_id
            merged = categories.setdefault((name, version, direction_), {})
            for category, by_decision in (counts or {}).items():
                target = merged.setdefault(category, {})
                for decision, count in by_decision.items():
                    target[decision] = target.get(decision, 0) + int(count)
        if len(rows) < page:
            break
    out: list[TallyTotals] = []
    for name, version, direction_, batches, texts, *counts, first_at, last_at in sums:
        out.append(
            TallyTotals(
                model_name=name,
                model_version=version,
                direction=direction_,
                batches=int(batches),
                texts=int(texts or 0),
                decisions={
                    decision: int(count or 0)
                    for decision, count in zip(DECISIONS, counts, strict=True)
                },
                categories=categories.get((name, version, direction_), {}),
                first_at=first_at,
                last_at=last_at,
            )
        )
    return out


# ----------------------------------------------------------------------------- internals


def _find_row(
    session: Session, source: str, direction: str, *, for_update: bool
) -> ModerationTallyRow | None:
    query = select(ModerationTallyRow).where(
        ModerationTallyRow.source == source, ModerationTallyRow.direction == direction
    )
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def _count_values(tally: ModerationTally) -> dict[str, Any]:
    unknown = set(tally.decisions) - set(DECISIONS)
    if unknown:
        raise ValueError(f"unknown moderation decision(s) {sorted(unknown)}")
    return {
        "texts": tally.texts,
        "allow_count": tally.decisions.get("allow", 0),
        "redact_count": tally.decisions.get("redact", 0),
        "review_count": tally.decisions.get("review", 0),
        "block_count": tally.decisions.get("block", 0),
        "categories": {c: dict(d) for c, d in tally.categories.items()},
        "detail": dict(tally.detail),
    }


def _same_counts(
    row: ModerationTallyRow, values: Mapping[str, Any], tally: ModerationTally
) -> bool:
    return (
        row.model_name == tally.model_name
        and row.model_version == tally.model_version
        and all(getattr(row, key) == value for key, value in values.items())
    )


def _to_tally(row: ModerationTallyRow) -> ModerationTally:
    return ModerationTally(
        model_name=row.model_name,
        model_version=row.model_version,
        direction=row.direction,
        source=row.source,
        texts=row.texts,
        decisions={
            "allow": row.allow_count,
            "redact": row.redact_count,
            "review": row.review_count,
            "block": row.block_count,
        },
        categories={c: dict(d) for c, d in (row.categories or {}).items()},
        created_at=row.created_at,
        detail=dict(row.detail or {}),
    )
