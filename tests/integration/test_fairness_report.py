"""A bias audit's MLflow run in a real (SQLite) MLflow store: its tags, params, metrics and
artifacts read back with MlflowClient agree with the audit's verdict; logging the same audit
twice (or after a crash) yields one run; the model version points at its latest audit.

Audit results are built by hand (tests/unit/test_fairness_report.py), not by the audit.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from keelwatch.monitoring.service.fairness_mlflow import (
    AUDIT_TAG,
    EXPERIMENT,
    LAST_AUDIT_TAG,
    LAST_RUN_TAG,
    LAST_VERDICT_TAG,
    log_audit_run,
    metric_key,
    slice_key,
)
from keelwatch.monitoring.service.fairness_report import render_audit_report
from keelwatch.settings import Settings
from tests.conftest import make_settings
from tests.unit.test_fairness_report import PNG_SIGNATURE, make_result, pass_result, rates

pytestmark = pytest.mark.integration

MODEL = "churn"


@pytest.fixture
def audit_settings(tmp_path: Path, sqlite_url: str, mlflow_uri: str) -> Settings:
    """Settings on a fresh MLflow store; the audit run needs no Keelwatch database."""
    return make_settings(tmp_path, database_url=sqlite_url, mlflow_uri=mlflow_uri)


def client_for(settings: Settings) -> MlflowClient:
    return MlflowClient(
        tracking_uri=settings.mlflow.tracking_uri, registry_uri=settings.mlflow.registry_uri
    )


def register_version(settings: Settings, tmp_path: Path) -> str:
    """A registered version of ``MODEL`` (its files are never loaded here)."""
    client = client_for(settings)
    if not client.search_registered_models(filter_string=f"name = '{MODEL}'"):
        client.create_registered_model(MODEL)
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    return str(client.create_model_version(MODEL, source=folder.as_uri()).version)


def mixed_result() -> dict[str, Any]:
    """Gender violates (selection 0.31 vs 0.52); every region group is under 30 rows, so the
    region slice's gaps are undefined."""
    return make_result(
        {
            ("gender",): [
                (("female",), 480, rates(0.31, 0.62, 0.12)),
                (("male",), 508, rates(0.52, 0.81, 0.22)),
            ],
            ("region",): [
                (("north",), 21, rates(0.40, 0.70, 0.15)),
                (("south",), 17, rates(0.45, None, 0.17)),
            ],
        }
    ).to_dict()


def log(settings: Settings, result: dict[str, Any], audit_id: int, version: str | None) -> str:
    page = render_audit_report(result, title=f"{MODEL} v{version}", subtitle="window rows:988")
    return log_audit_run(
        settings,
        model=MODEL,
        version=version,
        result=result,
        report_html=page,
        audit_id=audit_id,
        source="prediction-log",
        window="rows:988",
    )


def artifact_paths(client: MlflowClient, run_id: str, path: str | None = None) -> list[str]:
    out: list[str] = []
    for item in client.list_artifacts(run_id, path):
        out.extend(artifact_paths(client, run_id, item.path) if item.is_dir else [item.path])
    return out


def test_the_run_records_the_audit_and_agrees_with_its_verdict(
    audit_settings: Settings, tmp_path: Path
) -> None:
    version = register_version(audit_settings, tmp_path)
    result = mixed_result()
    assert result["verdict"] == "violation"
    run_id = log(audit_settings, result, audit_id=7, version=version)

    client = client_for(audit_settings)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment is not None and experiment.name == EXPERIMENT
    tags = run.data.tags
    assert tags["keelwatch.model"] == MODEL
    assert tags["keelwatch.model_version"] == version
    assert tags[AUDIT_TAG] == "7"
    assert tags["keelwatch.audit.verdict"] == "violation"
    assert tags["keelwatch.audit.source"] == "prediction-log"
    assert tags["keelwatch.audit.window"] == "rows:988"
    assert tags["keelwatch.report_uri"].endswith("/bias_audit.html")

    params = run.data.params
    config = result["config"]
    assert params["min_group_size"] == "30"
    assert params["resamples"] == str(config["resamples"])
    assert params["correction"] == "bonferroni"
    assert params["interval_level"] == str(result["interval_level"])
    assert params["difference_threshold"] == "0.1" and params["ratio_threshold"] == "0.8"
    assert params["attributes"] == "gender,region"

    metrics = run.data.metrics
    gender = result["slices"][0]
    for gap in gender["gaps"]:
        key = f"gender.{gap['metric']}"
        assert metrics[key] == pytest.approx(gap["value"])
        assert metrics[f"{key}.ci_low"] == pytest.approx(gap["ci_low"])
        assert metrics[f"{key}.ci_high"] == pytest.approx(gap["ci_high"])
        assert metrics[f"{key}.violation"] == float(gap["violation"])
    assert metrics["violations"] == 4 == sum(g["violation"] for g in gender["gaps"])
    # The region gaps are undefined: no key at all, and nothing anywhere is NaN.
    assert all(g["value"] is None for g in result["slices"][1]["gaps"])
    assert not [k for k in metrics if k.startswith("region.")]
    assert all(math.isfinite(v) for v in metrics.values())

    paths = artifact_paths(client, run_id)
    charts = sorted(p for p in paths if p.startswith("charts/"))
    assert {"bias_audit.json", "bias_audit.html"} <= set(paths)
    assert charts == sorted(
        f"charts/{s}/{m}.png"
        for s in ("gender", "region")
        for m in ("selection_rate", "tpr", "fpr")
    )
    folder = Path(client.download_artifacts(run_id, "", str(tmp_path / "download")))
    assert json.loads((folder / "bias_audit.json").read_text()) == result
    page = (folder / "bias_audit.html").read_text(encoding="utf-8")
    banner = re.search(r"data-verdict='([^']*)'><b class='big'>([^<]*)", page)
    assert banner is not None
    assert (banner.group(1), banner.group(2)) == (tags["keelwatch.audit.verdict"], "VIOLATION")
    for chart in charts:
        assert (folder / chart).read_bytes().startswith(PNG_SIGNATURE)

    version_tags = client.get_model_version(MODEL, version).tags
    assert version_tags[LAST_RUN_TAG] == run_id
    assert version_tags[LAST_VERDICT_TAG] == "violation"
    assert version_tags[LAST_AUDIT_TAG] == "7"


