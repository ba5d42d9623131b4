"""Alerting rules over HTTP: list, apply (YAML or JSON), delete.

``PUT /alerts/rules`` takes a rule file as YAML (``Content-Type: application/yaml`` or
``text/yaml``) or ``{"rules": [...]}`` as JSON, validates every rule against the signal
catalogue and only then upserts them by name (rules it does not name are kept). A mistake is a
422 naming the rule, the field and, for YAML, ``source:line:column`` (``source`` is the query
parameter, ``api`` by default); nothing is written then. Mutations are audited
(``rule.apply``, ``rule.delete``) with the caller's authenticated identity as actor.

:func:`read_definitions` (the YAML-or-JSON body) is shared with ``PUT /actions/policies``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from keelwatch.api.deps import ActorDep, ServicesDep
from keelwatch.api.pagination import CursorQuery, page_in_memory
from keelwatch.entities.time import utcnow
from keelwatch.errors import InvalidInputError
from keelwatch.schemas.alerts import AppliedOut, RuleOut, RulesIn
from keelwatch.schemas.common import Page
from keelwatch.wiring import Services

router = APIRouter(prefix="/alerts/rules", tags=["rules"])

MAX_LIMIT = 1000

#: Media types read as YAML text (the first is the one documented).
YAML_MEDIA_TYPES = ("application/yaml", "text/yaml", "application/x-yaml", "text/x-yaml")

#: Error answers every route here may give, for the OpenAPI document.
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No rule of that name."}}
BAD_INPUT: dict[int | str, dict[str, Any]] = {
    415: {"description": "The body is neither YAML nor JSON."},
    422: {"description": "A malformed rule: the message names the rule, field and position."},
}

ReasonQuery = Annotated[str, Query(max_length=2000, description="Why (audit log).")]


def definitions_body(json_schema: dict[str, Any], yaml_example: str) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of a route that reads :func:`read_definitions`."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/yaml": {"schema": {"type": "string"}, "example": yaml_example},
                "application/json": {"schema": json_schema},
            },
        }
    }


async def read_definitions(request: Request, key: str) -> str | list[Any]:
    """The body as YAML text, or the list under ``key`` of a JSON object.

    A body in another media type is a 415; malformed JSON or another JSON shape is a 422 naming
    what was expected. The YAML itself is parsed (with positions) by the caller's parser.
    """
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if media in YAML_MEDIA_TYPES:
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInputError("body: YAML must be UTF-8 text") from None
    if media == "application/json" or media.endswith("+json"):
        try:
            data = json.loads(body)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(
                f"body: malformed JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
            ) from None
        except UnicodeDecodeError:
            raise InvalidInputError("body: JSON must be UTF-8 text") from None
        if not isinstance(data, dict) or set(data) != {key} or not isinstance(data[key], list):
            raise InvalidInputError(f'body: expected a JSON object {{"{key}": [...]}}')
        return list(data[key])
    raise HTTPException(
        415,
        f"unsupported Content-Type {media or '(none)'!r}: send YAML as application/yaml "
        f'or JSON {{"{key}": [...]}} as application/json',
    )


@router.get("", response_model=Page[RuleOut], summary="List alerting rules by name")
def list_rules(
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    cursor: CursorQuery = None,
) -> Page[RuleOut]:
    """Every rule as a rule file would write it, with who changed it last."""
    from keelwatch.alerting.service import list_rules as stored_rules

    with services.db.session() as session:
        rules = stored_rules(session)
    items, next_cursor = page_in_memory(
        rules, limit, cursor, kind="rules", key=lambda stored: stored.rule.name, parse=str
    )
    out = [RuleOut.of(stored) for stored in items]
    return Page(count=len(out), items=out, next_cursor=next_cursor)


_RULES_EXAMPLE = """\
rules:
  - name: dataset-drift
    signal: drift.dataset.drifted
    matchers: '{model="credit-risk"}'
    comparison: "=="
    threshold: 1
    severity: critical
"""


def _apply(
    services: Services, rules: str | list[Any], actor: str, source: str, reason: str
) -> AppliedOut:
    from keelwatch.alerting.service import apply_rules
    from keelwatch.alerting.signals import known_signal_names

    with services.db.session() as session:
        outcome = apply_rules(
            session, rules, actor, known_signal_names(), now=utcnow(), source=source, reason=reason
        )
    return AppliedOut(created=outcome.created, updated=outcome.updated, unchanged=outcome.unchanged)


@router.put(
    "",
    response_model=AppliedOut,
    summary="Create or update alerting rules (YAML or JSON)",
    responses=BAD_INPUT,
    openapi_extra=definitions_body(RulesIn.model_json_schema(), _RULES_EXAMPLE),
)
async def apply_rules(
    request: Request,
    services: ServicesDep,
    actor: ActorDep,
    reason: ReasonQuery = "",
    source: Annotated[
        str,
        Query(
            min_length=1,
            max_length=255,
            description="Where the rules come from (a file name): recorded on each rule and "
            "used in error positions.",
        ),
    ] = "api",
) -> AppliedOut:
    """Validate every rule, then upsert them by name; rules not named are kept."""
    rules = await read_definitions(request, "rules")
    return await run_in_threadpool(_apply, services, rules, actor, source, reason)


@router.delete(
    "/{name}", response_model=RuleOut, summary="Delete an alerting rule", responses=NOT_FOUND
)
def delete_rule(
    name: str, services: ServicesDep, actor: ActorDep, reason: ReasonQuery = ""
) -> RuleOut:
    """Answer the rule as it was; its active alerts resolve on the next evaluation tick."""
    from keelwatch.alerting.service import delete_rule as remove
    from keelwatch.storage.alerts import get_rule

    with services.db.session() as session:
        stored = get_rule(session, name)
        remove(session, name, actor, now=utcnow(), reason=reason)  # 404 when stored is None
    assert stored is not None
    return RuleOut.of(stored)
