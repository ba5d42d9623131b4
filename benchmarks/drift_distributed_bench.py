"""A distributed drift check on 20M rows x 20 columns, checked against an exact computation.

* the window is generated partition by partition into one Parquet file (row groups of
  ``--partition-rows``; never the whole matrix in memory), five columns shifted;
* a model version with a reference profile (200k rows) is registered through Keelwatch;
* a ``dataset`` monitor runs on a Celery worker with 2 pool processes over Redis: one partition
  profile per task (map), merged and tested in the chord's body (reduce);
* the peak RSS of each worker process comes from the tasks' own ``getrusage`` reports;
* exact statistics: each column read alone (20M values), KS against the same reference with
  the exact tie-correct KS, PSI from the exact histogram with the reference's bin edges.

Passes when the check completes, every worker process peaked at <= 1 GiB, PSI and counts are
exact, and each KS statistic is within the documented bound (DKW at 99.9% for sampled
columns; the sketch's certified bound for ``ks_sketch``).

Usage: ``python benchmarks/drift_distributed_bench.py [--quick] [--rows N] [--partition-rows N]``
(SQLite database and MLflow store in a temporary folder; Redis on loopback, a database no test
session holds.)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT / "workers"), str(ROOT / "benchmarks")]

from inference_bench import free_redis_db  # noqa: E402

COLUMNS = 20
SHIFTED = {"c00": 0.05, "c03": 0.2, "c07": 0.5, "c11": 0.02, "c15": 1.0}
GIB = 1024**3


def column_values(name: str, rows: int, rng: Any, shift: float = 0.0) -> Any:
    """Deterministic per-column generators: normal, lognormal, rounded (ties), uniform."""
    index = int(name[1:])
    kind = index % 4
    if kind == 0:
        return rng.normal(shift, 1.0, rows)
    if kind == 1:
        return rng.lognormal(shift, 0.5, rows)
    if kind == 2:
        return (rng.normal(10 + shift, 3.0, rows)).round(1)
    return rng.uniform(shift, 1.0 + shift, rows)


def names() -> list[str]:
    return [f"c{i:02d}" for i in range(COLUMNS)]


def write_window(path: Path, rows: int, partition_rows: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    for part, start in enumerate(range(0, rows, partition_rows)):
        n = min(partition_rows, rows - start)
        rng = np.random.default_rng(1000 + part)
        table = pa.table({c: column_values(c, n, rng, SHIFTED.get(c, 0.0)) for c in names()})
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=partition_rows)
    assert writer is not None
    writer.close()


def reference_frame(rows: int) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    frame = pd.DataFrame({c: column_values(c, rows, rng) for c in names()})
    frame["label"] = (frame["c00"] > 0).astype(int)
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2M rows instead of 20M")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--partition-rows", type=int, default=500_000)
    parser.add_argument("--reference-rows", type=int, default=200_000)
    args = parser.parse_args()
    rows = args.rows or (2_000_000 if args.quick else 20_000_000)
    partition_rows = min(args.partition_rows, rows)
    os.environ.setdefault("DO_NOT_TRACK", "1")
    folder = Path(tempfile.mkdtemp(prefix="kw-drift-bench-"))
    try:
        with free_redis_db() as redis_url:
            run(folder, redis_url, rows, partition_rows, args.reference_rows)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _result_of(services: Any, job_id: str) -> Any:
    """The drift result a check job stored, once it has (one short transaction per poll)."""
    from keelwatch.monitoring.service import service

    with services.db.session() as session:
        return service.result_of_job(session, job_id)


def run(folder: Path, redis_url: str, rows: int, partition_rows: int, ref_rows: int) -> None:
    from math import nan

    import numpy as np
    import pyarrow.parquet as pq
    from sklearn.dummy import DummyClassifier

    from keelwatch.monitoring.drift import statistics as st
    from keelwatch.monitoring.drift.ks import ks_two_sample
    from keelwatch.monitoring.service import service
    from keelwatch.monitoring.service.profiles import (
        attach_reference_profile,
        load_reference_profile,
    )
    from keelwatch.settings import Settings
    from keelwatch.storage.db import upgrade_database
    from keelwatch.storage.profiles import get_reference_profile
    from keelwatch.wiring import Services

    settings = Settings(
        data_dir=folder / "data",
        broker={"url": redis_url, "result_backend": redis_url},
    )
    settings.ensure_data_dir()
    upgrade_database(settings.database.url)
    services = Services(settings)

    started = time.perf_counter()
    window = folder / "window.parquet"
    write_window(window, rows, partition_rows)
    print(
        f"generated {rows:,} x {COLUMNS} in {time.perf_counter() - started:.1f} s "
        f"({window.stat().st_size / GIB:.2f} GiB Parquet)"
    )

    reference = reference_frame(ref_rows)
    model = DummyClassifier().fit(reference[names()], reference["label"])
    version = services.registry.register_sklearn_model(
        "bench", model, reference, target="label", actor="bench"
    ).version
    with services.db.session() as session:
        attach_reference_profile(
            session,
            services.registry,
            services.settings.mlflow,
            "bench",
            version,
            reference,
            "bench",
            target="label",
        )
    del reference
    with services.db.session() as session:
        service.create_monitor(
            session,
            services.registry,
            {
                "name": "bench",
                "model": f"bench/{version}",
                "window": {"kind": "dataset", "uri": str(window)},
                "config": {
                    "partition_rows": partition_rows,
                    "report_sample_rows": 0,
                    # Odd columns use PSI, which merged histograms make exact; even ones KS.
                    "column_stattests": dict.fromkeys(names()[1::2], "psi"),
                },
            },
            "bench",
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEELWATCH_")}
    env.update(
        KEELWATCH_DATA_DIR=str(settings.data_dir),
        KEELWATCH_DATABASE__URL=settings.database.url,
        KEELWATCH_MLFLOW__TRACKING_URI=settings.mlflow.tracking_uri,
        KEELWATCH_MLFLOW__ARTIFACT_ROOT=settings.mlflow.artifact_root,
        KEELWATCH_BROKER__URL=redis_url,
        KEELWATCH_BROKER__RESULT_BACKEND=redis_url,
        PYTHONPATH=os.pathsep.join([str(ROOT / "platform"), str(ROOT / "workers")]),
    )
    log = (folder / "worker.log").open("wb")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "keelwatch_workers.roles.monitoring",
            "worker",
            "-Q",
            "monitoring",
            "-c",
            "2",
            "--without-gossip",
            "--without-mingle",
            "-n",
            f"bench-{os.getpid()}@%h",
            "--loglevel",
            "WARNING",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        time.sleep(1.0)
        started = time.perf_counter()
        job = service.submit_check(
            services.db, services.sender, services.registry, "bench", "bench"
        )
        while (result := _result_of(services, job.id)) is None or (
            result.mlflow_run_id is None and result.error is None
        ):
            if worker.poll() is not None:
                raise SystemExit(f"worker died; see {folder / 'worker.log'}")
            time.sleep(0.5)
        check_seconds = time.perf_counter() - started
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    if result.error:
        raise SystemExit(f"check failed: {result.error}")

    with services.db.session() as session:
        info = get_reference_profile(session, "bench", version)
    ref = load_reference_profile(settings, info)
    parquet = pq.ParquetFile(window)
    header = (
        f"{'column':<7}{'D exact':>10}{'D dist':>10}{'|diff|':>9}{'eps99.9':>9}"
        f"{'D sketch':>10}{'bound':>8}{'PSI exact':>11}{'PSI dist':>10}{'drift':>7}"
    )
    print(header)
    problems: list[str] = []
    exact_seconds = 0.0
    for name in names():
        entry = result.columns[name]
        t0 = time.perf_counter()
        values = np.sort(parquet.read(columns=[name]).column(0).to_numpy())
        ref_col = ref.columns[name]
        assert ref_col.numeric is not None
        ks = ks_two_sample(ref_col.numeric.support, values, "asymp")
        hist = st.histogram_counts_sorted(values, ref_col.numeric.bin_edges)
        psi = st.population_stability_index(hist, ref_col.numeric.bin_counts).value
        exact_seconds += time.perf_counter() - t0
        del values
        sampled = result.report["distributed"]["sampled_columns"].get(name)
        epsilon = sampled["ks_epsilon"] if sampled else 0.0
        sketch = entry.get("ks_sketch", {})
        d_sketch, bound = sketch.get("statistic", nan), sketch.get("bound", nan)
        if abs(d_sketch - ks.statistic) > bound + 1e-12:
            problems.append(f"{name}: sketch KS outside its bound")
        if entry["statistic"] == "ks":
            d_dist, psi_dist = entry["value"], nan
            if abs(d_dist - ks.statistic) > epsilon + 1e-12:
                problems.append(f"{name}: KS off by {abs(d_dist - ks.statistic):.4g}")
        else:
            d_dist, psi_dist = nan, entry["value"]
            if abs(psi_dist - psi) > 1e-9 * max(abs(psi), 1e-12):
                problems.append(f"{name}: PSI {psi_dist} != exact {psi}")
        if entry["n_current"] != rows:
            problems.append(f"{name}: counted {entry['n_current']} rows, not {rows}")
        drifted = "yes" if entry["drifted"] else ""
        print(
            f"{name:<7}{ks.statistic:>10.5f}{d_dist:>10.5f}{abs(d_dist - ks.statistic):>9.5f}"
            f"{epsilon:>9.5f}{d_sketch:>10.5f}{bound:>8.4f}{psi:>11.6f}{psi_dist:>10.6f}"
            f"{drifted:>7}"
        )
    peaks = result.report.get("worker_peak_rss_bytes", {})
    drifted_columns = [c for c, e in result.columns.items() if e["drifted"]]
    print()
    print(
        f"rows {rows:,} x {COLUMNS}, partitions {result.report.get('partitions')}, "
        f"status {result.status.value}, drifted {drifted_columns}"
    )
    print(
        f"distributed check (submit -> result stored): {check_seconds:.1f} s; "
        f"exact single-process KS+PSI: {exact_seconds:.1f} s"
    )
    for pid, peak in sorted(peaks.items()):
        print(f"worker process {pid}: peak RSS {peak / GIB:.3f} GiB")
        if peak > GIB:
            problems.append(f"worker {pid} peaked at {peak / GIB:.2f} GiB > 1 GiB")
    if len(peaks) < 2:
        print(f"(only {len(peaks)} worker process(es) reported)")
    if problems:
        raise SystemExit("FAILED:\n  " + "\n  ".join(problems))
    print("OK: counts exact, KS within the documented bounds, every worker <= 1 GiB")
    services.close()


if __name__ == "__main__":
    main()
