"""The demo's bias-audit step: a biased model version fails its audit, an alert fires, and the
report shows where.

The credit-risk data has no sensitive column of its own, so the demo gives every applicant an
age band and a region, as a CRM would, and records them in the side table of sensitive
attributes keyed by request id (``storage.attributes``): they are never model features. The age
band follows feature ``f4``, which the true default risk barely depends on (weight 0.07), so a
model trained on the true outcomes predicts defaults at nearly the same rate in every age band.

The biased version is trained on *historical decisions* instead: half of the applicants with a
high ``f4`` (the oldest band) were marked as defaults whatever they did. It learns ``f4`` as a
proxy for age, and predicts defaults far more often in that band. Both the champion and the
biased version score the same 20,000 applicants on a real worker; their logged predictions get
the attributes and the true labels, a rule on
``fairness.demographic_parity_difference.ci_low`` is applied, and each version is audited over
the last hour of the prediction log by the same service the scheduled task calls. The biased
version's corrected interval lies above 0.1: a violation, an alert, and a report with the
per-group bars that show it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console

    from keelwatch.storage.bias_audits import AuditRecord
    from keelwatch.wiring import Services

ATTRIBUTES = ("age_band", "region")
RULE_NAME = "selection-rate-gap"
#: Fire when the corrected interval of the largest difference in predicted-default rates
#: between groups lies wholly above 10 points.
RULES_YAML = f"""\
rules:
  - name: {RULE_NAME}
    signal: fairness.demographic_parity_difference.ci_low
    matchers: '{{model="credit-risk"}}'
    comparison: ">"
    threshold: 0.1
    for: 0s
    severity: warning
    annotations:
      summary: >-
        {{{{ $labels.model }}}} v{{{{ $labels.version }}}}: predicted-default rates differ
        by more than 10 points across {{{{ $labels.attribute }}}}
"""
AUDIT_ROWS = 20_000
#: Every fifth scored row is logged: about 4,000 rows per version, over 400 per group of the
#: age band and region slice.
LOG_SAMPLE_RATE = 0.2
#: The scored applicants use a seed of their own (training 1, batches 2 and 3, holdout 4).
AUDIT_SEED = 5
WINDOW_S = 3600


@dataclass
class AuditDemoResult:
    """What the audit step did, for the e2e test and the summary."""

    biased_version: str = ""
    champion_version: str = ""
    audits: dict[str, AuditRecord] = field(default_factory=dict)
    """Model version → its stored audit."""
    report_path: str = ""
    mlflow_run_id: str = ""
    alert_state: str = ""
    alert_summary: str = ""


def age_band(f4: Any) -> Any:
    """The demo's age band of each applicant (a numpy array of strings), from feature ``f4``."""
    import numpy as np

    return np.select([f4 < -0.5, f4 < 0.5], ["18-34", "35-54"], default="55+")


def run_audit_step(
    services: Services, train: pd.DataFrame, actor: str, console: Console, *, timeout_s: float
) -> AuditDemoResult:
    """Train and register the biased version, score with it and the champion on a real worker,
    record attributes and labels, apply the rule, audit both versions and show the outcome."""
    from keelwatch.cli.demo import MODEL_NAME, start_worker, stop_worker

    settings = services.settings
    result = AuditDemoResult()
    result.champion_version = services.registry.resolve(f"{MODEL_NAME}@champion").version
    console.print(
        "[bold]11.[/] bias audit: a version trained on biased historical decisions against "
        f"champion v{result.champion_version}"
    )
    result.biased_version = _register_biased(services, train, actor)
    console.print(
        f"   registered v{result.biased_version}: labels from past decisions that marked half "
        "the 55+ applicants as defaults"
    )
    frame = _make_applicants(settings.data_dir / "demo-audit-applicants.parquet")
    worker = start_worker(settings, settings.data_dir / "demo-audit-worker.log")
    try:
        jobs = {
            version: _score(services, frame, version, actor, console, timeout_s)
            for version in (result.champion_version, result.biased_version)
        }
    finally:
        stop_worker(worker, console)
    _record_attributes_and_labels(services, frame, list(jobs.values()), actor, console)
    _apply_rule(services, actor)
    for version in (result.champion_version, result.biased_version):
        result.audits[version] = _audit(services, version, actor)
    _show(services, result, console)
    return result


