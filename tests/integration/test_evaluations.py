"""Evaluation datasets and evaluation jobs: registration (SQLite and PostgreSQL), the API, a
real Celery worker evaluating real MLflow models, the MLflow run it logs, the signals and the
gauge, and bad input that fails the job with a clear message (never a hang)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient
from sklearn import metrics as skm

from keelwatch.entities import JobStatus
from keelwatch.entities.auth import Role
from keelwatch.errors import InvalidInputError, NotFoundError
from keelwatch.monitoring.service import evaluations as service
from keelwatch.monitoring.service.evaluation_runner import run_evaluation_job
from keelwatch.registry.registration import ensure_experiment
from keelwatch.settings import Settings
from keelwatch.storage.audit import list_audit
from keelwatch.storage.jobs import get_job
from keelwatch.storage.signals import latest_by_series
from keelwatch.wiring import Services
from tests.integration.conftest import api_client
from tests.integration.test_api_lists import check_list
from tests.integration.test_api_metrics import scrape
from tests.integration.test_api_server import api_server  # noqa: F401  (fixture)
from tests.integration.test_inference_fleet import feature_frame, upgraded_settings
from tests.mlflow_models import register_sklearn_estimator

pytestmark = pytest.mark.integration

LABEL = "churned"


def churn_target(frame: pd.DataFrame) -> pd.Series:
    """The rule the classifier learns (the dataset adds label noise on top)."""
    score = frame["support_calls"] + frame["discount"] * 10 - frame["tenure"] / 24
    return (score > 0.5).astype(int)


def register_estimator(
    mlflow_uri: str, artifact_root: Path, name: str, estimator: Any, target: pd.Series
) -> tuple[str, Any]:
    """Fit ``estimator`` on 500 synthetic rows and register it straight through MLflow."""
    from mlflow.models import infer_signature

    frame = feature_frame(500, seed=0)
    model = estimator.fit(frame, target)
    client = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
    experiment = ensure_experiment(client, "evaluation-tests", artifact_root.as_uri())
    signature = infer_signature(frame, model.predict(frame))

    return register_sklearn_estimator(client, experiment, name, model, signature), model


def logistic() -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=200))


def eval_frame(rows: int, seed: int) -> pd.DataFrame:
    """Features plus a noisy label (10% flipped), so no metric is trivially 1."""
    frame = feature_frame(rows, seed=seed)
    rng = np.random.default_rng(seed + 100)
    label = churn_target(frame).to_numpy()
    flip = rng.random(rows) < 0.1
    frame[LABEL] = np.where(flip, 1 - label, label)
    return frame


def wait_for_run(client: TestClient, run_id: int, timeout: float = 180.0) -> dict[str, Any]:
    """Poll ``GET /evaluations/{id}`` until the run finished."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = client.get(f"/evaluations/{run_id}")
        assert response.status_code == 200, response.text
        body = response.json()
        if body["status"] in ("succeeded", "failed"):
            return body
        time.sleep(0.3)
    raise TimeoutError(f"evaluation {run_id} not finished after {timeout}s: {body}")


FAST_EFFICIENCY = {"batch_sizes": [1, 32], "repeats": 3, "warmup": 1}


# --------------------------------------------------------------------------- datasets


