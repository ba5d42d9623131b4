"""The chaos harness: faults injected into a real fleet, and what they cost in rows.

Shared by the bounded suite (``tests/integration/test_chaos.py``) and the long benchmark
(``benchmarks/chaos_bench.py``); both run the scenarios of
:mod:`tests.integration.chaos_scenarios` with their own sizes (:data:`BOUNDED` or :data:`FULL`)
and resources (:class:`ChaosEnv`). This module holds what the scenarios share: the result
record and its table, compose's worker as a process group, the reconciler loop, the workload
and the row count.

Rows are counted from the outside: every part file's ``row_index`` against the input, every
prediction-log request id against the job's deterministic sample (rate 1.0 here: every row).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from keelwatch.contract import BatchInferenceRequest
from keelwatch.entities import ChunkStatus, JobStatus
from keelwatch.entities.time import utcnow
from keelwatch.inference import submit_batch_inference
from keelwatch.inference.planning import PART_FILE_PREFIX
from keelwatch.inference.reconcile import ReconcilePolicy
from keelwatch.inference.sampling import prediction_request_id, sampled_rows
from keelwatch.settings import Settings
from keelwatch.storage.db import upgrade_database
from keelwatch.storage.jobs import get_job, list_chunks
from keelwatch.wiring import Services
from tests.conftest import make_settings, subprocess_env
from tests.integration.test_inference_fleet import write_input
from tests.integration.test_worker_reliability import register_slow_model


@dataclass(frozen=True)
class ChaosSizes:
    """How much chaos: jobs and faults per scenario, and the shape of each job."""

    worker_kill_jobs: int
    worker_kills: int
    broker_restart_jobs: int
    broker_restarts: int
    pg_terminate_jobs: int
    pg_terminations: int
    mlflow_outages: int
    chunks_per_job: int
    chunk_rows: int = 50
    #: The model sleeps this long per chunk: long enough to be caught mid-chunk.
    chunk_delay_s: float = 0.5
    #: Bounded wait for the jobs once the faults stop; a job still unfinished then is "hung".
    settle_timeout_s: float = 120.0


#: The suite's sizes (and ``chaos_bench.py --quick``).
BOUNDED = ChaosSizes(
    worker_kill_jobs=4,
    worker_kills=4,
    broker_restart_jobs=1,
    broker_restarts=1,
    # Enough work that three bursts land while chunks still run, even on a fast machine.
    pg_terminate_jobs=8,
    pg_terminations=3,
    mlflow_outages=1,
    chunks_per_job=6,
)
#: The benchmark's sizes: issue #13's 20 kills across 20 jobs.
FULL = ChaosSizes(
    worker_kill_jobs=20,
    worker_kills=20,
    broker_restart_jobs=3,
    broker_restarts=3,
    pg_terminate_jobs=6,
    pg_terminations=10,
    mlflow_outages=3,
    chunks_per_job=10,
    settle_timeout_s=300.0,
)

#: Longer than any chunk here (a sleep of ``chunk_delay_s`` plus bookkeeping), far shorter than
#: the broker's visibility timeout: the reconciler, not Redis, brings killed work back.
LOST_AFTER_S = 6.0


@dataclass
class ChaosResult:
    """One scenario's figures; ``problems`` says in words what went wrong (empty: nothing)."""

    scenario: str
    runs: int = 0
    jobs_completed: int = 0
    jobs_failed: int = 0
    jobs_hung: int = 0
    rows_expected: int = 0
    output_lost: int = 0
    output_dup: int = 0
    output_wrong: int = 0
    predlog_lost: int = 0
    predlog_dup: int = 0
    max_wait_s: float = 0.0
    #: Chunk runs beyond the first (evidence that the faults interrupted work).
    reruns: int = 0
    failures: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Nothing lost, duplicated, wrong or hung, and no other problem."""
        return not self.problems and not (
            self.output_lost
            or self.output_dup
            or self.output_wrong
            or self.predlog_lost
            or self.predlog_dup
            or self.jobs_hung
        )


COLUMNS = (
    ("scenario", 20),
    ("runs", 5),
    ("completed", 9),
    ("failed", 6),
    ("hung", 4),
    ("rows expected", 13),
    ("out lost", 8),
    ("out dup", 7),
    ("predlog lost", 12),
    ("predlog dup", 11),
    ("max wait s", 10),
    ("reruns", 6),
)


def format_table(results: Sequence[ChaosResult]) -> str:
    """The results as a Markdown table (also readable in a terminal)."""
    header = "| " + " | ".join(f"{name:<{width}}" for name, width in COLUMNS) + " |"
    rule = "|" + "|".join("-" * (width + 2) for _name, width in COLUMNS) + "|"
    lines = [header, rule]
    for r in results:
        values = (
            r.scenario,
            r.runs,
            r.jobs_completed,
            r.jobs_failed,
            r.jobs_hung,
            r.rows_expected,
            r.output_lost,
            r.output_dup + r.output_wrong,
            r.predlog_lost,
            r.predlog_dup,
            f"{r.max_wait_s:.1f}",
            r.reruns,
        )
        cells = [
            f"{v!s:<{w}}" if i == 0 else f"{v!s:>{w}}"
            for i, (v, (_n, w)) in enumerate(zip(values, COLUMNS, strict=True))
        ]
        lines.append("| " + " | ".join(cells) + " |")
    for r in results:
        lines.extend(f"  {r.scenario}: job failed: {message}" for message in r.failures)
        lines.extend(f"  {r.scenario}: PROBLEM: {problem}" for problem in r.problems)
    return "\n".join(lines)


# --------------------------------------------------------------------------- resources


@dataclass
class ChaosEnv:
    """Where a scenario runs: ``folder`` (its only data root), a throw-away PostgreSQL
    database, a Redis database of its own, and a SQLite MLflow store."""

    folder: Path
    database_url: str
    broker_url: str
    mlflow_uri: str

    def settings(self, *, broker_url: str | None = None, mlflow_uri: str | None = None) -> Settings:
        """Settings on this env (the schema upgraded), optionally on another broker or MLflow."""
        settings = make_settings(
            self.folder,
            database_url=self.database_url,
            mlflow_uri=mlflow_uri or self.mlflow_uri,
            broker_url=broker_url or self.broker_url,
        )
        upgrade_database(settings.database.url)
        return settings


class FleetWorker:
    """Compose's worker: ``keelwatch worker --role cpu --concurrency N --hostname NAME@%h``, in a
    process group of its own (``keelwatch worker`` execs Celery, so the group is the worker and
    its pool)."""

    def __init__(self, settings: Settings, folder: Path, name: str, concurrency: int) -> None:
        self.settings = settings
        self.folder = folder
        self.name = name
        self.concurrency = concurrency
        self.nodename = f"{name}@{socket.gethostname()}"
        self.starts = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log = folder / f"{name}-0.log"
        self.started_at = utcnow()

    def start(self) -> None:
        """Start a fresh process (its own log file); see :meth:`wait_ready`."""
        self.log = self.folder / f"{self.name}-{self.starts}.log"
        self.starts += 1
        self.started_at = utcnow()
        command = [
            sys.executable,
            "-m",
            "keelwatch.cli.app",
            "worker",
            "--role",
            "cpu",
            "--concurrency",
            str(self.concurrency),
            "--hostname",
            f"{self.name}@%h",
        ]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                command,
                env=subprocess_env(self.settings),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=str(self.folder),
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Until Celery logs `` ready.`` (RuntimeError with the log if it dies first)."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while b" ready." not in self.log.read_bytes():
            if self.process.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited:\n{self.output()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker {self.name} not ready in {timeout:.0f} s")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the process group: a host lost mid-task."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def output(self) -> str:
        """The current process's log, last 8,000 characters."""
        return self.log.read_text(errors="replace")[-8000:]