def _register_biased(services: Services, train: pd.DataFrame, actor: str) -> str:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from keelwatch.cli.demo import FEATURES, MODEL_NAME

    rng = np.random.default_rng(AUDIT_SEED)
    oldest = age_band(train["f4"].to_numpy()) == "55+"
    historical = train.copy()
    marked = oldest & (rng.uniform(size=len(train)) < 0.5)
    historical["default"] = np.where(marked, 1, historical["default"])
    estimator = LogisticRegression(max_iter=500).fit(historical[FEATURES], historical["default"])
    version = services.registry.register_sklearn_model(
        MODEL_NAME,
        estimator,
        historical,
        target="default",
        actor=actor,
        reason="demo: retrained on historical decisions (biased labels)",
    )
    return version.version


def _make_applicants(path: Path) -> pd.DataFrame:
    """The scored applicants (features, the true outcome) and their CRM attributes."""
    import numpy as np

    from keelwatch.cli.demo import FEATURES, make_training_data

    frame = make_training_data(AUDIT_ROWS, seed=AUDIT_SEED)
    rng = np.random.default_rng(AUDIT_SEED + 1)
    frame["age_band"] = age_band(frame["f4"].to_numpy())
    frame["region"] = rng.choice(["north", "south", "west"], size=len(frame))
    frame[FEATURES].to_parquet(path, index=False)
    frame.attrs["path"] = str(path)
    return frame


def _score(
    services: Services,
    frame: pd.DataFrame,
    version: str,
    actor: str,
    console: Console,
    timeout_s: float,
) -> str:
    from keelwatch.cli.demo import MODEL_NAME, wait_for_job
    from keelwatch.contract import BatchInferenceRequest
    from keelwatch.inference import submit_batch_inference

    job = submit_batch_inference(
        services.db,
        services.sender,
        services.registry,
        services.settings.inference,
        BatchInferenceRequest(
            model=f"{MODEL_NAME}/{version}",
            input_uri=str(frame.attrs["path"]),
            chunk_rows=AUDIT_ROWS // 2,
            log_sample_rate=LOG_SAMPLE_RATE,
        ),
        actor=actor,
    )
    finished = wait_for_job(services, job.id, console, timeout_s)
    if finished.status != "succeeded":
        raise RuntimeError(f"batch job {job.id} {finished.status}: {finished.error}")
    console.print(f"   v{version} scored {finished.rows_done:,} applicants (job {job.id})")
    return job.id


def _record_attributes_and_labels(
    services: Services, frame: pd.DataFrame, job_ids: list[str], actor: str, console: Console
) -> None:
    """The CRM's attributes and the true outcomes of every logged prediction of ``job_ids``."""
    from keelwatch.entities.predictions import LabelRecord
    from keelwatch.storage.attributes import AttributeRecord, record_attributes
    from keelwatch.storage.labels import record_labels
    from keelwatch.storage.predictions import recent_predictions

    attributes: list[AttributeRecord] = []
    labels: list[LabelRecord] = []
    with services.db.session() as session:
        for job_id in job_ids:
            for row in recent_predictions(session, job_id=job_id, limit=AUDIT_ROWS):
                index = int(row.request_id.rsplit(":", 1)[1])  # "<job id>:<row index>"
                attributes.append(
                    AttributeRecord(
                        row.request_id,
                        {name: str(frame.at[index, name]) for name in ATTRIBUTES},
                    )
                )
                labels.append(LabelRecord(row.request_id, int(frame.at[index, "default"])))
        stored = record_attributes(session, attributes, actor)
        record_labels(session, labels, actor)
    console.print(
        f"   {stored.stored:,} logged predictions got their age band and region (side table, "
        f"not model features) and {len(labels):,} their true outcome"
    )


