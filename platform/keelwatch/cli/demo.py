"""The end-to-end lifecycle on embedded defaults (``make demo`` / ``python -m keelwatch.cli.demo``).

Trains two versions of a small scikit-learn model, registers both, approves and promotes v1,
scores a dataset through a real worker process and promotes v2. Then the loop closes by itself:
a shifted batch scored by v2 drifts, the drift check fires the ``dataset-drift`` alert, a local
webhook receiver gets the signed notification, one policy rolls the champion back to v1 and
another retrains a challenger (v3), all audited as ``policy:<name>``. Last, a beat tick fires the
scheduled evaluation of the champion on a holdout set, and the champion/challenger gate rejects
a worse challenger and promotes a better one, with its reasons (:mod:`keelwatch.cli.demo_eval`).
Then a version trained on biased historical decisions fails its bias audit, the audit's
signal fires an alert and the HTML report shows the gap (:mod:`keelwatch.cli.demo_audit`).
Finally a text model's prompts and replies are moderated on the batch path: PII redacted, an
abusive reply blocked, a customer in distress sent to the review queue, and the block rate
fires an alert (:mod:`keelwatch.cli.demo_moderation`).
Every step goes through the same code the CLI and API use; nothing is faked.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from keelwatch.cli.demo_audit import AuditDemoResult, run_audit_step
from keelwatch.cli.demo_eval import EvaluationDemoResult, arm_evaluation, run_evaluation_step
from keelwatch.cli.demo_loop import LoopResult, WebhookReceiver, arm_loop, print_loop, wait_for_loop
from keelwatch.cli.demo_moderation import ModerationDemoResult, run_moderation_step, summary_lines
from keelwatch.settings import Settings, load_settings

if TYPE_CHECKING:
    import pandas as pd

    from keelwatch.entities import Job
    from keelwatch.entities.monitors import DriftResult
    from keelwatch.wiring import Services

MODEL_NAME = "credit-risk"
DEMO_ACTOR = "demo"
FEATURES = [f"f{i}" for i in range(8)]


@dataclass
class DemoResult:
    """What the demo did, for the e2e test and the final summary."""

    versions: list[str] = field(default_factory=list)
    job_id: str = ""
    output_uri: str = ""
    rows_scored: int = 0
    logged_rows: int = 0
    champion_after_promote: str = ""
    champion_after_rollback: str = ""
    drift_job_id: str = ""
    monitor_name: str = ""
    drift_status: str = ""
    drifted_columns: list[str] = field(default_factory=list)
    drift_report_uri: str = ""
    drift_mlflow_run_id: str = ""
    prediction_drifted: bool | None = None
    device: str = ""
    loop: LoopResult = field(default_factory=LoopResult)
    evaluation: EvaluationDemoResult = field(default_factory=EvaluationDemoResult)
    audit: AuditDemoResult = field(default_factory=AuditDemoResult)
    moderation: ModerationDemoResult = field(default_factory=ModerationDemoResult)


def make_training_data(rows: int, seed: int) -> pd.DataFrame:
    """A synthetic credit-risk table: 8 numeric features and a binary ``default`` target."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, len(FEATURES)))
    logits = features @ np.linspace(1.5, -1.0, len(FEATURES)) + 0.3 * features[:, 0] ** 2
    target = (rng.uniform(size=rows) < 1 / (1 + np.exp(-logits))).astype("int64")
    frame = pd.DataFrame(features, columns=FEATURES)
    frame["default"] = target
    return frame


def start_worker(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    """A real Celery worker process consuming every queue, with the demo's settings."""
    env = dict(os.environ)
    env.update(
        {
            "KEELWATCH_DATA_DIR": str(settings.data_dir),
            "KEELWATCH_DATABASE__URL": settings.database.url,
            "KEELWATCH_MLFLOW__TRACKING_URI": settings.mlflow.tracking_uri,
            "KEELWATCH_MLFLOW__REGISTRY_URI": settings.mlflow.registry_uri,
            "KEELWATCH_MLFLOW__ARTIFACT_ROOT": settings.mlflow.artifact_root,
            "KEELWATCH_BROKER__URL": settings.broker.url,
            "KEELWATCH_BROKER__RESULT_BACKEND": settings.broker.result_backend,
            "DO_NOT_TRACK": "1",
        }
    )
    command = [
        sys.executable,
        *("-m", "celery", "-A", "keelwatch_workers.roles.all", "worker"),
        *("-Q", "cpu,gpu,monitoring", "-c", "2", "--loglevel", "INFO"),
        *("-n", f"demo-{os.getpid()}@%h", "--without-gossip", "--without-mingle"),
    ]
    # The child keeps its own copy of the descriptor; the parent's copy is closed at once.
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"worker exited early; see {log_path}")
        if b" ready." in log_path.read_bytes():
            return process
        time.sleep(0.2)
    process.kill()
    raise TimeoutError(f"worker not ready after 120 s; see {log_path}")


