"""Liveness (``/healthz``), readiness (``/readyz``) and Prometheus metrics (``/metrics``).

Readiness asks each dependency a real question with a short time budget: the database must
answer ``SELECT 1`` and carry the newest schema revision, the broker must accept a connection,
and MLflow must answer a one-result registry search. The checks run concurrently on a small
dedicated thread pool so a hung dependency can neither stall the probe past its budget nor
starve the request thread pool.

Readiness also says which queues have a consumer (``queues``, ``fleet``, ``warnings``, and the
``keelwatch_queue_consumers{queue}`` gauge). A queue without a worker does not fail the API's
own readiness: the API still serves (and is where a person looks), and taking it out of the load
balancer would not start a worker. It reports ``fleet: degraded`` with a warning naming the
queue instead. ``cpu`` and ``monitoring`` need a consumer; ``gpu`` without one is normal on a
cluster without GPUs.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import text

from keelwatch.api.deps import ServicesDep
from keelwatch.contract import ALL_QUEUES, QUEUE_CPU, QUEUE_MONITORING
from keelwatch.metrics import KeelwatchMetrics
from keelwatch.schemas.health import CheckResult, QueueStatus, Readiness
from keelwatch.wiring import Services

if TYPE_CHECKING:
    from prometheus_client import Metric

logger = logging.getLogger(__name__)
router = APIRouter(tags=["health"])

#: Seconds each readiness check may take before it counts as failed.
CHECK_TIMEOUT_S = 10.0
_check_pool = ThreadPoolExecutor(max_workers=6, thread_name_prefix="keelwatch-readyz")


#: Queues that must have a consumer; ``gpu`` is optional (a cluster may have no GPU).
REQUIRED_QUEUES = (QUEUE_CPU, QUEUE_MONITORING)
#: How long the consumer broadcast waits for workers' replies.
QUEUE_PROBE_TIMEOUT_S = 1.0
#: Probe results are reused this long by /readyz and /metrics (one broadcast, not one each).
QUEUE_PROBE_CACHE_S = 10.0
#: What each queue does, for the warning when nobody consumes it.
QUEUE_PURPOSE = {
    QUEUE_CPU: "batch inference jobs will wait forever",
    QUEUE_MONITORING: "drift checks, scheduled monitors and the heartbeat will not run",
}


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
    probe: QueueConsumerProbe = request.app.state.queue_probe
    # The consumer broadcast waits for replies: run it alongside the checks, not after them.
    consumer_task = asyncio.ensure_future(_read_consumers(probe))
    results = await asyncio.gather(*(_run_check(checks[name]) for name in names))
    consumers, error = await consumer_task
    outcome = dict(zip(names, results, strict=True))
    metrics: KeelwatchMetrics = request.app.state.metrics
    for name, result in outcome.items():
        if result.status == "fail":
            metrics.count_error("readyz", name)
    ready = all(result.status == "ok" for result in outcome.values())
    fleet, queues, warnings = queue_coverage(consumers, error)
    body = Readiness(
        status="ok" if ready else "fail",
        checks=outcome,
        fleet=fleet,
        queues=queues,
        warnings=warnings,
    )
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


async def _read_consumers(probe: QueueConsumerProbe) -> tuple[dict[str, list[str]] | None, str]:
    loop = asyncio.get_running_loop()
    try:
        return await asyncio.wait_for(
            loop.run_in_executor(_check_pool, probe.read), timeout=CHECK_TIMEOUT_S
        )
    except TimeoutError:
        return None, f"no answer within {CHECK_TIMEOUT_S:g}s"


def queue_coverage(
    consumers: dict[str, list[str]] | None, error: str = ""
) -> tuple[Literal["ok", "degraded", "unknown"], dict[str, QueueStatus], list[str]]:
    """The fleet's state, each queue's status and a warning per uncovered required queue."""
    if consumers is None:
        unknown = {
            queue: QueueStatus(status="unknown", required=queue in REQUIRED_QUEUES)
            for queue in ALL_QUEUES
        }
        return "unknown", unknown, [f"cannot ask the workers which queues they consume: {error}"]
    queues: dict[str, QueueStatus] = {}
    warnings: list[str] = []
    for queue in ALL_QUEUES:
        workers = consumers.get(queue, [])
        required = queue in REQUIRED_QUEUES
        queues[queue] = QueueStatus(
            status="ok" if workers else "no_consumer", required=required, consumers=workers
        )
        if required and not workers:
            warnings.append(
                f"no worker consumes queue {queue!r}: {QUEUE_PURPOSE[queue]} "
                f"(start one: keelwatch worker --role {queue})"
            )
    return ("degraded" if warnings else "ok"), queues, warnings


class QueueConsumerProbe:
    """Which workers consume each queue, asked over the broker and cached briefly.

    One lock: concurrent callers share one broadcast instead of each sending their own.
    """

    def __init__(
        self,
        lookup: Callable[[], dict[str, list[str]]],
        *,
        cache_s: float = QUEUE_PROBE_CACHE_S,
    ) -> None:
        self._lookup = lookup
        self._cache_s = cache_s
        self._lock = threading.Lock()
        self._at = float("-inf")
        self._value: tuple[dict[str, list[str]] | None, str] = (None, "not asked yet")

    def read(self) -> tuple[dict[str, list[str]] | None, str]:
        """``(consumers per queue, "")``, or ``(None, why)`` when the workers cannot be asked."""
        with self._lock:
            if time.monotonic() - self._at < self._cache_s:
                return self._value
            try:
                self._value = (self._lookup(), "")
            except Exception as exc:  # noqa: BLE001 - a broker problem is reported, never raised
                self._value = (None, _describe(exc))
            self._at = time.monotonic()
            return self._value


class QueueConsumersCollector(Collector):
    """``keelwatch_queue_consumers{queue}``: workers consuming each queue (no series when the
    workers cannot be asked, so an alert on ``== 0`` does not fire on a broker outage)."""

    def __init__(self, probe: QueueConsumerProbe) -> None:
        self._probe = probe

    def describe(self) -> Iterable[Metric]:
        # Explicit, so registration does not run a broadcast.
        return [GaugeMetricFamily("keelwatch_queue_consumers", "Workers consuming each queue.")]

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "keelwatch_queue_consumers",
            "Workers consuming each queue (0: nothing runs the tasks sent there).",
            labels=["queue"],
        )
        future = _check_pool.submit(self._probe.read)
        try:
            consumers, _error = future.result(timeout=CHECK_TIMEOUT_S)
        except TimeoutError:
            consumers = None
        for queue, workers in sorted((consumers or {}).items()):
            family.add_metric([queue], len(workers))
        yield family


class FrozenHeapCollector(Collector):
    """``keelwatch_api_gc_frozen_objects``: objects the startup warm-up moved out of the garbage
    collector's reach (0 until it ran; see :func:`start_warm_up`)."""

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "keelwatch_api_gc_frozen_objects",
            "Objects frozen after the API's warm-up (gc.freeze); full collections skip them.",
        )
        family.add_metric([], gc.get_freeze_count())
        yield family


