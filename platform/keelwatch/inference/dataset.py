"""Input datasets for batch inference: where they are, what is in them, one row range of them.

Only local files are supported (a path or a ``file://`` URI), in Parquet or CSV. Metadata is read
without loading the data: Parquet from its footer, CSV by streaming a single column.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from keelwatch.errors import InvalidInputError

if TYPE_CHECKING:
    import pyarrow as pa


class InputFormat(StrEnum):
    """File formats batch inference reads."""

    PARQUET = "parquet"
    CSV = "csv"


_SUFFIXES = {".parquet": InputFormat.PARQUET, ".pq": InputFormat.PARQUET, ".csv": InputFormat.CSV}


@dataclass(frozen=True)
class DatasetInfo:
    """What submission needs to know about an input file."""

    path: Path
    format: InputFormat
    rows: int
    columns: list[str]
    row_group_rows: list[int]
    """Rows per Parquet row group (empty for CSV): chunks align with them when they can."""


def local_path(uri: str) -> Path:
    """The absolute local path of ``uri`` (a path or ``file://`` URI)."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise InvalidInputError(f"file URI with a remote host is not supported: {uri!r}")
        return Path(unquote(parsed.path)).resolve()
    # One-letter schemes are Windows drive letters, not URI schemes.
    if parsed.scheme and len(parsed.scheme) > 1:
        raise InvalidInputError(
            f"unsupported input location {uri!r}: only local files (path or file://) are read"
        )
    return Path(uri).expanduser().resolve()


def input_format(path: Path) -> InputFormat:
    """The format implied by the file name; raises InvalidInputError for anything else."""
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        supported = ", ".join(sorted(_SUFFIXES))
        raise InvalidInputError(
            f"unsupported input format {path.suffix or '(no suffix)'!r} for {path}: "
            f"use one of {supported}"
        )
    return fmt


def inspect_input(uri: str) -> DatasetInfo:
    """Row count, columns and row groups of the input at ``uri``, without reading its data."""
    path = local_path(uri)
    if not path.exists():
        raise InvalidInputError(f"input file not found: {path}")
    if not path.is_file():
        raise InvalidInputError(f"input is not a file: {path}")
    fmt = input_format(path)
    try:
        if fmt is InputFormat.PARQUET:
            return _inspect_parquet(path)
        return _inspect_csv(path)
    except InvalidInputError:
        raise
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise InvalidInputError(f"cannot read {fmt.value} input {path}: {exc}") from exc


def _inspect_parquet(path: Path) -> DatasetInfo:
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as parquet:
        metadata = parquet.metadata
        groups = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
        return DatasetInfo(
            path=path,
            format=InputFormat.PARQUET,
            rows=int(metadata.num_rows),
            columns=list(parquet.schema_arrow.names),
            row_group_rows=groups,
        )


def _inspect_csv(path: Path) -> DatasetInfo:
    import pyarrow.csv as pacsv

    if path.stat().st_size == 0:
        raise InvalidInputError(f"input {path} is empty (no header, no rows)")
    with pacsv.open_csv(path) as header_reader:
        columns = list(header_reader.schema.names)
    # Counting rows means parsing them (quoted newlines); converting one column keeps it cheap.
    options = pacsv.ConvertOptions(include_columns=columns[:1])
    rows = 0
    with pacsv.open_csv(path, convert_options=options) as reader:
        for batch in reader:
            rows += batch.num_rows
    return DatasetInfo(
        path=path, format=InputFormat.CSV, rows=rows, columns=columns, row_group_rows=[]
    )


def column_types(path: Path, fmt: InputFormat) -> dict[str, pa.DataType]:
    """Column → arrow type: the Parquet schema, or what pyarrow infers from a CSV's first block
    (a sample: a bad value further down is caught by the worker, by row)."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    try:
        if fmt is InputFormat.PARQUET:
            schema = pq.read_schema(path)
        else:
            with pacsv.open_csv(path) as reader:
                schema = reader.schema
    except (OSError, ValueError) as exc:
        raise InvalidInputError(
            f"cannot read the column types of {path}: {type(exc).__name__}"
        ) from exc
    return {field.name: field.type for field in schema}


def read_rows(
    path: Path,
    fmt: InputFormat,
    start: int,
    stop: int,
    columns: list[str] | None,
    types: dict[str, pa.DataType] | None = None,
) -> pa.Table:
    """Rows ``[start, stop)`` of the input, restricted to ``columns`` (all when None).

    Parquet reads only the row groups that overlap the range; CSV skips the leading rows while
    parsing (as ``types``, where given) and stops as soon as the range is complete.
    """
    if fmt is InputFormat.PARQUET:
        return _read_parquet_rows(path, start, stop, columns)
    return _read_csv_rows(path, start, stop, columns, types)


def _read_parquet_rows(path: Path, start: int, stop: int, columns: list[str] | None) -> pa.Table:
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as parquet:
        metadata = parquet.metadata
        groups: list[int] = []
        first_group_start = None
        offset = 0
        for index in range(metadata.num_row_groups):
            group_rows = metadata.row_group(index).num_rows
            if offset < stop and offset + group_rows > start:
                groups.append(index)
                if first_group_start is None:
                    first_group_start = offset
            offset += group_rows
        if not groups or first_group_start is None:
            raise InvalidInputError(f"rows {start}..{stop} are beyond the end of {path}")
        # One thread: the fleet parallelises over chunks, threads here would fight each other.
        table = parquet.read_row_groups(groups, columns=columns, use_threads=False)
    return table.slice(start - first_group_start, stop - start)


def _read_csv_rows(
    path: Path,
    start: int,
    stop: int,
    columns: list[str] | None,
    types: dict[str, pa.DataType] | None,
) -> pa.Table:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    read_options = pacsv.ReadOptions(skip_rows_after_names=start, use_threads=False)
    convert_options = pacsv.ConvertOptions(include_columns=columns or [], column_types=types or {})
    wanted = stop - start
    batches = []
    taken = 0
    with pacsv.open_csv(path, read_options=read_options, convert_options=convert_options) as reader:
        schema = reader.schema
        for batch in reader:
            batch = batch.slice(0, wanted - taken)
            batches.append(batch)
            taken += batch.num_rows
            if taken >= wanted:
                break
    return pa.Table.from_batches(batches, schema=schema)
