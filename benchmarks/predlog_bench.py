"""Prediction-log bulk write on PostgreSQL: rows per second for 200,000 rows.

Times ``keelwatch.storage.predictions.bulk_write_predictions`` (COPY straight into the table;
a repeat falls back to a staged ``INSERT ... ON CONFLICT DO NOTHING``) into an empty table of a
throw-away database ``kw_bench_*``, median of N runs (the table is emptied between runs). A
second, idempotent write of the same rows is timed too: it is what a retried chunk costs.

Usage: ``python benchmarks/predlog_bench.py [--quick] [--rows N] [--runs N]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT / "workers")]

# One throw-away-database helper for every benchmark (KEELWATCH_BENCH_PG_URL, loopback only).
from inference_bench import bench_database  # noqa: E402

TARGET_ROWS_PER_S = 50_000


def make_records(rows: int, run: int) -> list[object]:
    """Rows shaped like a batch job's sample: six numeric inputs, one output."""
    import numpy as np

    from keelwatch.entities import PredictionRecord

    rng = np.random.default_rng(run)
    features = rng.normal(size=(rows, 6)).round(6).tolist()
    labels = rng.integers(0, 2, rows).tolist()
    now = datetime.now(UTC)
    job_id = str(uuid.uuid4())
    names = ("tenure", "monthly_charges", "support_calls", "discount", "age", "usage_gb")
    return [
        PredictionRecord(
            request_id=f"{job_id}:{i}",
            model_name="bench-churn",
            model_version="1",
            inputs=dict(zip(names, features[i], strict=True)),
            outputs={"prediction": labels[i]},
            latency_ms=0.01,
            created_at=now,
            job_id=job_id,
        )
        for i in range(rows)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50,000 rows, one run")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.runs = 50_000, 1

    from sqlalchemy import text

    from keelwatch.storage.db import Database, upgrade_database
    from keelwatch.storage.predictions import bulk_write_predictions

    first_times: list[float] = []
    repeat_times: list[float] = []
    with bench_database() as url:
        upgrade_database(url)
        db = Database(url)
        try:
            for run in range(args.runs):
                records = make_records(args.rows, run)
                started = time.perf_counter()
                inserted = bulk_write_predictions(db.engine, records)  # type: ignore[arg-type]
                first_times.append(time.perf_counter() - started)
                if inserted != args.rows:
                    raise RuntimeError(f"inserted {inserted} of {args.rows} rows")
                started = time.perf_counter()
                again = bulk_write_predictions(db.engine, records)  # type: ignore[arg-type]
                repeat_times.append(time.perf_counter() - started)
                if again != 0:
                    raise RuntimeError(f"a repeated write inserted {again} duplicate rows")
                with db.session() as session:
                    session.execute(text("TRUNCATE prediction_log"))
                print(
                    f"  run {run + 1}: {args.rows / first_times[-1]:,.0f} rows/s "
                    f"(repeat {args.rows / repeat_times[-1]:,.0f} rows/s)",
                    flush=True,
                )
        finally:
            db.dispose()

    first = statistics.median(first_times)
    repeat = statistics.median(repeat_times)
    print()
    print(f"Prediction-log bulk write, PostgreSQL, {args.rows:,} rows, median of {args.runs}")
    print(f"{'write':<34} {'wall s':>8} {'rows/s':>12}")
    print(f"{'new rows (COPY)':<34} {first:>8.2f} {args.rows / first:>12,.0f}")
    print(f"{'same rows again (all skipped)':<34} {repeat:>8.2f} {args.rows / repeat:>12,.0f}")
    verdict = "meets" if args.rows / first >= TARGET_ROWS_PER_S else "MISSES"
    print(f"{verdict} the >= {TARGET_ROWS_PER_S:,} rows/s target")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "benchmark": "predlog",
                    "rows": args.rows,
                    "runs": args.runs,
                    "write_s": first_times,
                    "repeat_s": repeat_times,
                    "rows_per_s_median": args.rows / first,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