@contextmanager
def fleet(settings: Settings, folder: Path, *, workers: int = 2) -> Iterator[list[FleetWorker]]:
    """``workers`` compose workers (2 pool processes each), ready; all killed at the end."""
    folder.mkdir(parents=True, exist_ok=True)
    started = [FleetWorker(settings, folder, f"chaos{i}", 2) for i in range(workers)]
    try:
        for worker in started:
            worker.start()
        for worker in started:
            worker.wait_ready()
        yield started
    finally:
        for worker in started:
            worker.kill()


class ReconcilerLoop:
    """The reconciler's platform function every ``interval_s`` in a thread (beat's job, sped
    up). Errors of a pass (the broker or database being down) are counted, as beat's next tick
    would simply run again."""

    def __init__(self, services: Services, *, interval_s: float = 0.5) -> None:
        from keelwatch.celery_config import queue_depths
        from keelwatch.inference.reconciler import reconcile_jobs

        self.requeued = 0
        self.errors: Counter[str] = Counter()
        # max_requeues high: this harness measures rows, not the give-up rule (tested apart).
        policy = ReconcilePolicy(lost_after=timedelta(seconds=LOST_AFTER_S), max_requeues=50)
        self._stop = threading.Event()

        def run() -> None:
            while not self._stop.wait(interval_s):
                try:
                    outcome = reconcile_jobs(
                        services.db,
                        services.sender,
                        policy=policy,
                        queue_depths=queue_depths(services.settings),
                        now=utcnow(),
                    )
                except Exception as exc:  # noqa: BLE001 - counted; the next pass runs anyway
                    self.errors[type(exc).__name__] += 1
                    continue
                self.requeued += sum(len(chunks) for chunks in outcome.requeued.values())

        self._thread = threading.Thread(target=run, name="chaos-reconciler", daemon=True)

    def __enter__(self) -> ReconcilerLoop:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


# --------------------------------------------------------------------------- jobs and rows


@dataclass(frozen=True)
class Workload:
    """Jobs submitted over one numbers file: row ``i`` has ``x = i`` and must score ``2 i``."""

    job_ids: list[str]
    rows: int
    sample_rate: float = 1.0


