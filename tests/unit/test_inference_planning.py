"""Chunk planning, column checks and output names."""

from __future__ import annotations

import pytest

from keelwatch.errors import InvalidInputError
from keelwatch.inference.planning import check_columns, part_file_name, plan_chunks


def covers(bounds: list[tuple[int, int]], rows: int) -> bool:
    """True when the bounds tile [0, rows) in order without gaps or overlaps."""
    cursor = 0
    for start, stop in bounds:
        if start != cursor or stop <= start:
            return False
        cursor = stop
    return cursor == rows


@pytest.mark.parametrize("rows", [1, 99, 100, 101, 1_000, 12_345])
@pytest.mark.parametrize("chunk_rows", [1, 7, 100, 5_000])
def test_even_split_tiles_rows_with_balanced_chunks(rows: int, chunk_rows: int) -> None:
    bounds = plan_chunks(rows, chunk_rows)
    assert covers(bounds, rows)
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) <= chunk_rows
    assert max(sizes) - min(sizes) <= 1


def test_no_rows_no_chunks() -> None:
    assert plan_chunks(0, 10) == []


def test_chunks_follow_row_groups_when_they_fit() -> None:
    # Groups of 300 with chunks of 1000: three groups per chunk, boundaries on group edges.
    bounds = plan_chunks(2_100, 1_000, [300] * 7)
    assert bounds == [(0, 900), (900, 1_800), (1_800, 2_100)]


def test_a_row_group_larger_than_a_chunk_is_split_evenly() -> None:
    bounds = plan_chunks(2_600, 1_000, [100, 2_500])
    assert bounds == [(0, 100), (100, 934), (934, 1_767), (1_767, 2_600)]
    assert covers(bounds, 2_600)


def test_row_groups_that_do_not_add_up_fall_back_to_even_split() -> None:
    assert plan_chunks(1_000, 400, [100, 100]) == plan_chunks(1_000, 400)


def test_bad_chunk_size_is_rejected() -> None:
    with pytest.raises(ValueError, match="positive"):
        plan_chunks(10, 0)


def test_matching_columns_pass_in_any_order() -> None:
    check_columns(["b", "a"], ["a", "b"], source="input x")
    check_columns(["anything"], None, source="input x")


def test_column_mismatch_names_missing_and_unexpected() -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_columns(["a", "c", "d"], ["a", "b"], source="input x.parquet")
    message = str(caught.value)
    assert "input x.parquet does not match the model signature" in message
    assert "missing columns ['b']" in message
    assert "unexpected columns ['c', 'd']" in message


def test_part_files_sort_in_chunk_order() -> None:
    names = [part_file_name(i) for i in (0, 9, 10, 99_999)]
    assert names == sorted(names)
    assert names[0] == "part-00000.parquet"
