"""The FastAPI application: ``create_app(settings)`` wires services, routers, errors, metrics.

Every error leaves as JSON ``{"error": "<message>"}``: Keelwatch's own errors with their
status code (404 unknown thing, 409 conflict, 422 bad input), request validation failures as
422 with the offending fields, unknown routes as 404. A 500 means a bug, never bad input.

Run it with ``keelwatch api`` or ``uvicorn keelwatch.api.app:create_app --factory``.

``/docs`` (Swagger UI) and ``/redoc`` load their JavaScript and CSS from the API itself
(``/docs-assets/``, files shipped by the ``fastapi-offline`` wheel), not from a CDN, so they
work on an air-gapped cluster.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from sqlalchemy.exc import DataError as SqlDataError
from sqlalchemy.exc import OperationalError as SqlOperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import keelwatch
from keelwatch.api.access import authorize, install_access
from keelwatch.api.middleware import (
    RequestGuardMiddleware,
    SecurityHeadersMiddleware,
    UnhandledErrorMiddleware,
    internal_error_body,
    log_unhandled,
)
from keelwatch.api.openapi_errors import document_errors
from keelwatch.api.routers import (
    actions,
    alerts,
    alerts_inbound,
    audit,
    audits,
    auth,
    eval_schedules,
    evaluations,
    gate,
    health,
    jobs,
    moderation,
    moderation_runs,
    monitors,
    notifiers,
    predictions,
    privacy,
    realized,
    registry,
    registry_webhooks,
    review,
    review_page,
    rules,
    silences,
)
from keelwatch.errors import KeelwatchError, UnavailableError
from keelwatch.metrics import (
    UNMATCHED_ROUTE,
    KeelwatchMetrics,
    api_metrics,
    registry_champions,
)
from keelwatch.monitoring.service.moderation_metrics import MODERATION_FINDINGS, MODERATION_TEXTS
from keelwatch.settings import Settings, load_settings
from keelwatch.wiring import Services

logger = logging.getLogger(__name__)

#: Where the Swagger UI / ReDoc assets are served from (the package's own copies).
DOCS_ASSETS_URL = "/docs-assets"


#: Routers other modules own; mounted when present so the API runs while they are being built.
def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API for ``settings`` (default: read ``KEELWATCH_*`` from the environment)."""
    settings = settings or load_settings()
    services = Services(settings)
    metrics = api_metrics(
        settings, services.db, champions=lambda: registry_champions(services.registry)
    )
    # POST /moderation/check counts on the process-wide moderation counters: serve them too.
    for counter in (MODERATION_TEXTS, MODERATION_FINDINGS):
        metrics.add_collector(counter)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        health.start_warm_up()
        yield
        services.close()

    # FastAPIOffline builds a plain FastAPI whose /docs and /redoc pages point at local assets.
    app = FastAPIOffline(
        title="Keelwatch",
        version=keelwatch.__version__,
        summary="Model registry, worker fleet, prediction log and monitoring.",
        lifespan=lifespan,
        static_url=DOCS_ASSETS_URL,
        # Authentication and the route's role (keelwatch.api.access), before anything else.
        dependencies=[Depends(authorize)],
    )
    app.state.services = services
    app.state.metrics = metrics
    health.install(app, services, metrics)  # queue-consumer probe for /readyz and /metrics
    app.state.settings = settings

    # Every router is imported explicitly: a missing one is an import error, never a silently
    # absent set of endpoints. Order matters: /alerts/rules, /alerts/silences and
    # /alerts/inbound come before /alerts/{fingerprint}.
    routers = (
        health,
        registry,
        registry_webhooks,
        jobs,
        monitors,
        predictions,
        privacy,
        realized,  # before the evaluations router: /evaluations/{id}
        eval_schedules,  # likewise
        evaluations,
        gate,
        audits,
        audit,
        moderation,
        moderation_runs,
        review,
        review_page,  # the HTML page for people under /review (the JSON API is /review/items)
        auth,
        alerts_inbound,
    )
    alerting_routers = (rules, silences, alerts, actions, notifiers)
    for router_module in (*routers, *alerting_routers):
        app.include_router(router_module.router)
    # Every route needs an entry in keelwatch.api.access.ROUTE_ACCESS: refuse to start otherwise.
    install_access(app, settings, services.db)
    # Every operation documents the error statuses the app itself can answer, in one shape.
    document_errors(app)

    _install_error_handlers(app, metrics)
    _install_edge_guards(app, settings, metrics)
    app.add_middleware(RequestLatencyMiddleware, metrics=metrics)
    if settings.api.cors_origins:  # off by default: no Access-Control-* header at all
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    return app