def test_dataset_versions_hash_and_audit(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "sets" / "holdout.csv"
    path.parent.mkdir()
    eval_frame(50, seed=1).to_csv(path, index=False)
    services = Services(settings)
    try:
        with services.db.session() as session:
            first = service.register_dataset(
                session,
                name="holdout",
                uri=str(path),
                label_column=LABEL,
                task="classification",
                actor="alice",
            )
            again = service.register_dataset(
                session,
                name="holdout",
                uri=path.as_uri(),
                label_column=LABEL,
                task="classification",
                actor="bob",
            )
        assert (first.version, again.version, again.id) == (1, 1, first.id)
        import hashlib

        assert first.content_hash == hashlib.sha256(path.read_bytes()).hexdigest()
        assert first.rows == 50
        assert first.columns == (*feature_frame(1).columns, LABEL)

        eval_frame(60, seed=2).to_csv(path, index=False)
        with services.db.session() as session:
            second = service.register_dataset(
                session,
                name="holdout",
                uri=str(path),
                label_column=LABEL,
                task="classification",
                actor="alice",
            )
            latest = service.get_dataset(session, "holdout")
            pinned = service.get_dataset(session, "holdout", 1)
            audit = list_audit(session, target="eval_dataset:holdout")
        assert (second.version, second.rows, latest.version, pinned.rows) == (2, 60, 2, 50)
        assert second.content_hash != first.content_hash
        assert [(a.action, a.actor, a.details["version"]) for a in audit] == [
            ("evaluation.dataset.register", "alice", 2),
            ("evaluation.dataset.register", "alice", 1),
        ]

        with services.db.session() as session:
            with pytest.raises(InvalidInputError, match="label column 'target' is not in"):
                service.register_dataset(
                    session,
                    name="holdout",
                    uri=str(path),
                    label_column="target",
                    task="classification",
                    actor="alice",
                )
            with pytest.raises(InvalidInputError, match="unknown task"):
                service.register_dataset(
                    session,
                    name="holdout",
                    uri=str(path),
                    label_column=LABEL,
                    task="ranking",
                    actor="alice",
                )
            with pytest.raises(NotFoundError, match="'holdout' version 9"):
                service.get_dataset(session, "holdout", 9)
    finally:
        services.close()


def test_dataset_api_confines_paths_and_lists(settings: Settings, tmp_path: Path) -> None:
    inside = tmp_path / "holdout.parquet"
    eval_frame(40, seed=3).to_parquet(inside, index=False)
    with api_client(settings, raise_server_exceptions=False) as client:
        created = client.post(
            "/evaluations/datasets",
            json={"name": "holdout", "uri": str(inside), "label_column": LABEL},
        )
        assert created.status_code == 201, created.text
        assert created.json()["version"] == 1
        assert created.json()["rows"] == 40
        outside = client.post(
            "/evaluations/datasets",
            json={"name": "etc", "uri": "/etc/hostname", "label_column": "x"},
        )
        assert outside.status_code == 422
        assert "inside" in outside.text or "data root" in outside.text
        listed = client.get("/evaluations/datasets")
        assert [(d["name"], d["version"]) for d in listed.json()] == [("holdout", 1)]
        unknown = client.post("/evaluations", json={"model": "nope", "dataset": "holdout"})
        assert unknown.status_code == 404


def test_submit_pins_version_and_routes_gpu_models(
    settings: Settings, mlflow_uri: str, tmp_path: Path
) -> None:
    path = tmp_path / "holdout.csv"
    eval_frame(40, seed=4).to_csv(path, index=False)
    version, _ = register_estimator(
        mlflow_uri, tmp_path / "mlartifacts", "churn", logistic(), churn_target(feature_frame(500))
    )
    services = Services(settings)
    try:
        with services.db.session() as session:
            service.register_dataset(
                session,
                name="holdout",
                uri=str(path),
                label_column=LABEL,
                task="classification",
                actor="alice",
            )
            job = service.create_evaluation(
                session,
                services.registry,
                model_ref=f"churn/{version}",
                dataset="holdout:1",
                actor="alice",
            )
            with pytest.raises(InvalidInputError, match="do not apply to a classification"):
                service.create_evaluation(
                    session,
                    services.registry,
                    model_ref=f"churn/{version}",
                    dataset="holdout",
                    suites=["regression"],
                    actor="alice",
                )
        assert job.params["queue"] == "cpu"
        assert job.params["model_version"] == version
        assert job.params["dataset"]["version"] == 1
        assert job.params["suites"] == ["classification", "efficiency"]
        MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri).set_registered_model_tag(
            "churn", service.DEVICE_TAG, "gpu"
        )
        assert service.queue_for_model(services.registry, "churn", version) == "gpu"
        with services.db.session() as session:
            run = service.run_for_job(session, job.id)
            audit = list_audit(session, target="model:churn", action="evaluation.run")
        assert (run.status, run.model_version, run.dataset_version) == ("pending", version, 1)
        assert audit[0].details["job_id"] == job.id
        with services.db.session() as session:
            for _ in range(3):
                service.create_evaluation(
                    session, services.registry, model_ref=f"churn/{version}", dataset="holdout",
                    suites=["classification"], actor="alice",
                )  # fmt: skip
    finally:
        services.close()
    with api_client(settings, raise_server_exceptions=False) as client:
        ids = check_list(client, "/evaluations", lambda r: r["id"], 500)
        assert ids == sorted(ids, reverse=True) and len(ids) == 4
        only = client.get("/evaluations", params={"model": "churn", "version": "99"}).json()
        assert only["items"] == []
        # A job cancelled before any worker took it: its run says so (the job row is the truth).
        cancelled = client.post(f"/jobs/{job.id}/cancel", json={"reason": "not needed"})
        assert cancelled.status_code == 200, cancelled.text
        run_view = client.get("/evaluations", params={"status": "cancelled"}).json()["items"]
        assert [(r["job_id"], r["status"]) for r in run_view] == [(job.id, "cancelled")]
        assert client.get(f"/evaluations/{run_view[0]['id']}").json()["status"] == "cancelled"
        pending = client.get("/evaluations", params={"status": "pending"}).json()["items"]
        assert len(pending) == 3


