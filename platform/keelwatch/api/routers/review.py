"""The human review queue: texts the moderation pipeline sent to ``review``, for a person with
the ``reviewer`` role to claim, approve (acceptable) or reject (harmful); a decided item may be
appealed; decisions export as labelled data for retraining.

``GET /review/items`` lists the queue oldest first (by status and model), ``GET
/review/items/{id}`` returns one item; ``POST /review/items/next`` claims the oldest open item
(204 when there is none), ``POST /review/items/{id}/claim`` a given one;
``.../approve``, ``.../reject`` and ``.../appeal`` decide or contest it; ``GET /review/export``
streams decided items as JSON lines. The caller's identity is the reviewer; every change is
audited (``review.claim``, ``review.approve``, ``review.reject``, ``review.appeal``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status
from fastapi.responses import StreamingResponse

from keelwatch.api.deps import ActorDep, ServicesDep
from keelwatch.api.pagination import CursorQuery, decode_cursor, encode_cursor
from keelwatch.entities.moderation import ReviewStatus
from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.service import review_queue as service
from keelwatch.schemas.common import Page
from keelwatch.schemas.review import (
    ReviewAppealIn,
    ReviewDecisionIn,
    ReviewItemOut,
    ReviewRejectIn,
)
from keelwatch.storage.db import Database

router = APIRouter(prefix="/review", tags=["review"])

MAX_LIMIT = service.MAX_LIST_LIMIT
CURSOR_KIND = "review_items"
ItemId = Annotated[int, Path(ge=1, le=2**63 - 1, description="Review item id.")]
ModelQuery = Annotated[
    str | None, Query(min_length=1, max_length=255, description="Registered model name.")
]
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "Not claimed by you, already decided, or not decided yet."}
}
_UNKNOWN: dict[int | str, dict[str, Any]] = {404: {"description": "No such review item."}}


@router.get("/items", response_model=Page[ReviewItemOut], summary="List review items, oldest first")
def list_items(
    services: ServicesDep,
    status_: Annotated[
        ReviewStatus | None, Query(alias="status", description="Only items with this status.")
    ] = None,
    model: ModelQuery = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: CursorQuery = None,
) -> Page[ReviewItemOut]:
    """The queue in arrival order, filtered by status and model."""
    after = decode_cursor(CURSOR_KIND, cursor)
    if after is not None and (not isinstance(after, int) or isinstance(after, bool) or after < 0):
        raise InvalidInputError(f"invalid cursor for the {CURSOR_KIND} list")
    with services.db.session() as session:
        items, more = service.list_review_items(
            session,
            status=status_,
            model_name=model,
            limit=limit,
            cursor=None if after is None else str(after),
        )
    next_cursor = encode_cursor(CURSOR_KIND, int(more)) if more is not None else None
    return Page(
        count=len(items), items=[ReviewItemOut.of(i) for i in items], next_cursor=next_cursor
    )


@router.post(
    "/items/next",
    response_model=ReviewItemOut,
    summary="Claim the oldest open review item",
    responses={204: {"description": "Nothing to review."}},
)
def claim_next(
    services: ServicesDep, actor: ActorDep, model: ModelQuery = None
) -> ReviewItemOut | Response:
    """Claim the oldest item you may review (pending, appealed, or a lapsed claim; never an
    appeal of your own decision), atomically: two reviewers never get the same item. 204 when
    the queue has nothing for you."""
    with services.db.session() as session:
        item = service.claim_next_review_item(
            session,
            reviewer=actor,
            now=datetime.now(UTC),
            model_name=model,
            claim_timeout_s=services.settings.moderation.review_min_claim_s,
        )
    if item is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return ReviewItemOut.of(item)


@router.get(
    "/items/{item_id}", response_model=ReviewItemOut, summary="One review item", responses=_UNKNOWN
)
def get_item(item_id: ItemId, services: ServicesDep) -> ReviewItemOut:
    """The item with its findings, reasons, claim, decision and appeal."""
    with services.db.session() as session:
        return ReviewItemOut.of(service.get_review_item(session, item_id))


@router.post(
    "/items/{item_id}/claim",
    response_model=ReviewItemOut,
    summary="Claim a review item",
    responses={**_UNKNOWN, **_CONFLICT},
)
def claim_item(item_id: ItemId, services: ServicesDep, actor: ActorDep) -> ReviewItemOut:
    """Claim the item for yourself (renews your own claim). 409 when someone else holds it, it
    is decided, or it is an appeal of your own decision."""
    with services.db.session() as session:
        item = service.claim_review_item(
            session,
            item_id,
            reviewer=actor,
            now=datetime.now(UTC),
            claim_timeout_s=services.settings.moderation.review_min_claim_s,
        )
    return ReviewItemOut.of(item)


@router.post(
    "/items/{item_id}/approve",
    response_model=ReviewItemOut,
    summary="Approve a review item (acceptable)",
    responses={**_UNKNOWN, **_CONFLICT},
)
def approve_item(
    item_id: ItemId, body: ReviewDecisionIn, services: ServicesDep, actor: ActorDep
) -> ReviewItemOut:
    """The text is acceptable. Only the reviewer holding the claim decides (409 otherwise)."""
    with services.db.session() as session:
        item = service.decide_review_item(
            session,
            item_id,
            reviewer=actor,
            verdict="approve",
            reason=body.reason,
            now=datetime.now(UTC),
        )
    return ReviewItemOut.of(item)


@router.post(
    "/items/{item_id}/reject",
    response_model=ReviewItemOut,
    summary="Reject a review item (harmful)",
    responses={**_UNKNOWN, **_CONFLICT},
)
def reject_item(
    item_id: ItemId, body: ReviewRejectIn, services: ServicesDep, actor: ActorDep
) -> ReviewItemOut:
    """The text is harmful; ``labels`` confirm its categories (default: those the pipeline
    found). Only the reviewer holding the claim decides (409 otherwise)."""
    with services.db.session() as session:
        item = service.decide_review_item(
            session,
            item_id,
            reviewer=actor,
            verdict="reject",
            reason=body.reason,
            labels=body.labels or (),
            now=datetime.now(UTC),
        )
    return ReviewItemOut.of(item)


@router.post(
    "/items/{item_id}/appeal",
    response_model=ReviewItemOut,
    summary="Appeal a decided review item",
    responses={**_UNKNOWN, **_CONFLICT},
)
def appeal_item(
    item_id: ItemId, body: ReviewAppealIn, services: ServicesDep, actor: ActorDep
) -> ReviewItemOut:
    """Put an approved or rejected item back in the queue; a reviewer other than the one whose
    decision is contested decides it again. 409 when the item is not decided."""
    with services.db.session() as session:
        item = service.appeal_review_item(
            session, item_id, actor=actor, reason=body.reason, now=datetime.now(UTC)
        )
    return ReviewItemOut.of(item)


@router.get(
    "/export",
    response_class=StreamingResponse,
    summary="Export decided items as labelled JSON lines",
    responses={
        200: {
            "content": {"application/x-ndjson": {}},
            "description": "One JSON object per line: text, label (acceptable | harmful), "
            "categories, model_name, model_version, direction, reviewer, decided_at, item_id.",
        }
    },
)
def export_items(
    services: ServicesDep,
    since: Annotated[
        datetime | None,
        Query(description="Only items decided at or after this time (ISO 8601; naive is UTC)."),
    ] = None,
    model: ModelQuery = None,
) -> StreamingResponse:
    """Decided items (approved and rejected; appealed ones wait for their new decision) as
    labelled data for retraining the classifier, oldest first, streamed."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return StreamingResponse(
        _export_lines(services.db, since, model), media_type="application/x-ndjson"
    )


def _export_lines(db: Database, since: datetime | None, model: str | None) -> Iterator[bytes]:
    with db.session() as session:
        for row in service.export_labelled(session, since=since, model_name=model):
            yield (json.dumps(row, ensure_ascii=False) + "\n").encode()
