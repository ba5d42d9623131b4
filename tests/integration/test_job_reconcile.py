"""Jobs that cannot get stuck, with real processes: a Redis broker restarted mid-job (its
messages gone), a worker SIGKILLed mid-chunk (its message unacknowledged for the whole
visibility timeout), a chunk that keeps vanishing, the broker down at submission, chord result
subscriptions, temporary part files left by a killed write, and evaluations and gate checks
whose message was lost (resent whole, then failed; one completed by a real worker).

The Redis servers here are started by the tests on their own free ports, without persistence,
so a restart really loses every message (and pub/sub counts are this test's alone).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn import metrics as skm

from keelwatch.celery_config import queue_depths
from keelwatch.contract import (
    DRIFT_CHECK_START,
    EVALUATION_GATE_CHECK,
    EVALUATION_RUN,
    HOUSEKEEPING_RECONCILE_JOBS,
    INFERENCE_CHUNK,
    JOB_BATCH_INFERENCE,
    JOB_DRIFT_CHECK,
    JOB_EVALUATION,
    JOB_GATE_CHECK,
    QUEUE_MONITORING,
    BatchInferenceRequest,
)
from keelwatch.entities import ChunkStatus, JobStatus
from keelwatch.entities.time import utcnow
from keelwatch.inference import submit_batch_inference
from keelwatch.inference.execution import LoadedModel, run_inference_chunk
from keelwatch.inference.reconcile import ReconcilePolicy
from keelwatch.inference.reconciler import RECONCILER_ACTOR, reconcile_jobs
from keelwatch.inference.submit import BatchInferenceParams
from keelwatch.monitoring.service import evaluations as evaluation_service
from keelwatch.settings import Settings
from keelwatch.storage.audit import list_audit
from keelwatch.storage.db import Database, upgrade_database
from keelwatch.storage.evaluations import insert_run, run_for_job
from keelwatch.storage.jobs import (
    chunk_requeues,
    create_job,
    get_job,
    list_chunks,
    reopen_job_for_retry,
)
from keelwatch.storage.predictions import recent_predictions
from keelwatch.wiring import Services
from tests.conftest import make_settings
from tests.integration.conftest import api_client
from tests.integration.test_evaluations import (
    LABEL,
    churn_target,
    eval_frame,
    logistic,
    register_estimator,
)
from tests.integration.test_inference_fleet import feature_frame, upgraded_settings, write_input
from tests.integration.test_worker_reliability import free_port, register_slow_model

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REDIS_SERVER = shutil.which("redis-server")
needs_redis_server = pytest.mark.skipif(
    REDIS_SERVER is None, reason="redis-server is not installed"
)


# --------------------------------------------------------------------------- own Redis servers


class RedisServer:
    """A ``redis-server`` on loopback and a port of its own, no RDB and no AOF: a restart
    forgets every message, as a broker without persistence does."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder = folder
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it and wait (bounded) until it answers PING."""
        import redis

        assert REDIS_SERVER is not None
        self.folder.mkdir(parents=True, exist_ok=True)
        log = (self.folder / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        deadline = time.monotonic() + 20
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    pass
                assert self.process.poll() is None, "redis-server exited at start"
                assert time.monotonic() < deadline, "redis-server did not answer PING in 20 s"
                time.sleep(0.05)
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: everything it held in memory is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=20)

    def client(self) -> Any:
        """A redis-py client on this server."""
        import redis

        return redis.Redis.from_url(self.url, socket_connect_timeout=5)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server for this test only (skipped where redis-server is missing)."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path / "redis", free_port())
    server.start()
    yield server
    server.kill()


def fast_policy(lost_after_s: float, max_requeues: int = 3) -> ReconcilePolicy:
    return ReconcilePolicy(lost_after=timedelta(seconds=lost_after_s), max_requeues=max_requeues)


def reconcile_until_done(
    services: Services, job_id: str, policy: ReconcilePolicy, *, timeout: float
) -> Any:
    """Run the reconciler's platform function every half second until the job finishes."""
    deadline = time.monotonic() + timeout
    while True:
        with services.db.session() as session:
            job = get_job(session, job_id)
        if job.finished:
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job.status} after {timeout} s"
        reconcile_jobs(
            services.db,
            services.sender,
            policy=policy,
            queue_depths=queue_depths(services.settings),
            now=utcnow(),
        )
        time.sleep(0.5)


