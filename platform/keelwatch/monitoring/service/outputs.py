"""Where people look at a drift check: an MLflow run, linked to its model version, whose
first artifact is Keelwatch's own HTML report.

Each check gets one run in experiment ``keelwatch-drift/<model>`` with

* params ``model_name``, ``model_version``, ``monitor``, ``window`` and ``mode``, and tags
  ``keelwatch.model``, ``keelwatch.version``, ``keelwatch.monitor``, ``keelwatch.job_id`` and
  ``keelwatch.status``;
* the version's logged model as the run's model input, and every metric logged against that
  model id, so the logged model's page lists its drift checks (MLflow 3); the model version
  gets tags ``keelwatch.latest_drift_run`` and ``keelwatch.latest_drift_status``;
* per tested column ``<column>.<statistic>``, ``<column>.pvalue`` and ``<column>.drifted``
  metrics, and dataset-level ``share_drifted``/``n_drifted``/``window_rows``;
* ``drift_report.html`` (:mod:`keelwatch.monitoring.service.html_report`: the verdict, per-column
  statistics and reference-vs-current bars; tens of kilobytes), the full JSON result as
  ``drift/result.json`` and, only when the monitor asks for it (``second_opinion``) and
  Evidently is installed, Evidently's ``DataDriftPreset`` on a capped sample of each side as
  ``drift/evidently_second_opinion.html``: an independent second opinion with its own tests
  and thresholds, which may disagree. A rendering failure is logged and the result kept.

Evidently is imported here only, lazily, on the worker path.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from keelwatch.monitoring.service.html_report import (
    REPORT_NAME,
    describe_window,
    render_drift_report,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from keelwatch.monitoring.drift.profiles import ReferenceProfile
    from keelwatch.monitoring.service.html_report import ColumnPicture
    from keelwatch.settings import Settings

logger = logging.getLogger(__name__)

EXPERIMENT_PREFIX = "keelwatch-drift/"
RESULT_ARTIFACT = "drift/result.json"
HTML_ARTIFACT_DIR = "drift"
#: Evidently's report, when a monitor asks for a second opinion.
SECOND_OPINION_NAME = "evidently_second_opinion.html"
#: Model-version tags pointing at the version's latest drift check.
LATEST_RUN_TAG = "keelwatch.latest_drift_run"
LATEST_STATUS_TAG = "keelwatch.latest_drift_status"
_METRIC_NAME_BAD = re.compile(r"[^A-Za-z0-9_\-. /]")


def metric_key(*parts: str) -> str:
    """An MLflow-safe metric name (MLflow allows letters, digits, ``_ - . /`` and spaces)."""
    return ".".join(_METRIC_NAME_BAD.sub("_", part) for part in parts)


def sample_from_profile(
    profile: ReferenceProfile, rows: int, rng: np.random.Generator
) -> pd.DataFrame:
    """``rows`` values per column drawn from each column's stored distribution.

    Columns are sampled independently (a profile keeps marginals, not rows), which is what a
    univariate drift report needs.
    """
    import numpy as np
    import pandas as pd

    data: dict[str, Any] = {}
    for name, column in profile.columns.items():
        if column.numeric is not None and column.numeric.count:
            support = column.numeric.support
            weights = (
                support.counts.astype(np.float64)
                if support.counts is not None
                else np.ones(support.values.size)
            )
            data[name] = rng.choice(support.values, size=rows, p=weights / weights.sum())
        elif column.categories:
            labels = list(column.categories)
            counts = np.array([column.categories[label] for label in labels], dtype=np.float64)
            picked = rng.choice(len(labels), size=rows, p=counts / counts.sum())
            values = np.array(labels, dtype=object)[picked]
            if column.kind == "binary":
                values = values.astype(np.float64)
            data[name] = values
        else:
            data[name] = np.full(rows, np.nan)
    return pd.DataFrame(data)


def render_evidently_html(
    reference: pd.DataFrame, current: pd.DataFrame, path: Path
) -> Path | None:
    """Evidently 0.7's ``DataDriftPreset`` on the two samples, saved as HTML (None on failure)."""
    try:
        from evidently import Report
        from evidently.presets import DataDriftPreset

        columns = [c for c in reference.columns if c in current.columns]
        snapshot = Report([DataDriftPreset(columns=columns)]).run(
            current[columns], reference[columns]
        )
        snapshot.save_html(str(path))
    except Exception:  # a picture must never cost the statistical result
        logger.exception("Evidently report could not be rendered; keeping the drift result")
        return None
    return path


