"""Pure planning helpers: chunk bounds, column checks against a model signature, output names."""

from __future__ import annotations

import math
from collections.abc import Sequence

from keelwatch.errors import InvalidInputError

PART_FILE_PREFIX = "part-"
PART_FILE_SUFFIX = ".parquet"


def plan_chunks(
    rows: int, chunk_rows: int, row_group_rows: Sequence[int] = ()
) -> list[tuple[int, int]]:
    """Split ``rows`` into ``(row_start, row_stop)`` bounds of about ``chunk_rows`` each.

    With Parquet row groups, chunk boundaries fall on row-group boundaries whenever the groups are
    no larger than ``chunk_rows``, so each chunk reads each row group once. A row group larger than
    ``chunk_rows`` is split evenly. Without row groups (CSV) the rows are split evenly.
    """
    if chunk_rows <= 0:
        raise ValueError("chunk_rows must be positive")
    if rows <= 0:
        return []
    if not row_group_rows or sum(row_group_rows) != rows:
        return _even_split(0, rows, chunk_rows)
    bounds: list[tuple[int, int]] = []
    start = 0
    offset = 0
    for group_rows in row_group_rows:
        if group_rows > chunk_rows:
            if offset > start:
                bounds.append((start, offset))
            bounds.extend(_even_split(offset, offset + group_rows, chunk_rows))
            start = offset + group_rows
        elif offset + group_rows - start > chunk_rows:
            bounds.append((start, offset))
            start = offset
        offset += group_rows
    if offset > start:
        bounds.append((start, offset))
    return bounds


def _even_split(start: int, stop: int, chunk_rows: int) -> list[tuple[int, int]]:
    # Equal-sized pieces rather than N full chunks plus a runt: workers finish together.
    pieces = math.ceil((stop - start) / chunk_rows)
    size, extra = divmod(stop - start, pieces)
    bounds = []
    cursor = start
    for piece in range(pieces):
        step = size + (1 if piece < extra else 0)
        bounds.append((cursor, cursor + step))
        cursor += step
    return bounds


def check_columns(available: Sequence[str], expected: Sequence[str] | None, *, source: str) -> None:
    """Raise InvalidInputError naming the missing and unexpected columns, if any.

    ``expected`` is the model's input columns from its signature; None means the model has no
    signature and takes whatever the input has.
    """
    if expected is None:
        return
    have = set(available)
    want = set(expected)
    missing = [c for c in expected if c not in have]
    extra = [c for c in available if c not in want]
    if not missing and not extra:
        return
    problems = []
    if missing:
        problems.append(f"missing columns {missing}")
    if extra:
        problems.append(f"unexpected columns {extra}")
    raise InvalidInputError(
        f"{source} does not match the model signature: {'; '.join(problems)} "
        f"(the model takes {list(expected)})"
    )


def part_file_name(chunk_index: int) -> str:
    """Output file of one chunk; fixed per index so a retried chunk overwrites, never adds."""
    return f"{PART_FILE_PREFIX}{chunk_index:05d}{PART_FILE_SUFFIX}"
