"""Evaluation schedules: ``/evaluations/schedules``.

``PUT /evaluations/schedules/{name}`` creates a schedule or replaces its fields; beat reads the
table on every tick, so the change takes effect without restarting anything. Operators write,
viewers read. Each slot fires at most once however many beat processes run (see
:mod:`keelwatch.monitoring.service.eval_schedules`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from keelwatch.api.deps import ActorDep, ServicesDep
from keelwatch.monitoring.service import eval_schedules as service
from keelwatch.schemas.eval_schedules import ScheduleIn, ScheduleOut

router = APIRouter(prefix="/evaluations/schedules", tags=["evaluations"])

NameParam = Annotated[str, Path(min_length=1, max_length=128)]


@router.put(
    "/{name}",
    response_model=ScheduleOut,
    summary="Create or replace an evaluation schedule",
    responses={404: {"description": "No such evaluation dataset."}},
)
def set_schedule(
    name: NameParam, request: ScheduleIn, services: ServicesDep, actor: ActorDep
) -> ScheduleOut:
    """Validate and store the schedule (audited ``evaluation.schedule.set``)."""
    with services.db.session() as session:
        schedule = service.set_schedule(
            session,
            name=name,
            model=request.model,
            cron=request.cron,
            kind=request.kind,
            dataset=request.dataset,
            suites=request.suites,
            window_s=request.window_s,
            attributes=request.attributes,
            enabled=request.enabled,
            actor=actor,
            reason=request.reason,
        )
    return ScheduleOut.from_entity(schedule)


@router.get("", response_model=list[ScheduleOut], summary="List evaluation schedules")
def list_schedules(services: ServicesDep) -> list[ScheduleOut]:
    """Every schedule, by name."""
    with services.db.session() as session:
        return [
            ScheduleOut.from_entity(s, service.list_firings(session, s.name, limit=1))
            for s in service.list_schedules(session)
        ]


@router.get(
    "/{name}",
    response_model=ScheduleOut,
    summary="One evaluation schedule and its recent firings",
    responses={404: {"description": "No such schedule."}},
)
def get_schedule(
    name: NameParam,
    services: ServicesDep,
    firings: Annotated[int, Query(ge=0, le=500, description="Firings to include.")] = 20,
) -> ScheduleOut:
    """The schedule and its newest ``firings`` firings (slot, job or task id, error)."""
    with services.db.session() as session:
        schedule = service.get_schedule(session, name)
        recent = service.list_firings(session, name, limit=firings) if firings else []
    return ScheduleOut.from_entity(schedule, recent)


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an evaluation schedule",
    responses={404: {"description": "No such schedule."}},
)
def delete_schedule(
    name: NameParam,
    services: ServicesDep,
    actor: ActorDep,
    reason: Annotated[str, Query(max_length=1000, description="Why (audit log).")] = "",
) -> Response:
    """Delete the schedule and its firings (audited ``evaluation.schedule.delete``)."""
    with services.db.session() as session:
        service.delete_schedule(session, name, actor=actor, reason=reason)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
