"""Prediction and target drift on prediction-log windows: outputs and late labels.

The reference profile carries the model's own predictions on its training data and the label
column; windows read model outputs from the prediction log and labels recorded later. Checks
run through the real monitor code on SQLite and PostgreSQL (the broker hop is covered by
test_drift_checks.py, so the check is started in-process here).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.linear_model import LogisticRegression

from keelwatch.entities import LabelRecord, PredictionRecord
from keelwatch.entities.monitors import DriftStatus
from keelwatch.monitoring.service import service
from keelwatch.monitoring.service.checks import start_check
from keelwatch.monitoring.service.profiles import attach_reference_profile, load_reference_profile
from keelwatch.storage import profiles as profile_store
from keelwatch.storage.db import upgrade_database
from keelwatch.storage.labels import record_labels
from keelwatch.storage.predictions import bulk_write_predictions
from keelwatch.wiring import Services
from tests.conftest import make_settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

MODEL = "churn"
FEATURES = ["tenure", "spend"]


def _rows(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"tenure": rng.normal(24 + shift, 6, n), "spend": rng.exponential(30.0, n)})


def _log(
    services: Services, version: str, frame: pd.DataFrame, model: LogisticRegression
) -> list[str]:
    predicted = model.predict(frame[FEATURES])
    now = datetime.now(UTC)
    records = [
        PredictionRecord(
            request_id=f"req-{version}-{i}",
            model_name=MODEL,
            model_version=version,
            inputs={"tenure": float(t), "spend": float(s)},
            outputs={"prediction": int(p)},
            latency_ms=1.0,
            created_at=now,
        )
        for i, (t, s, p) in enumerate(zip(frame["tenure"], frame["spend"], predicted, strict=True))
    ]
    assert bulk_write_predictions(services.db.engine, records) == len(records)
    return [r.request_id for r in records]


def _check(services: Services) -> object:
    job = service.submit_check(
        services.db, services.sender, services.registry, "churn-log", actor="ann"
    )
    outcome = start_check(services.db, services.settings, job.id)
    assert outcome.result_id is not None
    with services.db.session() as session:
        result = service.result_of_job(session, job.id)
    assert result is not None
    return result


def test_prediction_and_target_drift_from_logged_outputs_and_late_labels(
    tmp_path: Path, db_url: str, mlflow_uri: str
) -> None:
    settings = make_settings(tmp_path, database_url=db_url, mlflow_uri=mlflow_uri)
    upgrade_database(settings.database.url)
    services = Services(settings)
    train = _rows(4_000, 1)
    train["churned"] = (train["tenure"] + np.random.default_rng(2).normal(0, 4, 4_000) < 22).astype(
        int
    )
    model = LogisticRegression(max_iter=300).fit(train[FEATURES], train["churned"])
    version = services.registry.register_sklearn_model(
        MODEL, model, train, target="churned", actor="ann"
    ).version
    with services.db.session() as session:
        attach_reference_profile(
            session,
            services.registry,
            services.settings.mlflow,
            MODEL,
            version,
            train,
            actor="ann",
            target="churned",
        )
    with services.db.session() as session:
        info = profile_store.get_reference_profile(session, MODEL, version)
    assert info.columns == ["tenure", "spend", "prediction", "churned"]
    reference = load_reference_profile(settings, info)
    assert reference.columns["prediction"].role == "prediction"
    assert reference.columns["churned"].role == "target"
    # The reference predictions are the model's own on the training data.
    expected_positive = int(model.predict(train[FEATURES]).sum())
    assert reference.columns["prediction"].categories == {
        "0": 4_000 - expected_positive,
        "1": expected_positive,
    }

    with services.db.session() as session:
        service.create_monitor(
            session,
            services.registry,
            {
                "name": "churn-log",
                "model": f"{MODEL}/{version}",
                "window": {"kind": "rows", "last_rows": 3_000},
                "config": {"report_sample_rows": 0},
            },
            actor="ann",
        )
    # Short-tenure customers arrive: the features and the predictions drift; no labels yet.
    window = _rows(3_000, 3, shift=-6.0)
    request_ids = _log(services, version, window, model)
    first = _check(services)
    assert first.status is DriftStatus.DRIFT  # type: ignore[attr-defined]
    report = first.report  # type: ignore[attr-defined]
    assert report["prediction_drifted"] is True and report["dataset_drifted"] is True
    assert report["target_drifted"] is None
    label = first.columns["churned"]  # type: ignore[attr-defined]
    assert label["status"] == "insufficient_data" and "no labels" in label["detail"]
    assert first.columns["prediction"]["n_current"] == 3_000  # type: ignore[attr-defined]

    # Labels for half the window arrive: churn doubled. Unlabelled rows are not missing data.
    rng = np.random.default_rng(4)
    labelled = request_ids[::2]
    with services.db.session() as session:
        written = record_labels(
            session,
            [LabelRecord(rid, int(rng.random() < 0.8)) for rid in labelled],
            actor="labeller",
        )
    assert written.inserted == len(labelled)
    second = _check(services)
    target = second.columns["churned"]  # type: ignore[attr-defined]
    assert target["status"] == "ok" and target["role"] == "target"
    assert target["n_current"] == len(labelled)
    assert target["drifted"] is True and target["missing_drifted"] is False
    assert second.report["target_drifted"] is True  # type: ignore[attr-defined]
    # The MLflow run of each check carries the role verdicts as metrics.
    client = MlflowClient(tracking_uri=settings.mlflow.tracking_uri)
    first_metrics = client.get_run(str(first.mlflow_run_id)).data.metrics  # type: ignore[attr-defined]
    assert first_metrics["prediction_drift"] == 1.0 and "target_drift" not in first_metrics
    second_metrics = client.get_run(str(second.mlflow_run_id)).data.metrics  # type: ignore[attr-defined]
    assert second_metrics["target_drift"] == 1.0
    services.close()
