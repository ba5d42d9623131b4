"""Liveness (``/healthz``), readiness (``/readyz``) and Prometheus metrics (``/metrics``).

Readiness asks each dependency a real question with a short time budget: the database must
answer ``SELECT 1`` and carry the newest schema revision, the broker must accept a connection,
and MLflow must answer a one-result registry search. The checks run concurrently on a small
dedicated thread pool so a hung dependency can neither stall the probe past its budget nor
starve the request thread pool.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from keelwatch.api.deps import ServicesDep
from keelwatch.context import Services
from keelwatch.metrics import KeelwatchMetrics

logger = logging.getLogger(__name__)
router = APIRouter(tags=["health"])

#: Seconds each readiness check may take before it counts as failed.
CHECK_TIMEOUT_S = 10.0
_check_pool = ThreadPoolExecutor(max_workers=6, thread_name_prefix="keelwatch-readyz")


class CheckResult(BaseModel):
    """Outcome of one readiness check."""

    status: Literal["ok", "fail"]
    detail: str = ""
    duration_ms: float


class Readiness(BaseModel):
    """Overall readiness and each check's outcome."""

    status: Literal["ok", "fail"]
    checks: dict[str, CheckResult]


@router.get("/healthz", summary="Liveness: the process is up and serving")
def healthz() -> dict[str, str]:
    """Always ``{"status": "ok"}`` while the process can serve HTTP."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness: database, broker and MLflow all answer",
    responses={503: {"model": Readiness, "description": "At least one check failed."}},
)
async def readyz(request: Request, services: ServicesDep) -> JSONResponse:
    """200 when every dependency answers, 503 (with per-check details) otherwise."""
    checks: dict[str, Callable[[], str]] = {
        "database": lambda: check_database(services),
        "broker": lambda: check_broker(services),
        "mlflow": lambda: check_mlflow(services),
    }
    names = list(checks)
    results = await asyncio.gather(*(_run_check(checks[name]) for name in names))
    outcome = dict(zip(names, results, strict=True))
    metrics: KeelwatchMetrics = request.app.state.metrics
    for name, result in outcome.items():
        if result.status == "fail":
            metrics.count_error("readyz", name)
    ready = all(result.status == "ok" for result in outcome.values())
    body = Readiness(status="ok" if ready else "fail", checks=outcome)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics (text exposition format)")
def metrics(request: Request) -> Response:
    """Every collector of this API process, rendered at scrape time."""
    registry: KeelwatchMetrics = request.app.state.metrics
    payload, content_type = registry.render()
    return Response(content=payload, media_type=content_type)


def start_warm_up(services: Services) -> None:
    """Import the MLflow client in the background at startup: importing it takes seconds, and
    the first ``/readyz`` would otherwise spend its whole budget on the import."""
    if not services.settings.mlflow.registry_uri.startswith(("http://", "https://")):
        _check_pool.submit(_import_mlflow_client)


def _import_mlflow_client() -> None:
    try:
        import mlflow.tracking  # noqa: F401
    except Exception:  # the readiness check will report the real error
        logger.warning("MLflow client import failed during warm-up", exc_info=True)


async def _run_check(check: Callable[[], str]) -> CheckResult:
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    try:
        detail = await asyncio.wait_for(
            loop.run_in_executor(_check_pool, check), timeout=CHECK_TIMEOUT_S
        )
        status: Literal["ok", "fail"] = "ok"
    except TimeoutError:
        status, detail = "fail", f"no answer within {CHECK_TIMEOUT_S:g}s"
    except Exception as exc:  # any failure of a dependency is a failed check, not a 500
        status, detail = "fail", _describe(exc)
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    return CheckResult(status=status, detail=detail, duration_ms=elapsed_ms)


def _describe(exc: BaseException) -> str:
    message = str(exc).strip().splitlines()
    first = message[0] if message else ""
    return f"{type(exc).__name__}: {first}"[:500]


# --------------------------------------------------------------------------- the checks


@lru_cache(maxsize=1)
def _head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    from keelwatch.storage.db import alembic_config

    # The script folder does not depend on the URL; any URL builds the config.
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()  # type: ignore[no-any-return]


def check_database(services: Services) -> str:
    """``SELECT 1`` works and the schema is at Alembic's head revision."""
    from alembic.runtime.migration import MigrationContext

    with services.db.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        current = MigrationContext.configure(conn).get_current_revision()
    head = _head_revision()
    if current != head:
        raise RuntimeError(
            f"schema at revision {current!r}, code expects {head!r} (run `keelwatch db upgrade`)"
        )
    return f"revision {current}"


def check_broker(services: Services) -> str:
    """The broker accepts a connection (Redis PING, or the embedded folder is writable)."""
    settings = services.settings
    url = settings.broker.url
    if settings.broker_is_embedded:
        folder = settings.broker_dir / "queue"
        if not folder.is_dir():
            raise RuntimeError(f"filesystem broker folder {folder} does not exist")
        probe = folder / f".readyz-{time.monotonic_ns()}"
        probe.write_bytes(b"")
        probe.unlink()
        return f"filesystem broker at {folder}"
    if url.startswith(("redis://", "rediss://", "unix://")):
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=2.0)
        try:
            client.ping()
        finally:
            client.close()
        return "redis answered PING"
    from kombu.connection import Connection

    with Connection(url, connect_timeout=2.0) as conn:  # type: ignore[no-untyped-call]
        conn.ensure_connection(max_retries=1)
    return f"{conn.transport_cls} broker connected"


def check_mlflow(services: Services) -> str:
    """MLflow's registry answers a search for one registered model."""
    settings = services.settings.mlflow
    registry_uri = settings.registry_uri
    if registry_uri.startswith(("http://", "https://")):
        # The same REST call the client makes, without MLflow's multi-minute retry backoff.
        import httpx

        response = httpx.get(
            registry_uri.rstrip("/") + "/api/2.0/mlflow/registered-models/search",
            params={"max_results": 1},
            timeout=3.0,
        )
        response.raise_for_status()
        found: list[Any] = response.json().get("registered_models", [])
    else:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=registry_uri)
        found = list(client.search_registered_models(max_results=1))
    return f"registry answered ({len(found)} model(s) in the first page)"
