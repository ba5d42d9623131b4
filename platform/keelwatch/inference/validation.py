"""Input types against the model signature, and error messages that never quote the data.

Submission compares the input file's column types (Parquet schema, or the types pyarrow infers
from a CSV's first block) with the signature's. Workers check again what a schema cannot show
(a missing value where the model takes none, a CSV value deep in the file that is not a
number) and describe every failure by column, row index within the file and expected type:
exception texts from pandas, scikit-learn or MLflow quote rows, so they are never stored or
logged; an unknown failure is stored as its exception type plus a fixed sentence.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from keelwatch.errors import InvalidInputError

if TYPE_CHECKING:
    import pyarrow as pa

#: MLflow column types that hold no missing value (pandas turns a gap into a float NaN).
NO_MISSING_VALUES = frozenset({"integer", "long", "boolean"})
_NUMERIC = frozenset({"integer", "long", "float", "double"})


def arrow_type_fits(expected: str, found: pa.DataType) -> bool:
    """True when a column of arrow type ``found`` can feed a signature column ``expected``."""
    import pyarrow.types as pat

    if expected == "any" or pat.is_null(found):  # an all-empty column: values are checked later
        return True
    if expected in ("double", "float"):
        return bool(pat.is_integer(found) or pat.is_floating(found))
    if expected in ("long", "integer"):
        return bool(pat.is_integer(found))
    if expected == "boolean":
        return bool(pat.is_boolean(found))
    if expected == "string":
        return bool(pat.is_string(found) or pat.is_large_string(found))
    if expected == "binary":
        return bool(pat.is_binary(found) or pat.is_large_binary(found))
    if expected == "datetime":
        return bool(pat.is_timestamp(found) or pat.is_date(found))
    return True


def describe_arrow_type(found: pa.DataType) -> str:
    """A short name for an arrow type in messages (``string``, ``int64``, ``double`` ...)."""
    return str(found)


def check_column_types(
    found: Mapping[str, pa.DataType], expected: Mapping[str, str] | None, *, source: str
) -> None:
    """Raise InvalidInputError naming each column whose type cannot feed the model."""
    if not expected:
        return
    problems = [
        f"column {name!r}: the model expects {kind}, found {describe_arrow_type(found[name])}"
        for name, kind in expected.items()
        if name in found and not arrow_type_fits(kind, found[name])
    ]
    if problems:
        raise InvalidInputError(
            f"{source} does not match the model signature: {'; '.join(problems)}"
        )


def missing_value_problem(
    table: pa.Table, expected: Mapping[str, str] | None, *, row_start: int, strict: bool
) -> str | None:
    """The first missing value the model cannot take, as a message without data, or None.

    ``strict`` False: only columns whose signature type holds no missing value (integers,
    booleans); True (the model already refused the rows): any column.
    """
    columns = list(expected) if expected else list(table.column_names)
    for name in columns:
        if name not in table.column_names:
            continue
        kind = (expected or {}).get(name, "any")
        if not strict and kind not in NO_MISSING_VALUES:
            continue
        row = first_missing_row(table.column(name))
        if row is not None:
            return (
                f"column {name!r}: missing value at row {row_start + row}; "
                f"the model expects {kind if kind != 'any' else 'values'} without missing values"
            )
    return None


def first_missing_row(column: pa.ChunkedArray) -> int | None:
    """Index of the first null or NaN in ``column`` (None when there is none)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.types as pat

    missing = pc.is_null(column, nan_is_null=pat.is_floating(column.type))
    if not pc.any(missing).as_py():
        return None
    flags = missing.to_numpy(zero_copy_only=False) if isinstance(missing, pa.Array) else None
    if flags is None:
        flags = np.concatenate([chunk.to_numpy(zero_copy_only=False) for chunk in missing.chunks])
    return int(np.argmax(flags))


def first_unparsable_row(values: pa.ChunkedArray, expected: str) -> int | None:
    """Index of the first text value in ``values`` that is not a number of type ``expected``."""
    import numpy as np
    import pandas as pd

    if expected not in _NUMERIC:
        return None
    text = pd.Series(values.to_pandas(), dtype="object")
    present = text.notna() & (text.astype(str).str.strip() != "")
    parsed = pd.to_numeric(text.where(present), errors="coerce")
    bad = present & parsed.isna()
    if expected in ("integer", "long"):
        bad |= present & parsed.notna() & (parsed != np.floor(parsed))
    return int(np.argmax(bad.to_numpy())) if bool(bad.any()) else None


def safe_exception_text(exc: BaseException) -> str:
    """What may be stored or logged about an exception whose text may quote data."""
    return (
        f"{type(exc).__name__} (its message is withheld: it may quote input values; "
        "see the chunk's rows and the model's signature)"
    )


def arrow_type_for(expected: str) -> Any:
    """The arrow type to parse a CSV column of signature type ``expected`` as (None: infer)."""
    import pyarrow as pa

    return {
        "double": pa.float64(),
        "float": pa.float64(),
        "long": pa.int64(),
        "integer": pa.int64(),
        "boolean": pa.bool_(),
        "string": pa.string(),
    }.get(expected)
