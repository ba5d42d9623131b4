"""The demo's evaluation step: a scheduled evaluation firing, then the champion/challenger gate.

:func:`arm_evaluation` runs early in the demo: it writes a holdout set (the credit-risk data with
a seed of its own), registers it as an evaluation dataset and sets an evaluation schedule on
the champion with cron ``* * * * *``. A schedule fires only slots after the moment it was armed,
so arming early lets the first slot pass while the rest of the demo runs.

:func:`run_evaluation_step` runs after the alert loop, with a real worker process: one beat tick
(:func:`~keelwatch.monitoring.service.eval_schedules.dispatch_due_schedules`, the function
beat's task calls) fires the due slot, the evaluation job runs on the cpu queue and its metrics
and MLflow run are printed. Then a gate policy for the model is set, a worse challenger (a
``DummyClassifier`` predicting the prior) is rejected and a better one (logistic regression with
the squared ``f0`` term the data is generated with) is approved and promoted by the gate, each
with the gate's reasons. The schedule is disabled at the end so that ``keelwatch up`` does not
evaluate the champion every minute.

The policy's outcomes do not hang on timing noise: the speed alternative also needs F1 within
1 point, which the dummy is far from, and the quality alternative has no latency condition.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from keelwatch.entities import Job
    from keelwatch.entities.gate import GateDecisionRecord
    from keelwatch.wiring import Services

DATASET_NAME = "credit-holdout"
SCHEDULE_NAME = "credit-risk-holdout"
#: ``* * * * *``: the first slot after arming is at most a minute away.
SCHEDULE_CRON = "* * * * *"
HOLDOUT_ROWS = 20_000
#: The training data uses seed 1, the scored batches 2 and 3.
HOLDOUT_SEED = 4
#: Promote when the challenger keeps F1 within 1 point and is 20 % faster at p95, or when it
#: ranks better (ROC-AUC gain whose whole confidence interval is above 0) and keeps F1 within
#: 1 point. 20,000 holdout rows make the intervals narrow enough that the better challenger's
#: gain (about +0.004 ROC-AUC) is far from 0.
GATE_POLICY: dict[str, Any] = {
    "dataset": DATASET_NAME,
    "bootstrap_samples": 300,
    "min_rows": 1_000,
    "any_of": [
        {
            "all_of": [
                {"metric": "f1_macro", "max_drop": 0.01},
                {"metric": "latency_p95_s", "min_improvement": 0.2},
            ]
        },
        {
            "all_of": [
                {"metric": "roc_auc", "min_gain": 0.0},
                {"metric": "f1_macro", "max_drop": 0.01},
            ]
        },
    ],
}


@dataclass
class EvaluationDemoResult:
    """What the evaluation step did, for the e2e test and the summary."""

    dataset_version: int = 0
    holdout_uri: str = ""
    schedule_fired_job_id: str = ""
    schedule_slot: str = ""
    evaluated_version: str = ""
    evaluation_status: str = ""
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    mlflow_run_id: str = ""
    champion_before_gate: str = ""
    worse_version: str = ""
    worse_decision: GateDecisionRecord | None = None
    champion_after_reject: str = ""
    better_version: str = ""
    better_decision: GateDecisionRecord | None = None
    champion_after_gate: str = ""


def arm_evaluation(services: Services, actor: str, console: Console) -> EvaluationDemoResult:
    """Write and register the holdout set, then set the every-minute evaluation schedule on
    the champion (both audited)."""
    from keelwatch.cli.demo import MODEL_NAME, make_training_data
    from keelwatch.monitoring.service.eval_schedules import set_schedule
    from keelwatch.monitoring.service.evaluations import register_dataset

    result = EvaluationDemoResult()
    path = services.settings.data_dir / "demo-holdout.parquet"
    make_training_data(HOLDOUT_ROWS, seed=HOLDOUT_SEED).to_parquet(path, index=False)
    result.holdout_uri = str(path)
    with services.db.session() as session:
        dataset = register_dataset(
            session,
            name=DATASET_NAME,
            uri=str(path),
            label_column="default",
            task="classification",
            actor=actor,
            description="demo: a holdout set the models never saw",
        )
        result.dataset_version = dataset.version
        set_schedule(
            session,
            name=SCHEDULE_NAME,
            model=f"{MODEL_NAME}@champion",
            cron=SCHEDULE_CRON,
            kind="evaluation",
            dataset=f"{DATASET_NAME}:{dataset.version}",
            actor=actor,
            reason="demo: evaluate the champion on the holdout",
        )
    console.print(
        f"   evaluation dataset {DATASET_NAME} v{dataset.version} ({dataset.rows:,} rows, "
        f"sha256 {dataset.content_hash[:12]}…); schedule {SCHEDULE_NAME} on "
        f"{MODEL_NAME}@champion, cron '{SCHEDULE_CRON}' (fires from the next minute on)"
    )
    return result


def run_evaluation_step(
    services: Services,
    result: EvaluationDemoResult,
    train: Any,
    actor: str,
    console: Console,
    *,
    timeout_s: float,
) -> None:
    """Fire the schedule with a beat tick, show the evaluation, then gate two challengers; all
    jobs run on a real worker process (see the module docstring)."""
    from keelwatch.cli.demo import MODEL_NAME, start_worker, stop_worker

    settings = services.settings
    console.print("[bold]9.[/] scheduled evaluation: a beat tick fires the due slot")
    worker = start_worker(settings, settings.data_dir / "demo-eval-worker.log")
    try:
        job_id = _fire_schedule(services, result, console)
        job = _wait(services, job_id, "evaluation of the champion on the fleet", console, timeout_s)
        _show_evaluation(services, result, job, console)
        console.print(
            f"[bold]10.[/] the gate: policy for {MODEL_NAME}, then two challengers against the "
            "champion on the same holdout"
        )
        _set_policy(services, actor, console)
        result.champion_before_gate = services.registry.resolve(f"{MODEL_NAME}@champion").version
        _worse_challenger(services, result, train, actor, console, timeout_s)
        _better_challenger(services, result, train, actor, console, timeout_s)
    finally:
        stop_worker(worker, console)
    _disable_schedule(services, actor, console)


def _fire_schedule(services: Services, result: EvaluationDemoResult, console: Console) -> str:
    """Tick like beat (``dispatch_due_schedules``) until the demo's schedule fires; the slot
    is normally already due, else the next minute's is at most 60 s away."""
    from keelwatch.monitoring.service.eval_schedules import dispatch_due_schedules, list_firings

    deadline = time.monotonic() + 75.0
    waited = False
    while True:
        outcome = dispatch_due_schedules(
            services.db, services.sender, services.registry, actor="beat"
        )
        if SCHEDULE_NAME in outcome.failed:
            raise RuntimeError(f"schedule {SCHEDULE_NAME}: {outcome.failed[SCHEDULE_NAME]}")
        if SCHEDULE_NAME in outcome.fired:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"schedule {SCHEDULE_NAME} did not fire within 75 s")
        if not waited:
            console.print("   the first slot after arming is not due yet: ticking every second")
            waited = True
        time.sleep(1.0)
    job_id = outcome.fired[SCHEDULE_NAME]
    with services.db.session() as session:
        firing = next(f for f in list_firings(session, SCHEDULE_NAME) if f.job_id == job_id)
    result.schedule_fired_job_id = job_id
    result.schedule_slot = firing.slot.isoformat()
    console.print(
        f"   schedule {SCHEDULE_NAME} fired slot {firing.slot:%Y-%m-%d %H:%M} UTC "
        f"(by {firing.fired_by}) → evaluation job {job_id}"
    )
    return job_id