def _apply_rule(services: Services, actor: str) -> None:
    from keelwatch.alerting.service import apply_rules
    from keelwatch.alerting.signals import known_signal_names
    from keelwatch.entities.time import utcnow

    with services.db.session() as session:
        apply_rules(session, RULES_YAML, actor, known_signal_names(), now=utcnow(), source="demo")


def _audit(services: Services, version: str, actor: str) -> AuditRecord:
    """One version's audit over the last hour, published (report, MLflow run) after commit."""
    from datetime import UTC, datetime

    from keelwatch.alerting.service import after_commit_dispatch
    from keelwatch.cli.demo import MODEL_NAME
    from keelwatch.monitoring.service.bias_audits import (
        audit_config,
        get_audit,
        positive_label_setting,
        publish_audit,
        run_bias_audit,
    )
    from keelwatch.monitoring.service.realized import champion_of

    settings = services.settings
    now = datetime.now(UTC)
    champion = champion_of(services.registry, MODEL_NAME)
    with services.db.session() as session:
        outcome = run_bias_audit(
            session,
            model=MODEL_NAME,
            attributes=ATTRIBUTES,
            window_s=WINDOW_S,
            window_end=now,
            champion=champion,
            config=audit_config(settings),
            actor=actor,
            version=version,
            positive_label=positive_label_setting(settings.fairness.positive_label),
            reason="demo: audit before anyone promotes it",
            now=now,
        )
    (record,) = outcome.results
    publish_audit(settings, services.db, record.id)
    if outcome.transitions:
        after_commit_dispatch(services.db, services.sender, now)
    with services.db.session() as session:
        return get_audit(session, record.id)


def _show(services: Services, result: AuditDemoResult, console: Console) -> None:
    from keelwatch.entities.alerts import AlertState
    from keelwatch.monitoring.service.bias_audits import audit_report_html
    from keelwatch.storage.alerts import list_alerts

    words = {
        "pass": "[bold green]PASS[/]",
        "violation": "[bold red]VIOLATION[/]",
        "insufficient_data": "[yellow]INSUFFICIENT DATA[/]",
    }
    for version, record in result.audits.items():
        console.print(
            f"   audit {record.id} of v{version} ({record.rows:,} labelled rows, "
            f"{' and '.join(ATTRIBUTES)}, alone and together): "
            f"{words.get(record.verdict, record.verdict)}, {record.violations} violating gaps"
        )
    biased = result.audits[result.biased_version]
    violations = [
        (s["slice"], gap) for s in biased.result["slices"] for gap in s["gaps"] if gap["violation"]
    ]
    level = float(biased.result["interval_level"])
    for slice_name, gap in violations[:4]:
        groups = " vs ".join(gap["groups"] or [])
        console.print(
            f"      {slice_name}: {gap['metric']} {gap['value']:.3f} "
            f"[{gap['ci_low']:.3f}, {gap['ci_high']:.3f}] ({level:.2%} interval; "
            f"{'below' if gap['direction'] == 'below' else 'above'} {gap['threshold']:g}) "
            f"{groups}",
            highlight=False,
            markup=False,
        )
    path = services.settings.data_dir / f"demo-bias-audit-v{result.biased_version}.html"
    with services.db.session() as session:
        path.write_text(audit_report_html(session, biased.id), encoding="utf-8")
        alerts = list_alerts(session, rule_name=RULE_NAME, limit=20)
    result.report_path = str(path)
    result.mlflow_run_id = biased.mlflow_run_id or ""
    console.print(f"   report: {path}  (MLflow run {result.mlflow_run_id or 'not logged'})")
    for alert in alerts:
        if alert.labels.get("version") == result.biased_version:
            result.alert_state = alert.state.value
            result.alert_summary = alert.annotations.get("summary", "")
            break
    marker = "[bold red]FIRING[/]" if result.alert_state == AlertState.FIRING.value else "none"
    console.print(f"   alert {RULE_NAME}: {marker} {result.alert_summary}", highlight=False)