# --------------------------------------------------------------------------- on the fleet


def test_classification_evaluation_on_a_worker_matches_sklearn(
    db_url: str, mlflow_uri: str, redis_url: str, tmp_path: Path, start_worker: Any
) -> None:
    settings = upgraded_settings(tmp_path, db_url, mlflow_uri, redis_url)
    version, model = register_estimator(
        mlflow_uri, tmp_path / "mlartifacts", "churn", logistic(), churn_target(feature_frame(500))
    )
    frame = eval_frame(400, seed=11)
    path = tmp_path / "sets" / "holdout.csv"
    path.parent.mkdir()
    frame.to_csv(path, index=False)
    start_worker(settings, queues="cpu", concurrency=1)
    with api_client(settings, raise_server_exceptions=False) as client:
        dataset = client.post(
            "/evaluations/datasets",
            json={"name": "holdout", "uri": str(path), "label_column": LABEL},
        ).json()
        submitted = client.post(
            "/evaluations",
            json={
                "model": f"churn/{version}",
                "dataset": "holdout",
                "efficiency": FAST_EFFICIENCY,
                "require": ["roc_auc"],
            },
        )
        assert submitted.status_code == 202, submitted.text
        run = wait_for_run(client, submitted.json()["id"])
        assert run["status"] == "succeeded", run["error"]
        families = scrape(client)

    features = frame.drop(columns=[LABEL])
    y_true = frame[LABEL].to_numpy()
    y_pred = model.predict(features)
    proba = model.predict_proba(features)
    got = run["metrics"]["classification"]
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred), abs=1e-12)
    assert got["f1_macro"] == pytest.approx(skm.f1_score(y_true, y_pred, average="macro"))
    assert got["precision_weighted"] == pytest.approx(
        skm.precision_score(y_true, y_pred, average="weighted")
    )
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y_true, proba[:, 1]))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y_true, proba))
    assert 0.6 < got["accuracy"] < 0.99  # the label noise is visible
    efficiency = run["metrics"]["efficiency"]
    assert efficiency["latency_p95_s@1"] > 0 and efficiency["rows_per_s@32"] > 0
    assert efficiency["model_size_bytes"] > 1000

    # The MLflow run: tags link it to the version, the dataset input carries the hash.
    client_ml = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
    logged = client_ml.get_run(run["mlflow_run_id"])
    assert logged.data.tags["keelwatch.model_name"] == "churn"
    assert logged.data.tags["keelwatch.model_version"] == version
    assert logged.data.tags["keelwatch.job_id"] == run["job_id"]
    assert logged.data.tags["keelwatch.dataset_sha256"] == dataset["content_hash"]
    assert logged.data.metrics["classification.accuracy"] == got["accuracy"]
    assert (
        logged.data.metrics["efficiency.latency_p95_s.batch_32"] == efficiency["latency_p95_s@32"]
    )
    assert logged.data.params["dataset_version"] == "1"
    assert logged.inputs is not None
    (dataset_input,) = logged.inputs.dataset_inputs
    assert dataset_input.dataset.digest == dataset["content_hash"][:36]
    assert dataset_input.dataset.name == "holdout:1"
    artifacts = {a.path for a in client_ml.list_artifacts(run["mlflow_run_id"])}
    assert {"metrics.json", "confusion_matrix.png", "calibration.png"} <= artifacts
    local = Path(client_ml.download_artifacts(run["mlflow_run_id"], "confusion_matrix.png"))
    assert local.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tags = client_ml.get_model_version("churn", version).tags
    assert tags["keelwatch.eval.last_run_id"] == run["mlflow_run_id"]

    # Signals and the gauge.
    services = Services(settings)
    try:
        with services.db.session() as session:
            (signal,) = latest_by_series(session, "evaluation.accuracy")
        assert signal.value == got["accuracy"]
        assert dict(signal.labels) == {
            "model": "churn",
            "version": version,
            "dataset": "holdout",
            "suite": "classification",
        }
        gauge = families["keelwatch_evaluation_metric"]
        key = (
            ("dataset", "holdout"),
            ("metric", "accuracy"),
            ("model", "churn"),
            ("suite", "classification"),
            ("version", version),
        )
        assert gauge[key] == got["accuracy"]

        # A redelivered message finds the job finished and does nothing (not even loading).
        def no_load(uri: str) -> Any:
            raise AssertionError(f"loaded {uri} for a finished job")

        again = run_evaluation_job(services.db, settings, run["job_id"], load_model=no_load)
        assert again.status == "already_finished"
        assert again.mlflow_run_id == run["mlflow_run_id"]
        runs = client_ml.search_runs(
            [logged.info.experiment_id],
            filter_string=f"tags.`keelwatch.job_id` = '{run['job_id']}'",
        )
        assert len(runs) == 1
    finally:
        services.close()


