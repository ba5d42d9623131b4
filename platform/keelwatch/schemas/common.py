"""Shapes every capability shares on the wire: the one list shape ``{count, items, next_cursor}``
and the one error shape ``{"error": ...}``.

The cursor helpers that fill it (encoding, decoding, cutting a page) live with the API in
``keelwatch.api.pagination``; this module holds only the shape, so the CLI can use it too.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list; ``count`` is the number of items on this page (at most ``limit``)."""

    count: int
    items: list[T] = Field(default_factory=list)
    next_cursor: str | None = Field(
        None, description="Pass as ?cursor= for the next page; null on the last page."
    )


class ProblemOut(BaseModel):
    """One invalid part of a request, in a 422 answer."""

    model_config = ConfigDict(extra="forbid")

    location: str = Field(description="Where: `body.field`, `query.limit`, `path.name`, `body`.")
    message: str


class ErrorOut(BaseModel):
    """Every error answer of the API (4xx, 503): one message naming the field, column or
    object at fault, never the value sent. A request validation failure (422) also lists each
    problem; a 500 (a bug) adds the ``error_id`` its log line carries."""

    model_config = ConfigDict(extra="forbid")

    error: str
    problems: list[ProblemOut] = Field(
        default_factory=list, description="Request validation failures only (422)."
    )
    error_id: str | None = Field(None, description="500 only: the id of the API's log line.")
