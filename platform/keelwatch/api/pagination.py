"""Cursors for the one list shape of every collection endpoint (``keelwatch.schemas.common.Page``:
``{count, items, next_cursor}``).

Every list takes ``limit`` (1 to the route's maximum; above it is a 422) and an opaque
``cursor``: the ``next_cursor`` of the previous page. ``next_cursor`` is ``null`` on the last
page. A cursor names the last item a page returned (its sort key), not a position, so rows
written while a client pages through a newest-first list neither repeat nor get skipped.

A cursor is base64url-encoded JSON; clients must treat it as opaque. A cursor that does not
decode, or that belongs to another list, is a 422.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import Query

from keelwatch.errors import InvalidInputError

T = TypeVar("T")
K = TypeVar("K")

CursorQuery = Annotated[
    str | None,
    Query(min_length=1, max_length=512, description="next_cursor of the previous page."),
]


def encode_cursor(kind: str, key: Any) -> str:
    """An opaque cursor for list ``kind`` that resumes after ``key`` (JSON-able)."""
    raw = json.dumps({"list": kind, "after": key}, separators=(",", ":"), default=str)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str | None) -> Any:
    """The key ``cursor`` resumes after (None for the first page); 422 when it is not ours."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidInputError("invalid cursor: pass the next_cursor of a previous page") from exc
    if not isinstance(data, dict) or data.get("list") != kind or "after" not in data:
        raise InvalidInputError(f"invalid cursor: it does not belong to the {kind} list")
    return data["after"]


def page_of(
    rows: Sequence[T],
    limit: int,
    *,
    kind: str,
    key: Callable[[T], Any],
) -> tuple[list[T], str | None]:
    """Cut ``rows`` (fetched with ``limit + 1``) to a page and its next cursor."""
    items = list(rows[:limit])
    more = len(rows) > limit
    return items, encode_cursor(kind, key(items[-1])) if more and items else None


def page_in_memory(
    rows: Sequence[T],
    limit: int,
    cursor: str | None,
    *,
    kind: str,
    key: Callable[[T], K],
    parse: Callable[[Any], K],
) -> tuple[list[T], str | None]:
    """Page a list already sorted ascending by ``key`` (registry listings, small tables)."""
    after = decode_cursor(kind, cursor)
    if after is not None:
        try:
            after_key = parse(after)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"invalid cursor for the {kind} list") from exc
        rows = [row for row in rows if key(row) > after_key]  # type: ignore[operator]
    return page_of(rows[: limit + 1], limit, kind=kind, key=key)
