"""Pydantic shapes of the API's readiness report (``/readyz``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class CheckResult(BaseModel):
    """Outcome of one readiness check."""

    status: Literal["ok", "fail"]
    detail: str = ""
    duration_ms: float


class QueueStatus(BaseModel):
    """Who consumes one queue."""

    status: Literal["ok", "no_consumer", "unknown"]
    required: bool
    consumers: list[str] = Field(default_factory=list, description="Celery worker names.")


class Readiness(BaseModel):
    """Overall readiness and each check's outcome, plus the worker fleet's queue coverage."""

    status: Literal["ok", "fail"] = Field(
        description="The API's own readiness (database, broker, MLflow); sets the HTTP code."
    )
    checks: dict[str, CheckResult]
    fleet: Literal["ok", "degraded", "unknown"] = Field(
        "unknown",
        description="degraded: a required queue (cpu, monitoring) has no consumer. "
        "Does not change the HTTP code.",
    )
    queues: dict[str, QueueStatus] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
