"""Shared fixtures: real PostgreSQL, SQLite, Redis, MLflow stores and Celery worker processes.

Every fixture refuses to touch anything that is not a throw-away test resource: PostgreSQL
databases are created per test as ``kw_test_<hex>`` (migrated ones copied from a template migrated
once per session) and dropped after, Redis uses database 15 on
loopback only, SQLite and MLflow stores live in ``tmp_path``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from keelwatch.settings import Settings
from keelwatch.storage.db import Database, upgrade_database

REPO_ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get(
    "KEELWATCH_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_TEST_URL = os.environ.get("KEELWATCH_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _assert_loopback(url: str) -> None:
    host = urlparse(url).hostname or ""
    if host not in LOOPBACK:
        raise RuntimeError(f"tests only talk to loopback services, not {host!r}")


# --------------------------------------------------------------------------- PostgreSQL


def _pg_admin() -> object:
    import psycopg

    _assert_loopback(PG_ADMIN_URL)
    return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)


def _create_pg_database(template: str | None = None) -> str:
    """Create ``kw_test_<hex>`` (a copy of ``template`` when given) and return its URL."""
    name = f"kw_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = _pg_admin()
    except Exception as exc:  # the suite must not silently skip PostgreSQL in CI
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
    with admin:  # type: ignore[attr-defined]
        clause = f' TEMPLATE "{template}"' if template else ""
        admin.execute(f'CREATE DATABASE "{name}"{clause}')  # type: ignore[attr-defined]
    return urlparse(PG_ADMIN_URL)._replace(path=f"/{name}").geturl()


def _drop_pg_database(url: str) -> None:
    name = urlparse(url).path.strip("/")
    assert name.startswith("kw_test_")
    with _pg_admin() as admin:  # type: ignore[attr-defined]
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def _pg_template() -> Iterator[str]:
    # Migrating a database takes a second or more; copying a migrated one (CREATE DATABASE
    # ... TEMPLATE) is several times cheaper, and hundreds of tests need one.
    url = _create_pg_database()
    try:
        upgrade_database(url)
        yield urlparse(url).path.strip("/")
    finally:
        _drop_pg_database(url)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    url = _create_pg_database()
    try:
        yield url
    finally:
        _drop_pg_database(url)


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "keelwatch.db"
    upgrade_database(f"sqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file in the test's temporary folder."""
    return f"sqlite:///{tmp_path / 'keelwatch-test.db'}"