def log_check_run(
    settings: Settings,
    *,
    monitor_name: str,
    job_id: str,
    model_name: str,
    model_version: str,
    result: dict[str, Any],
    pictures: Mapping[str, ColumnPicture] | None = None,
    reference_sample: pd.DataFrame | None = None,
    current_sample: pd.DataFrame | None = None,
) -> tuple[str, str | None]:
    """Create (or find, on a retry) the check's MLflow run; returns (run id, report URI).

    The report is Keelwatch's ``drift_report.html``; Evidently's second opinion is rendered
    only when both samples are given.
    """
    from mlflow.entities import LoggedModelInput, Metric
    from mlflow.tracking import MlflowClient

    from keelwatch.entities.time import utcnow
    from keelwatch.registry.registration import ensure_experiment

    client = MlflowClient(
        tracking_uri=settings.mlflow.tracking_uri, registry_uri=settings.mlflow.registry_uri
    )
    artifact_root = settings.mlflow.artifact_root.rstrip("/")
    experiment_id = ensure_experiment(
        client,
        f"{EXPERIMENT_PREFIX}{model_name}",
        f"{artifact_root}/keelwatch-drift/{quote(model_name, safe='')}",
    )
    existing = client.search_runs(
        [experiment_id], filter_string=f"tags.`keelwatch.job_id` = '{job_id}'", max_results=1
    )
    if existing and existing[0].info.status == "FINISHED":
        run = existing[0]
        html = run.data.tags.get("keelwatch.report_uri")
        return str(run.info.run_id), html
    model_id = _model_id(client, model_name, model_version)
    run = client.create_run(
        experiment_id,
        run_name=f"{monitor_name}-{job_id[:8]}",
        tags={
            "keelwatch.monitor": monitor_name,
            "keelwatch.job_id": job_id,
            "keelwatch.model": model_name,
            "keelwatch.version": model_version,
            "keelwatch.model_version": model_version,
            "keelwatch.status": str(result.get("status")),
            "keelwatch.mode": str(result.get("mode")),
            # The run page's description: what was checked against what, and the verdict.
            "mlflow.note.content": (
                f"Drift check of {model_name} v{model_version} by monitor {monitor_name}: "
                f"{result.get('status')}. Open {REPORT_NAME} for the verdict per column."
            ),
        },
    )
    run_id = str(run.info.run_id)
    try:
        stamp = int(utcnow().timestamp() * 1000)
        metrics = [
            Metric(key, float(value), stamp, 0, model_id=model_id)
            for key, value in _metrics_of(result).items()
            if value is not None
        ]
        client.log_batch(run_id, params=_params_of(monitor_name, model_name, model_version, result))
        if model_id is not None:
            client.log_inputs(run_id, models=[LoggedModelInput(model_id)])
        for start in range(0, len(metrics), 900):  # MLflow caps a batch at 1000 metrics
            client.log_batch(run_id, metrics=metrics[start : start + 900])
        client.log_dict(run_id, result, RESULT_ARTIFACT)
        with tempfile.TemporaryDirectory(prefix="keelwatch-drift-report-") as folder:
            second_opinion = None
            if reference_sample is not None and current_sample is not None:
                rendered = render_evidently_html(
                    reference_sample, current_sample, Path(folder) / SECOND_OPINION_NAME
                )
                if rendered is not None:
                    client.log_artifact(run_id, str(rendered), artifact_path=HTML_ARTIFACT_DIR)
                    second_opinion = f"{HTML_ARTIFACT_DIR}/{SECOND_OPINION_NAME}"
                    client.set_tag(
                        run_id,
                        "keelwatch.second_opinion_uri",
                        f"{run.info.artifact_uri}/{second_opinion}",
                    )
            report = Path(folder) / REPORT_NAME
            report.write_text(
                render_drift_report(result, pictures, second_opinion=second_opinion),
                encoding="utf-8",
            )
            client.log_artifact(run_id, str(report))
        html_uri = f"{run.info.artifact_uri}/{REPORT_NAME}"
        client.set_tag(run_id, "keelwatch.report_uri", html_uri)
        client.set_terminated(run_id, status="FINISHED")
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    _point_version_at(client, model_name, model_version, run_id, str(result.get("status")))
    return run_id, html_uri


