"""Read access to the prediction log (the sampled rows the fleet scored)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from keelwatch.api.deps import ServicesDep
from keelwatch.entities import PredictionRecord
from keelwatch.errors import InvalidInputError
from keelwatch.storage.predictions import recent_predictions

router = APIRouter(prefix="/predictions", tags=["predictions"])

MAX_LIMIT = 1000


class PredictionOut(BaseModel):
    """One logged prediction."""

    request_id: str
    model_name: str
    model_version: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    latency_ms: float
    created_at: datetime
    job_id: str | None = None

    @classmethod
    def from_record(cls, record: PredictionRecord) -> PredictionOut:
        """Entity → response schema."""
        return cls.model_validate(record, from_attributes=True)


class PredictionPage(BaseModel):
    """Newest first; ``count`` is the number of items returned (at most ``limit``)."""

    count: int
    items: list[PredictionOut] = Field(default_factory=list)


@router.get("", response_model=PredictionPage, summary="List logged predictions, newest first")
def list_predictions(
    services: ServicesDep,
    model: Annotated[str | None, Query(min_length=1, description="Registered model name.")] = None,
    version: Annotated[str | None, Query(min_length=1, description="Model version.")] = None,
    job: Annotated[str | None, Query(min_length=1, description="Batch job id.")] = None,
    since: Annotated[
        datetime | None, Query(description="Inclusive lower bound (ISO 8601).")
    ] = None,
    until: Annotated[
        datetime | None, Query(description="Exclusive upper bound (ISO 8601).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> PredictionPage:
    """Filter by model, version, job and a time window."""
    if since is not None and until is not None and since >= until:
        raise InvalidInputError(f"'since' ({since.isoformat()}) must be before 'until'")
    with services.db.session() as session:
        records = recent_predictions(
            session,
            model_name=model,
            model_version=version,
            job_id=job,
            since=since,
            until=until,
            limit=limit,
        )
    items = [PredictionOut.from_record(record) for record in records]
    return PredictionPage(count=len(items), items=items)
