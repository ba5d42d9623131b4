"""Action policies and executions over HTTP: apply/list/delete policies; list executions,
approve or reject those awaiting a person.

``PUT /actions/policies`` takes a policy file as YAML (``application/yaml``) or
``{"policies": [...]}`` as JSON, validates all of them and only then upserts them by name; a
mistake is a 422 naming the policy and the field. An execution awaiting approval is decided
once: ``approve`` moves it to ``pending`` and enqueues it after the commit, ``reject`` ends it;
deciding it again is a 409. Every mutation is audited (``policy.apply``, ``policy.delete``,
``action.approve``, ``action.reject``) with the caller's authenticated identity as actor.

The policy routes are declared before ``/actions/{execution_id}``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from keelwatch.api.deps import ActorDep, ServicesDep
from keelwatch.api.pagination import CursorQuery, page_in_memory
from keelwatch.api.routers.rules import ReasonQuery, definitions_body, read_definitions
from keelwatch.entities.actions import ExecutionStatus
from keelwatch.entities.time import utcnow
from keelwatch.errors import NotFoundError
from keelwatch.schemas.actions import (
    DecisionIn,
    DecisionOut,
    ExecutionOut,
    PoliciesIn,
    PolicyOut,
)
from keelwatch.schemas.alerts import AppliedOut
from keelwatch.schemas.common import Page
from keelwatch.wiring import Services

router = APIRouter(prefix="/actions", tags=["actions"])

MAX_LIMIT = 1000
#: How many executions one list request reads at most.
EXECUTIONS_READ_CAP = 100_000

BAD_POLICIES: dict[int | str, dict[str, Any]] = {
    415: {"description": "The body is neither YAML nor JSON."},
    422: {"description": "A malformed policy: the message names the policy and the field."},
}
EXECUTION_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No execution with that id."},
    409: {"description": "The execution is not awaiting approval (decided already)."},
    422: {"description": "A blank reason."},
}

_POLICIES_EXAMPLE = """\
policies:
  - name: rollback-on-drift
    match: '{alertname="dataset-drift", severity="critical"}'
    action: rollback
    mode: manual
    guards: {cooldown: 30m, max_consecutive: 3}
