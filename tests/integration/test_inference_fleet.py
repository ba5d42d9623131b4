"""Batch inference end to end: submission → real Celery worker subprocess → output Parquet and
prediction log, on a real MLflow store, Redis broker, SQLite and PostgreSQL.

The helpers at the top (``register_sklearn_model``, ``write_input``, ``wait_for_job``) are shared
with the other ``test_inference*``/``test_worker*`` modules.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from keelwatch.contract import BatchInferenceRequest
from keelwatch.entities import ChunkStatus, Job, JobStatus
from keelwatch.inference import submit_batch_inference
from keelwatch.registry.registration import ensure_experiment
from keelwatch.settings import Settings
from keelwatch.storage.audit import list_audit
from keelwatch.storage.jobs import get_job, list_chunks
from keelwatch.storage.predictions import count_predictions, recent_predictions
from keelwatch.wiring import Services
from tests.conftest import make_settings
from tests.mlflow_models import register_sklearn_estimator

pytestmark = pytest.mark.integration

FEATURES = ["tenure", "monthly_charges", "support_calls", "discount"]


def feature_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    """Synthetic customer features (deterministic per seed)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "tenure": rng.integers(0, 72, rows).astype("float64"),
            "monthly_charges": rng.normal(65.0, 20.0, rows),
            "support_calls": rng.poisson(1.5, rows).astype("float64"),
            "discount": rng.uniform(0.0, 0.3, rows),
        }
    )


def register_sklearn_model(
    mlflow_uri: str, artifact_root: Path, name: str = "churn", *, seed: int = 0
) -> tuple[str, Any]:
    """Train a small classifier and register it straight through MLflow; returns (version, model).

    Deliberately not through Keelwatch's registry: these tests must not depend on how it writes.
    """
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame = feature_frame(500, seed=seed)
    target = (frame["support_calls"] + frame["discount"] * 10 - frame["tenure"] / 24 > 0.5).astype(
        int
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=200)).fit(frame, target)
    client = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
    experiment = ensure_experiment(client, "inference-tests", artifact_root.as_uri())
    signature = infer_signature(frame, model.predict(frame))

    return register_sklearn_estimator(client, experiment, name, model, signature), model


def write_input(path: Path, frame: pd.DataFrame, *, row_group_rows: int | None = None) -> Path:
    """Write ``frame`` as Parquet (with the given row-group size) or CSV, by suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False, row_group_size=row_group_rows)
    return path


def wait_for_job(services: Services, job_id: str, timeout: float = 120.0) -> Job:
    """Poll the job until it is finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with services.db.session() as session:
            job = get_job(session, job_id)
        if job.finished:
            return job
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} not finished after {timeout}s: {job}")


def read_output(job: Job) -> pd.DataFrame:
    """The job's output dataset, in row order."""
    folder = Path(job.params["output_dir"])
    return pq.read_table(folder).to_pandas().sort_values("row_index").reset_index(drop=True)


def upgraded_settings(tmp_path: Path, database_url: str, mlflow_uri: str, broker: str) -> Settings:
    """Test settings with the Keelwatch schema in place."""
    from keelwatch.storage.db import upgrade_database

    settings = make_settings(
        tmp_path, database_url=database_url, mlflow_uri=mlflow_uri, broker_url=broker
    )
    upgrade_database(settings.database.url)
    return settings


# --------------------------------------------------------------------------- tests


def test_batch_job_over_redis_matches_direct_predict(
    db_url: str, mlflow_uri: str, redis_url: str, tmp_path: Path, start_worker: Any
) -> None:
    settings = upgraded_settings(tmp_path, db_url, mlflow_uri, redis_url)
    version, model = register_sklearn_model(mlflow_uri, tmp_path / "mlartifacts")
    frame = feature_frame(5_000, seed=7)
    source = write_input(tmp_path / "in" / "customers.parquet", frame, row_group_rows=700)
    start_worker(settings, queues="cpu", concurrency=2)
    services = Services(settings)
    try:
        submitted = submit_batch_inference(
            services.db,
            services.sender,
            services.registry,
            services.settings.inference,
            BatchInferenceRequest(
                model=f"churn/{version}",
                input_uri=source.as_uri(),
                chunk_rows=1_500,
                log_sample_rate=0.05,
            ),
            actor="alice",
        )
        assert submitted.status is JobStatus.PENDING
        assert submitted.chunks_total >= 3
        job = wait_for_job(services, submitted.id)
        assert job.status is JobStatus.SUCCEEDED, job.error
        assert job.rows_done == job.rows_total == 5_000
        assert job.chunks_done == job.chunks_total
        assert job.result["rows"] == 5_000
        assert job.result["device"] == "cpu"
        assert "cpu queue" in job.result["device_reason"]
        assert job.result["model_version"] == version

        output = read_output(job)
        assert output["row_index"].tolist() == list(range(5_000))
        np.testing.assert_array_equal(output["prediction"].to_numpy(), model.predict(frame))

        with services.db.session() as session:
            logged = count_predictions(session, job_id=job.id)
            sample = recent_predictions(session, job_id=job.id, limit=10_000)
            chunks = list_chunks(session, job.id)
            audit = list_audit(session, target=f"job:{job.id}")
        # 5% of 5,000 rows, give or take the binomial spread.
        assert 150 <= logged <= 350
        assert logged == len(sample) == job.result["logged_rows"]
        assert {r.model_version for r in sample} == {version}
        assert {r.model_name for r in sample} == {"churn"}
        for record in sample[:25]:
            row = int(record.request_id.split(":")[1])
            assert record.inputs == pytest.approx(frame.iloc[row].to_dict())
            assert record.outputs["prediction"] == int(model.predict(frame.iloc[[row]])[0])
        assert all(c.status is ChunkStatus.DONE and c.attempts == 1 for c in chunks)
        assert [a.action for a in audit] == ["job.submit"]
        assert audit[0].actor == "alice"
    finally:
        services.close()


