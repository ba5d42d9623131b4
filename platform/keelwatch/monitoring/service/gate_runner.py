"""What a gate-check job does on a worker: both versions on one frame, decide, apply.

Both versions are loaded and predict on the same dataset frame in the same task (after the
dataset's hash check), so the paired bootstrap compares them row by row. When the policy has
latency conditions, each version is timed on ``GATE_BATCH_SIZE``-row batches (the champion
first, then the challenger, each after its own warm-up calls); the raw per-batch latencies are
the samples the gate bootstraps.

Idempotent under redelivery: a finished job is left alone; the decision row is written once per
job (UNIQUE job_id) and a redelivery that finds it only re-applies it (tags and promotion are
idempotent) and finishes the job.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.evaluation.gate import VersionEvaluation, decide_gate
from keelwatch.monitoring.evaluation.gate_policy import (
    EXACT_METRICS,
    LATENCY_METRICS,
    parse_gate_policy,
)
from keelwatch.monitoring.service import gate as service
from keelwatch.monitoring.service.evaluation_runner import (
    load_eval_frame,
    missing_model_columns,
    model_size_bytes,
    predict_outputs,
)
from keelwatch.storage import evaluations as eval_store
from keelwatch.storage import gate as store
from keelwatch.storage.jobs import get_job, set_job_running

if TYPE_CHECKING:
    from keelwatch.inference.execution import LoadedModel
    from keelwatch.registry import ModelRegistry
    from keelwatch.storage.db import Database

#: Rows per timed batch (the whole frame when smaller), untimed warm-up calls, timed calls.
GATE_BATCH_SIZE = 256
GATE_WARMUP = 2
GATE_REPEATS = 30

ModelLoader = Callable[[str], "LoadedModel"]


@dataclass(frozen=True)
class GateOutcome:
    """What one delivery of a gate-check job did."""

    job_id: str
    status: str  # "decided", "already_finished" or "failed"
    outcome: str | None = None
    promoted: bool = False
    decision_id: int | None = None
    error: str | None = None


def _latencies(
    predict: Callable[[pd.DataFrame], object], features: pd.DataFrame
) -> np.ndarray[Any, Any]:
    size = min(GATE_BATCH_SIZE, len(features))
    span = max(len(features) - size + 1, 1)
    samples = []
    for i in range(GATE_WARMUP + GATE_REPEATS):
        start = (i * size) % span
        batch = features.iloc[start : start + size]
        began = time.perf_counter()
        predict(batch)
        if i >= GATE_WARMUP:
            samples.append(time.perf_counter() - began)
    return np.asarray(samples, dtype=np.float64)


def _evaluate_version(
    side: str,
    params: dict[str, Any],
    frame: pd.DataFrame,
    label_column: str,
    load_model: ModelLoader,
    *,
    timed: bool,
    sized: bool,
) -> VersionEvaluation:
    pinned = params[side]
    model = load_model(str(pinned["model_uri"])).predictor
    missing = missing_model_columns(model, frame, label_column=label_column)
    if missing:
        raise InvalidInputError(
            f"the dataset lacks column(s) the {side} v{pinned['version']} needs: "
            f"{', '.join(missing)}"
        )
    outputs = predict_outputs(model, frame, label_column=label_column)
    metrics: dict[str, float] = {}
    if sized:
        size = model_size_bytes(str(pinned["model_uri"]))
        if size is not None:
            metrics["model_size_bytes"] = float(size)
    latencies = (
        _latencies(model.predict, frame.drop(columns=[label_column])) if timed else np.zeros(0)
    )
    return VersionEvaluation(
        version=str(pinned["version"]),
        metrics=metrics,
        y_true=frame[label_column].to_numpy(),
        y_pred=outputs.predictions,
        proba=outputs.proba,
        classes=outputs.classes,
        latencies_s=latencies,
    )


def run_gate_check_job(
    db: Database, registry: ModelRegistry, job_id: str, *, load_model: ModelLoader
) -> GateOutcome:
    """Run gate-check job ``job_id`` to the end (see the module docstring).

    InvalidInputError (the user's) fails the job and returns the failed outcome; other errors
    propagate (the caller retries, then calls ``gate.fail_gate_check``).
    """
    with db.session() as session:
        job = get_job(session, job_id)
        if job.finished:
            done = store.decision_for_job(session, job_id)
            return GateOutcome(
                job_id,
                "already_finished",
                outcome=done.outcome if done else None,
                promoted=done.promoted if done else False,
                decision_id=done.id if done else None,
                error=job.error,
            )
        set_job_running(session, job_id)
        decision = store.decision_for_job(session, job_id)
    try:
        if decision is None:
            decision = _decide(db, job_id, load_model)
        applied = service.apply_gate_decision(db, registry, decision)
    except InvalidInputError as exc:
        service.fail_gate_check(db, job_id, str(exc))
        return GateOutcome(job_id, "failed", error=str(exc))
    return GateOutcome(
        job_id,
        "decided",
        outcome=applied.outcome,
        promoted=applied.promoted,
        decision_id=applied.id,
    )


def _decide(db: Database, job_id: str, load_model: ModelLoader) -> Any:
    with db.session() as session:
        job = get_job(session, job_id)
        params = job.params
        dataset = eval_store.get_dataset(
            session, str(params["dataset"]["name"]), int(params["dataset"]["version"])
        )
    if dataset.content_hash != params["dataset"]["content_hash"]:
        raise InvalidInputError(
            f"dataset {dataset.name} v{dataset.version} no longer matches the job's pinned hash"
        )
    policy = parse_gate_policy(params["policy"])
    timed = any(m in LATENCY_METRICS for m in policy.metrics)
    sized = any(m in EXACT_METRICS for m in policy.metrics)
    frame = load_eval_frame(dataset)
    label = dataset.label_column
    champion = _evaluate_version(
        "champion", params, frame, label, load_model, timed=timed, sized=sized
    )
    challenger = _evaluate_version(
        "challenger", params, frame, label, load_model, timed=timed, sized=sized
    )
    # The job id seeds the bootstrap: a redelivered job that recomputes decides the same.
    seed = int.from_bytes(job_id.encode()[:8].ljust(8, b"\0"), "big")
    verdict = decide_gate(policy, champion, challenger, seed=seed)
    comparisons = [_finite(c.as_dict()) for c in verdict.comparisons]
    with db.session() as session:
        job = get_job(session, job_id)
        return service.record_decision(
            session,
            job,
            outcome=verdict.outcome,
            reasons=list(verdict.reasons),
            comparisons=comparisons,
        )


def _finite(values: dict[str, object]) -> dict[str, object]:
    # JSON (and PostgreSQL's JSONB) has no NaN: an undefined bound is stored as null.
    return {
        k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in values.items()
    }
