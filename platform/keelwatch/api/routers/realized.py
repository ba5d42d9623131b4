"""Realized performance: logged predictions scored against the labels that arrived.

``GET /evaluations/realized`` lists stored results (newest window first);
``POST /evaluations/realized`` computes one model's window ending now, synchronously (one SQL
join per version; the scheduled runs go through the worker task instead), commits, and hands
the alerts its signals changed to the notifiers.

Mounted before ``/evaluations/{id}`` so ``realized`` is never read as an evaluation id.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from keelwatch.api.deps import ActorDep, ServicesDep
from keelwatch.monitoring.evaluation.realized import parse_window, window_label
from keelwatch.monitoring.service.realized import champion_of, compute_realized, list_realized
from keelwatch.schemas.realized import RealizedOut, RealizedRunIn, RealizedRunOut

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/evaluations/realized", tags=["evaluations"])

MAX_LIMIT = 1000


@router.get("", response_model=list[RealizedOut], summary="List realized-performance results")
def list_realized_results(
    services: ServicesDep,
    model: Annotated[str | None, Query(min_length=1, description="Registered model name.")] = None,
    version: Annotated[str | None, Query(min_length=1, description="Model version.")] = None,
    window: Annotated[
        str | None, Query(min_length=1, max_length=32, description="Window, e.g. 24h.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> list[RealizedOut]:
    """Stored results, newest window first, filtered by model, version and window length."""
    window_s = parse_window(window) if window is not None else None
    with services.db.session() as session:
        records = list_realized(
            session, model=model, version=version, window_s=window_s, limit=limit
        )
    return [RealizedOut.of(record) for record in records]


@router.post("", response_model=RealizedRunOut, summary="Compute realized performance now")
def run_realized(body: RealizedRunIn, services: ServicesDep, actor: ActorDep) -> RealizedRunOut:
    """Score ``model``'s predictions logged in the window ending now against their labels:
    one result per version (``insufficient_data`` below the minimum coverage or rows),
    stored and written as ``realized.*`` signals. Audited."""
    from keelwatch.alerting.service import after_commit_dispatch

    settings = services.settings.evaluation
    now = datetime.now(UTC)
    champion = champion_of(services.registry, body.model)
    with services.db.session() as session:
        outcome = compute_realized(
            session,
            model=body.model,
            window_s=body.window_s,
            window_end=now,
            champion=champion,
            min_coverage=(
                body.min_coverage
                if body.min_coverage is not None
                else settings.realized_min_coverage
            ),
            min_rows=body.min_rows if body.min_rows is not None else settings.realized_min_rows,
            actor=actor,
            task=body.task,
            reason=body.reason,
            now=now,
        )
    if outcome.transitions:
        try:
            after_commit_dispatch(services.db, services.sender, now)
        except Exception as exc:  # noqa: BLE001 - results are stored; the alert tick dispatches
            logger.warning("alert dispatch after realized results deferred: %r", exc)
    return RealizedRunOut(
        model=outcome.model,
        window=window_label(outcome.window_s),
        window_end=outcome.window_end,
        signals_written=outcome.signals_written,
        results=[RealizedOut.of(r) for r in outcome.results],
    )