def test_csv_input_and_model_alias(
    sqlite_url: str, mlflow_uri: str, redis_url: str, tmp_path: Path, start_worker: Any
) -> None:
    from mlflow.tracking import MlflowClient

    settings = upgraded_settings(tmp_path, sqlite_url, mlflow_uri, redis_url)
    register_sklearn_model(mlflow_uri, tmp_path / "mlartifacts", seed=1)
    version, model = register_sklearn_model(mlflow_uri, tmp_path / "mlartifacts", seed=2)
    MlflowClient(tracking_uri=mlflow_uri).set_registered_model_alias("churn", "champion", version)
    frame = feature_frame(2_500, seed=3)
    source = write_input(tmp_path / "in" / "customers.csv", frame)
    start_worker(settings, queues="cpu", concurrency=2)
    services = Services(settings)
    try:
        job = submit_batch_inference(
            services.db,
            services.sender,
            services.registry,
            services.settings.inference,
            BatchInferenceRequest(
                model="churn@champion",
                input_uri=str(source),
                output_uri=str(tmp_path / "scored"),
                chunk_rows=1_000,
            ),
            actor="bob",
        )
        assert job.chunks_total == 3
        assert job.params["model_version"] == version
        job = wait_for_job(services, job.id)
        assert job.status is JobStatus.SUCCEEDED, job.error
        output = read_output(job)
        assert sorted(p.name for p in (tmp_path / "scored").iterdir()) == [
            "part-00000.parquet",
            "part-00001.parquet",
            "part-00002.parquet",
        ]
        np.testing.assert_array_equal(output["prediction"].to_numpy(), model.predict(frame))
    finally:
        services.close()


def test_gpu_queue_without_cuda_runs_on_cpu_and_says_why(
    sqlite_url: str, mlflow_uri: str, redis_url: str, tmp_path: Path, start_worker: Any
) -> None:
    settings = upgraded_settings(tmp_path, sqlite_url, mlflow_uri, redis_url)
    version, _ = register_sklearn_model(mlflow_uri, tmp_path / "mlartifacts")
    source = write_input(tmp_path / "in.parquet", feature_frame(800))
    start_worker(settings, queues="gpu", concurrency=1)
    services = Services(settings)
    try:
        job = submit_batch_inference(
            services.db,
            services.sender,
            services.registry,
            services.settings.inference,
            BatchInferenceRequest(model=f"churn/{version}", input_uri=str(source), device="gpu"),
            actor="carol",
        )
        assert job.params["queue"] == "gpu"
        job = wait_for_job(services, job.id)
        assert job.status is JobStatus.SUCCEEDED, job.error
        # This machine may or may not have torch/CUDA; either way the result must say which.
        assert job.result["queue"] == "gpu"
        assert job.result["device"] in {"cpu", "cuda"}
        assert job.result["device_reason"].startswith("gpu queue")
    finally:
        services.close()


def test_embedded_filesystem_broker_runs_a_job(
    sqlite_url: str, mlflow_uri: str, tmp_path: Path, start_worker: Any
) -> None:
    settings = upgraded_settings(tmp_path, sqlite_url, mlflow_uri, broker="")
    assert settings.broker_is_embedded
    version, model = register_sklearn_model(mlflow_uri, tmp_path / "mlartifacts")
    frame = feature_frame(3_000, seed=5)
    source = write_input(tmp_path / "in.parquet", frame, row_group_rows=1_000)
    start_worker(settings, queues="cpu", concurrency=2)
    services = Services(settings)
    try:
        job = submit_batch_inference(
            services.db,
            services.sender,
            services.registry,
            services.settings.inference,
            BatchInferenceRequest(
                model=f"churn/{version}", input_uri=str(source), chunk_rows=1_000
            ),
            actor="dave",
        )
        job = wait_for_job(services, job.id)
        assert job.status is JobStatus.SUCCEEDED, job.error
        assert job.chunks_done == 3
        np.testing.assert_array_equal(
            read_output(job)["prediction"].to_numpy(), model.predict(frame)
        )
    finally:
        services.close()
