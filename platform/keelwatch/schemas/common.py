"""Shapes every capability shares on the wire: the one list shape ``{count, items, next_cursor}``.

The cursor helpers that fill it (encoding, decoding, cutting a page) live with the API in
``keelwatch.api.pagination``; this module holds only the shape, so the CLI can use it too.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list; ``count`` is the number of items on this page (at most ``limit``)."""

    count: int
    items: list[T] = Field(default_factory=list)
    next_cursor: str | None = Field(
        None, description="Pass as ?cursor= for the next page; null on the last page."
    )