def install(app: FastAPI, services: Services, metrics: KeelwatchMetrics) -> None:
    """Give ``app`` its queue-consumer probe; register the consumers and frozen-heap gauges."""
    from celery import Celery

    from keelwatch.celery_config import queue_consumers

    def lookup() -> dict[str, list[str]]:
        sender = services.sender
        assert isinstance(sender, Celery)  # the production sender is a Celery app
        return queue_consumers(sender, ALL_QUEUES, timeout_s=QUEUE_PROBE_TIMEOUT_S)

    probe = QueueConsumerProbe(lookup)
    app.state.queue_probe = probe
    metrics.add_collector(QueueConsumersCollector(probe))
    metrics.add_collector(FrozenHeapCollector())


@router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format)",
    response_class=PlainTextResponse,
)
def metrics(request: Request) -> Response:
    """Every collector of this API process, rendered at scrape time."""
    registry: KeelwatchMetrics = request.app.state.metrics
    payload, content_type = registry.render()
    return Response(content=payload, media_type=content_type)


def start_warm_up() -> None:
    """Import the MLflow client in the background at startup, then freeze the startup heap.

    Importing the client takes seconds; the first ``/readyz`` (or ``GET /models``) would
    otherwise spend its budget on it. Afterwards every object alive (modules, the MLflow client,
    pydantic schemas: over a million) moves to the collector's permanent generation
    (:func:`gc.freeze`): a full collection used to walk them all, a 130 ms pause of the event
    loop every few seconds under load, which was the whole p99 of ``GET /models``.
    """
    _check_pool.submit(_import_mlflow_client_and_freeze)


def _import_mlflow_client_and_freeze() -> None:
    try:
        import mlflow.tracking  # noqa: F401
    except Exception:  # the readiness check will report the real error
        logger.warning("MLflow client import failed during warm-up", exc_info=True)
    gc.collect()
    gc.freeze()


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
    except Exception as exc:  # noqa: BLE001 - any failure of a dependency is a failed check, not a 500
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
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


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

    with Connection(url, connect_timeout=2.0) as conn:
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
