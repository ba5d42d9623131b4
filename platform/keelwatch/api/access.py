"""Who may call which route: ONE table, and the one dependency that enforces it.

:data:`ROUTE_ACCESS` maps every ``(method, path template)`` of the API to the role it needs
(:class:`~keelwatch.entities.auth.Role`, see :mod:`keelwatch.auth.roles` for what each role
grants) or to an :class:`OpenAccess` kind. ``create_app`` installs :func:`authorize` as an
app-level dependency, so it runs for every route before the route's own parameters and body
are validated and before the handler: a refused request writes nothing, and a caller whose
role is too low gets 403, not a 422 about the body it sent.

A route missing from the table cannot ship: :func:`install_access` refuses to build the app
and lists the unmapped routes. Rules of thumb for a new route: reads (GET) ``viewer``; jobs,
monitors, labels, silences, acknowledgements ``operator``; approving versions or pending
actions, promotion, rollback, aliases ``approver``; tokens, notifiers, policies, rules,
settings ``admin``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from enum import StrEnum
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.routing import iter_route_contexts
from starlette.concurrency import run_in_threadpool

from keelwatch.auth.authenticator import Authenticator
from keelwatch.auth.errors import AuthenticationError, PermissionDeniedError
from keelwatch.auth.ratelimit import RateLimiter
from keelwatch.auth.roles import any_grants
from keelwatch.entities.auth import Principal, PrincipalKind, Role
from keelwatch.settings import AuthMode, Settings
from keelwatch.storage.db import Database

logger = logging.getLogger(__name__)


class OpenAccess(StrEnum):
    """Routes the app-level dependency does not check: no Keelwatch credentials needed, or
    the route checks them itself."""

    #: Anyone: probes and the API's own documentation.
    PUBLIC = "public"
    #: The route authenticates its caller itself (the inbound Alertmanager webhook checks its
    #: own bearer token or HMAC signature, ``alerting.inbound_*``).
    OWN_CHECK = "own-check"
    #: ``/metrics``: public unless ``auth.metrics_require_token``, then ``viewer``.
    METRICS = "metrics"
    #: The review page (HTML for browsers, ``api/routers/review_page.py``): it takes the API
    #: token from its session cookie (or a bearer header) and needs ``reviewer`` through this
    #: module's authenticator, rate limit and role check, answering refusals as pages.
    REVIEW_PAGE = "reviewer-page"


Access = Role | OpenAccess

_V, _O, _P, _A = Role.VIEWER, Role.OPERATOR, Role.APPROVER, Role.ADMIN
_R = Role.REVIEWER

#: (method, path template) → what the route needs. The one place roles are assigned.
ROUTE_ACCESS: Mapping[tuple[str, str], Access] = {
    # probes, metrics and documentation
    ("GET", "/healthz"): OpenAccess.PUBLIC,
    ("GET", "/readyz"): OpenAccess.PUBLIC,
    ("GET", "/metrics"): OpenAccess.METRICS,
    ("GET", "/openapi.json"): OpenAccess.PUBLIC,
    ("HEAD", "/openapi.json"): OpenAccess.PUBLIC,
    ("GET", "/docs"): OpenAccess.PUBLIC,
    ("GET", "/docs/oauth2-redirect"): OpenAccess.PUBLIC,
    ("GET", "/redoc"): OpenAccess.PUBLIC,
    # who the caller is (the remote CLI's `tokens whoami`)
    ("GET", "/auth/whoami"): _V,
    # model registry
    ("GET", "/models"): _V,
    ("GET", "/models/resolve"): _V,
    ("GET", "/models/{name}"): _V,
    ("GET", "/models/{name}/versions"): _V,
    ("POST", "/models/{name}/versions"): _O,
    ("GET", "/models/{name}/versions/{version}"): _V,
    ("POST", "/models/{name}/versions/{version}/approve"): _P,
    ("POST", "/models/{name}/versions/{version}/reject"): _P,
    ("POST", "/models/{name}/versions/{version}/reopen"): _P,
    ("POST", "/models/{name}/versions/{version}/promote"): _P,
    ("POST", "/models/{name}/rollback"): _P,
    # An alias can be the champion: moving or clearing one is a promotion.
    ("PUT", "/models/{name}/aliases/{alias}"): _P,
    ("DELETE", "/models/{name}/aliases/{alias}"): _P,
    ("GET", "/models/{name}/aliases/{alias}"): _V,
    ("GET", "/models/{name}/aliases/{alias}/history"): _V,
    ("PUT", "/models/{model_name}/versions/{version}/reference-profile"): _O,
    # MLflow's registry webhook checks its own HMAC signature (registry.webhook_secret).
    ("POST", "/registry/webhooks/mlflow"): OpenAccess.OWN_CHECK,
    ("GET", "/models/{model_name}/versions/{version}/reference-profile"): _V,
    # batch jobs
    ("POST", "/jobs/batch-inference"): _O,
    ("GET", "/jobs"): _V,
    ("GET", "/jobs/{job_id}"): _V,
    ("POST", "/jobs/{job_id}/cancel"): _O,
    ("POST", "/jobs/{job_id}/retry"): _O,
    # monitors
    ("POST", "/monitors"): _O,
    ("GET", "/monitors"): _V,
    ("GET", "/monitors/{name}"): _V,
    ("PATCH", "/monitors/{name}"): _O,
    ("DELETE", "/monitors/{name}"): _O,
    ("POST", "/monitors/{name}/run"): _O,
    ("GET", "/monitors/{name}/results"): _V,
    # prediction log and labels
    ("GET", "/predictions"): _V,
    ("POST", "/predictions/labels"): _O,
    ("POST", "/predictions/attributes"): _O,
    # realized performance (labels joined with the prediction log)
    ("GET", "/evaluations/realized"): _V,
    ("POST", "/evaluations/realized"): _O,
    # evaluation datasets and runs
    ("POST", "/evaluations/datasets"): _O,
    ("GET", "/evaluations/datasets"): _V,
    ("POST", "/evaluations"): _O,
    ("GET", "/evaluations"): _V,
    ("GET", "/evaluations/{run_id}"): _V,
    # evaluation schedules: operators set and delete them, viewers read
    ("PUT", "/evaluations/schedules/{name}"): _O,
    ("GET", "/evaluations/schedules"): _V,
    ("GET", "/evaluations/schedules/{name}"): _V,
    ("DELETE", "/evaluations/schedules/{name}"): _O,
    # champion/challenger gate: a check may promote (approver); policies are admin's
    ("PUT", "/gate/policies/{model}"): _A,
    ("GET", "/gate/policies/{model}"): _V,
    ("DELETE", "/gate/policies/{model}"): _A,
    ("POST", "/gate/checks"): _P,
    ("GET", "/gate/decisions"): _V,
    # bias audits: operators run them (as they run realized performance), viewers read
    ("POST", "/audits"): _O,
    ("GET", "/audits"): _V,
    ("GET", "/audits/{audit_id}"): _V,
    ("GET", "/audits/{audit_id}/report"): _V,
    # privacy: viewers read the retention policy; purging deletes data: admin
    ("GET", "/privacy/retention"): _V,
    ("POST", "/privacy/purge"): _A,
    # the moderation review queue: its texts are for reviewers only (not viewers), and the
    # item an appeal answers with carries the text, so appealing needs reviewer too
    ("GET", "/review/items"): _R,
    ("GET", "/review/items/{item_id}"): _R,
    ("POST", "/review/items/next"): _R,
    ("POST", "/review/items/{item_id}/claim"): _R,
    ("POST", "/review/items/{item_id}/approve"): _R,
    ("POST", "/review/items/{item_id}/reject"): _R,
    ("POST", "/review/items/{item_id}/appeal"): _R,
    ("GET", "/review/export"): _R,
    # the review page for people (HTML, a session cookie): reviewer, checked by the page
    ("GET", "/review"): OpenAccess.REVIEW_PAGE,
    ("GET", "/review/login"): OpenAccess.PUBLIC,
    ("POST", "/review/login"): OpenAccess.REVIEW_PAGE,
    ("POST", "/review/logout"): OpenAccess.REVIEW_PAGE,
    ("POST", "/review/claim"): OpenAccess.REVIEW_PAGE,
    ("POST", "/review/decide/{item_id}"): OpenAccess.REVIEW_PAGE,
    # content moderation: operators check texts (a check with a model is stored), viewers
    # read the rates
    ("POST", "/moderation/check"): _O,
    ("GET", "/moderation/rates"): _V,
    # batch moderation runs are jobs: operators submit them
    ("POST", "/moderation/runs"): _O,
    # audit log
    ("GET", "/audit"): _V,
    # alerts, silences, dead letters
    ("POST", "/alerts/inbound/alertmanager"): OpenAccess.OWN_CHECK,
    ("GET", "/alerts"): _V,
    ("GET", "/alerts/{fingerprint}"): _V,
    ("POST", "/alerts/{fingerprint}/ack"): _O,
    ("GET", "/alerts/silences"): _V,
    ("POST", "/alerts/silences"): _O,
    ("DELETE", "/alerts/silences/{silence_id}"): _O,
    ("GET", "/alerts/dead-letters"): _V,
    ("POST", "/alerts/dead-letters/{dead_letter_id}/replay"): _O,
    # alert rules, notifiers and action policies are configuration: admin
    ("GET", "/alerts/rules"): _V,
    ("PUT", "/alerts/rules"): _A,
    ("DELETE", "/alerts/rules/{name}"): _A,
    ("GET", "/notifiers"): _V,  # secrets masked in every answer
    ("POST", "/notifiers"): _A,
    ("DELETE", "/notifiers/{name}"): _A,
    ("POST", "/notifiers/{name}/test"): _A,
    ("GET", "/actions/policies"): _V,
    ("PUT", "/actions/policies"): _A,
    ("DELETE", "/actions/policies/{name}"): _A,
    # policy actions awaiting a person
    ("GET", "/actions"): _V,
    ("GET", "/actions/{execution_id}"): _V,
    ("POST", "/actions/{execution_id}/approve"): _P,
    ("POST", "/actions/{execution_id}/reject"): _P,
}

_WWW_AUTHENTICATE = 'Bearer realm="keelwatch"'
_WWW_AUTHENTICATE_INVALID = 'Bearer realm="keelwatch", error="invalid_token"'
ANONYMOUS = Principal(identity="anonymous", kind=PrincipalKind.ANONYMOUS, roles=frozenset(Role))


class UnmappedRoutesError(RuntimeError):
    """The app has routes :data:`ROUTE_ACCESS` does not assign a role to."""

    def __init__(self, routes: list[tuple[str, str]]) -> None:
        listed = ", ".join(f"{method} {path}" for method, path in routes)
        super().__init__(
            f"{len(routes)} route(s) have no entry in keelwatch.api.access.ROUTE_ACCESS, so no "
            f"role can be checked for them: {listed}. Add each with the role it needs."
        )
        self.routes = routes


def iter_app_routes(app: FastAPI) -> Iterator[tuple[str, str, Any]]:
    """``(method, path template, route)`` for every route of ``app`` (included routers'
    prefixes applied); mounts (static files) have no methods and are skipped."""
    for context in iter_route_contexts(app.routes):
        path = context.path_format or context.path
        for method in sorted(context.methods or ()):
            if path is not None:
                yield method, path, context.original_route


def required_access(method: str, path: str) -> Access | None:
    """What ``method path`` needs, or None when the table does not say."""
    return ROUTE_ACCESS.get((method.upper(), path))


class AccessGate:
    """The per-app state :func:`authorize` uses: each route's access, the authenticator and
    the per-caller rate limiter."""

    def __init__(
        self,
        by_route: dict[tuple[int, str], Access],
        settings: Settings,
        authenticator: Authenticator,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.by_route = by_route
        self.settings = settings
        self.authenticator = authenticator
        self.limiter = limiter or RateLimiter(
            settings.auth.rate_limit_per_s, settings.auth.rate_limit_burst
        )

    def needed_role(self, request: Request) -> Role | None:
        """The role this request's route needs; None for open routes."""
        route = request.scope.get("route")
        access = self.by_route.get((id(route), request.method))
        if access is None:  # install_access makes this impossible; deny if it ever happens
            raise HTTPException(403, f"forbidden: {request.method} {request.url.path} has no role")
        if access is OpenAccess.METRICS:
            return Role.VIEWER if self.settings.auth.metrics_require_token else None
        if isinstance(access, OpenAccess):
            return None
        return access

    def cached_principal(self, request: Request) -> Principal | None:
        """The caller from memory (no I/O), or None when the database must be asked; 401 as
        :meth:`authenticate` would for a missing, malformed or expired credential."""
        if self.settings.auth.mode is AuthMode.DISABLED:
            return ANONYMOUS
        try:
            return self.authenticator.cached(request.headers.get("Authorization"))
        except AuthenticationError as exc:
            raise _unauthorized(request, exc) from None

    def authenticate(self, request: Request) -> Principal:
        """The caller, checked against the database (or the OIDC issuer's keys); 401 as an
        HTTPException with ``WWW-Authenticate``. Blocking: run it in a thread."""
        if self.settings.auth.mode is AuthMode.DISABLED:
            return ANONYMOUS
        try:
            return self.authenticator.authenticate(request.headers.get("Authorization"))
        except AuthenticationError as exc:
            raise _unauthorized(request, exc) from None

    def admit(self, request: Request, principal: Principal, needed: Role) -> None:
        """Spend one request of the caller's rate (429 with ``Retry-After`` when it is used
        up; ``/metrics`` is exempt), then check ``needed`` (403). No I/O."""
        if self.limiter.enabled and not self._exempt(request):
            key, who = _rate_key(request, principal)
            decision = self.limiter.take(key)
            if not decision.allowed:
                auth = self.settings.auth
                message = (
                    f"rate limit exceeded: {who} may make {auth.rate_limit_per_s:g} requests/s "
                    f"(bursts of {auth.rate_limit_burst}) to this API replica; retry after "
                    f"{decision.retry_after_header} s (KEELWATCH_AUTH__RATE_LIMIT_PER_S)"
                )
                raise HTTPException(
                    429, message, headers={"Retry-After": decision.retry_after_header}
                )
        if not any_grants(principal.roles, needed):
            raise HTTPException(403, str(PermissionDeniedError(needed, principal.roles)))

    def _exempt(self, request: Request) -> bool:
        # /metrics needs a role only with auth.metrics_require_token; scrapes are never limited.
        route = request.scope.get("route")
        return self.by_route.get((id(route), request.method)) is OpenAccess.METRICS


