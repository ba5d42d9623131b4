"""Read a CSV or Parquet file as named 1-D numpy arrays, without pandas.

The drift engine accepts such a mapping as a window (see
:mod:`keelwatch.monitoring.drift.columns`). The standalone ``keelwatch drift check`` reads its
current window this way: pandas costs ~0.2 s to import, paid on every call of a command that
otherwise finishes in well under a second. Conversions follow what ``pandas.read_csv`` and
``pandas.read_parquet`` would give, so both paths produce the same drift result:

* integers with nulls become float64 with NaN; all-null columns become float64 NaN;
* strings become object arrays of ``str`` with ``None`` for missing (CSV empty fields are
  missing, as in pandas); dictionary-encoded (pandas ``category``) columns are decoded;
* decimals become float64; Parquet dates and timestamps become ``datetime64`` (which the
  engine rejects with a message, as it does for pandas datetimes), while date-like CSV text
  stays text, as ``pandas.read_csv`` leaves it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from keelwatch.errors import InvalidInputError

if TYPE_CHECKING:
    import pyarrow as pa

SUFFIXES = (".csv", ".parquet", ".pq")


def _validity(chunk: pa.Array) -> NDArray[np.bool_]:
    bitmap = chunk.buffers()[0]
    if chunk.null_count == 0 or bitmap is None:
        return np.ones(len(chunk), dtype=bool)
    bits = np.unpackbits(np.frombuffer(bitmap, dtype=np.uint8), bitorder="little")
    return bits[chunk.offset : chunk.offset + len(chunk)].astype(bool)


def _primitive(chunk: pa.Array, dtype: np.dtype[Any]) -> NDArray[Any]:
    data = chunk.buffers()[1]
    if data is None:  # an empty chunk
        return np.empty(0, dtype=dtype)
    return np.frombuffer(data, dtype=dtype, count=len(chunk), offset=chunk.offset * dtype.itemsize)


def _chunk_to_numpy(chunk: pa.Array, name: str) -> NDArray[Any]:
    # Arrow's own to_numpy imports pandas (~0.2 s); these buffer views do not.
    import pyarrow as pa

    kind = chunk.type
    if pa.types.is_dictionary(kind):
        return _chunk_to_numpy(chunk.dictionary_decode(), name)
    if pa.types.is_null(kind):
        return np.full(len(chunk), np.nan)
    if pa.types.is_decimal(kind):
        return _chunk_to_numpy(chunk.cast(pa.float64()), name)
    if pa.types.is_date(kind):
        return _chunk_to_numpy(chunk.cast(pa.timestamp("s")), name)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        prefix = "f" if pa.types.is_floating(kind) else ("i" if _signed(kind) else "u")
        values = _primitive(chunk, np.dtype(f"{prefix}{kind.bit_width // 8}"))
        if chunk.null_count == 0:
            return values
        out = values.astype(np.float64)  # pandas' conversion of nullable integers, too
        out[~_validity(chunk)] = np.nan
        return out
    if pa.types.is_timestamp(kind) or pa.types.is_duration(kind):
        code = "M" if pa.types.is_timestamp(kind) else "m"
        return _primitive(chunk, np.dtype("i8")).view(f"{code}8[{kind.unit}]")
    if pa.types.is_boolean(kind):
        bits = np.unpackbits(np.frombuffer(chunk.buffers()[1], dtype=np.uint8), bitorder="little")
        values = bits[chunk.offset : chunk.offset + len(chunk)].astype(bool)
        if chunk.null_count == 0:
            return values
        out = values.astype(object)  # as pandas: True/False with None for missing
        out[~_validity(chunk)] = None
        return out
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return np.array(chunk.to_pylist(), dtype=object)
    raise InvalidInputError(f"column {name!r} has unsupported type {kind}")


def _signed(kind: pa.DataType) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_signed_integer(kind))


def _to_numpy(column: pa.ChunkedArray, name: str) -> NDArray[Any]:
    if column.num_chunks == 1:
        return _chunk_to_numpy(column.chunk(0), name)
    parts = [_chunk_to_numpy(chunk, name) for chunk in column.chunks]
    if not parts:
        return np.full(0, np.nan)
    kinds = {p.dtype.kind for p in parts}
    # Chunks can differ (one with nulls turns integers into floats); unify as pandas would.
    if kinds <= {"i", "u", "f"} and len({p.dtype for p in parts}) > 1:
        parts = [p.astype(np.float64) for p in parts]
    elif "O" in kinds and len(kinds) > 1:
        parts = [p.astype(object) for p in parts]
    return np.concatenate(parts)


def _timestamps_as_text(table: pa.Table) -> pa.Table:
    # pandas.read_csv keeps date-like text as text (a categorical column); Arrow parses it.
    import pyarrow as pa

    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) or pa.types.is_date(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(pa.string()))
    return table


def table_columns(table: pa.Table) -> dict[str, NDArray[Any]]:
    """Each column of an Arrow table as a 1-D numpy array (zero-copy where Arrow allows)."""
    names = [str(n) for n in table.column_names]
    if len(set(names)) != len(names):
        raise InvalidInputError("the data has duplicate column names")
    return {name: _to_numpy(table.column(i), name) for i, name in enumerate(names)}


def read_columns(path: str | Path) -> dict[str, NDArray[Any]]:
    """The columns of a ``.csv``, ``.parquet`` or ``.pq`` file, in file order.

    Raises :class:`~keelwatch.errors.InvalidInputError` for a missing, unreadable or
    malformed file (the message names the file and the reason).
    """
    source = Path(path)
    suffix = source.suffix.lower()
    if suffix not in SUFFIXES:
        raise InvalidInputError(f"{source}: expected a data file ({', '.join(SUFFIXES)})")
    if not source.is_file():
        raise InvalidInputError(f"{source}: no such file")
    import pyarrow as pa

    try:
        if suffix == ".csv":
            from pyarrow import csv

            table = _timestamps_as_text(
                csv.read_csv(source, convert_options=csv.ConvertOptions(strings_can_be_null=True))
            )
        else:
            from pyarrow import parquet

            # ParquetFile, not read_table: read_table goes through pyarrow.dataset, which
            # imports pandas.
            table = parquet.ParquetFile(source).read()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InvalidInputError(f"{source}: cannot read data ({exc})") from exc
    return table_columns(table)
