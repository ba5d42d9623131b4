"""Concurrent registry changes through real API servers, on SQLite and PostgreSQL.

Two ``keelwatch api`` processes share one Keelwatch database and one MLflow store; 20 requests
(promotions of v1 and v2, alternating, and two rollbacks) start at the same moment, split
between the two servers. Without the per-model lock (storage.locks) two changes interleave
their read-then-move and alias history disagrees with MLflow; an in-process lock would not do
either, since half the requests go to the other process.
"""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from mlflow.tracking import MlflowClient

from keelwatch.entities.auth import Role
from keelwatch.registry import ModelRegistry
from keelwatch.settings import Settings
from keelwatch.storage.aliases import alias_history
from keelwatch.storage.audit import list_audit
from keelwatch.storage.db import Database
from tests.conftest import subprocess_env
from tests.integration.conftest import bearer, issue_token
from tests.integration.test_api import closed_port
from tests.integration.test_registry import MODEL, fitted_model, make_registry, training_frame

pytestmark = pytest.mark.integration

REQUESTS = 20
ROLLBACK_AT = frozenset({7, 14})


def start_api(settings: Settings, log: Path) -> tuple[str, subprocess.Popen[bytes]]:
    """``keelwatch api`` (compose's api command) on a free loopback port, once it answers."""
    port = closed_port()
    with log.open("wb") as out:  # the child keeps its own copy of the handle
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "keelwatch.cli.app",
                "api",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=subprocess_env(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            pytest.fail(f"API exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1.0).status_code == 200:
                return base, process
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"API not up after 60s:\n{log.read_text()}")
        time.sleep(0.2)


def stop_api(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def servers(settings: Settings, tmp_path: Path) -> Iterator[list[str]]:
    """Two API processes on the same database and MLflow store."""
    started = [start_api(settings, tmp_path / f"api-{i}.log") for i in range(2)]
    try:
        yield [base for base, _ in started]
    finally:
        for _, process in started:
            stop_api(process)


@pytest.fixture
def registry(database: Database, mlflow_uri: str, tmp_path: Path) -> ModelRegistry:
    return make_registry(database, mlflow_uri, tmp_path)


@pytest.fixture
def approved_pair(registry: ModelRegistry) -> tuple[str, str]:
    """v1 and v2 of MODEL, both approved (so either may become champion)."""
    frame = training_frame()
    v1 = registry.register_sklearn_model(MODEL, fitted_model(frame), frame, "default", actor="t")
    v2 = registry.register_version(MODEL, run_id=str(v1.run_id), actor="t")
    for version in (v1.version, v2.version):
        registry.approve(MODEL, version, actor="t", reason="ok")
    return v1.version, v2.version


def fire_at_once(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    """Run every call in its own thread, all released by one barrier."""
    barrier = threading.Barrier(len(calls))
    results: list[httpx.Response | httpx.HTTPError | None] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = calls[index]()
        except httpx.HTTPError as exc:  # reported below, with the others
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    failures = [r for r in results if not isinstance(r, httpx.Response)]
    assert not failures, failures
    return [r for r in results if isinstance(r, httpx.Response)]


def test_concurrent_promotions_and_rollbacks_keep_history_and_mlflow_in_step(
    servers: list[str],
    settings: Settings,
    database: Database,
    mlflow_uri: str,
    approved_pair: tuple[str, str],
) -> None:
    headers = bearer(issue_token(settings, role=Role.APPROVER, name="racer"))
    versions = approved_pair

    def call(index: int) -> Callable[[], httpx.Response]:
        base = servers[index % len(servers)]
        if index in ROLLBACK_AT:
            path, body = f"/models/{MODEL}/rollback", {"reason": f"race {index}"}
        else:
            path = f"/models/{MODEL}/versions/{versions[index % 2]}/promote"
            body = {"reason": f"race {index}"}
        return lambda: httpx.post(base + path, json=body, headers=headers, timeout=120.0)

    responses = fire_at_once([call(i) for i in range(REQUESTS)])

    for index, response in enumerate(responses):
        if index in ROLLBACK_AT:
            # No champion yet, or nothing left to roll back to: refused, nothing written.
            assert response.status_code in (200, 409), response.text
        else:
            assert response.status_code == 200, response.text

    champion = MlflowClient(tracking_uri=mlflow_uri).get_registered_model(MODEL).aliases
    with database.session() as session:
        history = alias_history(session, MODEL, "champion")
        audited = [
            entry
            for entry in list_audit(session, limit=1000)
            if entry.action in ("model.promote", "model.rollback")
        ]
    assert len(history) >= 2  # the race really moved the champion back and forth
    # MLflow's alias is the newest history row's version ...
    assert str(champion["champion"]) == history[-1].version
    # ... and history is one unbroken chain: each move starts where the one before ended.
    assert history[0].previous_version is None
    for before, after in itertools.pairwise(history):
        assert after.previous_version == before.version, [
            (h.previous_version, h.version) for h in history
        ]
        assert after.version != after.previous_version
    # Every recorded move is audited once, and nothing else was.
    assert len(audited) == len(history)
    rollbacks = [r for i, r in enumerate(responses) if i in ROLLBACK_AT and r.status_code == 200]
    assert sum(entry.action == "model.rollback" for entry in audited) == len(rollbacks)