def wait_for_chunks(
    services: Services, job_id: str, *, done: int, running: int, timeout: float = 90
) -> None:
    """Until at least ``done`` chunks are done and ``running`` are running."""
    deadline = time.monotonic() + timeout
    while True:
        with services.db.session() as session:
            chunks = list_chunks(session, job_id)
        if (
            sum(c.status is ChunkStatus.DONE for c in chunks) >= done
            and sum(c.status is ChunkStatus.RUNNING for c in chunks) >= running
        ):
            return
        assert time.monotonic() < deadline, f"chunks never reached {done} done/{running} running"
        time.sleep(0.05)


def assert_complete_once(services: Services, job_id: str, frame: pd.DataFrame) -> None:
    """Every input row scored exactly once in the output and in the prediction log."""
    rows = len(frame)
    with services.db.session() as session:
        job = get_job(session, job_id)
        logged = recent_predictions(session, job_id=job_id, limit=10 * rows)
    assert job.status is JobStatus.SUCCEEDED, job.error
    assert job.rows_done == rows
    output = pq.read_table(job.params["output_dir"]).to_pandas().sort_values("row_index")
    assert output["row_index"].tolist() == list(range(rows))
    np.testing.assert_array_equal(output["prediction"].to_numpy(), frame["x"].to_numpy() * 2)
    assert sorted(int(r.request_id.split(":")[1]) for r in logged) == list(range(rows))
    leftovers = [p.name for p in Path(job.params["output_dir"]).iterdir() if p.suffix == ".tmp"]
    assert leftovers == []


def reconcile_audit(services: Services, job_id: str) -> list[Any]:
    with services.db.session() as session:
        entries = list_audit(session, limit=500)
    return [e for e in entries if e.action == "job.reconcile" and e.target == f"job:{job_id}"]


def submit_numbers(
    services: Services, tmp_path: Path, version: str, rows: int, chunk_rows: int
) -> tuple[str, pd.DataFrame]:
    frame = pd.DataFrame({"x": np.arange(rows, dtype="float64")})
    source = write_input(tmp_path / "numbers.parquet", frame, row_group_rows=chunk_rows)
    job = submit_batch_inference(
        services.db,
        services.sender,
        services.registry,
        services.settings.inference,
        BatchInferenceRequest(
            model=f"slow/{version}",
            input_uri=str(source),
            chunk_rows=chunk_rows,
            log_sample_rate=1.0,
        ),
        actor="tester",
    )
    return job.id, frame


# --------------------------------------------------------------------------- (a) broker restart


@needs_redis_server
def test_broker_restart_mid_job_is_reconciled_and_the_job_completes_once(
    sqlite_url: str,
    mlflow_uri: str,
    own_redis: RedisServer,
    tmp_path: Path,
    start_worker: Callable[..., Any],
) -> None:
    settings = upgraded_settings(tmp_path, sqlite_url, mlflow_uri, own_redis.url)
    version = register_slow_model(mlflow_uri, tmp_path, delay=0.5)
    services = Services(settings)
    try:
        job_id, frame = submit_numbers(services, tmp_path, version, rows=1_600, chunk_rows=200)
        worker = start_worker(settings, queues="cpu,monitoring", concurrency=1)
        wait_for_chunks(services, job_id, done=1, running=1)

        # The broker dies with every queued and unacknowledged message; a new one, empty,
        # takes its port. The worker reconnects to it and finds nothing to do.
        own_redis.kill()
        own_redis.start()
        assert queue_depths(settings)["cpu"] == 0
        with services.db.session() as session:
            assert not get_job(session, job_id).finished

        job = reconcile_until_done(services, job_id, fast_policy(5.0), timeout=150)
        assert job.status is JobStatus.SUCCEEDED, f"{job.error}\n{worker.output()}"
        assert_complete_once(services, job_id, frame)
        with services.db.session() as session:
            assert max(chunk_requeues(session, job_id).values()) >= 1
        entries = reconcile_audit(services, job_id)
        assert entries and {e.actor for e in entries} == {RECONCILER_ACTOR}
        assert all("sent again" in e.reason for e in entries)

        # Beat's task name reaches a worker and runs there (nothing left to reconcile).
        services.sender.send_task(HOUSEKEEPING_RECONCILE_JOBS, queue=QUEUE_MONITORING)
        deadline = time.monotonic() + 60
        while f"{HOUSEKEEPING_RECONCILE_JOBS}[" not in worker.output() or (
            "succeeded" not in worker.output().split(HOUSEKEEPING_RECONCILE_JOBS)[-1]
        ):
            assert time.monotonic() < deadline, f"reconcile task never ran:\n{worker.output()}"
            time.sleep(0.3)
    finally:
        services.close()


