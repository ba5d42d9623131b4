"""Job control with a real worker: cancel (chunks not started are skipped), retry (the chunks not
done run again), invalid transitions (409), and short job ids (CLI and API)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from keelwatch.cli.app import app as cli_app
from keelwatch.contract import JOB_DRIFT_CHECK, BatchInferenceRequest
from keelwatch.entities import ChunkStatus, JobStatus
from keelwatch.entities.auth import Role
from keelwatch.inference import submit_batch_inference
from keelwatch.settings import Settings
from keelwatch.storage.audit import list_audit
from keelwatch.storage.jobs import create_job, finish_job, list_chunks
from keelwatch.wiring import Services
from tests.conftest import settings_env
from tests.integration.conftest import api_client
from tests.integration.test_inference_fleet import (
    feature_frame,
    read_output,
    register_sklearn_model,
    upgraded_settings,
    wait_for_job,
    write_input,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(db_url: str, mlflow_uri: str, redis_url: str, tmp_path: Path) -> Settings:
    return upgraded_settings(tmp_path, db_url, mlflow_uri, redis_url)


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    services = Services(settings)
    yield services
    services.close()


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    with api_client(settings, role=Role.OPERATOR, raise_server_exceptions=False) as client:
        yield client


def cli(settings: Settings, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli_app, list(args), env=settings_env(settings))
    assert result.exit_code == code, (result.output, result.exception)
    return result.output


def wait_until_queues_drained(redis_url: str, timeout: float = 60.0) -> None:
    """Until the worker took every message off the cpu queue and acknowledged it."""
    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout
    try:
        while client.llen("cpu") or client.hlen("unacked"):
            assert time.monotonic() < deadline, "the worker never drained the cpu queue"
            time.sleep(0.2)
    finally:
        client.close()


def test_cancel_skips_chunks_and_retry_runs_them(
    settings: Settings,
    services: Services,
    api: TestClient,
    redis_url: str,
    mlflow_uri: str,
    tmp_path: Path,
    start_worker: Any,
) -> None:
    version, model = register_sklearn_model(mlflow_uri, tmp_path / "mlartifacts")
    frame = feature_frame(2_000, seed=3)
    source = write_input(tmp_path / "in.parquet", frame, row_group_rows=500)
    job = submit_batch_inference(
        services.db,
        services.sender,
        services.registry,
        services.settings.inference,
        BatchInferenceRequest(model=f"churn/{version}", input_uri=str(source), chunk_rows=500),
        actor="tester",
    )
    assert job.chunks_total == 4
    short_id = job.id[:8]  # what the progress bar prints

    # No worker yet: every chunk is still queued when the job is cancelled, by its short id.
    cancelled = json.loads(cli(settings, "jobs", "cancel", short_id, "-r", "wrong input", "--json"))
    assert (cancelled["id"], cancelled["status"]) == (job.id, "cancelled")
    assert "cancelled by" in cancelled["error"]

    start_worker(settings, queues="cpu", concurrency=1)
    wait_until_queues_drained(redis_url)
    with services.db.session() as session:
        chunks = list_chunks(session, job.id)
    assert [(c.status, c.attempts) for c in chunks] == [(ChunkStatus.CANCELLED, 0)] * 4
    output_dir = Path(job.params["output_dir"])
    assert not output_dir.exists() or not any(output_dir.glob("part-*"))

    # A cancelled job cannot be cancelled again; a finished one cannot be retried.
    again = api.post(f"/jobs/{job.id}/cancel", json={"reason": "twice"})
    assert again.status_code == 409
    assert "only a pending or running job is cancelled" in again.json()["error"]

    retried = api.post(f"/jobs/{short_id}/retry", json={"reason": "input fixed"})
    assert retried.status_code == 200, retried.text
    # The worker may already be on it: anything but the terminal state the job was in.
    assert retried.json()["status"] in {"pending", "running", "succeeded"}
    done = wait_for_job(services, job.id)
    assert done.status is JobStatus.SUCCEEDED, done.error
    assert done.error is None
    output = read_output(done)
    assert output["row_index"].tolist() == list(range(2_000))
    assert (output["prediction"].to_numpy() == model.predict(frame)).all()

    refused = api.post(f"/jobs/{job.id}/retry")
    assert refused.status_code == 409
    assert "only a failed or cancelled job is retried" in refused.json()["error"]
    assert "is succeeded; only a pending or running" in cli(
        settings, "jobs", "cancel", job.id, code=2
    )

    with services.db.session() as session:
        entries = list_audit(session, target=f"job:{job.id}", limit=10)
    actions = [(e.action, e.reason) for e in reversed(entries)]
    assert actions[-2:] == [("job.cancel", "wrong input"), ("job.retry", "input fixed")]


def test_short_job_ids_resolve_or_say_how_many_match(
    settings: Settings, services: Services, api: TestClient
) -> None:
    ids = [f"abc0000{i}-0000-4000-8000-000000000000" for i in (1, 2)]
    with services.db.session() as session:
        for job_id in ids:
            create_job(
                session,
                kind=JOB_DRIFT_CHECK,
                params={},
                submitted_by="t",
                chunk_bounds=[(0, 1)],
                job_id=job_id,
            )

    assert api.get("/jobs/abc00001").json()["id"] == ids[0]
    assert api.get(f"/jobs/{ids[1]}").json()["id"] == ids[1]
    ambiguous = api.get("/jobs/abc0")
    assert ambiguous.status_code == 422
    assert "ambiguous: 2 jobs match" in ambiguous.json()["error"]
    assert api.get("/jobs/ffff").status_code == 404
    assert api.get("/jobs/abc%25").status_code == 404  # no LIKE wildcard sneaks in

    # A unique prefix, in any case, names the job in the CLI too.
    shown = json.loads(cli(settings, "jobs", "status", "ABC00001", "--json"))
    assert shown["id"] == ids[0]
    assert "ambiguous: 2 jobs match" in cli(settings, "jobs", "status", "abc0000", code=2)

    # Only batch-inference jobs are retried; a pending job cannot be.
    with services.db.session() as session:
        finish_job(session, ids[0], status=JobStatus.FAILED, error="boom")
    refused = api.post(f"/jobs/{ids[0]}/retry")
    assert refused.status_code == 409
    assert "only batch-inference jobs are retried" in refused.json()["error"]
    assert api.post(f"/jobs/{ids[1]}/retry").status_code == 409