def stop_worker(process: subprocess.Popen[bytes], console: Console | None = None) -> str:
    """Warm shutdown of the worker (SIGTERM to its main process only, SIGKILL to its process
    group after a short bound); returns how it ended (``exited`` or ``killed``)."""
    from keelwatch.cli.supervisor import stop_process

    if console is not None:
        console.print("   stopping the worker (warm shutdown) ...")
    outcome = stop_process(process)
    if console is not None and outcome.how == "killed":
        console.print(f"   worker {outcome.describe()}")
    return outcome.how


def wait_for_job(services: Services, job_id: str, console: Console, timeout_s: float) -> Job:
    """Poll the job with a progress bar until it is finished."""
    from keelwatch.storage.jobs import get_job

    deadline = time.monotonic() + timeout_s
    columns = (
        TextColumn("[bold]batch inference"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("chunks"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("chunks", total=None)
        while True:
            with services.db.session() as session:
                job = get_job(session, job_id)
            progress.update(task, total=job.chunks_total, completed=job.chunks_done)
            if job.finished:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} not finished after {timeout_s:.0f} s")
            time.sleep(0.3)


def run_demo(
    settings: Settings,
    *,
    console: Console | None = None,
    train_rows: int = 20_000,
    score_rows: int = 200_000,
    timeout_s: float = 600.0,
) -> DemoResult:
    """Run the whole lifecycle against ``settings``; returns what happened."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    from keelwatch.auth.local import ensure_local_admin_token
    from keelwatch.contract import BatchInferenceRequest
    from keelwatch.inference import submit_batch_inference
    from keelwatch.storage.db import upgrade_database
    from keelwatch.storage.predictions import count_predictions
    from keelwatch.wiring import Services

    console = console or Console()
    result = DemoResult()
    settings.ensure_data_dir()
    console.rule("[bold]Keelwatch demo")
    console.print(f"data dir: {settings.data_dir}")
    upgrade_database(settings.database.url)
    services = Services(settings)
    registry = services.registry
    admin_token = ensure_local_admin_token(services.db, settings, actor=DEMO_ACTOR)
    console.print(f"admin API token: {admin_token.describe()}", highlight=False, soft_wrap=True)

    console.print("[bold]1.[/] training two versions of a credit-risk model")
    train = make_training_data(train_rows, seed=1)
    x_train, y_train = train[FEATURES], train["default"]
    candidates: list[tuple[str, Any]] = [
        ("logistic regression", LogisticRegression(max_iter=500)),
        ("gradient boosting", HistGradientBoostingClassifier(max_iter=60)),
    ]
    for label, estimator in candidates:
        estimator.fit(x_train, y_train)
        version = registry.register_sklearn_model(
            MODEL_NAME,
            estimator,
            train,
            target="default",
            actor=DEMO_ACTOR,
            reason=f"demo: {label}",
        )
        result.versions.append(version.version)
        console.print(f"   registered {MODEL_NAME} v{version.version} ({label})")
    v1, v2 = result.versions

    console.print(f"[bold]2.[/] approving and promoting v{v1} to champion")
    registry.approve(MODEL_NAME, v1, actor=DEMO_ACTOR, reason="demo: offline metrics reviewed")
    registry.promote(MODEL_NAME, v1, actor=DEMO_ACTOR, reason="demo: first champion")
    # Armed now so that the schedule's first slot passes while the steps below run.
    result.evaluation = arm_evaluation(services, DEMO_ACTOR, console)

    console.print(f"[bold]3.[/] scoring {score_rows:,} rows through a real worker process")
    score_path = settings.data_dir / "demo-scoring.parquet"
    make_training_data(score_rows, seed=2)[FEATURES].to_parquet(score_path, index=False)
    worker = start_worker(settings, settings.data_dir / "demo-worker.log")
    try:
        job = submit_batch_inference(
            services.db,
            services.sender,
            services.registry,
            services.settings.inference,
            BatchInferenceRequest(
                model=f"{MODEL_NAME}@champion",
                input_uri=str(score_path),
                chunk_rows=max(score_rows // 4, 1),
            ),
            actor=DEMO_ACTOR,
        )
        result.job_id = job.id
        finished = wait_for_job(services, job.id, console, timeout_s)
    finally:
        stop_worker(worker, console)
    if finished.status != "succeeded":
        raise RuntimeError(f"batch job {job.id} {finished.status}: {finished.error}")
    result.output_uri = str(finished.result.get("output_uri", ""))
    result.rows_scored = finished.rows_done
    result.device = str(finished.result.get("device", ""))
    with services.db.session() as session:
        result.logged_rows = count_predictions(session, job_id=job.id)
    console.print(
        f"   job {job.id}: {result.rows_scored:,} rows → {result.output_uri} "
        f"({result.logged_rows:,} sampled into the prediction log)"
    )

    console.print(f"[bold]4.[/] approving and promoting v{v2} (v{v1} stays the known-good one)")
    registry.approve(MODEL_NAME, v2, actor=DEMO_ACTOR, reason="demo: challenger looks better")
    registry.promote(MODEL_NAME, v2, actor=DEMO_ACTOR, reason="demo: promote challenger")
    result.champion_after_promote = registry.resolve(f"{MODEL_NAME}@champion").version
    console.print(f"   champion is v{result.champion_after_promote}")
    _drift_step(services, result, train, console, score_rows=score_rows, timeout_s=timeout_s)
    result.champion_after_rollback = registry.resolve(f"{MODEL_NAME}@champion").version
    run_evaluation_step(
        services, result.evaluation, train, DEMO_ACTOR, console, timeout_s=timeout_s
    )
    result.audit = run_audit_step(services, train, DEMO_ACTOR, console, timeout_s=timeout_s)
    result.moderation = run_moderation_step(services, DEMO_ACTOR, console, timeout_s=timeout_s)
    _print_summary(services, result, console)
    services.close()
    return result


def _drift_step(
    services: Services,
    result: DemoResult,
    train: pd.DataFrame,
    console: Console,
    *,
    score_rows: int,
    timeout_s: float,
) -> None:
    """Attach the versions' reference profiles, arm the alert loop, score a shifted window with
    the champion (the job profiles its input in the same pass), run a drift monitor on that
    job through the worker, print the verdict, then wait for the loop to act by itself."""
    from keelwatch.contract import BatchInferenceRequest
    from keelwatch.inference import submit_batch_inference
    from keelwatch.monitoring.service.profiles import attach_reference_profile
    from keelwatch.monitoring.service.service import create_monitor, result_of_job, submit_check

    settings = services.settings
    v1, v2 = result.versions
    console.print("[bold]5.[/] drift: reference profiles, a shifted window, a monitor")
    for version in (v1, v2):  # both were trained on the same data
        with services.db.session() as session:
            profile = attach_reference_profile(
                session,
                services.registry,
                services.settings.mlflow,
                MODEL_NAME,
                version,
                train,
                DEMO_ACTOR,
                target="default",
                reason="demo: training data",
            )
        console.print(f"   reference profile of v{version}: {profile.rows:,} rows")
    training_path = settings.data_dir / "demo-training.parquet"
    train.to_parquet(training_path, index=False)
    console.print(
        "[bold]6.[/] arming the loop: rule dataset-drift (critical), policies rollback-on-drift "
        "and retrain-on-drift, a signed webhook to a local receiver"
    )
    receiver = WebhookReceiver()
    shifted = make_training_data(max(score_rows // 2, 1), seed=3)[FEATURES]
    shifted["f0"] = shifted["f0"] + 0.5  # the population moved
    shifted["f3"] = shifted["f3"] * 1.5  # and got more spread out
    shifted_path = settings.data_dir / "demo-shifted.parquet"
    shifted.to_parquet(shifted_path, index=False)
    worker = start_worker(settings, settings.data_dir / "demo-drift-worker.log")
    try:
        receiver.__enter__()
        arm_loop(services, receiver, str(training_path), DEMO_ACTOR)
        console.print(f"   webhook receiver listening on {receiver.url}")
        console.print(f"[bold]7.[/] a shifted batch scored by the champion v{v2}, then checked")
        job = submit_batch_inference(
            services.db,
            services.sender,
            services.registry,
            services.settings.inference,
            BatchInferenceRequest(
                model=f"{MODEL_NAME}@champion",
                input_uri=str(shifted_path),
                chunk_rows=max(len(shifted) // 2, 1),
            ),
            actor=DEMO_ACTOR,
        )
        finished = wait_for_job(services, job.id, console, timeout_s)
        if finished.status != "succeeded":
            raise RuntimeError(f"batch job {job.id} {finished.status}: {finished.error}")
        # One monitor per demo run: monitor names are unique, and the demo may run again.
        result.monitor_name = f"{MODEL_NAME}-shifted-{job.id[:8]}"
        with services.db.session() as session:
            create_monitor(
                session,
                services.registry,
                {
                    "name": result.monitor_name,
                    "model": f"{MODEL_NAME}@champion",
                    "window": {"kind": "job", "job_id": job.id},
                    "description": "demo: the shifted batch, from the profile its job built",
                    # Evidently's view too, attached as an independent second opinion.
                    "config": {"second_opinion": True},
                },
                DEMO_ACTOR,
            )
        check = submit_check(
            services.db, services.sender, services.registry, result.monitor_name, DEMO_ACTOR
        )
        result.drift_job_id = check.id
        deadline = time.monotonic() + timeout_s
        with console.status("drift check on the fleet"):
            while True:
                with services.db.session() as session:
                    drift = result_of_job(session, check.id)
                if drift is not None and (drift.mlflow_run_id or drift.error):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"drift check {check.id} not finished in {timeout_s:.0f} s")
                time.sleep(0.3)
        _print_drift(services, result, drift, job.id, v2, console)
        console.print("[bold]8.[/] the loop, by itself")
        loop = wait_for_loop(services, receiver, MODEL_NAME, console, timeout_s)
    finally:
        stop_worker(worker, console)
        receiver.__exit__(None, None, None)
    result.loop = loop
    print_loop(loop, console)


def _print_drift(
    services: Services,
    result: DemoResult,
    drift: DriftResult,
    job_id: str,
    version: str,
    console: Console,
) -> None:
    """The drift verdict as a table, and where its reports are."""
    from keelwatch.monitoring.drift.report import column_verdict

    result.drift_status = drift.status.value
    result.drifted_columns = [c for c, entry in drift.columns.items() if entry.get("drifted")]
    result.drift_report_uri = drift.report_artifact_uri or ""
    result.drift_mlflow_run_id = drift.mlflow_run_id or ""
    table = Table(
        title=f"drift of batch {job_id[:8]} vs v{version}'s training data: {drift.status}"
    )
    for column in ("column", "statistic", "value", "p-value", "q-value", "verdict"):
        table.add_column(column)
    for entry in drift.columns.values():
        role = entry.get("role", "feature")
        verdict = column_verdict(str(entry.get("status")), entry.get("drifted"))
        table.add_row(
            str(entry["column"]) if role == "feature" else f"{entry['column']} ({role})",
            str(entry.get("statistic") or "-"),
            "" if entry.get("value") is None else f"{entry['value']:.4f}",
            "" if entry.get("pvalue") is None else f"{entry['pvalue']:.2e}",
            "" if entry.get("qvalue") is None else f"{entry['qvalue']:.2e}",
            "[bold red]DRIFT[/]" if entry.get("drifted") else verdict,
        )
    console.print(table)
    result.prediction_drifted = drift.report.get("prediction_drifted")
    verdicts = {None: "insufficient data", True: "[bold red]DRIFT[/]", False: "no drift"}
    console.print(
        f"   model outputs: {verdicts[result.prediction_drifted]}; target: "
        f"{verdicts[drift.report.get('target_drifted')]} (labels come later: "
        "keelwatch predictions label)"
    )
    console.print(f"   Keelwatch report: {result.drift_report_uri or '(not logged)'}")
    second = _second_opinion_uri(services, drift.mlflow_run_id) if drift.mlflow_run_id else None
    if second:
        console.print(
            f"   Evidently (independent second opinion, own tests and thresholds): {second}"
        )


def _second_opinion_uri(services: Services, run_id: str) -> str | None:
    """Where Evidently's second opinion of a drift run is, if one was attached."""
    from mlflow.tracking import MlflowClient

    settings = services.settings
    client = MlflowClient(
        tracking_uri=settings.mlflow.tracking_uri, registry_uri=settings.mlflow.registry_uri
    )
    return client.get_run(run_id).data.tags.get("keelwatch.second_opinion_uri")


def _print_summary(services: Services, result: DemoResult, console: Console) -> None:
    from keelwatch.storage.audit import list_audit
    from keelwatch.storage.predictions import recent_predictions

    settings = services.settings
    with services.db.session() as session:
        rows = recent_predictions(session, job_id=result.job_id, limit=5)
        audit = list_audit(session, limit=14)
    table = Table(title="prediction log (newest 5 of this job)")
    for column in ("request_id", "model", "inputs", "outputs", "latency ms"):
        table.add_column(column)
    for row in rows:
        inputs = ", ".join(f"{k}={v:.2f}" for k, v in list(row.inputs.items())[:3]) + ", …"
        table.add_row(
            row.request_id[-14:],
            f"{row.model_name} v{row.model_version}",
            inputs,
            str(row.outputs),
            f"{row.latency_ms:.3f}",
        )
    console.print(table)
    audit_table = Table(title="audit log (newest first)")
    for column in ("at", "actor", "action", "target", "reason"):
        audit_table.add_column(column)
    for entry in audit:
        audit_table.add_row(
            entry.at.strftime("%H:%M:%S"), entry.actor, entry.action, entry.target, entry.reason
        )
    console.print(audit_table)
    env_prefix = ""
    if settings.data_dir != Path(".keelwatch").resolve():
        env_prefix = f"KEELWATCH_DATA_DIR={settings.data_dir} "
    console.print(
        Panel.fit(
            "\n".join(
                [
                    f"MLflow UI:        {env_prefix}.venv/bin/keelwatch mlflow-ui  "
                    f"→ http://127.0.0.1:{settings.api.mlflow_ui_port}",
                    f"API + worker:     {env_prefix}.venv/bin/keelwatch up  "
                    f"→ http://{settings.api.host}:{settings.api.port}/docs",
                    f"Job status:       {env_prefix}.venv/bin/keelwatch jobs status "
                    f"{result.job_id}",
                    f"Prediction log:   {env_prefix}.venv/bin/keelwatch predictions tail "
                    f"--model {MODEL_NAME}",
                    f"Alias history:    {env_prefix}.venv/bin/keelwatch models history "
                    f"{MODEL_NAME}",
                    f"Scored output:    {result.output_uri}",
                    f"Drift results:    {env_prefix}.venv/bin/keelwatch monitors results "
                    f"{result.monitor_name}",
                    f"Drift report:     {result.drift_report_uri}",
                    f"Alerts:           {env_prefix}.venv/bin/keelwatch alerts list  "
                    "(and: alerts show FINGERPRINT)",
                    f"Actions:          {env_prefix}.venv/bin/keelwatch actions list",
                    f"Evaluations:      {env_prefix}.venv/bin/keelwatch eval results {MODEL_NAME}",
                    f"Gate decisions:   {env_prefix}.venv/bin/keelwatch gate decisions "
                    f"{MODEL_NAME}",
                    f"Bias audits:      {env_prefix}.venv/bin/keelwatch audit history "
                    f"--model {MODEL_NAME}  (report: {result.audit.report_path})",
                    *summary_lines(env_prefix),
                ]
            ),
            title="where to look",
        )
    )


def main() -> None:
    """Entry point of ``make demo``: embedded defaults, a fresh demo registry each run."""
    os.environ.setdefault("DO_NOT_TRACK", "1")
    settings = load_settings()
    run_demo(settings)


if __name__ == "__main__":
    main()