def test_regression_evaluation_on_a_worker(
    sqlite_url: str, mlflow_uri: str, redis_url: str, tmp_path: Path, start_worker: Any
) -> None:
    from sklearn.linear_model import LinearRegression

    settings = upgraded_settings(tmp_path, sqlite_url, mlflow_uri, redis_url)
    train = feature_frame(500, seed=0)
    version, model = register_estimator(
        mlflow_uri,
        tmp_path / "mlartifacts",
        "charges",
        LinearRegression(),
        train["monthly_charges"] * 0.0 + train["tenure"] * 1.5 + train["discount"] * 40,
    )
    frame = feature_frame(300, seed=21)
    rng = np.random.default_rng(5)
    frame["spend"] = frame["tenure"] * 1.5 + frame["discount"] * 40 + rng.normal(0, 3, 300)
    path = tmp_path / "spend.parquet"
    frame.to_parquet(path, index=False)
    start_worker(settings, queues="cpu", concurrency=1)
    with api_client(settings, raise_server_exceptions=False) as client:
        assert (
            client.post(
                "/evaluations/datasets",
                json={
                    "name": "spend",
                    "uri": str(path),
                    "label_column": "spend",
                    "task": "regression",
                },
            ).status_code
            == 201
        )
        submitted = client.post(
            "/evaluations",
            json={"model": f"charges/{version}", "dataset": "spend", "suites": ["regression"]},
        )
        assert submitted.status_code == 202, submitted.text
        run = wait_for_run(client, submitted.json()["id"])
    assert run["status"] == "succeeded", run["error"]
    assert set(run["metrics"]) == {"regression"}
    y_true = frame["spend"].to_numpy()
    y_pred = model.predict(frame.drop(columns=["spend"]))
    got = run["metrics"]["regression"]
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y_true, y_pred))
    assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y_true, y_pred)))
    assert got["r2"] == pytest.approx(skm.r2_score(y_true, y_pred))
    assert 1.5 < got["mae"] < 4.0


