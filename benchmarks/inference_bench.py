"""Batch inference through the fleet vs the same pyfunc model called directly.

Both paths read the same Parquet file and write predictions as Parquet:

* direct: one process, ``pd.read_parquet`` → ``pyfunc.predict`` → ``pq.write_table``;
* fleet: ``submit_batch_inference`` → Redis → one Celery worker with 2 pool processes → part
  files + a 1% sample in the prediction log (PostgreSQL), timed from the submit call until the
  job row says succeeded.

The model (loaded once, outside the timings, on both sides: the workers are warmed with a small
job first) is a scikit-learn random forest registered through Keelwatch's registry. Everything
lives in a throw-away PostgreSQL database ``kw_bench_*`` and ``benchmarks/.data``, removed after.

Usage: ``python benchmarks/inference_bench.py [--quick] [--rows N] [--runs N] [--chunk-rows N]``
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT / "workers")]

DATA_ROOT = ROOT / "benchmarks" / ".data"
PG_ADMIN_URL = os.environ.get(
    "KEELWATCH_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("KEELWATCH_BENCH_REDIS_URL", "redis://127.0.0.1:6379")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
FEATURES = ["tenure", "monthly_charges", "support_calls", "discount", "age", "usage_gb"]
TARGET_RATIO = 1.25


def _loopback_only(url: str) -> None:
    host = urlparse(url).hostname or ""
    if host not in LOOPBACK:
        raise SystemExit(f"benchmarks only talk to loopback services, not {host!r}")


@contextmanager
def bench_database() -> Iterator[str]:
    """A throw-away PostgreSQL database ``kw_bench_<hex>``, dropped afterwards."""
    import psycopg

    _loopback_only(PG_ADMIN_URL)
    name = f"kw_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlparse(PG_ADMIN_URL)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def free_redis_db() -> Iterator[str]:
    """A Redis database no test session holds (same lock files as tests/conftest.py), flushed."""
    import redis

    _loopback_only(REDIS_URL)
    for db in range(15, 0, -1):
        handle = (Path(tempfile.gettempdir()) / f"keelwatch-test-redis-{db}.lock").open("w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        url = urlparse(REDIS_URL)._replace(path=f"/{db}").geturl()
        client = redis.Redis.from_url(url)
        client.flushdb()
        try:
            yield url
        finally:
            client.flushdb()
            client.close()
            handle.close()
        return
    raise SystemExit("no free Redis database (1-15)")


def make_frame(rows: int, seed: int) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "tenure": rng.integers(0, 72, rows).astype("float64"),
            "monthly_charges": rng.normal(65.0, 20.0, rows),
            "support_calls": rng.poisson(1.5, rows).astype("float64"),
            "discount": rng.uniform(0.0, 0.3, rows),
            "age": rng.integers(18, 90, rows).astype("float64"),
            "usage_gb": rng.gamma(2.0, 10.0, rows),
        }
    )


def train_model() -> tuple[Any, Any]:
    from sklearn.ensemble import RandomForestClassifier

    frame = make_frame(20_000, seed=1)
    target = (
        frame["support_calls"] * 0.8 + frame["discount"] * 6 - frame["tenure"] / 30 > 0.6
    ).astype(int)
    model = RandomForestClassifier(n_estimators=40, max_depth=10, random_state=0)
    return model.fit(frame, target), frame.assign(churned=target)


class Worker:
    """``celery -A keelwatch_workers.roles.all worker -Q cpu -c 2`` as a subprocess."""

    def __init__(self, env: dict[str, str], log: Path, concurrency: int) -> None:
        self.log = log
        self._log_file = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "keelwatch_workers.roles.all", "worker",
             "-Q", "cpu", "-c", str(concurrency), "--loglevel", "INFO",
             "-n", f"bench-{uuid.uuid4().hex[:6]}@%h", "--without-gossip", "--without-mingle"],
            env=env, stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(self.log.read_text(errors="replace")[-4000:])
            if b" ready." in self.log.read_bytes():
                return
            time.sleep(0.2)
        raise TimeoutError("worker not ready")

    def stop(self) -> None:
        import signal

        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log_file.close()


def run_fleet_job(
    services: Any, model_ref: str, source: Path, output: Path, chunk_rows: int
) -> float:
    from keelwatch.contract import BatchInferenceRequest
    from keelwatch.entities import JobStatus
    from keelwatch.inference import submit_batch_inference
    from keelwatch.storage.jobs import get_job

    started = time.perf_counter()
    job = submit_batch_inference(
        services.db,
        services.sender,
        services.registry,
        services.settings.inference,
        BatchInferenceRequest(
            model=model_ref, input_uri=str(source), output_uri=str(output), chunk_rows=chunk_rows
        ),
        actor="benchmark",
    )
    while True:
        with services.db.session() as session:
            job = get_job(session, job.id)
        if job.finished:
            break
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    if job.status is not JobStatus.SUCCEEDED:
        raise RuntimeError(f"fleet job failed: {job.error}")
    return elapsed


def run_direct(model: Any, source: Path, output: Path) -> float:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    started = time.perf_counter()
    frame = pd.read_parquet(source)
    predictions = np.asarray(model.predict(frame))
    table = pa.table({"row_index": np.arange(len(frame)), "prediction": predictions})
    pq.write_table(table, output)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200,000 rows, one run")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--chunk-rows", type=int, default=125_000)
    parser.add_argument("--workers", type=int, default=2, help="worker pool processes")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.runs = 200_000, 1

    os.environ.setdefault("DO_NOT_TRACK", "1")
    run_dir = DATA_ROOT / f"inference-{uuid.uuid4().hex[:8]}"
    run_dir.mkdir(parents=True)
    worker: Worker | None = None
    try:
        with bench_database() as db_url, free_redis_db() as redis_url:
            from keelwatch.settings import Settings
            from keelwatch.storage.db import upgrade_database
            from keelwatch.wiring import Services

            settings = Settings(
                data_dir=run_dir / "data",
                database={"url": db_url},
                mlflow={"tracking_uri": f"sqlite:///{run_dir / 'mlflow.db'}"},
                broker={"url": redis_url, "result_backend": redis_url},
                registry={"require_approval": False},
            )
            upgrade_database(settings.database.url)
            services = Services(settings)

            print(f"training and registering the model; writing {args.rows:,} rows ...", flush=True)
            model, training = train_model()
            version = services.registry.register_sklearn_model(
                "bench-churn", model, training, "churned", actor="benchmark", reason="benchmark"
            )
            model_ref = f"bench-churn/{version.version}"
            model_uri = f"models:/bench-churn/{version.version}"
            source = run_dir / "input.parquet"
            make_frame(args.rows, seed=2).to_parquet(
                source, index=False, row_group_size=args.chunk_rows
            )
            warmup = run_dir / "warmup.parquet"
            make_frame(args.workers * 1_000, seed=3).to_parquet(
                warmup, index=False, row_group_size=1_000
            )

            env = {k: v for k, v in os.environ.items() if not k.startswith("KEELWATCH_")}
            env.update({
                "KEELWATCH_DATA_DIR": str(settings.data_dir),
                "KEELWATCH_DATABASE__URL": settings.database.url,
                "KEELWATCH_MLFLOW__TRACKING_URI": settings.mlflow.tracking_uri,
                "KEELWATCH_MLFLOW__ARTIFACT_ROOT": settings.mlflow.artifact_root,
                "KEELWATCH_BROKER__URL": redis_url,
                "KEELWATCH_BROKER__RESULT_BACKEND": redis_url,
                "PYTHONPATH": os.pathsep.join([str(ROOT / "platform"), str(ROOT / "workers")]),
            })  # fmt: skip
            worker = Worker(env, run_dir / "worker.log", args.workers)
            worker.wait_ready()
            # Every pool process loads the model once before timing starts, like the direct path.
            run_fleet_job(services, model_ref, warmup, run_dir / "out-warmup", 1_000)

            import mlflow.pyfunc

            mlflow.set_tracking_uri(settings.mlflow.tracking_uri)
            mlflow.set_registry_uri(settings.mlflow.registry_uri)
            direct_model = mlflow.pyfunc.load_model(model_uri)
            fleet_times, direct_times = [], []
            for run in range(args.runs):
                direct_times.append(
                    run_direct(direct_model, source, run_dir / f"direct-{run}.parquet")
                )
                fleet_times.append(
                    run_fleet_job(
                        services, model_ref, source, run_dir / f"fleet-{run}", args.chunk_rows
                    )
                )
                print(
                    f"  run {run + 1}: direct {direct_times[-1]:.2f}s, "
                    f"fleet {fleet_times[-1]:.2f}s",
                    flush=True,
                )
            services.close()
    finally:
        if worker is not None:
            worker.stop()
        shutil.rmtree(run_dir, ignore_errors=True)

    direct, fleet = statistics.median(direct_times), statistics.median(fleet_times)
    ratio = fleet / direct
    print()
    print(
        f"Batch inference, {args.rows:,} rows, RandomForest(40 trees) pyfunc, median of {args.runs}"
    )
    print(f"{'path':<46} {'wall s':>8} {'rows/s':>12}")
    print(
        f"{'direct: one process read/predict/write':<46} {direct:>8.2f} "
        f"{args.rows / direct:>12,.0f}"
    )
    label = f"fleet: Redis + {args.workers} worker processes"
    print(f"{label:<46} {fleet:>8.2f} {args.rows / fleet:>12,.0f}")
    verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
    print(f"ratio fleet/direct: {ratio:.2f}x ({verdict} the <= {TARGET_RATIO}x target)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "benchmark": "inference", "rows": args.rows, "runs": args.runs,
            "chunk_rows": args.chunk_rows, "direct_s": direct_times, "fleet_s": fleet_times,
            "direct_median_s": direct, "fleet_median_s": fleet, "ratio": ratio,
        }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