def submit_workload(services: Services, folder: Path, sizes: ChaosSizes, jobs: int) -> Workload:
    """Register the slow model and submit ``jobs`` jobs of ``sizes.chunks_per_job`` chunks."""
    version = register_slow_model(
        services.settings.mlflow.tracking_uri, folder, sizes.chunk_delay_s
    )
    rows = sizes.chunks_per_job * sizes.chunk_rows
    frame = pd.DataFrame({"x": np.arange(rows, dtype="float64")})
    source = write_input(folder / "numbers.parquet", frame, row_group_rows=sizes.chunk_rows)
    job_ids = []
    for _ in range(jobs):
        job = submit_batch_inference(
            services.db,
            services.sender,
            services.registry,
            services.settings.inference,
            BatchInferenceRequest(
                model=f"slow/{version}",
                input_uri=str(source),
                chunk_rows=sizes.chunk_rows,
                log_sample_rate=1.0,
            ),
            actor="chaos",
        )
        job_ids.append(job.id)
    return Workload(job_ids, rows)


def retrying(read: Callable[[], Any], *, attempts: int = 20) -> Any:
    """``read()``, again after a short pause when the database dropped the connection (the
    harness reads the very database whose backends a scenario terminates)."""
    from sqlalchemy.exc import DBAPIError

    for attempt in range(attempts):
        try:
            return read()
        except DBAPIError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2)
    raise AssertionError("unreachable")


def chunk_counts(services: Services, job_ids: Sequence[str]) -> Counter[ChunkStatus]:
    """Chunks per status over ``job_ids``."""

    def read() -> Counter[ChunkStatus]:
        with services.db.session() as session:
            return Counter(c.status for job in job_ids for c in list_chunks(session, job))

    result: Counter[ChunkStatus] = retrying(read)
    return result


def wait_finished(services: Services, job_ids: Sequence[str], *, timeout: float) -> None:
    """Until every job is in a terminal state, or ``timeout`` (the tally then counts hangs)."""
    deadline = time.monotonic() + timeout

    def unfinished() -> int:
        with services.db.session() as session:
            return sum(not get_job(session, job).finished for job in job_ids)

    while retrying(unfinished) and time.monotonic() < deadline:
        time.sleep(0.3)


def tally(services: Services, workload: Workload, result: ChaosResult) -> ChaosResult:
    """Count, job by job, completed/failed/hung, and the output and prediction-log rows lost,
    duplicated or wrong against the input (completed jobs only)."""
    from sqlalchemy import func, select

    from keelwatch.storage.models import PredictionRow

    rows = workload.rows
    for job_id in workload.job_ids:
        with services.db.session() as session:
            job = get_job(session, job_id)
            result.reruns += sum(max(c.attempts - 1, 0) for c in list_chunks(session, job_id))
            logged = dict(
                session.execute(
                    select(PredictionRow.request_id, func.count())
                    .where(PredictionRow.job_id == job_id)
                    .group_by(PredictionRow.request_id)
                ).all()
            )
        if not job.finished:
            result.jobs_hung += 1
            continue
        result.max_wait_s = max(
            result.max_wait_s, (job.updated_at - job.created_at).total_seconds()
        )
        if job.status is not JobStatus.SUCCEEDED:
            result.jobs_failed += 1
            result.failures.append(f"{job_id[:8]} {job.status.value}: {job.error or ''}")
            if not job.error:
                result.problems.append(f"job {job_id} {job.status.value} without a message")
            continue
        result.jobs_completed += 1
        result.rows_expected += rows
        if job.rows_done != rows:
            result.problems.append(f"job {job_id} says rows_done={job.rows_done}, not {rows}")

        output_dir = Path(job.params["output_dir"])
        parts = sorted(output_dir.glob(f"{PART_FILE_PREFIX}*.parquet"))
        if not parts:
            result.output_lost += rows
            result.problems.append(f"job {job_id} succeeded without part files")
            continue
        table = pq.read_table([str(part) for part in parts])
        row_index = table.column("row_index").to_numpy()
        seen = Counter(row_index.tolist())
        result.output_lost += sum(1 for row in range(rows) if row not in seen)
        # A row written twice, and a row that is not in the input at all, are both extra rows.
        result.output_dup += sum(count - 1 for count in seen.values()) + sum(
            count for row, count in seen.items() if not 0 <= row < rows
        )
        prediction = table.column("prediction").to_numpy()
        result.output_wrong += int(np.sum(prediction != 2.0 * row_index))
        leftovers = [p.name for p in output_dir.iterdir() if p.name.endswith(".tmp")]
        if leftovers:
            result.problems.append(f"job {job_id} left temporary files {leftovers}")

        expected = {
            prediction_request_id(job_id, int(row))
            for row in sampled_rows(job_id, 0, rows, workload.sample_rate)
        }
        result.predlog_lost += len(expected - logged.keys())
        result.predlog_dup += sum(count - 1 for count in logged.values()) + sum(
            count for request_id, count in logged.items() if request_id not in expected
        )
    return result
