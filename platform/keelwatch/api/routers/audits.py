"""Bias audits: a model's logged predictions compared across groups of sensitive attributes.

``POST /audits`` audits one model's window ending now, synchronously (the scheduled audits go
through the worker task instead): one stored audit per version, written as ``fairness.*``
signals; after the commit each new audit gets its MLflow run and HTML report, and the alerts
its signals changed go to the notifiers. ``GET /audits`` lists stored audits (newest first),
``GET /audits/{id}`` returns one with its whole result, ``GET /audits/{id}/report`` its HTML
report.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import HTMLResponse

from keelwatch.alerting.service import after_commit_dispatch
from keelwatch.api.deps import ActorDep, ServicesDep
from keelwatch.api.pagination import CursorQuery, decode_cursor, encode_cursor
from keelwatch.errors import InvalidInputError, NotFoundError
from keelwatch.monitoring.evaluation.realized import window_label
from keelwatch.monitoring.service.bias_audits import (
    audit_config,
    audit_report_html,
    get_audit,
    list_audits,
    positive_label_setting,
    publish_audit,
    run_bias_audit,
)
from keelwatch.monitoring.service.realized import champion_of
from keelwatch.schemas.audits import AuditDetailOut, AuditOut, AuditRunIn, AuditRunOut
from keelwatch.schemas.common import Page

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/audits", tags=["audits"])

MAX_LIMIT = 1000
#: The newest audits a list pages through (the store has no keyset query yet): older ones
#: are reached by filtering on model, version or verdict.
MAX_SCAN = 10_000
AuditId = Annotated[int, Path(ge=1, le=2**63 - 1, description="Audit id.")]


@router.get("", response_model=Page[AuditOut], summary="List bias audits, newest first")
def list_bias_audits(
    services: ServicesDep,
    model: Annotated[str | None, Query(min_length=1, description="Registered model name.")] = None,
    version: Annotated[str | None, Query(min_length=1, description="Model version.")] = None,
    verdict: Annotated[
        Literal["pass", "violation", "insufficient_data"] | None,
        Query(description="Only audits with this verdict."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    cursor: CursorQuery = None,
) -> Page[AuditOut]:
    """Stored audits, newest first, filtered by model, version and verdict."""
    after = _cursor_key(cursor)
    # Newest first by (computed_at, id). The store reads the newest N; a later page reads
    # more of them (doubling) until it has a page past the cursor or the list ends.
    wanted = limit + 1
    while True:
        with services.db.session() as session:
            fetched = list_audits(
                session, model=model, version=version, verdict=verdict, limit=wanted
            )
        records = (
            fetched if after is None else [r for r in fetched if (r.computed_at, r.id) < after]
        )
        if len(records) > limit or len(fetched) < wanted or wanted >= MAX_SCAN:
            break
        wanted = min(wanted * 2, MAX_SCAN)
    items = records[:limit]
    next_cursor = None
    if len(records) > limit and items:
        last = items[-1]
        next_cursor = encode_cursor("audits", [last.computed_at.isoformat(), last.id])
    return Page(count=len(items), items=[AuditOut.of(r) for r in items], next_cursor=next_cursor)


def _cursor_key(cursor: str | None) -> tuple[datetime, int] | None:
    """The (computed_at, id) a cursor of the audits list resumes after (None: first page)."""
    after = decode_cursor("audits", cursor)
    if after is None:
        return None
    if (
        isinstance(after, list)
        and len(after) == 2
        and isinstance(after[0], str)
        and isinstance(after[1], int)
        and not isinstance(after[1], bool)
    ):
        try:
            at = datetime.fromisoformat(after[0])
        except ValueError:
            at = None
        if at is not None and at.tzinfo is not None:
            return at, after[1]
    raise InvalidInputError("invalid cursor for the audits list")


@router.post(
    "",
    response_model=AuditRunOut,
    summary="Run a bias audit now",
    responses={404: {"description": "The model logged no predictions in the window."}},
)
def run_audit(body: AuditRunIn, services: ServicesDep, actor: ActorDep) -> AuditRunOut:
    """Audit ``model``'s predictions logged in the window ending now across every combination
    of ``attributes``: one audit per version, stored, written as ``fairness.*`` signals and
    published to MLflow with an HTML report. 404 when the model logged nothing in the window.
    Audited."""
    now = datetime.now(UTC)
    config = audit_config(services.settings, **body.config_overrides())
    positive_label = (
        body.positive_label
        if body.positive_label is not None
        else positive_label_setting(services.settings.fairness.positive_label)
    )
    champion = champion_of(services.registry, body.model)
    with services.db.session() as session:
        outcome = run_bias_audit(
            session,
            model=body.model,
            attributes=body.attributes,
            window_s=body.window_s,
            window_end=now,
            champion=champion,
            config=config,
            actor=actor,
            version=body.version,
            positive_label=positive_label,
            reason=body.reason,
            now=now,
        )
    if not outcome.results:
        which = f"version {body.version} of " if body.version else ""
        raise NotFoundError(
            f"no predictions of {which}model '{body.model}' logged in the "
            f"{window_label(body.window_s)} window ending now: nothing to audit"
        )
    for record in outcome.results:
        if record.already_recorded:
            continue
        try:
            publish_audit(services.settings, services.db, record.id)
        except Exception as exc:  # noqa: BLE001 - the audit is stored; the report can follow
            logger.warning("publishing bias audit %s to MLflow deferred: %r", record.id, exc)
    if outcome.transitions:
        try:
            after_commit_dispatch(services.db, services.sender, now)
        except Exception as exc:  # noqa: BLE001 - audits are stored; the alert tick dispatches
            logger.warning("alert dispatch after bias audits deferred: %r", exc)
    with services.db.session() as session:
        # Re-read: publishing filled in the MLflow run and the report.
        published = [
            replace(get_audit(session, record.id), already_recorded=record.already_recorded)
            for record in outcome.results
        ]
    return AuditRunOut(
        model=outcome.model,
        window=window_label(outcome.window_s),
        window_end=outcome.window_end,
        signals_written=outcome.signals_written,
        results=[AuditDetailOut.of(record) for record in published],
    )


@router.get("/{audit_id}", response_model=AuditDetailOut, summary="One bias audit")
def get_bias_audit(audit_id: AuditId, services: ServicesDep) -> AuditDetailOut:
    """The audit with its whole result: every slice's groups and gaps. 404 when unknown."""
    with services.db.session() as session:
        record = get_audit(session, audit_id)
    return AuditDetailOut.of(record)


@router.get(
    "/{audit_id}/report",
    response_class=HTMLResponse,
    summary="One bias audit's HTML report",
    responses={200: {"content": {"text/html": {}}, "description": "The report (HTML)."}},
)
def get_bias_audit_report(audit_id: AuditId, services: ServicesDep) -> HTMLResponse:
    """The audit's report as one self-contained HTML page. 404 when the audit is unknown."""
    with services.db.session() as session:
        html = audit_report_html(session, audit_id)
    return HTMLResponse(html)
