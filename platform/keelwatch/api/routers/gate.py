"""The champion/challenger gate: per-model policies (admin), checks (approver: a check may
promote), decisions (viewer)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from keelwatch.api.deps import ActorDep, ServicesDep
from keelwatch.api.pagination import CursorQuery, decode_cursor, page_of
from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.service import gate as service
from keelwatch.schemas.common import Page
from keelwatch.schemas.gate import (
    GateCheckIn,
    GateCheckOut,
    GateDecisionOut,
    GatePolicyIn,
    GatePolicyOut,
)

router = APIRouter(prefix="/gate", tags=["gate"])

MAX_LIMIT = 500
# Domain errors per route (422 and the 404 of a path naming nothing are added to every operation
# by keelwatch.api.openapi_errors).
NO_POLICY: dict[int | str, dict[str, Any]] = {
    404: {"description": "The model has no gate policy."},
}
CHECK_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {
        "description": "The model has no gate policy, or no such model, challenger version "
        "or dataset (version)."
    },
    409: {"description": "The model has no champion to compare the challenger against."},
}


@router.put("/policies/{model}", response_model=GatePolicyOut, summary="Set a model's gate policy")
def set_policy(
    model: str, request: GatePolicyIn, services: ServicesDep, actor: ActorDep
) -> GatePolicyOut:
    """Check the policy (422 naming the key when it is wrong) and store it, replacing any."""
    with services.db.session() as session:
        record = service.set_policy(
            session, model, request.policy, actor=actor, reason=request.reason
        )
    return GatePolicyOut.from_entity(record)


@router.get(
    "/policies/{model}",
    response_model=GatePolicyOut,
    summary="A model's gate policy",
    responses=NO_POLICY,
)
def get_policy(model: str, services: ServicesDep) -> GatePolicyOut:
    """404 when the model has none."""
    with services.db.session() as session:
        return GatePolicyOut.from_entity(service.get_policy(session, model))


@router.delete(
    "/policies/{model}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a model's gate policy",
    responses=NO_POLICY,
)
def delete_policy(model: str, services: ServicesDep, actor: ActorDep) -> Response:
    """404 when the model has none."""
    with services.db.session() as session:
        service.delete_policy(session, model, actor=actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/checks",
    response_model=GateCheckOut,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Run the gate on a challenger",
    responses=CHECK_ERRORS,
)
def submit_check(request: GateCheckIn, services: ServicesDep, actor: ActorDep) -> GateCheckOut:
    """Pin champion, challenger and dataset in a job and enqueue it; the decision follows in
    ``GET /gate/decisions`` (and the job in ``GET /jobs/{id}``)."""
    job = service.submit_gate_check(
        services.db,
        services.sender,
        services.registry,
        model=request.model,
        challenger=request.challenger,
        dataset=request.dataset,
        actor=actor,
        reason=request.reason,
    )
    params = job.params
    return GateCheckOut(
        job_id=job.id,
        status=job.status.value,
        model=str(params["model_name"]),
        champion_version=str(params["champion"]["version"]),
        challenger_version=str(params["challenger"]["version"]),
        dataset=f"{params['dataset']['name']}:{params['dataset']['version']}",
    )


@router.get(
    "/decisions", response_model=Page[GateDecisionOut], summary="Gate decisions, newest first"
)
def list_decisions(
    services: ServicesDep,
    model: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: CursorQuery = None,
) -> Page[GateDecisionOut]:
    """Decisions with their reasons and comparisons, optionally of one model; paged by cursor."""
    after = decode_cursor("gate_decisions", cursor)
    if after is not None and (not isinstance(after, int) or isinstance(after, bool)):
        raise InvalidInputError("invalid cursor for the gate decisions list")
    with services.db.session() as session:
        decisions = service.list_decisions(session, model=model, limit=limit + 1, before_id=after)
    items, next_cursor = page_of(decisions, limit, kind="gate_decisions", key=lambda d: d.id)
    views = [GateDecisionOut.from_entity(d) for d in items]
    return Page(count=len(views), items=views, next_cursor=next_cursor)