"""


# --- policies ----------------------------------------------------------------------------------


@router.get("/policies", response_model=Page[PolicyOut], summary="List action policies by name")
def list_policies(
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    cursor: CursorQuery = None,
) -> Page[PolicyOut]:
    """Every policy as a policy file would write it (guards with their defaults filled in)."""
    from keelwatch.actions.service import list_policies as stored_policies

    with services.db.session() as session:
        policies = stored_policies(session)
    items, next_cursor = page_in_memory(
        policies, limit, cursor, kind="policies", key=lambda p: p.name, parse=str
    )
    out = [PolicyOut.of(p) for p in items]
    return Page(count=len(out), items=out, next_cursor=next_cursor)


def _apply(services: Services, policies: str | list[Any], actor: str, reason: str) -> AppliedOut:
    from keelwatch.actions.service import apply_policies

    with services.db.session() as session:
        outcome = apply_policies(session, policies, actor, now=utcnow(), reason=reason)
    return AppliedOut(created=outcome.created, updated=outcome.updated, unchanged=outcome.unchanged)


@router.put(
    "/policies",
    response_model=AppliedOut,
    summary="Create or update action policies (YAML or JSON)",
    responses=BAD_POLICIES,
    openapi_extra=definitions_body(PoliciesIn.model_json_schema(), _POLICIES_EXAMPLE),
)
async def apply_policies(
    request: Request, services: ServicesDep, actor: ActorDep, reason: ReasonQuery = ""
) -> AppliedOut:
    """Validate every policy, then upsert them by name; policies not named are kept."""
    policies = await read_definitions(request, "policies")
    return await run_in_threadpool(_apply, services, policies, actor, reason)


@router.delete(
    "/policies/{name}",
    response_model=PolicyOut,
    summary="Delete an action policy",
    responses={404: {"description": "No policy of that name."}},
)
def delete_policy(
    name: str, services: ServicesDep, actor: ActorDep, reason: ReasonQuery = ""
) -> PolicyOut:
    """Answer the policy as it was; executions it created are kept."""
    from keelwatch.actions.service import delete_policy as remove
    from keelwatch.actions.service import list_policies as stored_policies

    with services.db.session() as session:
        before = next((p for p in stored_policies(session) if p.name == name), None)
        remove(session, name, actor, now=utcnow(), reason=reason)  # 404 when before is None
    assert before is not None
    return PolicyOut.of(before)


# --- executions --------------------------------------------------------------------------------


@router.get("", response_model=Page[ExecutionOut], summary="List action executions, newest first")
def list_executions(
    services: ServicesDep,
    status: Annotated[ExecutionStatus | None, Query(description="Only this status.")] = None,
    model: Annotated[str | None, Query(min_length=1, description="Only this model's.")] = None,
    policy: Annotated[str | None, Query(min_length=1, description="Only this policy's.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    cursor: CursorQuery = None,
) -> Page[ExecutionOut]:
    """What policies did or want to do, with the alert, the decision and the outcome."""
    from keelwatch.storage.actions import list_executions as stored_executions

    with services.db.session() as session:
        executions = stored_executions(
            session, model=model, status=status, limit=EXECUTIONS_READ_CAP
        )
    if policy is not None:
        executions = [e for e in executions if e.policy == policy]
    # Ids grow with creation: a negated id pages newest first through the ascending helper.
    ordered = sorted(executions, key=lambda e: -e.id)
    items, next_cursor = page_in_memory(
        ordered, limit, cursor, kind="actions", key=lambda e: -e.id, parse=int
    )
    out = [ExecutionOut.of(e) for e in items]
    return Page(count=len(out), items=out, next_cursor=next_cursor)


@router.get(
    "/{execution_id}",
    response_model=ExecutionOut,
    summary="One action execution",
    responses={404: {"description": "No execution with that id."}},
)
def get_execution(execution_id: int, services: ServicesDep) -> ExecutionOut:
    """Its status, the alert that caused it, who decided, and the outcome."""
    from keelwatch.storage.actions import get_execution as stored_execution

    with services.db.session() as session:
        execution = stored_execution(session, execution_id)
    if execution is None:
        raise NotFoundError(f"no action execution with id {execution_id}")
    return ExecutionOut.of(execution)


def _decide(
    services: Services, execution_id: int, body: DecisionIn, actor: str, *, approve: bool
) -> DecisionOut:
    from keelwatch.actions.service import decide_execution

    with services.db.session() as session:
        decision = decide_execution(
            session, execution_id, approve=approve, actor=actor, reason=body.reason, now=utcnow()
        )
    # Only after the commit: the worker must find the execution pending.
    enqueued = decision.enqueue(services.sender)
    return DecisionOut(execution=ExecutionOut.of(decision.execution), enqueued=enqueued)


@router.post(
    "/{execution_id}/approve",
    response_model=DecisionOut,
    summary="Approve an execution awaiting approval",
    responses=EXECUTION_ERRORS,
)
def approve(
    execution_id: int, body: DecisionIn, services: ServicesDep, actor: ActorDep
) -> DecisionOut:
    """It moves to ``pending`` and is enqueued to run on a worker."""
    return _decide(services, execution_id, body, actor, approve=True)


@router.post(
    "/{execution_id}/reject",
    response_model=DecisionOut,
    summary="Reject an execution awaiting approval",
    responses=EXECUTION_ERRORS,
)
def reject(
    execution_id: int, body: DecisionIn, services: ServicesDep, actor: ActorDep
) -> DecisionOut:
    """It ends ``rejected`` and never runs."""
    return _decide(services, execution_id, body, actor, approve=False)