# URLs of databases that db_url made as copies of a migrated template.
_AT_HEAD: set[str] = set()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Run the test once on SQLite and once on PostgreSQL.

    The schema is not created, except for a test that also uses :func:`database`: it gets a
    copy of a database migrated once per session (the same schema, without running every
    migration again for each test)."""
    migrated = "database" in request.fixturenames
    if request.param == "sqlite":
        path = tmp_path / "keelwatch-test.db"
        url = f"sqlite:///{path}"
        if migrated:
            shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
            _AT_HEAD.add(url)
        yield url
        return
    if not migrated:
        yield str(request.getfixturevalue("pg_url"))
        return
    url = _create_pg_database(template=request.getfixturevalue("_pg_template"))
    _AT_HEAD.add(url)
    try:
        yield url
    finally:
        _drop_pg_database(url)


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    """An upgraded Keelwatch database on each backend."""
    if db_url not in _AT_HEAD:  # a test that asked for database only at run time
        upgrade_database(db_url)
    db = Database(db_url)
    yield db
    db.dispose()


# --------------------------------------------------------------------------- MLflow


@pytest.fixture(scope="session")
def _mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Creating a SQLite MLflow store runs MLflow's own migrations (seconds): do it once.
    from mlflow.tracking import MlflowClient

    folder = tmp_path_factory.mktemp("mlflow-template")
    MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}").search_experiments()
    return folder / "mlflow.db"


@pytest.fixture
def mlflow_uri(tmp_path: Path, _mlflow_template: Path) -> str:
    """A fresh SQLite-backed MLflow tracking + registry store for this test."""
    target = tmp_path / "mlflow.db"
    shutil.copyfile(_mlflow_template, target)
    return f"sqlite:///{target}"


# --------------------------------------------------------------------------- Redis


@pytest.fixture(scope="session")
def _redis_db_lock() -> Iterator[int]:
    # Concurrent pytest runs on one machine must not flush each other's queues: each session
    # holds an exclusive lock on one Redis database number (15 downwards, never 0).
    import fcntl
    import tempfile

    parsed = urlparse(REDIS_TEST_URL)
    preferred = int(parsed.path.strip("/") or 15)
    for db in [preferred, *range(15, 0, -1)]:
        if db == 0:
            continue
        lock_path = Path(tempfile.gettempdir()) / f"keelwatch-test-redis-{db}.lock"
        handle = lock_path.open("w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        try:
            yield db
        finally:
            handle.close()
        return
    raise RuntimeError("no free Redis test database (1-15)")


@pytest.fixture
def redis_url(_redis_db_lock: int) -> str:
    """A Redis database on loopback reserved for this pytest session, emptied before the test."""
    import redis

    _assert_loopback(REDIS_TEST_URL)
    url = urlparse(REDIS_TEST_URL)._replace(path=f"/{_redis_db_lock}").geturl()
    client = redis.Redis.from_url(url, socket_connect_timeout=5)
    try:
        client.flushdb()
    except redis.ConnectionError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Redis not reachable at {url}: {exc}")
    finally:
        client.close()
    return url


# --------------------------------------------------------------------------- Settings


def make_settings(
    tmp_path: Path, *, database_url: str, mlflow_uri: str, broker_url: str = ""
) -> Settings:
    """Settings for a test: everything under ``tmp_path``; broker embedded unless given.

    The test's folder is the one data root (read and write): the API accepts the inputs a test
    writes there and nothing outside it.
    """
    return Settings(
        data_dir=tmp_path / "data",
        data_roots={"read": [str(tmp_path)], "write": [str(tmp_path)]},
        database={"url": database_url},
        mlflow={
            "tracking_uri": mlflow_uri,
            "artifact_root": (tmp_path / "mlartifacts").as_uri(),
        },
        broker={
            "url": broker_url,
            # Celery's result keys never collide with its queue keys: one database serves both.
            "result_backend": broker_url,
        },
    )


def settings_env(settings: Settings) -> dict[str, str]:
    """The ``KEELWATCH_*`` environment that makes a subprocess see the same settings."""
    return {
        "KEELWATCH_DATA_DIR": str(settings.data_dir),
        "KEELWATCH_DATABASE__URL": settings.database.url,
        "KEELWATCH_MLFLOW__TRACKING_URI": settings.mlflow.tracking_uri,
        "KEELWATCH_MLFLOW__REGISTRY_URI": settings.mlflow.registry_uri,
        "KEELWATCH_MLFLOW__ARTIFACT_ROOT": settings.mlflow.artifact_root,
        "KEELWATCH_BROKER__URL": settings.broker.url,
        "KEELWATCH_BROKER__RESULT_BACKEND": settings.broker.result_backend,
        "KEELWATCH_REGISTRY__REQUIRE_APPROVAL": str(settings.registry.require_approval).lower(),
        "KEELWATCH_INFERENCE__CHUNK_ROWS": str(settings.inference.chunk_rows),
        "KEELWATCH_INFERENCE__LOG_SAMPLE_RATE": str(settings.inference.log_sample_rate),
        "KEELWATCH_INFERENCE__OUTPUT_DIR": settings.inference.output_dir,
        "KEELWATCH_DATA_ROOTS__READ": os.pathsep.join(settings.data_roots.read),
        "KEELWATCH_DATA_ROOTS__WRITE": os.pathsep.join(settings.data_roots.write),
        "KEELWATCH_BROKER__VISIBILITY_TIMEOUT_S": str(settings.broker.visibility_timeout_s),
        "KEELWATCH_ALERTING__DELIVERY_MAX_ATTEMPTS": str(settings.alerting.delivery_max_attempts),
        "KEELWATCH_ALERTING__DELIVERY_BACKOFF_BASE_S": str(
            settings.alerting.delivery_backoff_base_s
        ),
        "KEELWATCH_ALERTING__DELIVERY_BACKOFF_MAX_S": str(settings.alerting.delivery_backoff_max_s),
        **(
            {"KEELWATCH_WORKER__METRICS_PORT": str(settings.worker.metrics_port)}
            if settings.worker.metrics_port
            else {}
        ),
        **(
            {"KEELWATCH_WORKER__METRICS_MULTIPROC_DIR": settings.worker.metrics_multiproc_dir}
            if settings.worker.metrics_multiproc_dir
            else {}
        ),
    }


def subprocess_env(settings: Settings) -> dict[str, str]:
    """The current environment plus the test's settings and our source roots."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEELWATCH_")}
    env.update(settings_env(settings))
    roots = [str(REPO_ROOT / "platform"), str(REPO_ROOT / "workers")]
    env["PYTHONPATH"] = os.pathsep.join([*roots, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["DO_NOT_TRACK"] = "1"
    return env


# --------------------------------------------------------------------------- Celery workers


class WorkerProcess:
    """A real ``celery worker`` subprocess, started and stopped by tests."""

    def __init__(self, settings: Settings, *, queues: str, concurrency: int, log: Path) -> None:
        self.log = log
        self.name = f"kwtest-{uuid.uuid4().hex[:8]}@%h"
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "keelwatch_workers.roles.all",
            "worker",
            "-Q",
            queues,
            "-c",
            str(concurrency),
            "-n",
            self.name,
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
        ]
        self._log_file = log.open("wb")
        self.process = subprocess.Popen(
            command,
            env=subprocess_env(settings),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            cwd=str(settings.data_dir.parent),
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Block until the worker logs that it is ready to consume."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.output()}")
            if b" ready." in self.log.read_bytes():
                return
            time.sleep(0.2)
        raise TimeoutError(f"worker not ready after {timeout}s:\n{self.output()}")

    def output(self) -> str:
        """Everything the worker printed so far."""
        return self.log.read_text(errors="replace")[-20000:]

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crashed machine would."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        """Warm shutdown, escalating to SIGKILL of the group after a grace period."""
        from keelwatch.cli.supervisor import stop_process

        # SIGTERM to the main process only: signalling the whole group can hang a pool
        # process on a lock until the SIGKILL (see keelwatch.cli.supervisor.stop_process).
        stop_process(self.process, 30.0)
        self._log_file.close()


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Factory: ``start_worker(settings, queues="cpu,gpu,monitoring", concurrency=2)``."""
    started: list[WorkerProcess] = []

    def _start(
        settings: Settings, *, queues: str = "cpu,gpu,monitoring", concurrency: int = 2
    ) -> WorkerProcess:
        settings.ensure_data_dir()
        worker = WorkerProcess(
            settings,
            queues=queues,
            concurrency=concurrency,
            log=tmp_path / f"worker-{len(started)}.log",
        )
        started.append(worker)
        worker.wait_ready()
        return worker

    yield _start
    for worker in started:
        worker.stop()