def _wait(services: Services, job_id: str, label: str, console: Console, timeout_s: float) -> Job:
    from keelwatch.storage.jobs import get_job

    deadline = time.monotonic() + timeout_s
    with console.status(label):
        while True:
            with services.db.session() as session:
                job = get_job(session, job_id)
            if job.finished:
                if job.status.value != "succeeded":
                    raise RuntimeError(f"job {job_id} {job.status.value}: {job.error}")
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} not finished after {timeout_s:.0f} s")
            time.sleep(0.3)


def _show_evaluation(
    services: Services, result: EvaluationDemoResult, job: Job, console: Console
) -> None:
    from keelwatch.monitoring.service.evaluations import run_for_job

    with services.db.session() as session:
        run = run_for_job(session, job.id)
    result.evaluated_version = run.model_version
    result.evaluation_status = job.status.value
    result.metrics = run.metrics
    result.mlflow_run_id = run.mlflow_run_id or ""
    quality = run.metrics.get("classification", {})
    speed = run.metrics.get("efficiency", {})
    console.print(
        f"   v{run.model_version} on {run.dataset_name} v{run.dataset_version}: "
        f"accuracy {quality.get('accuracy', float('nan')):.4f}, "
        f"F1 macro {quality.get('f1_macro', float('nan')):.4f}, "
        f"ROC-AUC {quality.get('roc_auc', float('nan')):.4f}, "
        f"p95 latency {1000 * speed.get('latency_p95_s@1', float('nan')):.2f} ms (1 row) / "
        f"{1000 * speed.get('latency_p95_s', float('nan')):.2f} ms (256 rows)"
    )
    console.print(f"   MLflow run {result.mlflow_run_id} (linked to the model version)")


def _set_policy(services: Services, actor: str, console: Console) -> None:
    from keelwatch.cli.demo import MODEL_NAME
    from keelwatch.monitoring.service.gate import set_policy

    with services.db.session() as session:
        set_policy(
            session,
            MODEL_NAME,
            GATE_POLICY,
            actor=actor,
            reason="demo: same F1 and 20 % faster, or better ROC-AUC and same F1",
        )
    console.print(
        "   policy: promote if (F1 macro drops ≤ 0.01 and p95 latency ≥ 20 % lower) or "
        "(ROC-AUC gain > 0 and F1 macro drops ≤ 0.01), judged on the 95 % bootstrap CI's "
        "worse end"
    )


