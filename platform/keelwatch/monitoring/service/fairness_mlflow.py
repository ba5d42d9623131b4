"""A bias audit's MLflow run, so the MLflow UI shows the audit next to the model version.

One run per audit in experiment ``keelwatch-bias-audits``:

- tags ``keelwatch.model``, ``keelwatch.model_version`` (when the audit names one),
  ``keelwatch.audit_id``, ``keelwatch.audit.verdict``, ``keelwatch.audit.source``,
  ``keelwatch.audit.window`` (when it covered a prediction-log window) and
  ``keelwatch.report_uri`` (the report's artifact URI);
- params: the task, rows, attributes and every setting the verdict depends on (minimum group
  size, resamples, confidence, seed, interval level, correction, both thresholds, max order);
- metrics ``<slice>.<gap metric>`` with ``.ci_low``, ``.ci_high`` and ``.violation`` (0/1),
  plus ``violations``, ``comparisons`` and ``rows``. MLflow keys take no ``&``, so a slice's
  attributes are joined with ``_x_`` (``gender&age_band`` → ``gender_x_age_band``) and any
  other character MLflow refuses becomes ``_``. Undefined (null) values are not logged: a
  missing point says "undefined", a NaN would draw as a value;
- artifacts ``bias_audit.json`` (the result dict), ``bias_audit.html`` (the report) and the
  report's own charts as ``charts/<slice>/<metric>.png`` (read back from the page, so the
  run's pictures are the page's pictures and cost no second rendering).

The model version gets ``keelwatch.bias_audit.last_run_id`` and
``keelwatch.bias_audit.last_verdict`` (and the audit id behind them). A pointer only moves
forward: re-logging an older audit does not take it from a newer one.

Idempotent: a run tagged with the audit id is reused (a redelivered task logs into an
unfinished one again, and a finished one is returned as it is), never duplicated.
"""

from __future__ import annotations

import logging
import math
import re
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keelwatch.monitoring.fairness.results import SLICE_SEPARATOR
from keelwatch.monitoring.service.fairness_report import REPORT_NAME, report_charts

if TYPE_CHECKING:
    from keelwatch.settings import Settings

logger = logging.getLogger(__name__)

EXPERIMENT = "keelwatch-bias-audits"
AUDIT_TAG = "keelwatch.audit_id"
VERDICT_TAG = "keelwatch.audit.verdict"
SOURCE_TAG = "keelwatch.audit.source"
WINDOW_TAG = "keelwatch.audit.window"
REPORT_URI_TAG = "keelwatch.report_uri"
RESULT_NAME = "bias_audit.json"
CHARTS_DIR = "charts"
#: Model-version tags pointing at the version's latest audit.
LAST_RUN_TAG = "keelwatch.bias_audit.last_run_id"
LAST_VERDICT_TAG = "keelwatch.bias_audit.last_verdict"
LAST_AUDIT_TAG = "keelwatch.bias_audit.last_audit_id"
#: How a slice's attributes are joined in a metric key (MLflow keys take no ``&``).
SLICE_JOIN = "_x_"
#: MLflow allows letters, digits, ``_ - . /``, spaces and (not on Windows) ``:``; a ``/``
#: would nest the key in MLflow's UI, so it goes too.
_KEY_BAD = re.compile(r"[^A-Za-z0-9_\-. ]")
#: MLflow's limits: a key's length, a param's value, metrics per log_batch call.
_MAX_KEY = 250
_MAX_PARAM = 500
_BATCH = 900


def slice_key(slice_name: str) -> str:
    """``gender&age_band`` → ``gender_x_age_band``: a slice name MLflow accepts in a key."""
    parts = [_KEY_BAD.sub("_", part) for part in slice_name.split(SLICE_SEPARATOR)]
    key = SLICE_JOIN.join(parts)
    # A leading "." would make ".." look like a parent path to MLflow's key check.
    return "_" + key if key.startswith((".", " ")) or not key else key


def metric_key(slice_name: str, gap_metric: str, suffix: str = "") -> str:
    """``<slice>.<gap metric>[.<suffix>]``, the slice part cut so the key fits MLflow's 250
    characters (two slices that differ only past the cut would share keys; attribute names
    that long are not expected)."""
    tail = "." + ".".join(p for p in (_KEY_BAD.sub("_", gap_metric), suffix) if p)
    return slice_key(slice_name)[: _MAX_KEY - len(tail)] + tail


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def audit_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """The run's metrics from an audit result dict; undefined values are left out."""
    gaps = [
        (str(s.get("slice", "")), g)
        for s in result.get("slices") or []
        for g in s.get("gaps") or []
    ]
    out: dict[str, float] = {
        "violations": float(sum(1 for _, g in gaps if g.get("violation"))),
        "comparisons": float(result.get("comparisons") or 0),
        "rows": float(result.get("rows") or 0),
    }
    for slice_name, gap in gaps:
        metric = str(gap.get("metric", ""))
        value = _number(gap.get("value"))
        if value is None:
            continue  # an undefined gap has no point, no interval and no judgement
        out[metric_key(slice_name, metric)] = value
        out[metric_key(slice_name, metric, "violation")] = float(bool(gap.get("violation")))
        for bound in ("ci_low", "ci_high"):
            number = _number(gap.get(bound))
            if number is not None:
                out[metric_key(slice_name, metric, bound)] = number
    return out


