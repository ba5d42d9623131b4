"""Drift monitors over HTTP: CRUD, run now, result history, reference profiles.

Mutations are audited with the caller's authenticated identity; bad input is a 4xx JSON
error (422 invalid spec, 404 unknown monitor/model/version, 409 name taken).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from keelwatch.api.deps import ActorDep, ServicesDep
from keelwatch.api.pagination import CursorQuery, decode_cursor, page_in_memory, page_of
from keelwatch.data_roots import resolve_read
from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.service.specs import MonitorSpec, WindowSpec
from keelwatch.schemas.common import Page
from keelwatch.schemas.monitors import (
    MonitorOut,
    MonitorPatch,
    ProfileAttach,
    ProfileOut,
    ResultOut,
    RunOut,
)

router = APIRouter(tags=["monitors"])

CREATE_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such model, alias or version."},
    409: {"description": "A monitor of that name exists."},
}


def _confined_window(window: WindowSpec, read_roots: list[str]) -> WindowSpec:
    """A dataset window's file as its real path inside the read roots (others unchanged)."""
    if window.kind != "dataset" or window.uri is None:
        return window
    real = resolve_read(window.uri, read_roots, field="window.uri")
    return window.model_copy(update={"uri": str(real)})


@router.post(
    "/monitors",
    status_code=status.HTTP_201_CREATED,
    response_model=MonitorOut,
    responses=CREATE_ERRORS,
)
def create_monitor(spec: MonitorSpec, services: ServicesDep, actor: ActorDep) -> MonitorOut:
    """Create a drift monitor."""
    from keelwatch.monitoring.service import service

    spec = spec.model_copy(
        update={"window": _confined_window(spec.window, services.settings.data_roots.read)}
    )
    with services.db.session() as session:
        monitor = service.create_monitor(session, services.registry, spec, actor)
    return MonitorOut.of(monitor)


#: Largest ``limit`` of the monitor list endpoints.
MAX_LIMIT = 1000


@router.get("/monitors", response_model=Page[MonitorOut])
def list_monitors(
    services: ServicesDep,
    model: Annotated[str | None, Query(min_length=1)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    cursor: CursorQuery = None,
) -> Page[MonitorOut]:
    """Monitors (optionally of one model), by name."""
    from keelwatch.monitoring.service import service

    with services.db.session() as session:
        monitors = service.list_monitors(session, model)
    items, next_cursor = page_in_memory(
        monitors,
        limit,
        cursor,
        kind="monitors",
        key=lambda monitor: monitor.name,
        parse=str,
    )
    out = [MonitorOut.of(m) for m in items]
    return Page(count=len(out), items=out, next_cursor=next_cursor)


@router.get("/monitors/{name}", response_model=MonitorOut)
def get_monitor(name: str, services: ServicesDep) -> MonitorOut:
    """One monitor."""
    from keelwatch.monitoring.service import service

    with services.db.session() as session:
        return MonitorOut.of(service.get_monitor(session, name))


@router.patch("/monitors/{name}", response_model=MonitorOut)
def update_monitor(
    name: str, patch: MonitorPatch, services: ServicesDep, actor: ActorDep
) -> MonitorOut:
    """Change some fields of a monitor."""
    from keelwatch.monitoring.service import service

    if patch.window is not None:
        patch = patch.model_copy(
            update={"window": _confined_window(patch.window, services.settings.data_roots.read)}
        )
    changes = patch.model_dump(mode="json", exclude_unset=True)
    reason = changes.pop("reason", "")
    with services.db.session() as session:
        monitor = service.update_monitor(
            session, services.registry, name, changes, actor, reason=reason
        )
    return MonitorOut.of(monitor)


@router.delete("/monitors/{name}", response_model=MonitorOut)
def delete_monitor(name: str, services: ServicesDep, actor: ActorDep) -> MonitorOut:
    """Delete a monitor and its result history."""
    from keelwatch.monitoring.service import service

    with services.db.session() as session:
        monitor = service.delete_monitor(session, name, actor)
    return MonitorOut.of(monitor)


@router.post("/monitors/{name}/run", status_code=status.HTTP_202_ACCEPTED, response_model=RunOut)
def run_monitor(name: str, services: ServicesDep, actor: ActorDep) -> RunOut:
    """Run a drift check now; poll ``/monitors/{name}/results`` or ``/jobs/{job_id}``."""
    from keelwatch.monitoring.service import service

    # The job row commits with the session; only then is the check enqueued.
    with services.db.session() as session:
        job = service.create_check(session, services.registry, name, actor)
    service.enqueue_check(services.db, services.sender, job)
    return RunOut(job_id=job.id, monitor=name, status=job.status.value)


@router.get("/monitors/{name}/results", response_model=Page[ResultOut])
def monitor_results(
    name: str,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: CursorQuery = None,
) -> Page[ResultOut]:
    """The monitor's result history, newest first."""
    from keelwatch.monitoring.service import service

    kind = f"results:{name}"
    after = decode_cursor(kind, cursor)
    before = None
    if after is not None:
        try:
            before = (datetime.fromisoformat(after[0]), int(after[1]))
        except (TypeError, ValueError, IndexError, KeyError) as exc:
            raise InvalidInputError(f"invalid cursor for the {kind} list") from exc
    with services.db.session() as session:
        rows = service.monitor_results(session, name, limit + 1, before=before)
    items, next_cursor = page_of(
        rows, limit, kind=kind, key=lambda result: [result.finished_at.isoformat(), result.id]
    )
    out = [ResultOut.of(r) for r in items]
    return Page(count=len(out), items=out, next_cursor=next_cursor)


@router.put("/models/{model_name}/versions/{version}/reference-profile", response_model=ProfileOut)
def attach_profile(
    model_name: str, version: str, body: ProfileAttach, services: ServicesDep, actor: ActorDep
) -> ProfileOut:
    """Compute and attach (or refresh) the version's reference profile from a data file."""
    from keelwatch.monitoring.service.profiles import attach_reference_profile

    with services.db.session() as session:
        info = attach_reference_profile(
            session,
            services.registry,
            services.settings.mlflow,
            model_name,
            version,
            # Only a file inside the read roots: the path comes from a caller.
            resolve_read(body.data_uri, services.settings.data_roots.read, field="data_uri"),
            actor,
            reason=body.reason,
            target=body.target,
            predictions=body.predictions,
        )
    return ProfileOut.of(info)


@router.get("/models/{model_name}/versions/{version}/reference-profile", response_model=ProfileOut)
def get_profile(model_name: str, version: str, services: ServicesDep) -> ProfileOut:
    """The version's reference profile metadata."""
    from keelwatch.storage.profiles import get_reference_profile

    with services.db.session() as session:
        return ProfileOut.of(get_reference_profile(session, model_name, version))
