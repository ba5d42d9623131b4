"""Signal series: write a batch, read one series, read the latest value of each series, purge.

Every function takes the caller's session and never commits: a drift check writes its result
and its signals in one transaction, so a rule never sees signals of a result that was rolled
back. Label selection beyond an exact series (Alertmanager matchers) belongs to the rule engine;
here a series is found by its fingerprint, and :func:`latest_by_series` hands the engine the
newest point of every series of a name to match against.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from keelwatch.entities.signals import Signal, labels_fingerprint
from keelwatch.storage.models import SignalRow


def write_signals(session: Session, signals: Iterable[Signal]) -> int:
    """Append ``signals`` in the caller's transaction (one batched INSERT); returns how many."""
    rows = [
        {
            "name": s.name,
            "value": s.value,
            "labels": dict(s.labels),
            "fingerprint": s.fingerprint,
            "observed_at": s.observed_at,
            "source": s.source,
        }
        for s in signals
    ]
    if rows:
        session.execute(insert(SignalRow), rows)
    return len(rows)


def series(
    session: Session,
    name: str,
    *,
    labels: Mapping[str, str] | None = None,
    fingerprint: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
) -> list[Signal]:
    """One series, oldest first: signal ``name`` with exactly ``labels`` (or ``fingerprint``).

    ``since`` is inclusive and ``until`` exclusive; ``limit`` keeps the newest points.
    """
    key = _fingerprint(labels, fingerprint)
    query = select(SignalRow).where(SignalRow.name == name, SignalRow.fingerprint == key)
    if since is not None:
        query = query.where(SignalRow.observed_at >= since)
    if until is not None:
        query = query.where(SignalRow.observed_at < until)
    query = query.order_by(SignalRow.observed_at.desc(), SignalRow.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return [to_signal(row) for row in reversed(list(session.scalars(query)))]


def latest(
    session: Session,
    name: str,
    *,
    labels: Mapping[str, str] | None = None,
    fingerprint: str | None = None,
) -> Signal | None:
    """The newest point of one series, or None when it has none."""
    points = series(session, name, labels=labels, fingerprint=fingerprint, limit=1)
    return points[0] if points else None


def latest_by_series(session: Session, name: str, *, since: datetime | None = None) -> list[Signal]:
    """The newest point of every series of signal ``name`` (observed at or after ``since``),
    ordered by fingerprint."""
    newest = select(
        SignalRow.fingerprint.label("fingerprint"), func.max(SignalRow.id).label("id")
    ).where(SignalRow.name == name)
    if since is not None:
        newest = newest.where(SignalRow.observed_at >= since)
    # The highest id of a series is its last write; points of one series arrive in time order
    # (one result after another), and ids break ties between equal timestamps.
    ids = newest.group_by(SignalRow.fingerprint).subquery()
    query = select(SignalRow).join(ids, SignalRow.id == ids.c.id).order_by(SignalRow.fingerprint)
    return [to_signal(row) for row in session.scalars(query)]


def signals_from_source(session: Session, source: str) -> list[Signal]:
    """Every signal written for ``source`` (``drift_result:<id>``), in write order."""
    query = select(SignalRow).where(SignalRow.source == source).order_by(SignalRow.id)
    return [to_signal(row) for row in session.scalars(query)]


def purge_older_than(session: Session, cutoff: datetime) -> int:
    """Delete signals observed before ``cutoff``; returns how many were deleted."""
    if cutoff.tzinfo is None:
        raise ValueError("purge cutoff must be timezone-aware")
    result = session.execute(delete(SignalRow).where(SignalRow.observed_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)


def to_signal(row: SignalRow) -> Signal:
    """ORM row → entity."""
    return Signal(
        name=row.name,
        value=row.value,
        labels={str(k): str(v) for k, v in (row.labels or {}).items()},
        observed_at=row.observed_at,
        source=row.source,
    )


def _fingerprint(labels: Mapping[str, str] | None, fingerprint: str | None) -> str:
    if (labels is None) == (fingerprint is None):
        raise ValueError("name a series by exactly one of labels and fingerprint")
    return fingerprint if fingerprint is not None else labels_fingerprint(labels or {})
