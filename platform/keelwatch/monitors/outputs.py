"""Where people look at a drift check: an MLflow run and an Evidently HTML report.

Each check gets one run in experiment ``keelwatch-drift/<model>`` (tags: monitor, job, model
version, status) with, per tested column, ``<column>.<statistic>``, ``<column>.pvalue`` and
``<column>.drifted`` metrics, dataset-level ``share_drifted``/``n_drifted``/``window_rows``,
the full JSON result as ``drift/result.json`` and, when Evidently is installed, its
``DataDriftPreset`` report rendered on a capped sample of each side as
``drift/evidently-report.html``. Evidently only draws the pictures: Keelwatch's statistics are
the verdict. A rendering failure is logged and the statistical result kept.

Evidently is imported here only, lazily, on the worker path.
"""

from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from keelwatch.monitoring.drift.profiles import ReferenceProfile
    from keelwatch.settings import Settings

logger = logging.getLogger(__name__)

EXPERIMENT_PREFIX = "keelwatch-drift/"
RESULT_ARTIFACT = "drift/result.json"
HTML_ARTIFACT_DIR = "drift"
HTML_ARTIFACT_NAME = "evidently-report.html"
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
    reference_sample: pd.DataFrame | None,
    current_sample: pd.DataFrame | None,
) -> tuple[str, str | None]:
    """Create (or find, on a retry) the check's MLflow run; returns (run id, HTML URI)."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from keelwatch.registry.registration import ensure_experiment
    from keelwatch.storage.models import utcnow

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
    run = client.create_run(
        experiment_id,
        run_name=f"{monitor_name}-{job_id[:8]}",
        tags={
            "keelwatch.monitor": monitor_name,
            "keelwatch.job_id": job_id,
            "keelwatch.model": model_name,
            "keelwatch.model_version": model_version,
            "keelwatch.status": str(result.get("status")),
            "keelwatch.mode": str(result.get("mode")),
        },
    )
    run_id = str(run.info.run_id)
    try:
        stamp = int(utcnow().timestamp() * 1000)
        metrics = [
            Metric(key, float(value), stamp, 0)
            for key, value in _metrics_of(result).items()
            if value is not None
        ]
        for start in range(0, len(metrics), 900):  # MLflow caps a batch at 1000 metrics
            client.log_batch(run_id, metrics=metrics[start : start + 900])
        client.log_dict(run_id, result, RESULT_ARTIFACT)
        html_uri = None
        if reference_sample is not None and current_sample is not None:
            with tempfile.TemporaryDirectory(prefix="keelwatch-evidently-") as folder:
                rendered = render_evidently_html(
                    reference_sample, current_sample, Path(folder) / HTML_ARTIFACT_NAME
                )
                if rendered is not None:
                    client.log_artifact(run_id, str(rendered), artifact_path=HTML_ARTIFACT_DIR)
                    html_uri = f"{run.info.artifact_uri}/{HTML_ARTIFACT_DIR}/{HTML_ARTIFACT_NAME}"
                    client.set_tag(run_id, "keelwatch.report_uri", html_uri)
        client.set_terminated(run_id, status="FINISHED")
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    return run_id, html_uri


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
