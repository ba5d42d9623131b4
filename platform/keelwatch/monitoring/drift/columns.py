"""Column type inference and value extraction shared by profiles and the engine.

Kinds (see ``docs/drift.md`` for the test each one gets):

* ``numeric`` — integer or float columns (and object columns holding only numbers) with more
  than two distinct values;
* ``binary`` — booleans, and numeric columns with exactly two distinct values;
* ``categorical`` — strings, pandas ``category``, object columns of strings.

Object columns mixing strings with numbers (or other objects) are rejected with
:class:`MixedTypeColumnError` rather than guessed at. Datetimes are rejected too: convert them
to a number (e.g. epoch seconds) or a period label first.

A column is a pandas ``Series`` or a plain 1-D numpy array (what
:func:`keelwatch.monitoring.service.column_reader.read_columns` returns). Arrays never import
pandas: the standalone CLI reads its window that way and saves pandas' import time on every call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import numpy as np
from numpy.typing import NDArray

from keelwatch.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

ColumnKind = Literal["numeric", "binary", "categorical"]
StorageKind = Literal["numeric", "bool", "categorical"]
#: One column of a window: a pandas Series or a 1-D numpy array.
ColumnData: TypeAlias = "pd.Series | NDArray[Any]"
COLUMN_KINDS: tuple[ColumnKind, ...] = ("numeric", "binary", "categorical")


class DriftInputError(InvalidInputError):
    """Input the drift engine cannot interpret (bad file, unsupported or mixed column)."""


class MixedTypeColumnError(DriftInputError):
    """An object column mixes value types (say strings and numbers)."""


def as_columns(data: Mapping[Any, Any]) -> tuple[dict[str, NDArray[Any]], int]:
    """A mapping of column name to values as 1-D numpy arrays, and their common length.

    Raises :class:`DriftInputError` when the columns have different lengths.
    """
    columns = {str(name): np.asarray(values) for name, values in data.items()}
    lengths = {int(np.shape(values)[0]) for values in columns.values()}
    if len(lengths) > 1:
        raise DriftInputError(f"columns have different lengths: {sorted(lengths)}")
    return columns, lengths.pop() if lengths else 0


def _is_missing_object(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _object_storage_kind(name: str, values: NDArray[Any]) -> StorageKind:
    # pandas' infer_dtype, for the value types a file reader produces, without pandas.
    kinds = {type(v) for v in values if not _is_missing_object(v)}
    if not kinds or kinds <= {str}:
        return "categorical"
    if kinds <= {bool, np.bool_}:
        return "bool"
    if all(issubclass(k, int | float | np.integer | np.floating) for k in kinds) and not (
        kinds & {bool, np.bool_}
    ):
        return "numeric"
    names = ", ".join(sorted(k.__name__ for k in kinds))
    raise MixedTypeColumnError(
        f"column {name!r} mixes value types ({names}); "
        "cast it to one type (e.g. str or float) before checking drift"
    )


def _array_storage_kind(name: str, values: NDArray[Any]) -> StorageKind:
    if values.ndim != 1:
        raise DriftInputError(f"column {name!r} must be one-dimensional, not {values.shape}")
    code = values.dtype.kind
    if code == "b":
        return "bool"
    if code in "iuf":
        return "numeric"
    if code in "US":
        return "categorical"
    if code in "mM":
        raise DriftInputError(
            f"column {name!r} is a datetime/timedelta; convert it to a number or label"
        )
    if code == "c":
        raise DriftInputError(f"column {name!r} is complex-valued; not supported")
    if code == "O":
        return _object_storage_kind(name, values)
    raise DriftInputError(f"column {name!r} has unsupported dtype {values.dtype}")


def _storage_kind(column: ColumnData, name: str | None = None) -> StorageKind:
    if isinstance(column, np.ndarray):
        return _array_storage_kind(str(name), column)
    import pandas as pd
    from pandas.api import types

    series = column
    dtype = series.dtype
    if types.is_bool_dtype(dtype):
        return "bool"
    is_object = types.is_object_dtype(dtype)
    if isinstance(dtype, pd.CategoricalDtype) or (types.is_string_dtype(dtype) and not is_object):
        return "categorical"
    if types.is_datetime64_any_dtype(dtype) or types.is_timedelta64_dtype(dtype):
        raise DriftInputError(
            f"column {series.name!r} is a datetime/timedelta; convert it to a number or label"
        )
    if types.is_numeric_dtype(dtype):
        if types.is_complex_dtype(dtype):
            raise DriftInputError(f"column {series.name!r} is complex-valued; not supported")
        return "numeric"
    if is_object:
        inferred = types.infer_dtype(series, skipna=True)
        if inferred in ("string", "empty"):
            return "categorical"
        if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
            return "numeric"
        if inferred == "boolean":
            return "bool"
        kinds = sorted({type(v).__name__ for v in series.dropna().head(1000)})
        raise MixedTypeColumnError(
            f"column {series.name!r} mixes value types ({', '.join(kinds)}); "
            "cast it to one type (e.g. str or float) before checking drift"
        )
    raise DriftInputError(f"column {series.name!r} has unsupported dtype {dtype}")


def _array_numeric_values(values: NDArray[Any]) -> NDArray[np.float64]:
    if values.dtype == np.float64:
        return values
    if values.dtype.kind == "O":
        missing = np.fromiter((_is_missing_object(v) for v in values), bool, values.shape[0])
        out = np.full(values.shape[0], np.nan)
        out[~missing] = values[~missing].astype(np.float64)
        return out
    return values.astype(np.float64)


def numeric_values(column: ColumnData) -> NDArray[np.float64]:
    """Float64 values of a numeric or boolean column, with missing values as NaN."""
    if isinstance(column, np.ndarray):
        return _array_numeric_values(column)
    import pandas as pd

    series = column
    if _storage_kind(series) == "bool" or series.dtype.kind == "O":
        values = pd.to_numeric(series.astype("object").where(series.notna()), errors="coerce")
        return np.asarray(values.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    if series.dtype == np.float64:
        # No copy: callers that sort get a contiguous array from the sort itself.
        return np.asarray(series.to_numpy(), dtype=np.float64)
    return np.asarray(series.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)


def category_labels(column: ColumnData) -> tuple[NDArray[np.str_] | NDArray[np.object_], int]:
    """Non-missing values as strings, and the number of missing values."""
    if isinstance(column, np.ndarray):
        if column.dtype.kind in "US":
            return column.astype(str), 0
        mask = np.fromiter((_is_missing_object(v) for v in column), bool, column.shape[0])
        return column[~mask].astype(str), int(mask.sum())
    series = column
    mask = series.isna().to_numpy()
    labels = series[~mask].astype(str).to_numpy(dtype=object)
    return labels, int(mask.sum())


def infer_column_kind(column: ColumnData, name: str | None = None) -> ColumnKind:
    """The drift kind of a reference column (see module docstring)."""
    storage = _storage_kind(column, name)
    if storage == "bool":
        return "binary"
    if storage == "categorical":
        return "categorical"
    values = numeric_values(column)
    finite = values[np.isfinite(values)]
    # Cheap check on a prefix first; confirm on the whole column only when it looks binary.
    if finite.size and np.unique(finite[:100_000]).size <= 2 and np.unique(finite).size == 2:
        return "binary"
    return "numeric"


def storage_matches(kind: ColumnKind, column: ColumnData, name: str | None = None) -> bool:
    """Whether a window column can be compared with a reference column of ``kind``."""
    storage = _storage_kind(column, name)
    if kind == "categorical":
        return storage == "categorical"
    if kind == "numeric":
        return storage == "numeric"
    return storage in ("numeric", "bool")
