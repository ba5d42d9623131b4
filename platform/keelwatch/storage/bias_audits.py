"""Bias audits: the prediction-log window reads they need and their stored results.

Every function takes the caller's session and never commits. A window is
``window_start <= created_at < window_end`` of ``prediction_log``; labels and sensitive
attributes join on ``request_id`` (see :mod:`keelwatch.storage.labels` and
:mod:`keelwatch.storage.attributes`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session, defer

from keelwatch.storage.models import (
    BiasAuditRow,
    PredictionAttributeRow,
    PredictionLabelRow,
    PredictionRow,
)

#: Rows per read of a window (keyset pages on the log's id): bounded result sets, one
#: statement per page with both side tables joined.
WINDOW_PAGE = 5_000
SOURCES = ("prediction_log", "file")


@dataclass(frozen=True)
class AuditRecord:
    """One stored bias audit of one model version."""

    id: int
    model_name: str
    model_version: str
    source: str
    window_s: int | None
    window_end: datetime | None
    attributes: tuple[str, ...]
    alias: str | None
    verdict: str
    rows: int
    violations: int
    result: Mapping[str, Any]
    mlflow_run_id: str | None
    has_report: bool
    schedule_id: int | None
    computed_at: datetime
    computed_by: str
    already_recorded: bool = field(default=False, compare=False)
    """Set by the service when this run found the row of an earlier run of the same slot."""


class WindowRow(NamedTuple):
    """One logged prediction of a window with its label and side attributes (a tuple: cheap
    for large windows). ``labelled`` tells a stored label from none."""

    inputs: dict[str, Any]
    outputs: dict[str, Any]
    labelled: bool
    label: Any
    attributes: dict[str, str]


def attributes_key(attributes: Sequence[str]) -> str:
    """The audited attributes as the slot key stores them: sorted, comma-joined."""
    return ",".join(sorted(attributes))


def window_rows(
    session: Session,
    model_name: str,
    model_version: str,
    start: datetime,
    end: datetime,
    *,
    page: int = WINDOW_PAGE,
) -> list[WindowRow]:
    """The window's predictions of one version in log order, each with its label and side
    attributes (outer joins), read ``page`` rows at a time."""
    return list(_window_pages(session, model_name, model_version, start, end, page))


def _window_pages(
    session: Session, model_name: str, model_version: str, start: datetime, end: datetime, page: int
) -> Iterator[WindowRow]:
    after: int | None = None
    while True:
        query = (
            select(
                PredictionRow.id,
                PredictionRow.inputs,
                PredictionRow.outputs,
                PredictionLabelRow.request_id,
                PredictionLabelRow.label,
                PredictionAttributeRow.attributes,
            )
            .outerjoin(
                PredictionLabelRow, PredictionLabelRow.request_id == PredictionRow.request_id
            )
            .outerjoin(
                PredictionAttributeRow,
                PredictionAttributeRow.request_id == PredictionRow.request_id,
            )
            .where(
                PredictionRow.model_name == model_name,
                PredictionRow.model_version == model_version,
                PredictionRow.created_at >= start,
                PredictionRow.created_at < end,
            )
            .order_by(PredictionRow.id)
            .limit(page)
        )
        if after is not None:
            query = query.where(PredictionRow.id > after)
        count = 0
        for row_id, inputs, outputs, label_id, label, attributes in session.execute(query):
            count += 1
            after = row_id
            yield WindowRow(
                dict(inputs or {}),
                dict(outputs or {}),
                label_id is not None,
                label,
                {str(k): str(v) for k, v in (attributes or {}).items()},
            )
        if count < page:
            return


def find_audit(
    session: Session,
    model_name: str,
    model_version: str,
    window_s: int,
    window_end: datetime,
    attributes: Sequence[str],
) -> AuditRecord | None:
    """The stored audit of one version, slot and attribute set, or None."""
    records = _records(
        session,
        _select_audits().where(
            BiasAuditRow.model_name == model_name,
            BiasAuditRow.model_version == model_version,
            BiasAuditRow.window_s == window_s,
            BiasAuditRow.window_end == window_end,
            BiasAuditRow.attributes_key == attributes_key(attributes),
        ),
    )
    return records[0] if records else None


def insert_audit(
    session: Session,
    *,
    model_name: str,
    model_version: str,
    source: str,
    window_s: int | None,
    window_end: datetime | None,
    attributes: Sequence[str],
    alias: str | None,
    verdict: str,
    rows: int,
    violations: int,
    result: Mapping[str, Any],
    schedule_id: int | None,
    computed_at: datetime,
    computed_by: str,
) -> AuditRecord:
    """Insert one audit (flushed, so its id is known for the signals' source)."""
    if source not in SOURCES:
        raise ValueError(f"unknown audit source {source!r}")
    row = BiasAuditRow(
        model_name=model_name,
        model_version=model_version,
        source=source,
        window_s=window_s,
        window_end=window_end,
        attributes=list(attributes),
        attributes_key=attributes_key(attributes),
        alias=alias,
        verdict=verdict,
        rows=rows,
        violations=violations,
        result=dict(result),
        schedule_id=schedule_id,
        computed_at=computed_at,
        computed_by=computed_by,
    )
    session.add(row)
    session.flush()
    return _to_record(row, has_report=False)


def get_audit(session: Session, audit_id: int) -> AuditRecord | None:
    """One stored audit, or None."""
    records = _records(session, _select_audits().where(BiasAuditRow.id == audit_id))
    return records[0] if records else None


def list_audits(
    session: Session,
    *,
    model_name: str | None = None,
    model_version: str | None = None,
    verdict: str | None = None,
    limit: int = 100,
) -> list[AuditRecord]:
    """Stored audits, newest first (by computation time, then id)."""
    query = _select_audits()
    if model_name is not None:
        query = query.where(BiasAuditRow.model_name == model_name)
    if model_version is not None:
        query = query.where(BiasAuditRow.model_version == model_version)
    if verdict is not None:
        query = query.where(BiasAuditRow.verdict == verdict)
    query = query.order_by(BiasAuditRow.computed_at.desc(), BiasAuditRow.id.desc()).limit(limit)
    return _records(session, query)


def latest_audits(session: Session) -> list[AuditRecord]:
    """The newest audit (highest id) of every model version and attribute set: what the
    gauges show. Newest first."""
    newest = select(func.max(BiasAuditRow.id)).group_by(
        BiasAuditRow.model_name, BiasAuditRow.model_version, BiasAuditRow.attributes_key
    )
    query = _select_audits().where(BiasAuditRow.id.in_(newest)).order_by(BiasAuditRow.id.desc())
    return _records(session, query)


def set_publication(
    session: Session, audit_id: int, *, mlflow_run_id: str | None, report_html: str | None
) -> bool:
    """Store where an audit was published (its MLflow run) and its rendered report; a None
    keeps the stored value. False when the audit no longer exists."""
    values: dict[str, Any] = {}
    if mlflow_run_id is not None:
        values["mlflow_run_id"] = mlflow_run_id
    if report_html is not None:
        values["report_html"] = report_html
    if not values:
        return session.get(BiasAuditRow, audit_id) is not None
    result = session.execute(update(BiasAuditRow).where(BiasAuditRow.id == audit_id).values(values))
    return bool(getattr(result, "rowcount", 0) == 1)


def get_report_html(session: Session, audit_id: int) -> str | None:
    """The stored report of an audit, or None (not rendered yet, or no such audit)."""
    return session.scalar(select(BiasAuditRow.report_html).where(BiasAuditRow.id == audit_id))


def _select_audits() -> Select[BiasAuditRow, bool]:
    """Audit rows without their report (often large) but with whether they have one."""
    return select(BiasAuditRow, BiasAuditRow.report_html.is_not(None)).options(
        defer(BiasAuditRow.report_html)
    )


def _records(session: Session, query: Select[BiasAuditRow, bool]) -> list[AuditRecord]:
    return [_to_record(row, has_report=bool(has)) for row, has in session.execute(query)]


def _to_record(row: BiasAuditRow, *, has_report: bool) -> AuditRecord:
    return AuditRecord(
        id=row.id,
        model_name=row.model_name,
        model_version=row.model_version,
        source=row.source,
        window_s=row.window_s,
        window_end=row.window_end,
        attributes=tuple(row.attributes or ()),
        alias=row.alias,
        verdict=row.verdict,
        rows=row.rows,
        violations=row.violations,
        result=dict(row.result or {}),
        mlflow_run_id=row.mlflow_run_id,
        has_report=has_report,
        schedule_id=row.schedule_id,
        computed_at=row.computed_at,
        computed_by=row.computed_by,
    )
