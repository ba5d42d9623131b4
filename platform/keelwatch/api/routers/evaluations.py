"""Evaluation datasets and evaluation runs.

``POST /evaluations/datasets`` registers a file inside a data root (a new version when its
bytes changed; the same version again when not); ``POST /evaluations`` pins a model version
and dataset version in a job and answers 202 with the pending run; the fleet does the rest.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from keelwatch.api.deps import ActorDep, ServicesDep
from keelwatch.api.pagination import CursorQuery, decode_cursor, page_of
from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.service import evaluations as service
from keelwatch.schemas.common import Page
from keelwatch.schemas.evaluations import DatasetIn, DatasetOut, EvaluationIn, EvaluationOut

router = APIRouter(prefix="/evaluations", tags=["evaluations"])

MAX_LIMIT = 500
SUBMIT_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such model, alias, version or dataset."},
}


@router.post(
    "/datasets",
    response_model=DatasetOut,
    status_code=status.HTTP_201_CREATED,
    summary="Register an evaluation dataset (version)",
)
def register_dataset(request: DatasetIn, services: ServicesDep, actor: ActorDep) -> DatasetOut:
    """Hash the file, read its columns and rows, and store it as the next version."""
    with services.db.session() as session:
        dataset = service.register_dataset(
            session,
            name=request.name,
            uri=request.uri,
            label_column=request.label_column,
            task=request.task,
            actor=actor,
            description=request.description,
            read_roots=services.settings.data_roots.read,  # a caller's path stays inside
        )
    return DatasetOut.from_entity(dataset)


@router.get(
    "/datasets", response_model=list[DatasetOut], summary="List evaluation dataset versions"
)
def list_datasets(
    services: ServicesDep,
    name: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
) -> list[DatasetOut]:
    """Every version of every dataset (or of ``name``), by name then version."""
    with services.db.session() as session:
        return [DatasetOut.from_entity(d) for d in service.list_datasets(session, name)]


@router.post(
    "",
    response_model=EvaluationOut,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Evaluate a model version on a dataset",
    responses=SUBMIT_ERRORS,
)
def submit_evaluation(
    request: EvaluationIn, services: ServicesDep, actor: ActorDep
) -> EvaluationOut:
    """Pin the version and dataset, create the job and enqueue it on the fleet."""
    efficiency = request.efficiency.model_dump(exclude_none=True) if request.efficiency else None
    job = service.submit_evaluation(
        services.db,
        services.sender,
        services.registry,
        model_ref=request.model,
        dataset=request.dataset,
        suites=request.suites,
        actor=actor,
        reason=request.reason,
        require=request.require,
        efficiency=efficiency,
    )
    with services.db.session() as session:
        return EvaluationOut.from_entity(service.run_for_job(session, job.id))


@router.get("", response_model=Page[EvaluationOut], summary="List evaluation runs, newest first")
def list_evaluations(
    services: ServicesDep,
    model: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
    version: Annotated[str | None, Query(min_length=1, max_length=32)] = None,
    run_status: Annotated[str | None, Query(alias="status", min_length=1, max_length=16)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: CursorQuery = None,
) -> Page[EvaluationOut]:
    """Runs with their metrics, optionally of one model (and version) or in one state."""
    after = decode_cursor("evaluations", cursor)
    if after is not None and (not isinstance(after, int) or isinstance(after, bool)):
        raise InvalidInputError("invalid cursor for the evaluations list")
    with services.db.session() as session:
        runs = service.list_runs(
            session,
            model_name=model,
            model_version=version,
            status=run_status,
            limit=limit + 1,
            before_id=after,
        )
    items, next_cursor = page_of(runs, limit, kind="evaluations", key=lambda run: run.id)
    views = [EvaluationOut.from_entity(run) for run in items]
    return Page(count=len(views), items=views, next_cursor=next_cursor)


@router.get("/{run_id}", response_model=EvaluationOut, summary="One evaluation run")
def get_evaluation(run_id: int, services: ServicesDep) -> EvaluationOut:
    """One run by id (404 when unknown)."""
    with services.db.session() as session:
        return EvaluationOut.from_entity(service.get_run(session, run_id))
