"""Drift checks on the fleet: real worker subprocesses, Redis or the embedded broker, SQLite or
PostgreSQL, a real MLflow store.

One worker session per test runs several checks, to keep the suite fast.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from keelwatch.entities import JobStatus
from keelwatch.entities.monitors import DriftResult, DriftStatus
from keelwatch.monitoring.drift import build_profile, compute_drift, merge_profiles
from keelwatch.monitoring.service import service
from keelwatch.monitoring.service.profiles import attach_reference_profile, load_reference_profile
from keelwatch.settings import Settings
from keelwatch.storage import profiles as profile_store
from keelwatch.storage.audit import list_audit
from keelwatch.storage.db import upgrade_database
from keelwatch.storage.jobs import get_job, list_jobs
from keelwatch.wiring import Services
from tests.conftest import make_settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

MODEL = "credit"
FEATURES = ["income", "debt", "segment"]


def frame(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """Two numeric features (one shiftable) and a categorical one."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "income": rng.normal(50.0 + shift, 10.0, rows),
            "debt": rng.exponential(5.0, rows).round(1),
            "segment": rng.choice(["a", "b", "c"], rows, p=[0.5, 0.3, 0.2]),
        }
    )


def register(services: Services, rows: int = 5000) -> str:
    """A model version with a reference profile from its training data."""
    train = frame(rows, seed=1)
    train["default"] = (train["income"] > 50).astype(int)
    model = make_pipeline(
        make_column_transformer(
            (OneHotEncoder(handle_unknown="ignore"), ["segment"]), remainder="passthrough"
        ),
        LogisticRegression(max_iter=200),
    ).fit(train[FEATURES], train["default"])
    version = services.registry.register_sklearn_model(
        MODEL, model, train, target="default", actor="ann"
    )
    with services.db.session() as session:
        attach_reference_profile(
            session,
            services.registry,
            services.settings.mlflow,
            MODEL,
            version.version,
            train,
            actor="ann",
            target="default",
        )
    services.registry.approve(MODEL, version.version, actor="ann", reason="ok")
    services.registry.promote(MODEL, version.version, actor="ann", reason="ok")
    return version.version


def wait_result(services: Services, job_id: str, timeout: float = 120.0) -> DriftResult:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with services.db.session() as session:
            result = service.result_of_job(session, job_id)
        if result is not None and (
            result.mlflow_run_id is not None or result.status is DriftStatus.ERROR
        ):
            return result
        time.sleep(0.3)
    with services.db.session() as session:
        job = get_job(session, job_id)
    raise TimeoutError(f"no result for {job_id}: job {job.status} {job.error}")


def setup(settings: Settings) -> Services:
    upgrade_database(settings.database.url)
    return Services(settings)


def test_distributed_check_on_redis_and_postgresql_agrees_with_in_process(
    tmp_path: Path,
    pg_url: str,
    mlflow_uri: str,
    redis_url: str,
    start_worker: Callable[..., Any],
) -> None:
    settings = make_settings(
        tmp_path, database_url=pg_url, mlflow_uri=mlflow_uri, broker_url=redis_url
    )
    services = setup(settings)
    register(services)
    current = frame(12_000, seed=7, shift=4.0)
    path = tmp_path / "window.parquet"
    current.to_parquet(path, row_group_size=3000, index=False)
    with services.db.session() as session:
        service.create_monitor(
            session,
            services.registry,
            {
                "name": "credit-daily",
                "model": f"{MODEL}@champion",
                "window": {"kind": "dataset", "uri": str(path)},
                "config": {
                    "partition_rows": 3000,
                    "report_sample_rows": 500,
                    "second_opinion": True,
                },
            },
            actor="ann",
        )
    start_worker(settings, queues="monitoring", concurrency=2)
    job = service.submit_check(
        services.db, services.sender, services.registry, "credit-daily", actor="ann"
    )
    result = wait_result(services, job.id)
    _check_distributed(services, settings, result, current)

    # The beat task enqueues a due monitor exactly once per due period.
    with services.db.session() as session:
        service.update_monitor(
            session, services.registry, "credit-daily", {"schedule_interval_s": 3600}, actor="ann"
        )
    before = {j.id for j in _drift_jobs(services)}
    services.sender.send_task("keelwatch.monitoring.drift.dispatch_due", queue="monitoring")
    services.sender.send_task("keelwatch.monitoring.drift.dispatch_due", queue="monitoring")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(_drift_jobs(services)) == len(before):
        time.sleep(0.3)
    time.sleep(2.0)  # let the second tick run too
    new = [j for j in _drift_jobs(services) if j.id not in before]
    assert len(new) == 0, "the monitor ran moments ago, so it is not due"
    services.close()