def _unauthorized(request: Request, exc: AuthenticationError) -> HTTPException:
    missing = not request.headers.get("Authorization")
    header = _WWW_AUTHENTICATE if missing else _WWW_AUTHENTICATE_INVALID
    return HTTPException(401, str(exc), headers={"WWW-Authenticate": header})


def _rate_key(request: Request, principal: Principal) -> tuple[str, str]:
    """The rate-limit bucket of a caller and how to name it in the 429: the token, the OIDC
    subject, or (authentication disabled) the client address."""
    if principal.token_id is not None:
        return f"token:{principal.token_id}", principal.identity
    if principal.kind is PrincipalKind.ANONYMOUS:
        host = request.client.host if request.client is not None else "unknown"
        return f"client:{host}", "this client address"
    return principal.identity, principal.identity


async def authorize(request: Request) -> None:
    """The app-level dependency: authenticate, rate-limit and check the route's role, or
    refuse (401, 429, 403).

    Async so open routes cost nothing; a token checked within ``auth.token_cache_ttl_s`` is
    answered from memory on the event loop, and only a cache miss (or an OIDC token) goes to
    the thread pool for the database. ``last_used_at`` is written from the thread pool at most
    once a minute per token. The principal is left on ``request.state.principal`` for
    :data:`~keelwatch.api.deps.ActorDep`.
    """
    gate: AccessGate = request.app.state.access_gate
    needed = gate.needed_role(request)
    if needed is None:
        return
    principal = gate.cached_principal(request)
    if principal is None:
        principal = await run_in_threadpool(gate.authenticate, request)
    gate.admit(request, principal, needed)
    if gate.authenticator.use_due(principal):
        await run_in_threadpool(gate.authenticator.note_use, principal)
    request.state.principal = principal


