"""Column types against the signature, and data-free descriptions of bad values."""

from __future__ import annotations

import pyarrow as pa
import pytest

from keelwatch.errors import InvalidInputError
from keelwatch.inference.validation import (
    check_column_types,
    first_unparsable_row,
    missing_value_problem,
    safe_exception_text,
)


def test_type_mismatches_name_column_expected_and_found() -> None:
    found = {"a": pa.float64(), "b": pa.string(), "c": pa.float64(), "d": pa.int32()}
    expected = {"a": "double", "b": "double", "c": "long", "d": "double"}
    with pytest.raises(InvalidInputError) as caught:
        check_column_types(found, expected, source="input x.csv")
    message = str(caught.value)
    assert "column 'b': the model expects double, found string" in message
    assert "column 'c': the model expects long, found double" in message
    assert "'a'" not in message and "'d'" not in message  # integers feed a double column
    check_column_types(found, None, source="no signature")


def test_missing_values_are_reported_by_column_and_file_row() -> None:
    table = pa.table({"x": [1.0, float("nan"), 3.0], "n": pa.array([1, None, 3], pa.int64())})
    problem = missing_value_problem(
        table, {"x": "double", "n": "long"}, row_start=100, strict=False
    )
    assert problem == (
        "column 'n': missing value at row 101; the model expects long without missing values"
    )
    strict = missing_value_problem(table, {"x": "double"}, row_start=0, strict=True)
    assert strict == (
        "column 'x': missing value at row 1; the model expects double without missing values"
    )
    assert missing_value_problem(table, {"x": "double"}, row_start=0, strict=False) is None


def test_unparsable_text_is_found_by_row_not_quoted() -> None:
    values = pa.chunked_array([["1.5", "", "2"], ["x9", "3"]])
    assert first_unparsable_row(values, "double") == 3
    assert first_unparsable_row(pa.chunked_array([["1", "2.5"]]), "long") == 1
    assert first_unparsable_row(pa.chunked_array([["1", "2"]]), "long") is None


def test_safe_exception_text_keeps_only_the_type() -> None:
    text = safe_exception_text(ValueError("row 3: income=918273.645"))
    assert text.startswith("ValueError")
    assert "918273" not in text
