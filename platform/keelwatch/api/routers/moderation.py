"""Content moderation: check texts now, and read moderation rates.

``POST /moderation/check`` moderates up to 1,000 texts with the configured pipeline
(``settings.moderation``) and answers each text's decision, findings and redacted text (a
blocked text is never echoed in clear). With ``model`` and ``version`` the check is stored
like a batch of that version's text (a tally in its rates and signals, review items for
``review`` decisions, an audit entry); without them nothing is stored.
``GET /moderation/rates`` sums the stored tallies (inference chunks, checks) per model version
and direction over a window.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from keelwatch.alerting.service import after_commit_dispatch
from keelwatch.api.deps import ActorDep, ServicesDep
from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.service.moderation import (
    cached_moderator,
    check_texts,
    moderation_rates,
    rates_since,
)
from keelwatch.monitoring.service.moderation_metrics import count_tallies
from keelwatch.schemas.moderation import (
    CheckResultOut,
    ModerationCheckIn,
    ModerationCheckOut,
    ModerationRatesOut,
    RatesOut,
)

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/moderation", tags=["moderation"])


@router.post("/check", response_model=ModerationCheckOut, summary="Moderate texts now")
def check(body: ModerationCheckIn, services: ServicesDep, actor: ActorDep) -> ModerationCheckOut:
    """Each text's decision (allow, redact, review, block), findings (category, score, span)
    and redacted text. 422 naming the index of a text over ``moderation.max_text_chars``.
    With ``model`` and ``version``: stored in that version's rates, ``review`` texts queued,
    audited."""
    if (body.version is None) != (body.model is None):
        raise InvalidInputError("model and version go together: give both or neither")
    settings = services.settings
    moderator = cached_moderator(
        settings.moderation,
        tracking_uri=settings.mlflow.tracking_uri,
        registry_uri=settings.mlflow.registry_uri,
    )
    now = datetime.now(UTC)
    with services.db.session() as session:
        outcome = check_texts(
            session,
            moderator,
            body.texts,
            actor=actor,
            now=now,
            model=body.model,
            version=body.version,
        )
    if outcome.tally is not None:
        count_tallies([outcome.tally])
        if outcome.tally.detail.get("alert_transitions"):
            try:
                after_commit_dispatch(services.db, services.sender, now)
            except Exception as exc:  # noqa: BLE001 - the check is stored; the tick dispatches
                logger.warning("alert dispatch after a moderation check deferred: %r", exc)
    decisions: dict[str, int] = {}
    for result in outcome.results:
        decisions[result.decision.value] = decisions.get(result.decision.value, 0) + 1
    return ModerationCheckOut(
        results=[CheckResultOut.of(i, r) for i, r in enumerate(outcome.results)],
        decisions=decisions,
        source=outcome.source,
        review_items=outcome.review_items,
    )


@router.get("/rates", response_model=ModerationRatesOut, summary="Moderation rates")
def rates(
    services: ServicesDep,
    model: Annotated[str | None, Query(min_length=1, description="Registered model name.")] = None,
    version: Annotated[str | None, Query(min_length=1, description="Model version.")] = None,
    direction: Annotated[
        Literal["input", "output", "text"] | None,
        Query(description="Inputs, outputs of inference jobs, or texts checked through the API."),
    ] = None,
    since: Annotated[
        str,
        Query(
            max_length=64,
            description="Window ending now (`24h`, `30m`, `7d`) or an ISO 8601 time with a zone.",
        ),
    ] = "24h",
) -> ModerationRatesOut:
    """Block, review, redact and allow rates and per-category rates from the tallies created
    since ``since``, per model version and direction."""
    until = datetime.now(UTC)
    start = rates_since(since, until)
    with services.db.session() as session:
        found = moderation_rates(
            session, since=start, until=until, model=model, version=version, direction=direction
        )
    return ModerationRatesOut(since=start, until=until, rates=[RatesOut.of(r) for r in found])
