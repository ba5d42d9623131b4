"""Job errors name column, row and expected type, and never quote the data (issue 7, item 7):
a type mismatch is refused at submission; a missing value the model cannot take fails on a
real worker with a message that holds none of the file's values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from keelwatch.contract import BatchInferenceRequest
from keelwatch.entities import JobStatus
from keelwatch.errors import InvalidInputError
from keelwatch.inference import submit_batch_inference
from keelwatch.registry.registration import ensure_experiment
from keelwatch.storage.jobs import list_chunks
from keelwatch.wiring import Services
from tests.integration.test_inference_fleet import (
    feature_frame,
    upgraded_settings,
    wait_for_job,
    write_input,
)
from tests.mlflow_models import register_sklearn_estimator

pytestmark = pytest.mark.integration

SENTINEL = 918273.645  # planted in rows that are fine: it must never show up in an error


def register_model(mlflow_uri: str, artifact_root: Path, frame: pd.DataFrame) -> str:
    """A logistic regression on ``frame`` (signature types from its dtypes), registered as
    ``typed`` through MLflow directly."""
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient
    from sklearn.linear_model import LogisticRegression

    target = (frame["tenure"] > frame["tenure"].median()).astype(int)
    model = LogisticRegression(max_iter=200).fit(frame.astype("float64"), target)
    client = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
    experiment = ensure_experiment(client, "errors", artifact_root.as_uri())
    signature = infer_signature(frame, model.predict(frame.astype("float64")))

    return register_sklearn_estimator(client, experiment, "typed", model, signature)


def training_frame() -> pd.DataFrame:
    frame = feature_frame(400, seed=5)
    frame["tenure"] = frame["tenure"].astype("int64")  # signature: long
    return frame


def test_type_mismatch_is_refused_at_submission_naming_column_and_types(
    db_url: str, mlflow_uri: str, redis_url: str, tmp_path: Path
) -> None:
    settings = upgraded_settings(tmp_path, db_url, mlflow_uri, redis_url)
    version = register_model(mlflow_uri, tmp_path / "mlartifacts", training_frame())
    frame = training_frame().astype({"monthly_charges": "str"})
    source = write_input(tmp_path / "strings.parquet", frame)
    services = Services(settings)
    try:
        with pytest.raises(InvalidInputError) as caught:
            submit_batch_inference(
                services.db,
                services.sender,
                services.registry,
                services.settings.inference,
                BatchInferenceRequest(model=f"typed/{version}", input_uri=str(source)),
                actor="t",
            )
    finally:
        services.close()
    message = str(caught.value)
    assert "column 'monthly_charges': the model expects double, found string" in message
    assert str(frame["monthly_charges"].iloc[0]) not in message


@pytest.mark.parametrize(
    ("column", "expected_type"),
    [
        ("tenure", "long"),  # MLflow's schema enforcement would dump the rows
        ("support_calls", "double"),  # scikit-learn refuses NaN
    ],
)
def test_missing_value_fails_the_job_by_column_row_and_type_without_data(
    column: str,
    expected_type: str,
    db_url: str,
    mlflow_uri: str,
    redis_url: str,
    tmp_path: Path,
    start_worker: Any,
) -> None:
    settings = upgraded_settings(tmp_path, db_url, mlflow_uri, redis_url)
    version = register_model(mlflow_uri, tmp_path / "mlartifacts", training_frame())
    frame = feature_frame(1_000, seed=9)
    frame["monthly_charges"] = SENTINEL
    # Integer tenure, as the signature says; pandas' nullable Int64 keeps it integer with a gap.
    frame["tenure"] = frame["tenure"].astype("Int64")
    frame.loc[777, column] = pd.NA if column == "tenure" else np.nan
    source = write_input(tmp_path / "gap.parquet", frame, row_group_rows=500)

    services = Services(settings)
    try:
        job = submit_batch_inference(
            services.db,
            services.sender,
            services.registry,
            services.settings.inference,
            BatchInferenceRequest(model=f"typed/{version}", input_uri=str(source), chunk_rows=500),
            actor="t",
        )
        worker = start_worker(settings, queues="cpu", concurrency=1)
        job = wait_for_job(services, job.id)
        with services.db.session() as session:
            chunk_errors = [c.error or "" for c in list_chunks(session, job.id)]
    finally:
        services.close()

    assert job.status is JobStatus.FAILED
    error = job.error or ""
    assert f"column '{column}': missing value at row 777" in error
    assert f"the model expects {expected_type} without missing values" in error
    for text in (error, *chunk_errors, worker.output()):
        assert "918273" not in text
