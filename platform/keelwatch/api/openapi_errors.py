"""The API's error answers in its OpenAPI document: one body shape, and every status that the
app's own machinery (not a route's domain logic) can answer.

Routes document their own domain errors with ``responses=`` (404 for a lookup by name in the
body, 409 for a state conflict...). What every route shares is added here, once, from what the
app really does (see :mod:`keelwatch.api.app` and :mod:`keelwatch.api.middleware`):

* 400: a request body that cannot be decoded at all (FastAPI refuses it before validation);
* 404: an operation with path parameters names something that does not exist;
* 413: a body over ``api.max_body_bytes`` (the request guard);
* 422: request validation (FastAPI documents it; its schema is replaced by ours);
* 503 with ``Retry-After``: Keelwatch's database, the broker or MLflow did not answer; any
  route that checks a token (the database) can answer it.

Every 4xx/5xx answer without a body schema gets :class:`~keelwatch.schemas.common.ErrorOut`,
and FastAPI's ``HTTPValidationError`` (``{"detail": [...]}``, a shape this API never sends) is
replaced by it. ``tests/integration/test_api_fuzz.py`` checks real answers against the result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from keelwatch.api.access import OpenAccess, required_access
from keelwatch.schemas.common import ErrorOut

_REF_TEMPLATE = "#/components/schemas/{model}"
_ERROR_REF = {"$ref": _REF_TEMPLATE.format(model=ErrorOut.__name__)}
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "string"},
    }
}


def document_errors(app: FastAPI) -> None:
    """Make ``app.openapi()`` describe the error answers (added once, when first built)."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        cached = app.openapi_schema is not None
        schema = build()
        if not cached:
            describe_errors(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def describe_errors(schema: dict[str, Any]) -> None:
    """Add the shared error statuses and the error body schema to every operation."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    error_schema = ErrorOut.model_json_schema(ref_template=_REF_TEMPLATE)
    components.update(error_schema.pop("$defs", {}))
    components[ErrorOut.__name__] = error_schema
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if isinstance(operation, dict) and "responses" in operation:
                _describe_operation(method, path, operation)
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        components.pop(name, None)


def _describe_operation(method: str, path: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation["responses"]
    parameters = operation.get("parameters", [])
    has_body = "requestBody" in operation
    if has_body:
        responses.setdefault("400", {"description": "The body could not be decoded."})
        responses.setdefault("413", {"description": "The body is over `api.max_body_bytes`."})
    if has_body or parameters:
        responses.setdefault("422", {"description": "Invalid request: each problem is named."})
    if any(parameter.get("in") == "path" for parameter in parameters):
        responses.setdefault("404", {"description": "Nothing of that name or id."})
    if required_access(method, path) is not OpenAccess.PUBLIC:
        responses.setdefault(
            "503",
            {
                "description": "Keelwatch's database, the broker or MLflow did not answer.",
                "headers": _RETRY_AFTER,
            },
        )
    for status, response in responses.items():
        if status[:1] not in ("4", "5"):
            continue
        content = response.setdefault("content", {})
        json_body = content.setdefault("application/json", {})
        ref = json_body.get("schema", {}).get("$ref", "")
        if not json_body.get("schema") or ref.rsplit("/", 1)[-1] in _FASTAPI_VALIDATION_SCHEMAS:
            json_body["schema"] = dict(_ERROR_REF)