def test_bad_input_fails_the_job_with_a_clear_message(
    sqlite_url: str, mlflow_uri: str, redis_url: str, tmp_path: Path, start_worker: Any
) -> None:
    from sklearn.svm import LinearSVC

    settings = upgraded_settings(tmp_path, sqlite_url, mlflow_uri, redis_url)
    target = churn_target(feature_frame(500))
    version, _ = register_estimator(
        mlflow_uri, tmp_path / "mlartifacts", "churn", logistic(), target
    )
    svc_version, _ = register_estimator(
        mlflow_uri, tmp_path / "mlartifacts", "churn-svc", LinearSVC(), target
    )
    frame = eval_frame(120, seed=31)
    sets = tmp_path / "sets"
    sets.mkdir()
    frame.drop(columns=["discount", "tenure"]).to_csv(sets / "narrow.csv", index=False)
    frame.assign(**{LABEL: np.where(frame[LABEL] == 1, "yes", "no")}).to_csv(
        sets / "words.csv", index=False
    )
    frame.assign(tenure=np.where(frame["tenure"] > 30, "long", "short")).to_csv(
        sets / "texts.csv", index=False
    )
    frame.to_csv(sets / "good.csv", index=False)
    frame.to_csv(sets / "edited.csv", index=False)

    start_worker(settings, queues="cpu", concurrency=2)
    with api_client(settings, raise_server_exceptions=False) as client:
        for name in ("narrow", "words", "texts", "good", "edited"):
            response = client.post(
                "/evaluations/datasets",
                json={"name": name, "uri": str(sets / f"{name}.csv"), "label_column": LABEL},
            )
            assert response.status_code == 201, response.text
        # Edited after registration: one row's label changes, the row count does not.
        edited = frame.copy()
        edited.loc[0, LABEL] = 1 - edited.loc[0, LABEL]
        edited.to_csv(sets / "edited.csv", index=False)

        cases: dict[str, dict[str, Any]] = {
            "columns": {"model": f"churn/{version}", "dataset": "narrow"},
            "label types": {"model": f"churn/{version}", "dataset": "words"},
            "column types": {"model": f"churn/{version}", "dataset": "texts"},
            "roc_auc": {
                "model": f"churn-svc/{svc_version}",
                "dataset": "good",
                "require": ["roc_auc"],
            },
            "changed": {"model": f"churn/{version}", "dataset": "edited"},
        }
        ids = {}
        for case, body in cases.items():
            response = client.post("/evaluations", json={**body, "efficiency": FAST_EFFICIENCY})
            assert response.status_code == 202, (case, response.text)
            ids[case] = response.json()["id"]
        results = {case: wait_for_run(client, run_id) for case, run_id in ids.items()}

    assert {case: r["status"] for case, r in results.items()} == dict.fromkeys(cases, "failed")
    errors = {case: r["error"] for case, r in results.items()}
    assert "lacks column(s)" in errors["columns"]
    assert "discount" in errors["columns"] and "tenure" in errors["columns"]
    assert "string" in errors["label types"] and "y_true" in errors["label types"]
    assert errors["column types"] == (
        f"dataset texts v1 does not match the signature of churn v{version}: column 'tenure': "
        "the model expects double, the dataset holds object"
    )
    assert "roc_auc needs predicted probabilities" in errors["roc_auc"]
    assert "dataset edited v1 changed since registration" in errors["changed"]
    services = Services(settings)
    try:
        with services.db.session() as session:
            for result in results.values():
                job = get_job(session, result["job_id"])
                assert job.status is JobStatus.FAILED
                assert job.error == result["error"]
                # Failed at once: no retry took a second attempt at it.
                assert "gave up after" not in (job.error or "")
            assert latest_by_series(session, "evaluation.accuracy") == []
    finally:
        services.close()


def test_mlflow_run_is_reused_for_a_job_never_duplicated(
    settings: Settings, mlflow_uri: str, tmp_path: Path
) -> None:
    from keelwatch.monitoring.service.evaluation_mlflow import (
        EXPERIMENT,
        EvaluationRecord,
        log_evaluation,
    )
    from keelwatch.monitoring.service.evaluation_runner import ModelOutputs
    from keelwatch.registry.registration import ensure_experiment

    version, model = register_estimator(
        mlflow_uri, tmp_path / "mlartifacts", "churn", logistic(), churn_target(feature_frame(500))
    )
    frame = eval_frame(80, seed=41)
    path = tmp_path / "holdout.csv"
    frame.to_csv(path, index=False)
    services = Services(settings)
    try:
        with services.db.session() as session:
            dataset = service.register_dataset(
                session, name="holdout", uri=str(path), label_column=LABEL,
                task="classification", actor="alice",
            )  # fmt: skip
    finally:
        services.close()
    features = frame.drop(columns=[LABEL])
    record = EvaluationRecord(
        job_id="job-1",
        model_name="churn",
        model_version=version,
        dataset=dataset,
        suites=("classification",),
        metrics={"classification": {"accuracy": 0.5}},
        trigger="manual",
        device="cpu",
        frame=frame,
        y_true=frame[LABEL].to_numpy(),
        outputs=ModelOutputs(
            model.predict(features), model.predict_proba(features), ("0", "1"), None
        ),
    )
    client = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
    # A worker that died after creating the run (still RUNNING) left this behind.
    experiment_id = ensure_experiment(
        client, EXPERIMENT, f"{settings.mlflow.artifact_root}/{EXPERIMENT}"
    )
    crashed = client.create_run(experiment_id, tags={"keelwatch.job_id": "job-1"})
    first = log_evaluation(settings, record)
    second = log_evaluation(settings, record)
    assert first == second == crashed.info.run_id
    runs = client.search_runs([experiment_id], filter_string="tags.`keelwatch.job_id` = 'job-1'")
    assert len(runs) == 1
    assert runs[0].info.status == "FINISHED"
    assert runs[0].data.metrics["classification.accuracy"] == 0.5
    assert client.get_model_version("churn", version).tags["keelwatch.eval.last_run_id"] == first


