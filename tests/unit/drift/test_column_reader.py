"""read_columns: CSV/Parquet straight to numpy, matching what pandas would hand the engine."""

from __future__ import annotations

import decimal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.drift import DriftConfig, build_profile, compute_drift
from keelwatch.monitoring.service.column_reader import read_columns, table_columns


def _frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ints = pd.array(rng.integers(0, 50, n), dtype="Int64")
    ints[rng.random(n) < 0.1] = pd.NA
    plan = rng.choice(["basic", "pro", "team"], n).astype(object)
    plan[rng.random(n) < 0.05] = None
    flag = pd.array(rng.random(n) < 0.3 + shift / 10, dtype="boolean")
    flag[rng.random(n) < 0.02] = pd.NA
    x = rng.normal(shift, 1.0, n)
    x[rng.random(n) < 0.01] = np.nan
    x[:3] = [np.inf, -np.inf, np.nan]
    return pd.DataFrame(
        {
            "x": x,
            "count": ints,
            "plan": plan,
            "tier": pd.Categorical(rng.choice(["a", "b"], n)),
            "flag": flag,
            "small": rng.integers(0, 3, n).astype(np.int8),
        }
    )


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_array_window_gives_the_same_report_as_the_pandas_window(
    tmp_path: Path, suffix: str
) -> None:
    ref = _frame(4_000, 0)
    cur = _frame(3_000, 1, shift=0.3)
    path = tmp_path / f"cur{suffix}"
    if suffix == ".csv":
        cur.to_csv(path, index=False)
        via_pandas = pd.read_csv(path)
    else:
        cur.to_parquet(path)
        via_pandas = pd.read_parquet(path)
    arrays = read_columns(path)
    assert list(arrays) == list(cur.columns)
    assert all(a.ndim == 1 and a.shape[0] == 3_000 for a in arrays.values())
    profile = build_profile(ref)
    config = DriftConfig(extra_stattests=("psi",))
    assert compute_drift(profile, arrays, config) == compute_drift(profile, via_pandas, config)
    report = compute_drift(profile, arrays, config)
    assert report.column("x").drifted and report.column("x").infinite_current == 2
    assert report.column("plan").status == "ok" and report.column("plan").kind == "categorical"
    assert report.column("flag").kind == "binary" and report.column("flag").status == "ok"


def test_conversions_follow_pandas() -> None:
    table = pa.table(
        {
            "i": pa.array([1, None, 3], pa.int32()),
            "u": pa.array([1, 2, 3], pa.uint16()),
            "f": pa.array([1.5, None, 2.5], pa.float32()),
            "s": pa.array(["a", None, "b"]),
            "d": pa.array(["x", "y", "x"]).dictionary_encode(),
            "b": pa.array([True, None, False]),
            "n": pa.array([None, None, None]),
            "dec": pa.array([decimal.Decimal("1.5"), None, decimal.Decimal("2")]),
        }
    )
    cols = table_columns(table)
    np.testing.assert_array_equal(cols["i"], [1.0, np.nan, 3.0])
    assert cols["u"].dtype == np.uint16
    np.testing.assert_array_equal(cols["f"], [1.5, np.nan, 2.5])
    assert list(cols["s"]) == ["a", None, "b"] and cols["s"].dtype == object
    assert list(cols["d"]) == ["x", "y", "x"]
    assert list(cols["b"]) == [True, None, False]
    assert np.isnan(cols["n"]).all()
    np.testing.assert_array_equal(cols["dec"], [1.5, np.nan, 2.0])


def test_multi_chunk_columns_are_concatenated(tmp_path: Path) -> None:
    path = tmp_path / "chunks.parquet"
    table = pa.concat_tables(
        [pa.table({"v": pa.array([1, 2], pa.int64())}), pa.table({"v": pa.array([None, 4])})]
    )
    pq.write_table(table, path, row_group_size=2)
    np.testing.assert_array_equal(read_columns(path)["v"], [1.0, 2.0, np.nan, 4.0])


def test_datetimes_are_rejected_by_the_engine_with_a_message(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pd.DataFrame(
        {"when": pd.date_range("2026-01-01", periods=50), "x": np.arange(50.0)}
    ).to_parquet(path)
    cols = read_columns(path)
    assert cols["when"].dtype.kind == "M"
    profile = build_profile(pd.DataFrame({"when": np.arange(50.0), "x": np.arange(50.0)}))
    report = compute_drift(profile, cols)
    assert report.column("when").status == "type_mismatch"
    assert "datetime" in (report.column("when").detail or "")


def test_bad_files_raise_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="no such file"):
        read_columns(tmp_path / "missing.csv")
    with pytest.raises(InvalidInputError, match="expected a data file"):
        read_columns(tmp_path / "x.txt")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    with pytest.raises(InvalidInputError, match="cannot read data"):
        read_columns(broken)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b\n1,2\n3,4,5\n")
    with pytest.raises(InvalidInputError, match="cannot read data"):
        read_columns(ragged)
    dupes = tmp_path / "dupes.csv"
    dupes.write_text("a,a\n1,2\n")
    with pytest.raises(InvalidInputError, match="duplicate column names"):
        read_columns(dupes)


def test_reading_and_checking_never_imports_pandas(tmp_path: Path) -> None:
    path = tmp_path / "cur.parquet"
    _frame(500, 3).to_parquet(path)
    profile_path = tmp_path / "ref.npz"
    from keelwatch.monitoring.drift import save_profile

    save_profile(build_profile(_frame(500, 4)), profile_path)
    code = (
        "import sys\n"
        "from keelwatch.monitoring.service.column_reader import read_columns\n"
        "from keelwatch.monitoring.drift import compute_drift, load_profile\n"
        f"report = compute_drift(load_profile({str(profile_path)!r}), "
        f"read_columns({str(path)!r}))\n"
        "assert report.n_tested == 6, report\n"
        "print('pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_date_like_csv_text_stays_text_as_in_pandas(tmp_path: Path) -> None:
    path = tmp_path / "dates.csv"
    frame = pd.DataFrame({"day": pd.date_range("2026-01-01", periods=60).strftime("%Y-%m-%d")})
    frame["x"] = np.arange(60.0)
    frame.to_csv(path, index=False)
    cols = read_columns(path)
    assert cols["day"].dtype == object and isinstance(cols["day"][0], str)
    profile = build_profile(cols)
    assert profile.columns["day"].kind == "categorical"
    assert compute_drift(profile, cols).column("day").status == "ok"
