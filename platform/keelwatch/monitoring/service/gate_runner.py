"""What a gate-check job does on a worker: both versions on one frame, decide, apply.

Both versions are loaded and predict on the same dataset frame in the same task (after the
dataset's hash check), so the paired bootstrap compares them row by row. When the policy has
latency conditions, both versions are timed on the same ``GATE_BATCH_SIZE``-row batches,
alternately (after warm-up calls), so machine noise hits both alike; the raw per-batch
latencies are the samples the gate bootstraps. (No explicit CUDA synchronisation: on a GPU
the timing relies on ``predict`` returning host-side outputs.)

Idempotent under redelivery: a finished job is left alone; the decision row is written once per
job (UNIQUE job_id) and a redelivery that finds it only re-applies it (tags and promotion are
idempotent) and finishes the job.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
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


def _interleaved_latencies(
    predicts: tuple[Callable[[pd.DataFrame], object], Callable[[pd.DataFrame], object]],
    features: pd.DataFrame,
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Per-batch latencies of both models, timed alternately on the same batches (whose turn
    comes first alternates too), so a busy machine slows both alike rather than one."""
    size = min(GATE_BATCH_SIZE, len(features))
    span = max(len(features) - size + 1, 1)
    samples: tuple[list[float], list[float]] = ([], [])
    for i in range(GATE_WARMUP + GATE_REPEATS):
        start = (i * size) % span
        batch = features.iloc[start : start + size]
        for side in (0, 1) if i % 2 == 0 else (1, 0):
            began = time.perf_counter()
            predicts[side](batch)
            if i >= GATE_WARMUP:
                samples[side].append(time.perf_counter() - began)
    return np.asarray(samples[0], dtype=np.float64), np.asarray(samples[1], dtype=np.float64)


def _evaluate_version(
    side: str,
    params: dict[str, Any],
    frame: pd.DataFrame,
    label_column: str,
    load_model: ModelLoader,
    *,
    sized: bool,
) -> tuple[VersionEvaluation, Any]:
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
    evaluation = VersionEvaluation(
        version=str(pinned["version"]),
        metrics=metrics,
        y_true=frame[label_column].to_numpy(),
        y_pred=outputs.predictions,
        proba=outputs.proba,
        classes=outputs.classes,
    )
    return evaluation, model


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
    champion, champion_model = _evaluate_version(
        "champion", params, frame, label, load_model, sized=sized
    )
    challenger, challenger_model = _evaluate_version(
        "challenger", params, frame, label, load_model, sized=sized
    )
    if timed:
        champion_s, challenger_s = _interleaved_latencies(
            (champion_model.predict, challenger_model.predict), frame.drop(columns=[label])
        )
        champion = replace(champion, latencies_s=champion_s)
        challenger = replace(challenger, latencies_s=challenger_s)
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