def test_one_run_per_audit_and_the_version_points_at_the_latest(
    audit_settings: Settings, tmp_path: Path
) -> None:
    version = register_version(audit_settings, tmp_path)
    first = log(audit_settings, mixed_result(), audit_id=1, version=version)
    assert log(audit_settings, mixed_result(), audit_id=1, version=version) == first
    client = client_for(audit_settings)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{AUDIT_TAG}` = '1'")
    assert [r.info.run_id for r in runs] == [first]

    second = log(audit_settings, pass_result(), audit_id=2, version=version)
    assert second != first
    assert client.get_run(second).data.tags["keelwatch.audit.verdict"] == "pass"
    # A redelivered older audit is reused and does not take the pointer back.
    assert log(audit_settings, mixed_result(), audit_id=1, version=version) == first
    tags = client.get_model_version(MODEL, version).tags
    assert (tags[LAST_RUN_TAG], tags[LAST_VERDICT_TAG], tags[LAST_AUDIT_TAG]) == (
        second,
        "pass",
        "2",
    )
    assert len(client.search_runs([experiment.experiment_id])) == 2


def test_a_run_left_by_a_crash_is_finished_not_duplicated(audit_settings: Settings) -> None:
    client = client_for(audit_settings)
    log(audit_settings, pass_result(), audit_id=40, version=None)  # creates the experiment
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    # What a worker killed after create_run leaves behind: a RUNNING run with the audit tag.
    crashed = client.create_run(experiment.experiment_id, tags={AUDIT_TAG: "41"})
    run_id = log(audit_settings, mixed_result(), audit_id=41, version=None)
    assert run_id == crashed.info.run_id
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["violations"] == 4
    assert "bias_audit.html" in artifact_paths(client, run_id)


def test_an_unversioned_audit_of_an_unregistered_model_is_still_logged(
    audit_settings: Settings,
) -> None:
    # No version to point at and no registered model: the run is the record.
    run_id = log(audit_settings, pass_result(), audit_id=3, version=None)
    tags = client_for(audit_settings).get_run(run_id).data.tags
    assert tags["keelwatch.audit.verdict"] == "pass"
    assert "keelwatch.model_version" not in tags


def test_hostile_slice_names_make_valid_metric_keys(audit_settings: Settings) -> None:
    hostile = "<script>alert(1)</script>"
    result = make_result(
        {
            (hostile, "a/b:c"): [
                (("x", "1"), 400, rates(0.30, 0.60, 0.10)),
                (("y", "2"), 420, rates(0.50, 0.80, 0.20)),
            ]
        }
    ).to_dict()
    slice_name = result["slices"][0]["slice"]
    assert slice_key(slice_name) == "_script_alert_1___script__x_a_b_c"
    run_id = log(audit_settings, result, audit_id=5, version=None)
    metrics = client_for(audit_settings).get_run(run_id).data.metrics
    key = metric_key(slice_name, "demographic_parity_difference")
    assert metrics[key] == pytest.approx(result["slices"][0]["gaps"][0]["value"])


def test_slice_keys_are_readable() -> None:
    assert slice_key("gender&age_band") == "gender_x_age_band"
    assert metric_key("gender&age_band", "equalized_odds_difference", "ci_low") == (
        "gender_x_age_band.equalized_odds_difference.ci_low"
    )
    assert len(metric_key("a" * 400, "demographic_parity_ratio", "ci_high")) == 250