def _install_edge_guards(app: FastAPI, settings: Settings, metrics: KeelwatchMetrics) -> None:
    """Middleware between the latency metric (outside) and the routes (inside), outermost
    last: security headers on every answer, then the body size and NUL checks, then the
    last-resort JSON 500 that keeps the client's keep-alive connection usable."""

    def count(exc: BaseException) -> None:
        metrics.count_error("api", type(exc).__name__)

    app.add_middleware(UnhandledErrorMiddleware, on_error=count)
    app.add_middleware(RequestGuardMiddleware, max_body_bytes=settings.api.max_body_bytes)
    docs = {app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url, "/docs", "/redoc"}
    app.add_middleware(
        SecurityHeadersMiddleware, docs_paths=frozenset(p for p in docs if p is not None)
    )


# --------------------------------------------------------------------------- errors


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _install_error_handlers(app: FastAPI, metrics: KeelwatchMetrics) -> None:
    async def keelwatch_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, KeelwatchError)
        response = _error(exc.status_code, str(exc))
        # A 503 (the broker is down) says when to try again.
        retry_after = getattr(exc, "retry_after_s", None)
        if isinstance(retry_after, int):
            response.headers["Retry-After"] = str(retry_after)
        return response

    async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = [_describe_problem(problem) for problem in exc.errors()]
        summary = "; ".join(f"{p['location']}: {p['message']}" for p in problems)
        return _error(422, f"invalid request: {summary}", problems=problems)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404 and exc.detail == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"method {request.method} not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)

    async def unexpected_error(_request: Request, exc: Exception) -> JSONResponse:
        # Only for exceptions raised outside UnhandledErrorMiddleware (in outer middleware).
        metrics.count_error("api", type(exc).__name__)
        return JSONResponse(internal_error_body(log_unhandled(exc)), status_code=500)

    async def data_error(_request: Request, exc: Exception) -> JSONResponse:
        # The database refused a value (a NUL, an out-of-range number...): bad input, not a
        # bug. Its message quotes the value, so only the type is logged and nothing returned.
        logger.warning("database refused a request value (%s)", type(exc).__name__)
        return _error(422, "invalid request: the database refused a value of this request")

    async def unavailable_error(_request: Request, exc: Exception) -> JSONResponse:
        # A store is down or busy (MLflow, a registry lock): 503 and when to try again.
        assert isinstance(exc, UnavailableError)
        retry = {"Retry-After": str(exc.retry_after_s)}
        return JSONResponse({"error": str(exc)}, status_code=503, headers=retry)

    async def database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
        # Keelwatch's database refused the connection, dropped it or stayed locked. Its message
        # may name the host and user, so only the type is logged and nothing returned.
        logger.warning("database unavailable (%s)", type(exc).__name__)
        message = "database unavailable: Keelwatch's database did not answer; retry later"
        return JSONResponse({"error": message}, status_code=503, headers={"Retry-After": "5"})

    app.add_exception_handler(KeelwatchError, keelwatch_error)
    app.add_exception_handler(UnavailableError, unavailable_error)
    app.add_exception_handler(SqlOperationalError, database_unavailable)
    app.add_exception_handler(psycopg.OperationalError, database_unavailable)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(SqlDataError, data_error)
    app.add_exception_handler(psycopg.DataError, data_error)
    app.add_exception_handler(Exception, unexpected_error)


def _describe_problem(problem: Any) -> dict[str, str]:
    location = ".".join(str(part) for part in problem.get("loc", ()))
    message = str(problem.get("msg", "invalid value"))
    if problem.get("type") == "json_invalid":
        # Pydantic puts the character offset in the location; "body" says where to look.
        location = "body"
        message = f"malformed JSON body ({problem.get('ctx', {}).get('error', 'parse error')})"
    return {"location": location or "request", "message": message}


# --------------------------------------------------------------------------- latency


class RequestLatencyMiddleware:
    """Observe every HTTP request's latency, labelled by route template, method and status.

    The route template (``/jobs/{job_id}``) rather than the raw path keeps label cardinality
    bounded; requests that match no route share one label.
    """

    def __init__(self, app: ASGIApp, metrics: KeelwatchMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_capture)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED_ROUTE
            self.metrics.observe_request(
                route=template,
                method=str(scope.get("method", "")),
                status=status,
                seconds=time.perf_counter() - started,
            )