def install_access(app: FastAPI, settings: Settings, database: Database) -> None:
    """Map every route of ``app`` to its access (raise :class:`UnmappedRoutesError` listing any
    route the table misses) and describe the roles in the OpenAPI spec."""
    by_route: dict[tuple[int, str], Access] = {}
    unmapped: list[tuple[str, str]] = []
    for method, path, route in iter_app_routes(app):
        access = required_access(method, path)
        if access is None:
            unmapped.append((method, path))
        else:
            by_route[(id(route), method)] = access
    if unmapped:
        raise UnmappedRoutesError(unmapped)
    authenticator = Authenticator(settings, database)
    _ = authenticator.oidc  # a half-configured OIDC fails here, at start, not on a request
    if settings.auth.mode is not AuthMode.DISABLED:
        _ = authenticator.key  # read (or create) the secret now, not on the event loop later
    app.state.access_gate = AccessGate(by_route, settings, authenticator)
    app.openapi = _openapi_with_roles(app, app.openapi)  # type: ignore[method-assign]
    if settings.auth.mode is AuthMode.DISABLED:
        logger.warning(
            "KEELWATCH_AUTH__MODE=disabled: the API authenticates nobody; every call is "
            "allowed and audited as 'anonymous'. Use it on a laptop only."
        )