def test_cli_registers_lists_and_reports(
    sqlite_url: str, mlflow_uri: str, redis_url: str, tmp_path: Path, start_worker: Any
) -> None:
    import json

    from typer.testing import CliRunner

    from keelwatch.cli.app import app
    from tests.conftest import settings_env

    settings = upgraded_settings(tmp_path, sqlite_url, mlflow_uri, redis_url)
    version, model = register_estimator(
        mlflow_uri, tmp_path / "mlartifacts", "churn", logistic(), churn_target(feature_frame(500))
    )
    frame = eval_frame(150, seed=51)
    path = tmp_path / "holdout.csv"
    frame.to_csv(path, index=False)
    runner = CliRunner(env=settings_env(settings))
    registered = runner.invoke(
        app, ["eval", "datasets", "register", "holdout", str(path), "--label", LABEL,
              "--actor", "ann"],
    )  # fmt: skip
    assert registered.exit_code == 0, registered.output
    assert "dataset holdout v1: 150 rows, 5 columns" in registered.stdout
    listed = runner.invoke(app, ["eval", "datasets", "list", "--json"])
    assert [d["version"] for d in json.loads(listed.stdout)] == [1]
    bad = runner.invoke(app, ["eval", "run", f"churn/{version}", "--dataset", "nope"])
    assert bad.exit_code == 2
    assert "unknown evaluation dataset 'nope'" in bad.stderr

    start_worker(settings, queues="cpu", concurrency=1)
    ran = runner.invoke(
        app, ["eval", "run", f"churn/{version}", "--dataset", "holdout", "--suite",
              "classification", "--wait", "--timeout", "180", "--json"],
    )  # fmt: skip
    assert ran.exit_code == 0, ran.output
    run = json.loads(ran.stdout)
    assert run["status"] == "succeeded"
    features = frame.drop(columns=[LABEL])
    assert run["metrics"]["classification"]["accuracy"] == pytest.approx(
        skm.accuracy_score(frame[LABEL], model.predict(features))
    )
    results = runner.invoke(app, ["eval", "results", "churn"])
    assert results.exit_code == 0, results.output
    assert "succeeded" in results.stdout and "accuracy=" in results.stdout


def test_remote_cli_goes_through_the_api(
    api_server: tuple[str, Any],  # noqa: F811
    settings: Settings,
    mlflow_uri: str,
    tmp_path: Path,
) -> None:
    import json

    from tests.integration.conftest import issue_token
    from tests.integration.test_remote_cli import remote

    url, _process = api_server
    version, _ = register_estimator(
        mlflow_uri, tmp_path / "mlartifacts", "churn", logistic(), churn_target(feature_frame(500))
    )
    path = tmp_path / "holdout.csv"
    eval_frame(30, seed=61).to_csv(path, index=False)
    token = issue_token(settings, role=Role.OPERATOR, name="ops-bot")
    code, output = remote(
        url, token, "eval", "datasets", "register", "holdout", str(path), "--label", LABEL,
        tmp_path=tmp_path,
    )  # fmt: skip
    assert code == 0, output
    assert "dataset holdout v1: 30 rows" in output
    code, output = remote(url, token, "eval", "datasets", "list", "--json", tmp_path=tmp_path)
    assert [d["created_by"] for d in json.loads(output)] == ["token:ops-bot"]
    code, output = remote(
        url, token, "eval", "run", f"churn/{version}", "--dataset", "holdout", "--json",
        tmp_path=tmp_path,
    )  # fmt: skip
    assert code == 0, output
    assert json.loads(output)["status"] == "pending"  # no worker consumes this broker
    code, output = remote(url, token, "eval", "results", "churn", "--json", tmp_path=tmp_path)
    assert [(r["model_version"], r["status"]) for r in json.loads(output)] == [(version, "pending")]
    code, output = remote(
        url, token, "eval", "run", f"churn/{version}", "--dataset", "nope", tmp_path=tmp_path
    )
    assert code == 2
    assert "unknown evaluation dataset 'nope' (HTTP 404" in output
