"""Input metadata and row-range reads on real Parquet and CSV files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from keelwatch.errors import InvalidInputError
from keelwatch.inference.dataset import InputFormat, inspect_input, local_path, read_rows


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {"a": np.arange(1_000), "b": rng.normal(size=1_000), "c": [f"s{i}" for i in range(1_000)]}
    )


def test_parquet_metadata_without_reading(frame: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    frame.to_parquet(path, row_group_size=300)
    info = inspect_input(path.as_uri())
    assert info.format is InputFormat.PARQUET
    assert (info.rows, info.columns) == (1_000, ["a", "b", "c"])
    assert info.row_group_rows == [300, 300, 300, 100]


def test_csv_metadata_counts_rows_with_quoted_newlines(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text('a,note\n1,"two\nlines"\n2,plain\n3,"x"\n')
    info = inspect_input(str(path))
    assert (info.format, info.rows, info.columns) == (InputFormat.CSV, 3, ["a", "note"])


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
@pytest.mark.parametrize(("start", "stop"), [(0, 1_000), (0, 1), (299, 301), (550, 1_000)])
def test_row_ranges_match_the_frame(
    frame: pd.DataFrame, tmp_path: Path, suffix: str, start: int, stop: int
) -> None:
    path = tmp_path / f"x{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
        fmt = InputFormat.CSV
    else:
        frame.to_parquet(path, row_group_size=300)
        fmt = InputFormat.PARQUET
    table = read_rows(path, fmt, start, stop, ["b", "a"])
    assert table.column_names == ["b", "a"]
    expected = frame.iloc[start:stop][["b", "a"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(table.to_pandas(), expected, check_dtype=False)


def test_local_paths_and_uris(tmp_path: Path) -> None:
    assert local_path((tmp_path / "a b.csv").as_uri()) == tmp_path / "a b.csv"
    assert local_path(str(tmp_path / "x.csv")) == tmp_path / "x.csv"
    with pytest.raises(InvalidInputError, match="only local files"):
        local_path("https://example.com/x.csv")
    with pytest.raises(InvalidInputError, match="remote host"):
        local_path("file://server/share/x.csv")