def _drift_jobs(services: Services) -> list[Any]:
    with services.db.session() as session:
        return list_jobs(session, kind="drift_check")


def _check_distributed(
    services: Services,
    settings: Settings,
    result: DriftResult,
    current: pd.DataFrame,
    *,
    expect_second_opinion: bool = True,
) -> None:
    assert result.status is DriftStatus.DRIFT, result.report
    assert result.mode == "distributed"
    assert result.window_rows == len(current)
    assert result.report["partitions"] == 4
    with services.db.session() as session:
        info = profile_store.get_reference_profile(session, MODEL, result.model_version)
    reference = load_reference_profile(settings, info)
    exact = compute_drift(reference, current[FEATURES])
    # Exact parts: counts, histograms and category counts of the merged profile.
    whole = build_profile(current[FEATURES], like=reference)
    parts = [
        build_profile(current[FEATURES].iloc[i : i + 3000], like=reference, seed=i)
        for i in range(0, len(current), 3000)
    ]
    merged = parts[0]
    for part in parts[1:]:
        merged = merge_profiles(merged, part)
    for name in FEATURES:
        a, b = whole.columns[name], merged.columns[name]
        assert (a.rows, a.missing, a.infinite, a.categories) == (
            b.rows,
            b.missing,
            b.infinite,
            b.categories,
        )
        if a.numeric is not None and b.numeric is not None:
            np.testing.assert_array_equal(a.numeric.bin_counts, b.numeric.bin_counts)
    # A dataset window holds inputs only: the reference's prediction and label columns are
    # reported as untestable, never as missing.
    assert result.columns["prediction"]["status"] == "insufficient_data"
    assert result.columns["prediction"]["role"] == "prediction"
    assert result.columns["default"]["status"] == "insufficient_data"
    assert result.report["missing_columns"] == []
    for column in exact.columns:
        if column.role != "feature":
            continue
        stored = result.columns[column.column]
        assert stored["statistic"] == column.statistic
        assert stored["n_current"] == column.n_current
        if column.statistic == "ks":
            # Each partition keeps every value here (fewer than the cap): the merge is exact.
            assert stored["value"] == pytest.approx(column.value, abs=1e-12)
            sketch = stored["ks_sketch"]
            assert abs(sketch["statistic"] - column.value) <= sketch["bound"] + 1e-12
        else:
            assert stored["value"] == pytest.approx(column.value, rel=1e-9)
    assert result.columns["income"]["drifted"] and not result.columns["segment"]["drifted"]
    assert result.report["distributed"]["sampled_columns"] == {}

    client = MlflowClient(
        tracking_uri=settings.mlflow.tracking_uri, registry_uri=settings.mlflow.registry_uri
    )
    run = client.get_run(str(result.mlflow_run_id))
    assert run.data.tags["keelwatch.monitor"] == result.report["monitor"]
    assert run.data.metrics["income.ks"] == pytest.approx(result.columns["income"]["value"])
    assert run.data.metrics["income.drifted"] == 1.0
    _check_linked_to_version(client, run, result)
    # Keelwatch's own report is the run's first artifact, and it states the stored verdict.
    assert "drift_report.html" in {a.path for a in client.list_artifacts(run.info.run_id)}
    assert result.report_artifact_uri == f"{run.info.artifact_uri}/drift_report.html"
    page = Path(client.download_artifacts(run.info.run_id, "drift_report.html")).read_text()
    assert "data-verdict='DRIFT'" in page
    assert (
        "<tr data-column='income' data-role='feature' data-status='ok' data-verdict='drift'>"
        in page
    )
    assert (
        "<tr data-column='segment' data-role='feature' data-status='ok' data-verdict='no drift'>"
        in page
    )
    assert len(page.encode()) < 300_000
    names = {a.path for a in client.list_artifacts(run.info.run_id, "drift")}
    assert "drift/result.json" in names
    if not expect_second_opinion:
        assert "drift/evidently_second_opinion.html" not in names
        assert "No second-opinion report" in page
        return
    assert "drift/evidently_second_opinion.html" in names
    assert "independent second opinion" in page
    html = Path(client.download_artifacts(run.info.run_id, "drift/evidently_second_opinion.html"))
    assert "<html" in html.read_text(errors="replace")[:5000].lower()
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == f"keelwatch-drift/{MODEL}"


