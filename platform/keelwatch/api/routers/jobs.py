"""Jobs: submit a batch-inference job, list jobs, read one job's progress.

Submission validates everything before writing (unknown model → 404, bad input → 422, used
output folder → 409) and answers 202 with the pending job; the fleet does the rest.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from keelwatch.api.deps import ActorDep, ServicesDep
from keelwatch.api.pagination import CursorQuery, decode_cursor, page_of
from keelwatch.contract import BatchInferenceRequest
from keelwatch.errors import InvalidInputError
from keelwatch.inference import submit_batch_inference
from keelwatch.inference.control import cancel_job, retry_job
from keelwatch.schemas.common import Page
from keelwatch.schemas.jobs import JobActionIn, JobView
from keelwatch.storage.jobs import get_job, list_chunks, list_jobs, resolve_job_id

router = APIRouter(prefix="/jobs", tags=["jobs"])

SUBMIT_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such model, alias or version."},
    409: {"description": "The output folder already holds another job's part files."},
}
CANCEL_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "The job already finished."}
}
RETRY_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "The job neither failed nor was cancelled, or is not a batch job."}
}

MAX_LIMIT = 500


@router.post(
    "/batch-inference",
    response_model=JobView,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Submit a batch-inference job",
    responses=SUBMIT_ERRORS,
)
def submit_batch_inference_job(
    request: BatchInferenceRequest, services: ServicesDep, actor: ActorDep
) -> JobView:
    """Validate the request, create the job and enqueue its chunks on the fleet."""
    job = submit_batch_inference(
        services.db,
        services.sender,
        services.registry,
        services.settings.inference,
        request,
        actor,
        data_roots=services.settings.data_roots,  # paths from a caller stay inside the roots
        text_model_tag=services.settings.moderation.text_model_tag,
    )
    return JobView.from_job(job)


@router.get("", response_model=Page[JobView], summary="List jobs, newest first")
def list_all_jobs(
    services: ServicesDep,
    kind: Annotated[str | None, Query(min_length=1, description="Only jobs of this kind.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: CursorQuery = None,
) -> Page[JobView]:
    """Jobs with their progress counters."""
    after = decode_cursor("jobs", cursor)
    before = None
    if after is not None:
        try:
            before = (datetime.fromisoformat(after[0]), str(after[1]))
        except (TypeError, ValueError, IndexError, KeyError) as exc:
            raise InvalidInputError("invalid cursor for the jobs list") from exc
    with services.db.session() as session:
        jobs = list_jobs(session, kind=kind, limit=limit + 1, before=before)
    items, next_cursor = page_of(
        jobs, limit, kind="jobs", key=lambda job: [job.created_at.isoformat(), job.id]
    )
    views = [JobView.from_job(job) for job in items]
    return Page(count=len(views), items=views, next_cursor=next_cursor)


@router.get("/{job_id}", response_model=JobView, summary="One job with its chunks")
def read_job(job_id: str, services: ServicesDep) -> JobView:
    """Status, progress (chunks and rows done of total), chunks, result or error.

    ``job_id`` may be a unique prefix (the short id the CLI's progress bar prints); an
    ambiguous one is a 422 saying how many jobs match.
    """
    with services.db.session() as session:
        full_id = resolve_job_id(session, job_id)
        return JobView.from_job(get_job(session, full_id), list_chunks(session, full_id))


@router.post(
    "/{job_id}/cancel",
    response_model=JobView,
    summary="Cancel a pending or running job",
    responses=CANCEL_CONFLICT,
)
def cancel(
    job_id: str, services: ServicesDep, actor: ActorDep, body: JobActionIn | None = None
) -> JobView:
    """Chunks not started are skipped, running ones finish; 409 if the job already finished."""
    reason = body.reason if body is not None else ""
    with services.db.session() as session:
        job = cancel_job(session, job_id, actor=actor, reason=reason)
    return JobView.from_job(job)


@router.post(
    "/{job_id}/retry",
    response_model=JobView,
    summary="Retry a failed or cancelled job",
    responses=RETRY_CONFLICT,
)
def retry(
    job_id: str, services: ServicesDep, actor: ActorDep, body: JobActionIn | None = None
) -> JobView:
    """Enqueue again every chunk not done; 409 unless the job failed or was cancelled."""
    reason = body.reason if body is not None else ""
    return JobView.from_job(
        retry_job(services.db, services.sender, job_id, actor=actor, reason=reason)
    )
