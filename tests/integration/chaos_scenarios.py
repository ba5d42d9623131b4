"""The chaos scenarios (see :mod:`tests.integration.chaos` for the harness they share).

Every scenario uses real processes: workers started with compose's command (``keelwatch worker
--role cpu ...``), Redis, PostgreSQL, an MLflow server. The reconciler runs through its
platform function every half second with a short ``lost_after``, as beat would with production
settings scaled down. Each returns a :class:`~tests.integration.chaos.ChaosResult`:

* ``worker-kill``: two workers; a killer SIGKILLs the process group of a worker while it scores
  a chunk (asked through Celery's ``inspect active`` and the chunk's row) and starts it again;
* ``broker-restart``: a ``redis-server`` of its own, SIGKILLed mid-job and started empty on the
  same port (no persistence: every message is gone);
* ``pg-terminate``: bursts of ``pg_terminate_backend`` on every other backend of the job
  database mid-job: each job completes, or fails with a message; none hangs;
* ``mlflow-down-promote``: an MLflow server SIGKILLed (or, every other outage, SIGSTOPped: it
  accepts connections and never answers), then a promotion through the API: 503, no
  alias-history row, no audit row, and the MLflow alias unchanged once the server is back.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from keelwatch.contract import INFERENCE_CHUNK
from keelwatch.entities import ChunkStatus
from keelwatch.settings import Settings
from keelwatch.wiring import Services
from tests.conftest import subprocess_env
from tests.integration.chaos import (
    ChaosEnv,
    ChaosResult,
    ChaosSizes,
    FleetWorker,
    ReconcilerLoop,
    chunk_counts,
    fleet,
    retrying,
    submit_workload,
    tally,
    wait_finished,
)
from tests.integration.test_worker_reliability import free_port


def scoring_chunks(control: Any, services: Services, worker: FleetWorker) -> list[tuple[str, int]]:
    """The chunks ``worker`` is scoring right now: held by it (Celery's ``inspect active``) and
    ``running`` in the database since it started (not still loading the model, and not a
    ``running`` row left by a worker killed before)."""
    try:
        reply = control.control.inspect(destination=[worker.nodename], timeout=1.0).active()
    except Exception:  # noqa: BLE001 - a worker that does not answer holds nothing we can see
        return []
    held = [
        (str(task["kwargs"]["job_id"]), int(task["kwargs"]["chunk_index"]))
        for task in (reply or {}).get(worker.nodename, [])
        if task.get("name") == INFERENCE_CHUNK
    ]

    from keelwatch.storage.models import JobChunkRow

    def read() -> list[tuple[str, int]]:
        with services.db.session() as session:
            rows = [session.get(JobChunkRow, key) for key in held]
        return [
            (row.job_id, row.chunk_index)
            for row in rows
            if row is not None
            and row.status == ChunkStatus.RUNNING.value
            and row.updated_at >= worker.started_at
        ]

    scoring: list[tuple[str, int]] = retrying(read)
    return scoring


def worker_kill(env: ChaosEnv, sizes: ChaosSizes) -> ChaosResult:
    """SIGKILL a worker while it scores a chunk (at a random point of the chunk), start it
    again, ``sizes.worker_kills`` times, alternating between the two workers."""
    from keelwatch.celery_config import create_client

    # Seeded: a failing run can be repeated with the same kill points.
    rng = random.Random(13)

    result = ChaosResult("worker-kill")
    settings = env.settings()
    services = Services(settings)
    control = create_client(settings)
    try:
        workload = submit_workload(services, env.folder, sizes, sizes.worker_kill_jobs)
        with fleet(settings, env.folder / "workers") as workers, ReconcilerLoop(services) as loop:
            turn = 0
            deadline = time.monotonic() + sizes.settle_timeout_s * 4
            while result.runs < sizes.worker_kills and time.monotonic() < deadline:
                counts = chunk_counts(services, workload.job_ids)
                if counts[ChunkStatus.PENDING] + counts[ChunkStatus.RUNNING] == 0:
                    break  # nothing left to interrupt
                worker = workers[turn % len(workers)]
                if worker.process is None or worker.process.poll() is not None:
                    turn += 1
                    continue
                if not scoring_chunks(control, services, worker):
                    turn += 1
                    time.sleep(0.05)
                    continue
                time.sleep(rng.uniform(0.0, sizes.chunk_delay_s))
                worker.kill()
                result.runs += 1
                worker.start()  # ready in the background: the other worker takes over meanwhile
                turn += 1
                with suppress(TimeoutError):
                    next_worker = workers[turn % len(workers)]
                    next_worker.wait_ready(timeout=60)
            if result.runs < sizes.worker_kills:
                result.problems.append(
                    f"only {result.runs} of {sizes.worker_kills} kills: the jobs ran out first"
                )
            wait_finished(services, workload.job_ids, timeout=sizes.settle_timeout_s)
        result = tally(services, workload, result)
        if result.jobs_failed:
            result.problems.append(f"{result.jobs_failed} jobs failed (a kill must not fail one)")
        if loop.errors:
            result.problems.append(f"reconciler errors: {dict(loop.errors)}")
        return result
    finally:
        control.close()
        services.close()


def broker_restart(env: ChaosEnv, sizes: ChaosSizes) -> ChaosResult:
    """Kill the job's own ``redis-server`` mid-job and start it empty, ``broker_restarts``
    times (waiting for a chunk to run between restarts)."""
    from tests.integration.test_job_reconcile import RedisServer

    result = ChaosResult("broker-restart")
    redis = RedisServer(env.folder / "redis", free_port())
    redis.start()
    settings = env.settings(broker_url=redis.url)
    services = Services(settings)
    try:
        workload = submit_workload(services, env.folder, sizes, sizes.broker_restart_jobs)
        with fleet(settings, env.folder / "workers") as _workers, ReconcilerLoop(services):
            deadline = time.monotonic() + sizes.settle_timeout_s
            while result.runs < sizes.broker_restarts and time.monotonic() < deadline:
                counts = chunk_counts(services, workload.job_ids)
                if counts[ChunkStatus.PENDING] + counts[ChunkStatus.RUNNING] == 0:
                    break
                if counts[ChunkStatus.RUNNING] and counts[ChunkStatus.DONE] > result.runs:
                    redis.kill()
                    redis.start()
                    result.runs += 1
                time.sleep(0.1)
            if result.runs < sizes.broker_restarts:
                result.problems.append(
                    f"only {result.runs} of {sizes.broker_restarts} restarts: the jobs ran out"
                )
            wait_finished(services, workload.job_ids, timeout=sizes.settle_timeout_s)
        result = tally(services, workload, result)
        if result.jobs_failed:
            result.problems.append(f"{result.jobs_failed} jobs failed after a broker restart")
        return result
    finally:
        services.close()
        redis.kill()


def terminate_backends(database_url: str) -> int:
    """``pg_terminate_backend`` on every other backend of ``database_url``'s database."""
    import psycopg

    name = urlparse(database_url).path.lstrip("/")
    assert name.startswith(("kw_test_", "kw_bench_")), name  # throw-away databases only
    with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchall()
    return sum(1 for (terminated,) in rows if terminated)


def pg_terminate(env: ChaosEnv, sizes: ChaosSizes) -> ChaosResult:
    """``pg_terminations`` bursts mid-job, 0.2 s apart, each terminating every other backend
    of the job database every 50 ms for a second (a single pass mostly finds idle pooled
    connections; a burst catches statements in flight): jobs complete or fail with a message,
    none hangs, completed ones are exact."""
    result = ChaosResult("pg-terminate")
    settings = env.settings()
    services = Services(settings)
    try:
        workload = submit_workload(services, env.folder, sizes, sizes.pg_terminate_jobs)
        with fleet(settings, env.folder / "workers"), ReconcilerLoop(services):
            deadline = time.monotonic() + sizes.settle_timeout_s
            while result.runs < sizes.pg_terminations and time.monotonic() < deadline:
                counts = chunk_counts(services, workload.job_ids)
                if counts[ChunkStatus.PENDING] + counts[ChunkStatus.RUNNING] == 0:
                    break
                if counts[ChunkStatus.RUNNING]:
                    burst_ends = time.monotonic() + 1.0
                    while time.monotonic() < burst_ends:
                        terminate_backends(settings.database.url)
                        time.sleep(0.05)
                    result.runs += 1
                    # A short pause: the next burst must still find chunks running.
                    time.sleep(0.2)
                time.sleep(0.1)
            if result.runs < sizes.pg_terminations:
                result.problems.append(
                    f"only {result.runs} of {sizes.pg_terminations} terminations: jobs ran out"
                )
            wait_finished(services, workload.job_ids, timeout=sizes.settle_timeout_s)
        return tally(services, workload, result)
    finally:
        services.close()


@contextmanager
def mlflow_server(settings: Settings, folder: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """``keelwatch mlflow-ui``'s command line (``mlflow server`` on ``settings``' store) on
    ``port``, answering ``/health``; SIGKILLed at the end if still running."""
    import httpx

    from keelwatch.cli.commands import mlflow_server_command, mlflow_server_environment

    command = mlflow_server_command(
        settings, port=port, allowed_hosts=f"127.0.0.1:{port},localhost:{port}"
    )
    env = mlflow_server_environment(subprocess_env(settings))
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"mlflow-{port}.log").open("ab") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, "mlflow server exited at start"
            with suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "mlflow server did not answer in 120 s"
            time.sleep(0.2)
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def mlflow_down_promote(env: ChaosEnv, sizes: ChaosSizes) -> ChaosResult:
    """Promote through the API while the MLflow server is SIGKILLed, ``mlflow_outages`` times:
    each answers 503 and writes nothing; once the server is back the alias is unchanged and a
    promotion succeeds."""
    from mlflow.tracking import MlflowClient

    from keelwatch.storage.aliases import alias_history
    from keelwatch.storage.audit import list_audit
    from keelwatch.storage.db import Database
    from tests.integration.conftest import api_client
    from tests.integration.test_registry import MODEL, fitted_model, training_frame

    result = ChaosResult("mlflow-down-promote")
    store = env.settings()  # the server's side: the SQLite MLflow store
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = env.settings(mlflow_uri=url)
    settings.registry.require_approval = False
    settings.mlflow.request_timeout_s = 3  # a stopped server costs 3 s per call, not 10
    folder = env.folder / "mlflow-server"

    def written() -> tuple[int, int]:
        database = Database(settings.database.url)
        try:
            with database.session() as session:
                history = alias_history(session, MODEL, "champion")
                audit = list_audit(session, limit=1000)
        finally:
            database.dispose()
        return len(history), sum(e.action.startswith("model.") for e in audit)

    champion = "1"
    with api_client(settings, raise_server_exceptions=False) as api:
        for outage in range(sizes.mlflow_outages + 1):
            with mlflow_server(store, folder, port) as server:
                if outage == 0:  # two versions to move the champion between
                    registry = api.app.state.services.registry  # type: ignore[attr-defined]
                    frame = training_frame()
                    first = registry.register_sklearn_model(
                        MODEL, fitted_model(frame), frame, "default", actor="chaos"
                    )
                    registry.register_version(MODEL, run_id=str(first.run_id), actor="chaos")
                # Up: the previous outage left MLflow as it was, and a promotion works again.
                alias = MlflowClient(tracking_uri=url).get_registered_model(MODEL).aliases
                if outage and alias.get("champion") != champion:
                    result.problems.append(
                        f"after outage {outage} MLflow says champion={alias.get('champion')}, "
                        f"not {champion}"
                    )
                target = "2" if champion == "1" else "1"
                response = api.post(
                    f"/models/{MODEL}/versions/{target}/promote", json={"reason": "chaos"}
                )
                if response.status_code != 200:
                    result.problems.append(f"promotion with MLflow up: {response.status_code}")
                    return result
                champion = target
                if outage == sizes.mlflow_outages:
                    break
                before = written()
                # Odd outages: a server that accepts connections and never answers (SIGSTOP),
                # bounded by mlflow.request_timeout_s; the others: nothing listening (SIGKILL).
                if outage % 2:
                    os.killpg(server.pid, signal.SIGSTOP)
                else:
                    os.killpg(server.pid, signal.SIGKILL)
                    server.wait(timeout=30)
                target = "2" if champion == "1" else "1"
                started = time.monotonic()
                response = api.post(
                    f"/models/{MODEL}/versions/{target}/promote", json={"reason": "outage"}
                )
                result.max_wait_s = max(result.max_wait_s, time.monotonic() - started)
                result.runs += 1
                message = str(response.json().get("error", ""))
                if response.status_code != 503 or not message.startswith(
                    "model registry unavailable"
                ):
                    result.problems.append(
                        f"promotion with MLflow down answered {response.status_code}: {message}"
                    )
                if written() != before:
                    result.problems.append("a failed promotion wrote alias history or audit rows")
    return result


RUNNERS: dict[str, Callable[[ChaosEnv, ChaosSizes], ChaosResult]] = {
    "worker-kill": worker_kill,
    "broker-restart": broker_restart,
    "pg-terminate": pg_terminate,
    "mlflow-down-promote": mlflow_down_promote,
}

#: Scenario names, in the order the benchmark runs them.
SCENARIOS = tuple(RUNNERS)