def audit_params(result: Mapping[str, Any], *, model: str, version: str | None) -> dict[str, str]:
    """The run's params: what was audited and every setting the verdict depends on."""
    config = result.get("config") or {}
    values: dict[str, Any] = {
        "model": model,
        "model_version": version if version is not None else "",
        "task": result.get("task"),
        "rows": result.get("rows"),
        "labelled": result.get("labelled"),
        "scored": result.get("scored"),
        "attributes": ",".join(str(a) for a in result.get("attributes") or []),
        "min_group_size": config.get("min_group_size"),
        "resamples": config.get("resamples"),
        "confidence": config.get("confidence"),
        "seed": config.get("seed"),
        "interval_level": result.get("interval_level"),
        "correction": config.get("correction"),
        "comparisons": result.get("comparisons"),
        "difference_threshold": config.get("difference_threshold"),
        "ratio_threshold": config.get("ratio_threshold"),
        "max_order": config.get("max_order"),
    }
    out: dict[str, str] = {}
    for key, value in values.items():
        text = "" if value is None else str(value)
        out[key] = text if len(text) <= _MAX_PARAM else text[: _MAX_PARAM - 1] + "…"
    return out


def log_audit_run(
    settings: Settings,
    *,
    model: str,
    version: str | None,
    result: Mapping[str, Any],
    report_html: str,
    audit_id: int,
    source: str,
    window: str | None = None,
) -> str:
    """Log (or find) the run of audit ``audit_id``; returns its id. Also points the model
    version (when given) at it.

    ``result`` is ``AuditResult.to_dict()`` (or the stored copy), ``report_html`` the page
    :func:`~keelwatch.monitoring.service.fairness_report.render_audit_report` made from it,
    ``source`` what was audited (e.g. ``prediction-log`` or a file's name), ``window`` the
    prediction-log window in the CLI's short form.
    """
    from mlflow.entities import Metric, Param, RunStatus
    from mlflow.tracking import MlflowClient

    from keelwatch.registry.registration import ensure_experiment

    client = MlflowClient(
        tracking_uri=settings.mlflow.tracking_uri, registry_uri=settings.mlflow.registry_uri
    )
    experiment_id = ensure_experiment(
        client, EXPERIMENT, f"{settings.mlflow.artifact_root.rstrip('/')}/{EXPERIMENT}"
    )
    verdict = str(result.get("verdict", ""))
    existing = client.search_runs(
        [experiment_id], filter_string=f"tags.`{AUDIT_TAG}` = '{int(audit_id)}'", max_results=1
    )
    if existing and existing[0].info.status == RunStatus.to_string(RunStatus.FINISHED):
        run_id = str(existing[0].info.run_id)
        _point_version_at(client, model, version, run_id, verdict, audit_id)
        return run_id
    if existing:
        run = existing[0]
    else:
        tags = {
            "keelwatch.model": model,
            AUDIT_TAG: str(int(audit_id)),
            VERDICT_TAG: verdict,
            SOURCE_TAG: source,
            # The run page's description: what was audited and the verdict.
            "mlflow.note.content": (
                f"Bias audit {audit_id} of {model}"
                + (f" v{version}" if version is not None else "")
                + f" ({source}): {verdict}. Open {REPORT_NAME} for the gaps per slice."
            ),
        }
        if version is not None:
            tags["keelwatch.model_version"] = version
        if window:
            tags[WINDOW_TAG] = window
        run = client.create_run(
            experiment_id,
            run_name=f"bias-audit-{model}"
            + (f"-v{version}" if version is not None else "")
            + f"-{audit_id}",
            tags=tags,
        )
    run_id = str(run.info.run_id)
    try:
        stamp = int(time.time() * 1000)
        params = audit_params(result, model=model, version=version)
        client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])
        metrics = [Metric(k, v, stamp, 0) for k, v in audit_metrics(result).items()]
        for start in range(0, len(metrics), _BATCH):  # MLflow caps a batch at 1000 metrics
            client.log_batch(run_id, metrics=metrics[start : start + _BATCH])
        client.log_dict(run_id, dict(result), RESULT_NAME)
        client.log_text(run_id, report_html, REPORT_NAME)
        charts = report_charts(report_html)
        if charts:
            with tempfile.TemporaryDirectory(prefix="keelwatch-audit-charts-") as folder:
                for (slice_name, metric), png in charts.items():
                    path = Path(folder) / slice_key(slice_name) / f"{slice_key(metric)}.png"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(png)
                client.log_artifacts(run_id, folder, artifact_path=CHARTS_DIR)
        client.set_tag(run_id, REPORT_URI_TAG, f"{run.info.artifact_uri}/{REPORT_NAME}")
        client.set_terminated(run_id, "FINISHED")
    except BaseException:
        # Left FAILED, not RUNNING: a retry finds the run by its audit id and logs into it.
        client.set_terminated(run_id, "FAILED")
        raise
    _point_version_at(client, model, version, run_id, verdict, audit_id)
    return run_id


def _point_version_at(
    client: Any, model: str, version: str | None, run_id: str, verdict: str, audit_id: int
) -> None:
    """Tag the model version with its latest audit, unless a newer audit already holds it."""
    if version is None:
        return
    try:
        tags = client.get_model_version(model, version).tags or {}
        current = str(tags.get(LAST_AUDIT_TAG, ""))
        if current.isdigit() and int(current) > audit_id:
            return
        client.set_model_version_tag(model, version, LAST_RUN_TAG, run_id)
        client.set_model_version_tag(model, version, LAST_VERDICT_TAG, verdict)
        client.set_model_version_tag(model, version, LAST_AUDIT_TAG, str(int(audit_id)))
    except Exception as exc:  # noqa: BLE001 - the run is logged; a missing pointer is lesser
        # One line, not a traceback: an audit of a model that is not registered in MLflow
        # (a file audit, a renamed model) is normal and the CLI prints this log on stderr.
        logger.warning(
            "could not tag %s version %s with its bias audit run %s: %s",
            model,
            version,
            run_id,
            type(exc).__name__,
        )
