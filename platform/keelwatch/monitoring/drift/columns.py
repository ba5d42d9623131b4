"""Column type inference and value extraction shared by profiles and the engine.

Kinds (see ``docs/drift.md`` for the test each one gets):

* ``numeric`` — integer or float columns (and object columns holding only numbers) with more
  than two distinct values;
* ``binary`` — booleans, and numeric columns with exactly two distinct values;
* ``categorical`` — strings, pandas ``category``, object columns of strings.

Object columns mixing strings with numbers (or other objects) are rejected with
:class:`MixedTypeColumnError` rather than guessed at. Datetimes are rejected too: convert them
to a number (e.g. epoch seconds) or a period label first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from numpy.typing import NDArray

from keelwatch.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

ColumnKind = Literal["numeric", "binary", "categorical"]
COLUMN_KINDS: tuple[ColumnKind, ...] = ("numeric", "binary", "categorical")


class DriftInputError(InvalidInputError):
    """Input the drift engine cannot interpret (bad file, unsupported or mixed column)."""


class MixedTypeColumnError(DriftInputError):
    """An object column mixes value types (say strings and numbers)."""


def _storage_kind(series: pd.Series) -> Literal["numeric", "bool", "categorical"]:
    import pandas as pd
    from pandas.api import types

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


def numeric_values(series: pd.Series) -> NDArray[np.float64]:
    """Float64 values of a numeric or boolean column, with missing values as NaN."""
    import pandas as pd

    if _storage_kind(series) == "bool" or series.dtype.kind == "O":
        values = pd.to_numeric(series.astype("object").where(series.notna()), errors="coerce")
        return np.asarray(values.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    if series.dtype == np.float64:
        # No copy: callers that sort get a contiguous array from the sort itself.
        return np.asarray(series.to_numpy(), dtype=np.float64)
    return np.asarray(series.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)


def category_labels(series: pd.Series) -> tuple[NDArray[np.str_] | NDArray[np.object_], int]:
    """Non-missing values as strings, and the number of missing values."""
    mask = series.isna().to_numpy()
    labels = series[~mask].astype(str).to_numpy(dtype=object)
    return labels, int(mask.sum())


def infer_column_kind(series: pd.Series) -> ColumnKind:
    """The drift kind of a reference column (see module docstring)."""
    storage = _storage_kind(series)
    if storage == "bool":
        return "binary"
    if storage == "categorical":
        return "categorical"
    values = numeric_values(series)
    finite = values[np.isfinite(values)]
    # Cheap check on a prefix first; confirm on the whole column only when it looks binary.
    if finite.size and np.unique(finite[:100_000]).size <= 2 and np.unique(finite).size == 2:
        return "binary"
    return "numeric"


def storage_matches(kind: ColumnKind, series: pd.Series) -> bool:
    """Whether a window column can be compared with a reference column of ``kind``."""
    storage = _storage_kind(series)
    if kind == "categorical":
        return storage == "categorical"
    if kind == "numeric":
        return storage == "numeric"
    return storage in ("numeric", "bool")