# --------------------------------------------------------------------------- (b) killed worker


def test_worker_killed_mid_chunk_is_reconciled_before_the_visibility_timeout(
    sqlite_url: str,
    mlflow_uri: str,
    redis_url: str,
    tmp_path: Path,
    start_worker: Callable[..., Any],
) -> None:
    settings = upgraded_settings(tmp_path, sqlite_url, mlflow_uri, redis_url)
    # The default: Redis would give the killed worker's message back only after an hour.
    assert settings.broker.visibility_timeout_s == 3600
    version = register_slow_model(mlflow_uri, tmp_path, delay=0.5)
    services = Services(settings)
    try:
        job_id, frame = submit_numbers(services, tmp_path, version, rows=1_200, chunk_rows=200)
        first = start_worker(settings, queues="cpu", concurrency=1)
        wait_for_chunks(services, job_id, done=1, running=1)
        first.kill()  # the main process and its pool: the running chunk's message stays unacked
        with services.db.session() as session:
            stuck = [
                c.index for c in list_chunks(session, job_id) if c.status is ChunkStatus.RUNNING
            ]
        assert len(stuck) == 1

        start_worker(settings, queues="cpu", concurrency=1)
        started = time.monotonic()
        job = reconcile_until_done(services, job_id, fast_policy(5.0), timeout=150)
        assert time.monotonic() - started < settings.broker.visibility_timeout_s
        assert_complete_once(services, job_id, frame)
        with services.db.session() as session:
            chunks = {c.index: c for c in list_chunks(session, job_id)}
            assert chunk_requeues(session, job_id)[stuck[0]] >= 1
        assert chunks[stuck[0]].attempts >= 2  # it ran again
        assert reconcile_audit(services, job_id)
        assert job.status is JobStatus.SUCCEEDED
    finally:
        services.close()


# --------------------------------------------------------------------------- (c) lost for good


