"""Registry endpoints (``/models``): list, register, approve/reject, promote, rollback, aliases,
alias history and reference resolution.

Handlers are plain ``def``: the MLflow client blocks, so FastAPI runs them in its thread pool
(``GET /models`` alone is async and answers cache hits without a thread).
Reads go through ``registry.cached`` (a short-TTL cache that the registry's own writes
invalidate, see :mod:`keelwatch.registry.cache`); writes go to the façade.
Errors are :class:`~keelwatch.errors.KeelwatchError` subclasses, turned into JSON 4xx by the app.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from starlette.concurrency import run_in_threadpool

from keelwatch.api.deps import ActorDep, ServicesDep
from keelwatch.api.pagination import CursorQuery, page_in_memory
from keelwatch.data_roots import is_local_location, resolve_read_folder
from keelwatch.schemas.common import Page
from keelwatch.schemas.registry import (
    AliasAtOut,
    AliasChangeOut,
    ClearedAliasOut,
    ModelVersionOut,
    PromoteIn,
    ReasonIn,
    RegisteredModelOut,
    RegisterVersionIn,
    ResolvedModelOut,
    SetAliasIn,
)

router = APIRouter(prefix="/models", tags=["registry"])


#: Largest ``limit`` of the registry's list endpoints.
MAX_LIMIT = 1000

# Domain errors per route (the shared ones, 404 for a path naming nothing among them, are added
# to every operation by keelwatch.api.openapi_errors).
UNKNOWN_REF: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such model, alias or version."}
}
UNKNOWN_RUN: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such MLflow run, or no model logged in it."}
}
APPROVAL_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "A rejected version is re-opened before it is approved."}
}
REOPEN_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "Only a rejected version is re-opened."}
}
ALIAS_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {
        "description": "A rejected version gets no alias; the champion must be approved first "
        "when `registry.require_approval` is on."
    }
}
ROLLBACK_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "No champion, or no earlier approved champion to roll back to."}
}


@router.get("", response_model=Page[RegisteredModelOut])
async def list_models(
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    cursor: CursorQuery = None,
) -> Page[RegisteredModelOut]:
    """Registered models by name, with their aliases and latest version."""
    # The most polled registry route (UIs, dashboards): a cache hit is answered on the event
    # loop; only a miss (MLflow calls, which block) goes to the thread pool.
    models = services.registry.cached.cached_models()
    if models is None:
        models = await run_in_threadpool(services.registry.cached.list_models)
    items, next_cursor = page_in_memory(
        models,
        limit,
        cursor,
        kind="models",
        key=lambda info: info.name,
        parse=str,
    )
    out = [RegisteredModelOut.of(info) for info in items]
    return Page(count=len(out), items=out, next_cursor=next_cursor)


# Declared before /{name} so that "resolve" is not taken for a model name.
@router.get("/resolve", response_model=ResolvedModelOut, responses=UNKNOWN_REF)
def resolve_reference(
    services: ServicesDep,
    ref: Annotated[str, Query(description="name, name@alias, name/3, models:/name/3 ...")],
) -> ResolvedModelOut:
    """Resolve a model reference to a pinned version and its input columns."""
    resolved = services.registry.cached.resolve(ref)
    return ResolvedModelOut.of(resolved, services.registry.input_columns(resolved))


@router.get("/{name}", response_model=RegisteredModelOut)
def get_model(services: ServicesDep, name: str) -> RegisteredModelOut:
    """One registered model."""
    return RegisteredModelOut.of(services.registry.cached.get_model(name))


@router.get("/{name}/versions", response_model=Page[ModelVersionOut])
def list_versions(
    services: ServicesDep,
    name: str,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    cursor: CursorQuery = None,
) -> Page[ModelVersionOut]:
    """Versions of a model, oldest first."""
    items, next_cursor = page_in_memory(
        services.registry.cached.list_versions(name),
        limit,
        cursor,
        kind=f"versions:{name}",
        key=lambda info: int(info.version),
        parse=int,
    )
    out = [ModelVersionOut.of(info) for info in items]
    return Page(count=len(out), items=out, next_cursor=next_cursor)


@router.post(
    "/{name}/versions",
    response_model=ModelVersionOut,
    status_code=status.HTTP_201_CREATED,
    responses=UNKNOWN_RUN,
)
def register_version(
    services: ServicesDep, actor: ActorDep, name: str, body: RegisterVersionIn
) -> ModelVersionOut:
    """Register a new (pending) version from an MLflow run or a model URI. A local model
    folder (a path or ``file://`` URI) must lie inside the read data roots, like every dataset
    path the API is given."""
    model_uri = body.model_uri
    if model_uri is not None and is_local_location(model_uri):
        roots = services.settings.data_roots.read
        model_uri = str(resolve_read_folder(model_uri, roots, field="model_uri"))
    info = services.registry.register_version(
        name,
        run_id=body.run_id,
        artifact_path=body.artifact_path,
        model_uri=model_uri,
        actor=actor,
        reason=body.reason,
        description=body.description,
    )
    return ModelVersionOut.of(info)


@router.get("/{name}/versions/{version}", response_model=ModelVersionOut)
def get_version(services: ServicesDep, name: str, version: str) -> ModelVersionOut:
    """One version with its approval state, aliases and tags."""
    return ModelVersionOut.of(services.registry.cached.get_version(name, version))


@router.post(
    "/{name}/versions/{version}/approve",
    response_model=ModelVersionOut,
    responses=APPROVAL_CONFLICT,
)
def approve_version(
    services: ServicesDep, actor: ActorDep, name: str, version: str, body: ReasonIn
) -> ModelVersionOut:
    """Approve a version (required before it can become champion)."""
    info = services.registry.approve(name, version, actor=actor, reason=body.reason)
    return ModelVersionOut.of(info)


@router.post("/{name}/versions/{version}/reject", response_model=ModelVersionOut)
def reject_version(
    services: ServicesDep, actor: ActorDep, name: str, version: str, body: ReasonIn
) -> ModelVersionOut:
    """Reject a version: it can no longer be approved or get any alias until re-opened."""
    info = services.registry.reject(name, version, actor=actor, reason=body.reason)
    return ModelVersionOut.of(info)


@router.post(
    "/{name}/versions/{version}/reopen", response_model=ModelVersionOut, responses=REOPEN_CONFLICT
)
def reopen_version(
    services: ServicesDep, actor: ActorDep, name: str, version: str, body: ReasonIn
) -> ModelVersionOut:
    """Return a rejected version to pending (audited); 409 if it is not rejected."""
    info = services.registry.reopen(name, version, actor=actor, reason=body.reason)
    return ModelVersionOut.of(info)


@router.post(
    "/{name}/versions/{version}/promote", response_model=ModelVersionOut, responses=ALIAS_CONFLICT
)
def promote_version(
    services: ServicesDep, actor: ActorDep, name: str, version: str, body: PromoteIn
) -> ModelVersionOut:
    """Point an alias (default: champion) at this version; 409 if it is not approved."""
    info = services.registry.promote(
        name, version, alias=body.alias, actor=actor, reason=body.reason
    )
    return ModelVersionOut.of(info)


@router.post("/{name}/rollback", response_model=ModelVersionOut, responses=ROLLBACK_CONFLICT)
def rollback_model(
    services: ServicesDep, actor: ActorDep, name: str, body: ReasonIn
) -> ModelVersionOut:
    """Move the champion back to the last known-good version; returns it."""
    return ModelVersionOut.of(services.registry.rollback(name, actor=actor, reason=body.reason))


@router.put("/{name}/aliases/{alias}", response_model=ModelVersionOut, responses=ALIAS_CONFLICT)
def set_alias(
    services: ServicesDep, actor: ActorDep, name: str, alias: str, body: SetAliasIn
) -> ModelVersionOut:
    """Point ``alias`` at a version (same rules as promote)."""
    info = services.registry.set_alias(name, alias, body.version, actor=actor, reason=body.reason)
    return ModelVersionOut.of(info)


@router.delete("/{name}/aliases/{alias}", response_model=ClearedAliasOut)
def clear_alias(
    services: ServicesDep,
    actor: ActorDep,
    name: str,
    alias: str,
    reason: Annotated[str, Query(min_length=1, description="Why (audit log); required.")],
) -> ClearedAliasOut:
    """Remove an alias; the response names the version it pointed to."""
    previous = services.registry.clear_alias(name, alias, actor=actor, reason=reason)
    return ClearedAliasOut(name=name, alias=alias, previous_version=previous)


@router.get("/{name}/aliases/{alias}", response_model=AliasAtOut)
def alias_version(
    services: ServicesDep,
    name: str,
    alias: str,
    at: Annotated[datetime | None, Query(description="ISO time; naive means UTC")] = None,
) -> AliasAtOut:
    """The version ``alias`` points to now (from MLflow), or pointed to at time ``at``."""
    if at is None:
        version = services.registry.cached.resolve(f"{name}@{alias}").version
        return AliasAtOut(name=name, alias=alias, at=datetime.now(UTC), version=version)
    when = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    version_then = services.registry.version_at(name, alias, when)
    return AliasAtOut(name=name, alias=alias, at=when, version=version_then)


@router.get("/{name}/aliases/{alias}/history", response_model=Page[AliasChangeOut])
def alias_history(
    services: ServicesDep,
    name: str,
    alias: str,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    cursor: CursorQuery = None,
) -> Page[AliasChangeOut]:
    """Changes of ``alias`` made through Keelwatch, oldest first."""
    # Append-only and oldest first: a change's position is a stable key.
    numbered = list(enumerate(services.registry.alias_history(name, alias)))
    items, next_cursor = page_in_memory(
        numbered,
        limit,
        cursor,
        kind=f"alias-history:{name}@{alias}",
        key=lambda pair: pair[0],
        parse=int,
    )
    out = [AliasChangeOut.of(change) for _, change in items]
    return Page(count=len(out), items=out, next_cursor=next_cursor)