def _register(services: Services, estimator: Any, train: Any, actor: str, label: str) -> str:
    from keelwatch.cli.demo import FEATURES, MODEL_NAME

    estimator.fit(train[FEATURES], train["default"])
    version = services.registry.register_sklearn_model(
        MODEL_NAME, estimator, train, target="default", actor=actor, reason=f"demo: {label}"
    )
    return version.version


def _gate(
    services: Services, challenger: str, actor: str, console: Console, timeout_s: float
) -> GateDecisionRecord:
    from keelwatch.cli.demo import MODEL_NAME
    from keelwatch.monitoring.service.gate import latest_decision, submit_gate_check

    job = submit_gate_check(
        services.db,
        services.sender,
        services.registry,
        model=MODEL_NAME,
        challenger=challenger,
        actor=actor,
        reason=f"demo: gate v{challenger}",
    )
    _wait(services, job.id, f"gate check of v{challenger} on the fleet", console, timeout_s)
    with services.db.session() as session:
        decision = latest_decision(session, MODEL_NAME, challenger)
    if decision is None or decision.job_id != job.id:
        raise RuntimeError(f"gate check {job.id} finished without a decision")
    verdict = {"promote": "[bold green]PROMOTE[/]", "reject": "[bold red]REJECT[/]"}
    moved = " (champion moved)" if decision.promoted else " (champion unchanged)"
    console.print(
        f"   gate decision {decision.id}: {verdict.get(decision.outcome, decision.outcome)}{moved}"
    )
    for reason in decision.reasons:
        console.print(f"      {reason}", highlight=False, markup=False)
    return decision


def _worse_challenger(
    services: Services,
    result: EvaluationDemoResult,
    train: Any,
    actor: str,
    console: Console,
    timeout_s: float,
) -> None:
    from sklearn.dummy import DummyClassifier

    from keelwatch.cli.demo import MODEL_NAME

    label = "a worse challenger (always the prior)"
    result.worse_version = _register(
        services, DummyClassifier(strategy="prior"), train, actor, label
    )
    console.print(
        f"   registered v{result.worse_version}: {label}; gate against champion "
        f"v{result.champion_before_gate}"
    )
    result.worse_decision = _gate(services, result.worse_version, actor, console, timeout_s)
    result.champion_after_reject = services.registry.resolve(f"{MODEL_NAME}@champion").version


def _better_challenger(
    services: Services,
    result: EvaluationDemoResult,
    train: Any,
    actor: str,
    console: Console,
    timeout_s: float,
) -> None:
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures

    from keelwatch.cli.demo import MODEL_NAME

    label = "a better challenger (logistic regression with f0²)"
    squared_f0 = make_column_transformer(
        (PolynomialFeatures(2, include_bias=False), ["f0"]), remainder="passthrough"
    )
    estimator = make_pipeline(squared_f0, LogisticRegression(max_iter=500))
    result.better_version = _register(services, estimator, train, actor, label)
    registry = services.registry
    approved = ""
    if registry.policy.require_approval:  # the gate promotes approved versions only
        registry.approve(
            MODEL_NAME, result.better_version, actor=actor, reason="demo: reviewed, gate next"
        )
        approved = " and approved (the registry requires approval before champion)"
    console.print(f"   registered v{result.better_version}: {label}{approved}")
    result.better_decision = _gate(services, result.better_version, actor, console, timeout_s)
    result.champion_after_gate = registry.resolve(f"{MODEL_NAME}@champion").version
    tags = registry.get_version(MODEL_NAME, result.better_version).tags
    console.print(
        f"   champion is now v{result.champion_after_gate}; MLflow tags on both versions of "
        f"each decision: keelwatch.gate.outcome={tags.get('keelwatch.gate.outcome')}, "
        f"keelwatch.gate.decision_id={tags.get('keelwatch.gate.decision_id')}, "
        "keelwatch.gate.reasons"
    )


def _disable_schedule(services: Services, actor: str, console: Console) -> None:
    from keelwatch.monitoring.service.eval_schedules import get_schedule, set_schedule

    with services.db.session() as session:
        schedule = get_schedule(session, SCHEDULE_NAME)
        set_schedule(
            session,
            name=schedule.name,
            model=schedule.model,
            cron=schedule.cron,
            kind=schedule.kind,
            dataset=schedule.dataset,
            suites=schedule.suites,
            enabled=False,
            actor=actor,
            reason="demo: done; keelwatch up would otherwise evaluate every minute",
        )
    console.print(
        f"   schedule {SCHEDULE_NAME} disabled again (keelwatch up would otherwise evaluate "
        "the champion every minute)"
    )