def _model_id(client: Any, model_name: str, model_version: str) -> str | None:
    """The logged model behind the version (MLflow 3), or None (older versions, or unknown)."""
    try:
        version = client.get_model_version(model_name, model_version)
    except Exception:  # noqa: BLE001 - a deleted version must not cost the check its run
        logger.warning("drift run: model %s version %s not found", model_name, model_version)
        return None
    model_id = getattr(version, "model_id", None)
    if model_id:
        return str(model_id)
    # MLflow's SQL registry store drops model_id unless the source is ``models:/m-...`` (see
    # registry.registration.logged_model_source): the version's run names its logged model.
    if not version.run_id:
        return None
    try:
        outputs = client.get_run(version.run_id).outputs
    except Exception:  # noqa: BLE001 - a deleted run must not cost the check its run
        logger.warning("drift run: the run of %s version %s is gone", model_name, model_version)
        return None
    models = [m.model_id for m in (outputs.model_outputs if outputs else [])]
    return str(models[0]) if len(models) == 1 else None


def _point_version_at(
    client: Any, model_name: str, model_version: str, run_id: str, status: str
) -> None:
    """Tag the model version with its latest drift run, so its page leads to the history."""
    try:
        client.set_model_version_tag(model_name, model_version, LATEST_RUN_TAG, run_id)
        client.set_model_version_tag(model_name, model_version, LATEST_STATUS_TAG, status)
    except Exception:  # the run is logged; a missing pointer is a lesser loss than the result
        logger.exception(
            "could not tag %s version %s with its drift run %s", model_name, model_version, run_id
        )


def _params_of(
    monitor_name: str, model_name: str, model_version: str, result: dict[str, Any]
) -> list[Any]:
    from mlflow.entities import Param

    window_text = describe_window(result.get("window"))
    values = {
        "model_name": model_name,
        "model_version": model_version,
        "monitor": monitor_name,
        "window": window_text[:500],
        "mode": str(result.get("mode", "")),
    }
    return [Param(key, value) for key, value in values.items()]


def _metrics_of(result: dict[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {
        "share_drifted": result.get("share_drifted"),
        "n_drifted": result.get("n_drifted"),
        "n_tested": result.get("n_tested"),
        "window_rows": result.get("window_rows"),
        "dataset_drift": (
            None if result.get("dataset_drift") is None else float(bool(result["dataset_drift"]))
        ),
    }
    for role in ("prediction", "target"):
        verdict = result.get(f"{role}_drifted")
        if verdict is not None:  # None: no such column, or untestable (e.g. no labels yet)
            out[f"{role}_drift"] = float(bool(verdict))
    for column in result.get("columns", {}).values():
        if column.get("status") != "ok":
            continue
        name = str(column["column"])
        out[metric_key(name, str(column["statistic"]))] = column.get("value")
        out[metric_key(name, "pvalue")] = column.get("pvalue")
        out[metric_key(name, "drifted")] = float(bool(column.get("drifted")))
    return out
