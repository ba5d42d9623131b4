"""Batch moderation runs: ``POST /moderation/runs`` (operator) checks the request (the dataset
inside the read roots, its column text; or a model's prediction-log window), writes the job and
its audit entry, then sends it to the monitoring queue and answers 202 with the pending job.
Its progress and result (decision counts, review items, the decisions file) are the job's:
``GET /jobs/{id}``, ``keelwatch jobs status``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, status

from keelwatch.api.deps import ActorDep, ServicesDep
from keelwatch.monitoring.service.moderation_runs import submit_moderation_run
from keelwatch.schemas.jobs import JobView
from keelwatch.schemas.moderation_runs import ModerationRunIn

router = APIRouter(prefix="/moderation/runs", tags=["moderation"])

SUBMIT_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"description": "No such file or column, a column that is not text, a bad window."},
    503: {"description": "The broker did not take the run (the job is marked failed)."},
}


@router.post(
    "",
    response_model=JobView,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Moderate a dataset column or a prediction-log window",
    responses=SUBMIT_ERRORS,
)
def submit_run(body: ModerationRunIn, services: ServicesDep, actor: ActorDep) -> JobView:
    """Create the run's job (audited, ``moderation.run``) and enqueue it on the fleet."""
    settings = services.settings
    job = submit_moderation_run(
        services.db,
        services.sender,
        body,
        actor=actor,
        output_root=settings.inference.output_dir,
        now=datetime.now(UTC),
        data_roots=settings.data_roots,  # paths from a caller stay inside the roots
    )
    return JobView.from_job(job)