def _check_linked_to_version(client: MlflowClient, run: Any, result: DriftResult) -> None:
    """Params and tags the MLflow UI shows, the version's logged model as the run's input, and
    the version's tag pointing back at the run."""
    version = client.get_model_version(MODEL, result.model_version)
    assert run.data.params["model_name"] == MODEL
    assert run.data.params["model_version"] == result.model_version
    assert run.data.params["monitor"] == result.report["monitor"]
    assert run.data.params["window"].startswith("dataset:")
    assert run.data.tags["keelwatch.model"] == MODEL
    assert run.data.tags["keelwatch.version"] == result.model_version
    # The version's logged model (the one its registration run output).
    outputs = client.get_run(str(version.run_id)).outputs
    assert outputs is not None
    [output] = outputs.model_outputs
    assert [m.model_id for m in run.inputs.model_inputs] == [output.model_id]
    logged = client.get_logged_model(output.model_id)
    assert logged.metrics is not None
    assert any(m.run_id == run.info.run_id and m.key == "income.drifted" for m in logged.metrics)
    found = client.search_runs(
        [run.info.experiment_id],
        filter_string=f"params.model_version = '{result.model_version}'",
    )
    assert run.info.run_id in {r.info.run_id for r in found}
    assert version.tags["keelwatch.latest_drift_run"] == run.info.run_id
    assert version.tags["keelwatch.latest_drift_status"] == "drift"


def test_chords_and_insufficient_data_on_the_embedded_defaults(
    tmp_path: Path, mlflow_uri: str, start_worker: Callable[..., Any]
) -> None:
    """SQLite, the filesystem broker and the SQL result backend (chord via polling unlock)."""
    settings = make_settings(
        tmp_path, database_url=f"sqlite:///{tmp_path / 'kw.db'}", mlflow_uri=mlflow_uri
    )
    assert settings.broker_is_embedded and settings.broker.result_backend.startswith("db+sqlite")
    services = setup(settings)
    version = register(services, rows=2000)
    current = frame(8000, seed=9, shift=4.0)
    path = tmp_path / "window.csv"
    current.to_csv(path, index=False)
    no_report = {"report_sample_rows": 0}
    with services.db.session() as session:
        service.create_monitor(
            session,
            services.registry,
            {
                "name": "fleet",
                "model": f"{MODEL}/{version}",
                "window": {"kind": "dataset", "uri": str(path)},
                "config": {**no_report, "partition_rows": 2000},
            },
            actor="ann",
        )
    # Nothing was logged for this model: an empty window is insufficient data, never drift.
    with services.db.session() as session:
        service.create_monitor(session, services.registry,
            {"name": "empty", "model": MODEL, "window": {"kind": "rows", "last_rows": 500},
             "config": no_report},
            actor="ann",
        )  # fmt: skip
    start_worker(settings, queues="monitoring", concurrency=2)
    distributed = service.submit_check(
        services.db, services.sender, services.registry, "fleet", actor="ann"
    )
    empty = service.submit_check(
        services.db, services.sender, services.registry, "empty", actor="ann"
    )
    result = wait_result(services, distributed.id)
    _check_distributed(services, settings, result, current, expect_second_opinion=False)
    nothing = wait_result(services, empty.id)
    assert nothing.status is DriftStatus.INSUFFICIENT_DATA
    assert nothing.dataset_drift is None and nothing.window_rows == 0
    assert nothing.mode == "in_process"
    with services.db.session() as session:
        assert get_job(session, empty.id).status is JobStatus.SUCCEEDED
        actions = [e.action for e in list_audit(session, target="monitor:fleet")]
    assert actions == ["monitor.run", "monitor.create"]
    with services.db.session() as session:
        history = service.monitor_results(session, "fleet")
    assert [r.job_id for r in history] == [distributed.id]
    services.close()