# --------------------------------------------------------------------------- OpenAPI


def role_note(access: Access) -> str:
    """One line for an operation's description."""
    if isinstance(access, Role):
        return f"Requires role `{access.value}` (a bearer token; see docs/security.md)."
    if access is OpenAccess.OWN_CHECK:
        return "Authenticated by its own bearer token or signature (not an API token)."
    if access is OpenAccess.METRICS:
        return "Open unless `auth.metrics_require_token` is set (then role `viewer`)."
    if access is OpenAccess.REVIEW_PAGE:
        return "Requires role `reviewer`, checked by the review page (its session cookie)."
    return "Open: no credentials needed."


def _openapi_with_roles(
    app: FastAPI, build: Callable[[], dict[str, Any]]
) -> Callable[[], dict[str, Any]]:
    def openapi() -> dict[str, Any]:
        cached = app.openapi_schema is not None
        schema = build()
        if not cached:
            annotate_openapi(schema)
        return schema

    return openapi


def annotate_openapi(schema: dict[str, Any]) -> None:
    """Add the ``bearerAuth`` scheme and, per operation, ``x-keelwatch-role``, ``security``
    and a line in the description saying what it needs."""
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})["bearerAuth"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "A Keelwatch API token (`keelwatch tokens create`) or, when OIDC is "
        "configured, an access token from the identity provider.",
    }
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            access = required_access(method, path)
            if access is None or not isinstance(operation, dict):
                continue
            operation["x-keelwatch-role"] = access.value
            note = role_note(access)
            description = operation.get("description", "")
            operation["description"] = f"{description}\n\n{note}" if description else note
            if isinstance(access, Role):
                operation["security"] = [{"bearerAuth": []}]
                responses = operation.setdefault("responses", {})
                responses.setdefault("401", {"description": "Missing or invalid credentials."})
                responses.setdefault("403", {"description": f"Needs role `{access.value}`."})
                responses.setdefault(
                    "429",
                    {
                        "description": "Too many requests from this token "
                        "(`auth.rate_limit_per_s`); `Retry-After` says when to try again."
                    },
                )
            elif access is OpenAccess.PUBLIC:
                operation["security"] = []


def access_table_markdown() -> str:
    """The route table as Markdown (docs/security.md embeds it; a test keeps them equal)."""
    lines = ["| Method | Path | Needs |", "|---|---|---|"]
    for (method, path), access in sorted(ROUTE_ACCESS.items(), key=lambda item: item[0][::-1]):
        needs = f"`{access.value}`" if isinstance(access, Role) else access.value
        lines.append(f"| {method} | `{path}` | {needs} |")
    return "\n".join(lines)