@dataclass
class LosingBroker:
    """A broker that takes every message and delivers none (the outer edge, faked)."""

    sent: list[tuple[str, dict[str, Any], str]]

    def send_task(self, name: str, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        assert args is None  # Keelwatch's payloads travel as keyword arguments
        self.sent.append((name, dict(kwargs or {}), str(options.get("queue"))))


def test_a_chunk_lost_past_the_maximum_fails_its_job_with_the_reason(database: Database) -> None:
    with database.session() as session:
        job = create_job(
            session,
            kind=JOB_BATCH_INFERENCE,
            params={"queue": "gpu"},
            submitted_by="tester",
            chunk_bounds=[(0, 10), (10, 20)],
        )
        check = create_job(session, kind=JOB_DRIFT_CHECK, params={}, submitted_by="beat")
    broker = LosingBroker([])
    policy = fast_policy(60.0, max_requeues=2)

    def one_pass(minutes_later: float) -> Any:
        # The clock is moved, not waited for: each pass sees the work idle past lost_after.
        return reconcile_jobs(
            database,
            broker,
            policy=policy,
            queue_depths={"cpu": 0, "gpu": 0, "monitoring": 0},
            now=utcnow() + timedelta(minutes=minutes_later),
        )

    first = one_pass(2)
    assert first.requeued == {job.id: [0, 1]}
    assert first.restarted == [check.id]
    # Oldest job first, chunks in order; each to the queue its work belongs to.
    assert broker.sent == [
        (INFERENCE_CHUNK, {"job_id": job.id, "chunk_index": 0}, "gpu"),
        (INFERENCE_CHUNK, {"job_id": job.id, "chunk_index": 1}, "gpu"),
        (DRIFT_CHECK_START, {"job_id": check.id}, "monitoring"),
    ]
    # Run again at once: nothing idle past the deadline, nothing sent twice.
    assert one_pass(0).requeued == {}
    assert len(broker.sent) == 3

    assert one_pass(2).requeued == {job.id: [0, 1]}
    third = one_pass(2)
    assert third.requeued == {}
    assert third.failed == {
        job.id: "chunk 0 lost 3 times: no worker finished it (no progress for 1 min each time)",
        check.id: "check lost 3 times: no worker finished it (no progress for 1 min each time)",
    }
    with database.session() as session:
        failed = get_job(session, job.id)
        chunks = list_chunks(session, job.id)
        assert get_job(session, check.id).status is JobStatus.FAILED
    assert failed.status is JobStatus.FAILED
    assert failed.error == third.failed[job.id]
    assert [c.status for c in chunks] == [ChunkStatus.FAILED, ChunkStatus.PENDING]
    assert len(broker.sent) == 6  # two sends of two chunks and one check each, then none

    # A failed job stays failed: later passes leave it alone.
    assert one_pass(10).failed == {}
    entries = reconcile_audit_db(database, job.id)
    assert [e.actor for e in entries] == [RECONCILER_ACTOR] * 3
    assert entries[0].reason == third.failed[job.id]  # newest first

    # A person's retry starts the count again.
    with database.session() as session:
        assert chunk_requeues(session, job.id) == {0: 2, 1: 2}
        assert reopen_job_for_retry(session, job.id) == [0, 1]
    with database.session() as session:
        assert chunk_requeues(session, job.id) == {0: 0, 1: 0}
        assert get_job(session, job.id).status is JobStatus.PENDING


def test_a_backlog_keeps_pending_chunks_waiting(database: Database) -> None:
    with database.session() as session:
        job = create_job(
            session,
            kind=JOB_BATCH_INFERENCE,
            params={"queue": "cpu"},
            submitted_by="tester",
            chunk_bounds=[(0, 10)],
        )
    broker = LosingBroker([])
    outcome = reconcile_jobs(
        database,
        broker,
        policy=fast_policy(60.0),
        queue_depths={"cpu": 5, "gpu": 0, "monitoring": 0},
        now=utcnow() + timedelta(hours=1),
    )
    assert outcome.waiting == [job.id]
    assert outcome.requeued == {} and broker.sent == []


def reconcile_audit_db(database: Database, job_id: str) -> list[Any]:
    with database.session() as session:
        entries = list_audit(session, limit=500)
    return [e for e in entries if e.action == "job.reconcile" and e.target == f"job:{job_id}"]


# --------------------------------------------------------------------------- .tmp leftovers


class Doubler:
    """A model: doubles ``x``."""

    def predict(self, data: Any) -> Any:
        return data["x"] * 2


def test_stale_temporary_parts_are_removed_by_the_chunk_and_the_finish(
    database: Database, tmp_path: Path
) -> None:
    frame = pd.DataFrame({"x": np.arange(20, dtype="float64")})
    source = write_input(tmp_path / "in.parquet", frame, row_group_rows=10)
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    params = BatchInferenceParams(
        model_ref="doubler/1",
        model_name="doubler",
        model_version="1",
        model_uri="models:/doubler/1",
        input_path=str(source),
        input_format="parquet",
        columns=["x"],
        output_dir=str(output_dir),
        device="cpu",
        queue="cpu",
        chunk_rows=10,
        log_sample_rate=0.0,
    )
    with database.session() as session:
        job = create_job(
            session,
            kind=JOB_BATCH_INFERENCE,
            params=params.model_dump(mode="json"),
            submitted_by="tester",
            chunk_bounds=[(0, 10), (10, 20)],
        )
    # What a run SIGKILLed between write and rename leaves (one per chunk), and a file that
    # is not Keelwatch's.
    stale_0 = output_dir / ".part-00000.parquet.0123abcd.tmp"
    stale_1 = output_dir / ".part-00001.parquet.4567cdef.tmp"
    foreign = output_dir / ".notes.tmp"
    for path in (stale_0, stale_1, foreign):
        path.write_bytes(b"half a parquet file")

    def load(_uri: str) -> LoadedModel:
        return LoadedModel(predictor=Doubler(), device="cpu", device_reason="test")

    run_inference_chunk(database, job.id, 0, load_model=load)
    assert not stale_0.exists()  # the chunk's own leftover
    assert stale_1.exists()  # another chunk's: maybe being written right now
    outcome = run_inference_chunk(database, job.id, 1, load_model=load)
    assert outcome.job_finished
    assert sorted(p.name for p in output_dir.iterdir()) == [
        ".notes.tmp",
        "part-00000.parquet",
        "part-00001.parquet",
    ]
    assert pq.read_table(output_dir).to_pandas()["prediction"].tolist() == [
        2.0 * x for x in range(20)
    ]


# --------------------------------------------------------------------------- broker down → 503


def test_broker_down_answers_503_with_retry_after_and_keeps_the_job(
    database: Database, db_url: str, mlflow_uri: str, tmp_path: Path
) -> None:
    from tests.integration.test_inference_fleet import feature_frame, register_sklearn_model

    # Nothing listens on this port: the broker is down.
    settings = make_settings(
        tmp_path,
        database_url=db_url,
        mlflow_uri=mlflow_uri,
        broker_url=f"redis://127.0.0.1:{free_port()}/0",
    )
    version, _model = register_sklearn_model(mlflow_uri, tmp_path / "mlartifacts")
    source = write_input(tmp_path / "in.parquet", feature_frame(100, seed=3))
    with api_client(settings, raise_server_exceptions=False) as client:
        response = client.post(
            "/jobs/batch-inference",
            json={"model": f"churn/{version}", "input_uri": str(source)},
        )
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"] == "30"
        message = response.json()["error"]
        assert "broker is unreachable" in message
        assert "127.0.0.1" not in message  # the broker's text (hosts) stays in the log
        job_id = message.split()[1].rstrip(":")

        # The job row is kept, failed with the reason: a person retries it, nothing is lost.
        job = client.get(f"/jobs/{job_id}").json()
        assert job["status"] == "failed"
        assert "retry it with" in job["error"]
        retried = client.post(f"/jobs/{job_id}/retry", json={"reason": "broker back?"})
        assert retried.status_code == 503
        assert retried.headers["Retry-After"] == "30"
        assert client.get(f"/jobs/{job_id}").json()["status"] == "failed"


@needs_redis_server
def test_running_a_monitor_with_the_broker_down_answers_503(
    sqlite_url: str, mlflow_uri: str, tmp_path: Path
) -> None:
    from keelwatch.monitoring.service import service
    from tests.integration.test_drift_checks import MODEL, frame, register

    settings = make_settings(
        tmp_path,
        database_url=sqlite_url,
        mlflow_uri=mlflow_uri,
        broker_url=f"redis://127.0.0.1:{free_port()}/0",
    )
    upgrade_database(sqlite_url)
    services = Services(settings)
    try:
        register(services, rows=500)
        path = tmp_path / "window.parquet"
        frame(500, seed=7).to_parquet(path, index=False)
        with services.db.session() as session:
            service.create_monitor(
                session,
                services.registry,
                {
                    "name": "down",
                    "model": f"{MODEL}@champion",
                    "window": {"kind": "dataset", "uri": str(path)},
                },
                actor="ann",
            )
    finally:
        services.close()
    with api_client(settings, raise_server_exceptions=False) as client:
        response = client.post("/monitors/down/run")
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"] == "30"
        assert "broker is unreachable" in response.json()["error"]


# --------------------------------------------------------------------------- chord subscriptions


def result_subscriptions(server: RedisServer) -> int:
    """Channels with a subscriber, summed over Celery's result channels, on this server."""
    client = server.client()
    try:
        channels = client.pubsub_channels("celery-task-meta-*")
        if not channels:
            return 0
        return int(sum(count for _name, count in client.pubsub_numsub(*channels)))
    finally:
        client.close()


def subscribed_task_names(server: RedisServer) -> dict[str, int]:
    """How many subscribed result channels belong to each task name (for failure messages)."""
    import json

    client = server.client()
    try:
        names: dict[str, int] = {}
        for channel in client.pubsub_channels("celery-task-meta-*"):
            meta = client.get(channel)
            name = json.loads(meta).get("name", "?") if meta else "(no result stored)"
            names[name] = names.get(name, 0) + 1
        return names
    finally:
        client.close()


@needs_redis_server
def test_drift_chords_do_not_leak_result_subscriptions(
    sqlite_url: str,
    mlflow_uri: str,
    own_redis: RedisServer,
    tmp_path: Path,
    start_worker: Callable[..., Any],
) -> None:
    from keelwatch.monitoring.service import service
    from tests.integration.test_drift_checks import MODEL, frame, register, wait_result

    settings = make_settings(
        tmp_path, database_url=sqlite_url, mlflow_uri=mlflow_uri, broker_url=own_redis.url
    )
    services = _drift_services(settings)
    try:
        register(services, rows=1_000)
        path = tmp_path / "window.parquet"
        frame(3_000, seed=7, shift=4.0).to_parquet(path, row_group_size=1_000, index=False)
        with services.db.session() as session:
            service.create_monitor(
                session,
                services.registry,
                {
                    "name": "chordy",
                    "model": f"{MODEL}@champion",
                    "window": {"kind": "dataset", "uri": str(path)},
                    "config": {"partition_rows": 1_000, "report_sample_rows": 100},
                },
                actor="ann",
            )
        start_worker(settings, queues="monitoring", concurrency=1)

        def one_check() -> None:
            job = service.submit_check(
                services.db, services.sender, services.registry, "chordy", actor="ann"
            )
            result = wait_result(services, job.id, timeout=90)
            assert result.mode == "distributed"
            assert result.report["partitions"] == 3

        one_check()  # warm: the worker's pub/sub connection exists from here on
        before = result_subscriptions(own_redis)
        for _ in range(10):
            one_check()
        after = result_subscriptions(own_redis)
        # Before the fix every check left 3 more (one per partition): 30 here.
        assert after - before <= 2, (before, after, subscribed_task_names(own_redis))
    finally:
        services.close()


def _drift_services(settings: Settings) -> Services:
    upgrade_database(settings.database.url)
    return Services(settings)


# --------------------------------------------------------------------------- evaluations, gate


def test_lost_evaluations_and_gate_checks_are_resent_whole_then_failed(database: Database) -> None:
    with database.session() as session:
        evaluation = create_job(
            session, kind=JOB_EVALUATION, params={"queue": "gpu"}, submitted_by="tester"
        )
        insert_run(
            session,
            job_id=evaluation.id,
            model_name="churn",
            model_version="1",
            dataset_name="holdout",
            dataset_version=1,
            suites=["classification"],
            trigger="manual",
        )
        gate = create_job(
            session, kind=JOB_GATE_CHECK, params={"queue": "cpu"}, submitted_by="tester"
        )
    broker = LosingBroker([])
    policy = fast_policy(60.0, max_requeues=1)

    def one_pass(minutes_later: float) -> Any:
        return reconcile_jobs(
            database,
            broker,
            policy=policy,
            queue_depths={"cpu": 0, "gpu": 0, "monitoring": 0},
            now=utcnow() + timedelta(minutes=minutes_later),
        )

    assert one_pass(0).restarted == []  # fresh: left alone
    first = one_pass(2)
    assert first.restarted == [evaluation.id, gate.id]
    # Each job's own start task, to the queue recorded in its params.
    assert broker.sent == [
        (EVALUATION_RUN, {"job_id": evaluation.id}, "gpu"),
        (EVALUATION_GATE_CHECK, {"job_id": gate.id}, "cpu"),
    ]
    assert one_pass(0).restarted == []  # the restart reset the clock: nothing sent twice
    second = one_pass(2)
    assert second.restarted == []
    assert second.failed == {
        evaluation.id: "evaluation lost 2 times: no worker finished it "
        "(no progress for 1 min each time)",
        gate.id: "gate check lost 2 times: no worker finished it (no progress for 1 min each time)",
    }
    assert len(broker.sent) == 2
    with database.session() as session:
        assert get_job(session, gate.id).status is JobStatus.FAILED
        failed = get_job(session, evaluation.id)
        run = run_for_job(session, evaluation.id)
    assert failed.status is JobStatus.FAILED and failed.error == second.failed[evaluation.id]
    # The evaluation's run (what GET /evaluations shows) fails with the same reason.
    assert (run.status, run.error) == ("failed", second.failed[evaluation.id])
    assert [e.actor for e in reconcile_audit_db(database, evaluation.id)] == [RECONCILER_ACTOR] * 2
    assert one_pass(10).failed == {}


def test_an_evaluation_whose_message_was_never_sent_is_resent_and_completed_by_a_worker(
    sqlite_url: str, mlflow_uri: str, redis_url: str, tmp_path: Path, start_worker: Any
) -> None:
    settings = upgraded_settings(tmp_path, sqlite_url, mlflow_uri, redis_url)
    version, model = register_estimator(
        mlflow_uri, tmp_path / "mlartifacts", "churn", logistic(), churn_target(feature_frame(500))
    )
    frame = eval_frame(200, seed=7)
    path = tmp_path / "holdout.csv"
    frame.to_csv(path, index=False)
    services = Services(settings)
    try:
        with services.db.session() as session:
            evaluation_service.register_dataset(
                session, name="holdout", uri=str(path), label_column=LABEL,
                task="classification", actor="alice",
            )  # fmt: skip
            # Created and committed, but its message never reaches the broker (the process
            # died between commit and send, or the broker forgot it).
            job = evaluation_service.create_evaluation(
                session,
                services.registry,
                model_ref=f"churn/{version}",
                dataset="holdout",
                suites=["classification"],
                actor="alice",
            )
        start_worker(settings, queues="cpu", concurrency=1)
        time.sleep(1.0)
        with services.db.session() as session:
            assert get_job(session, job.id).status is JobStatus.PENDING  # nothing to run it

        policy = fast_policy(60.0)
        depths = queue_depths(settings)
        assert (
            reconcile_jobs(
                services.db, services.sender, policy=policy, queue_depths=depths, now=utcnow()
            ).restarted
            == []
        )
        # Aged past lost_after (the clock moved, not waited for): sent again, to its queue.
        outcome = reconcile_jobs(
            services.db,
            services.sender,
            policy=policy,
            queue_depths=depths,
            now=utcnow() + timedelta(minutes=2),
        )
        assert outcome.restarted == [job.id] and outcome.send_errors == {}
        assert job.params["queue"] == "cpu"
        deadline = time.monotonic() + 180
        while True:
            with services.db.session() as session:
                finished = get_job(session, job.id)
                run = evaluation_service.run_for_job(session, job.id)
            if finished.finished:
                break
            assert time.monotonic() < deadline, f"{EVALUATION_RUN} never finished job {job.id}"
            time.sleep(0.3)
        entries = reconcile_audit(services, job.id)
    finally:
        services.close()
    assert finished.status is JobStatus.SUCCEEDED, finished.error
    assert run.status == "succeeded", run.error
    features = frame.drop(columns=[LABEL])
    expected = skm.accuracy_score(frame[LABEL].to_numpy(), model.predict(features))
    assert run.metrics["classification"]["accuracy"] == pytest.approx(expected, abs=1e-12)
    assert [(e.actor, e.reason) for e in entries] == [(RECONCILER_ACTOR, "restarted: no progress")]
