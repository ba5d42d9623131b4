"""What an evaluation job does on a worker: load, check, predict, measure, record.

The pieces (:func:`load_eval_frame`, :func:`predict_outputs`, :func:`evaluate_outputs`) are
shared with the gate job; :func:`run_evaluation_job` strings them together for one
``evaluation`` job. Errors that are the user's (columns the model needs but the dataset lacks,
labels of the wrong type, a required metric the model cannot give, a dataset file changed since
registration) are :class:`~keelwatch.errors.InvalidInputError`: the job fails at once with the
message, no retry. Anything else propagates for the worker's retry policy.

Idempotent: a job that already finished is left alone (a redelivered message does nothing);
the MLflow run is looked up by the job id before one is created, and the result row, signals
and job state are written once, in one transaction.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from keelwatch.alerting.service import evaluate_or_defer
from keelwatch.entities import JobStatus
from keelwatch.entities.evaluation import EvalDataset
from keelwatch.entities.signals import SIGNAL_NAME_PATTERN, Signal
from keelwatch.entities.time import utcnow
from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.service.evaluations import file_sha256, queue_for_model
from keelwatch.storage import evaluations as store
from keelwatch.storage.jobs import finish_job, get_job, set_job_running

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from keelwatch.inference.execution import LoadedModel
    from keelwatch.settings import Settings
    from keelwatch.storage.db import Database

logger = logging.getLogger(__name__)

__all__ = [
    "EvaluationOutcome",
    "ModelOutputs",
    "column_type_problems",
    "evaluate_outputs",
    "load_eval_frame",
    "missing_model_columns",
    "predict_outputs",
    "queue_for_model",
    "run_evaluation_job",
]


@dataclass(frozen=True)
class ModelOutputs:
    """One model's outputs on the dataset rows, in row order."""

    predictions: np.ndarray[Any, Any]
    proba: np.ndarray[Any, Any] | None
    classes: tuple[str, ...] | None
    token_logprobs: list[list[float]] | None


@dataclass(frozen=True)
class EvaluationOutcome:
    """What one delivery of an evaluation job did."""

    job_id: str
    status: str  # "succeeded", "failed" or "already_finished"
    metrics: dict[str, dict[str, float]]
    mlflow_run_id: str | None = None
    error: str | None = None


# --------------------------------------------------------------------------- pieces


def load_eval_frame(dataset: EvalDataset) -> pd.DataFrame:
    """The dataset's rows; InvalidInputError when the file is gone or its bytes changed since
    registration (its SHA-256 no longer matches)."""
    from keelwatch.inference.dataset import InputFormat, input_format, local_path

    path = local_path(dataset.uri)
    label = f"dataset {dataset.name} v{dataset.version}"
    if not path.is_file():
        raise InvalidInputError(f"{label}: file {path} no longer exists")
    actual = file_sha256(path)
    if actual != dataset.content_hash:
        raise InvalidInputError(
            f"{label} changed since registration (hash {dataset.content_hash[:12]}, now "
            f"{actual[:12]}); register it again to evaluate on the new content"
        )
    try:
        if input_format(path) is InputFormat.PARQUET:
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"{label}: cannot read {path.name} ({type(exc).__name__})") from exc


def missing_model_columns(model: Any, frame: pd.DataFrame, *, label_column: str) -> list[str]:
    """The columns the model's signature requires that ``frame`` (less the label) lacks; empty
    for a model without a column-based signature."""
    metadata = getattr(model, "metadata", None)
    schema = metadata.get_input_schema() if metadata is not None else None
    if schema is None or not getattr(schema, "has_input_names", lambda: False)():
        return []
    required = getattr(schema, "required_input_names", schema.input_names)()
    present = {str(c) for c in frame.columns if c != label_column}
    return [str(name) for name in required if str(name) not in present]


_NUMERIC_TYPES = frozenset({"double", "float", "long", "integer"})
_INTEGER_TYPES = frozenset({"long", "integer"})


def column_type_problems(model: Any, frame: pd.DataFrame, *, label_column: str) -> list[str]:
    """One line per column whose dtype the model's signature cannot take (text where it wants
    numbers, numbers where it wants text, fractions where it wants integers); names columns
    and types, never values. Empty without a column-based signature."""
    metadata = getattr(model, "metadata", None)
    schema = metadata.get_input_schema() if metadata is not None else None
    if schema is None or not getattr(schema, "has_input_names", lambda: False)():
        return []
    problems = []
    for spec in schema.inputs:
        name = getattr(spec, "name", None)
        expected = getattr(getattr(spec, "type", None), "name", None)
        if name is None or expected is None or name == label_column or name not in frame:
            continue
        dtype = frame[name].dtype
        kind = dtype.kind
        if expected in _NUMERIC_TYPES and kind not in "biuf":
            problems.append(
                f"column {name!r}: the model expects {expected}, the dataset holds {dtype}"
            )
        elif expected in _INTEGER_TYPES and kind == "f":
            problems.append(
                f"column {name!r}: the model expects {expected}, the dataset holds {dtype} "
                "(fractions or missing values)"
            )
        elif expected == "string" and kind in "biuf":
            problems.append(f"column {name!r}: the model expects string, the dataset holds {dtype}")
    return problems


def _raw_proba(
    model: Any, features: pd.DataFrame
) -> tuple[np.ndarray[Any, Any], tuple[str, ...]] | None:
    """``predict_proba`` of the model behind a pyfunc wrapper (scikit-learn flavour, or a custom
    python model that defines it), with its classes; None when it has none."""
    candidates: list[Any] = []
    for unwrap in ("get_raw_model", "unwrap_python_model"):
        getter = getattr(model, unwrap, None)
        if getter is None:
            continue
        try:
            candidates.append(getter())
        except Exception:  # noqa: BLE001 - this flavour does not have that kind of inner model
            continue
    for inner in candidates:
        predict_proba = getattr(inner, "predict_proba", None)
        if predict_proba is None:
            continue
        proba = np.asarray(predict_proba(features), dtype=np.float64)
        classes = getattr(inner, "classes_", None)
        if classes is None:
            classes = getattr(inner, "classes", None)
        if classes is None:
            raise InvalidInputError(
                f"the model's predict_proba gives {proba.shape[-1]} columns but the model names "
                "no classes (classes_ or classes)"
            )
        return proba, tuple(str(c) for c in np.asarray(classes).tolist())
    return None


def predict_outputs(model: Any, frame: pd.DataFrame, *, label_column: str | None) -> ModelOutputs:
    """Predictions (and probabilities, when the model gives them) for every row of ``frame``.

    Probabilities come from the raw model's ``predict_proba`` (scikit-learn flavour, or a custom
    pyfunc's ``python_model.predict_proba(frame)``), or from ``proba_<class>`` columns of a
    DataFrame that ``predict`` returns; predictions are ``predict``'s output (its
    ``prediction`` column when a DataFrame). A model that rejects the rows is the data's fault:
    InvalidInputError without the rows' values.
    """
    from keelwatch.inference.validation import safe_exception_text

    # label_column None: every column is an input (a counterfactual audit's prompts).
    features = frame.drop(columns=[label_column]) if label_column is not None else frame
    try:
        raw = model.predict(features)
    except Exception as exc:
        if isinstance(exc, ValueError | TypeError | KeyError) or (
            getattr(exc, "error_code", None) == "INVALID_PARAMETER_VALUE"
        ):
            raise InvalidInputError(
                f"the model rejected the dataset's rows: {safe_exception_text(exc)}"
            ) from exc
        raise
    proba: np.ndarray[Any, Any] | None = None
    classes: tuple[str, ...] | None = None
    token_logprobs: list[list[float]] | None = None
    if isinstance(raw, pd.DataFrame):
        proba_columns = [str(c) for c in raw.columns if str(c).startswith("proba_")]
        if proba_columns:
            proba = raw[proba_columns].to_numpy(dtype=np.float64)
            classes = tuple(c.removeprefix("proba_") for c in proba_columns)
        if "token_logprobs" in raw.columns:
            token_logprobs = [[float(v) for v in row] for row in raw["token_logprobs"]]
        if "prediction" in raw.columns:
            predictions = raw["prediction"].to_numpy()
        elif raw.shape[1] == 1:
            predictions = raw.iloc[:, 0].to_numpy()
        else:
            raise InvalidInputError(
                f"the model returned {raw.shape[1]} columns and none is named 'prediction'"
            )
    elif isinstance(raw, pd.Series):
        predictions = raw.to_numpy()
    else:
        predictions = np.asarray(raw)
        if predictions.ndim == 2 and predictions.shape[1] == 1:
            predictions = predictions[:, 0]
    if predictions.ndim != 1 or predictions.shape[0] != len(frame):
        raise InvalidInputError(
            f"the model returned predictions of shape {predictions.shape} for {len(frame)} rows"
        )
    if proba is None:
        found = _raw_proba(model, features)
        if found is not None:
            proba, classes = found
    return ModelOutputs(predictions, proba, classes, token_logprobs)


def evaluate_outputs(
    task: str,
    suites: Sequence[str],
    y_true: Any,
    outputs: ModelOutputs,
    *,
    require: Sequence[str] = (),
) -> dict[str, dict[str, float]]:
    """suite -> metric -> value for the label-based suites among ``suites`` (``efficiency``
    needs the model and is measured apart)."""
    results: dict[str, dict[str, float]] = {}
    for suite in suites:
        if suite == "efficiency":
            continue
        if suite != task:
            raise InvalidInputError(f"suite {suite!r} does not apply to a {task} dataset")
        if suite == "classification":
            from keelwatch.monitoring.evaluation.classification import classification_metrics

            results[suite] = classification_metrics(
                y_true,
                outputs.predictions,
                proba=outputs.proba,
                classes=outputs.classes if outputs.proba is not None else None,
                require=tuple(require),
            ).as_dict()
        elif suite == "regression":
            from keelwatch.monitoring.evaluation.regression import regression_metrics

            results[suite] = regression_metrics(y_true, outputs.predictions).as_dict()
        elif suite == "text_generation":
            from keelwatch.monitoring.evaluation.text import text_generation_metrics

            results[suite] = text_generation_metrics(
                [str(v) for v in np.asarray(y_true).tolist()],
                [str(v) for v in outputs.predictions.tolist()],
                token_logprobs=outputs.token_logprobs,
            ).as_dict()
    return results


def model_size_bytes(model_uri: str) -> int | None:
    """Bytes of the model's artifacts (what a worker downloads to load it), by listing them;
    None when the store cannot say."""
    from mlflow.artifacts import list_artifacts

    def walk(path: str | None) -> int:
        total = 0
        for info in list_artifacts(artifact_uri=model_uri, artifact_path=path) or ():
            total += walk(info.path) if info.is_dir else int(info.file_size or 0)
        return total

    try:
        return walk(None)
    except Exception as exc:  # noqa: BLE001 - the size is informative; the evaluation goes on
        logger.info("model size of %s unknown: %s", model_uri, type(exc).__name__)
        return None


# --------------------------------------------------------------------------- the job

ModelLoader = Callable[[str], "LoadedModel"]


def run_evaluation_job(
    db: Database, settings: Settings, job_id: str, *, load_model: ModelLoader
) -> EvaluationOutcome:
    """Run evaluation job ``job_id`` to the end (see the module docstring).

    InvalidInputError (the user's) fails the job here and returns the failed outcome; other
    errors propagate (the caller retries, then calls :func:`fail_evaluation_job`).
    """
    with db.session() as session:
        job = get_job(session, job_id)
        if job.finished:
            run = store.run_for_job(session, job_id)
            return EvaluationOutcome(
                job_id, "already_finished", run.metrics, run.mlflow_run_id, job.error
            )
        set_job_running(session, job_id)
        store.mark_running(session, job_id)
        run = store.run_for_job(session, job_id)
        dataset = store.get_dataset(session, run.dataset_name, run.dataset_version)
    params = job.params
    try:
        return _evaluate(db, settings, job_id, params, dataset, load_model)
    except InvalidInputError as exc:
        message = str(exc)
        fail_evaluation_job(db, job_id, message)
        return EvaluationOutcome(job_id, "failed", {}, error=message)


def fail_evaluation_job(db: Database, job_id: str, message: str) -> None:
    """Fail the job and its run (no-op when already finished)."""
    from keelwatch.monitoring.service.evaluations import fail_evaluation

    with db.session() as session:
        fail_evaluation(session, job_id, message)


def _evaluate(
    db: Database,
    settings: Settings,
    job_id: str,
    params: Mapping[str, Any],
    dataset: EvalDataset,
    load_model: ModelLoader,
) -> EvaluationOutcome:
    pinned_hash = str(params["dataset"]["content_hash"])
    if pinned_hash != dataset.content_hash:  # cannot happen unless the row was edited by hand
        raise InvalidInputError(
            f"dataset {dataset.name} v{dataset.version} no longer matches the job's pinned hash"
        )
    frame = load_eval_frame(dataset)
    model_name, model_version = str(params["model_name"]), str(params["model_version"])
    model_uri = str(params["model_uri"])
    loaded = load_model(model_uri)
    model = loaded.predictor
    missing = missing_model_columns(model, frame, label_column=dataset.label_column)
    if missing:
        raise InvalidInputError(
            f"dataset {dataset.name} v{dataset.version} lacks column(s) the model "
            f"{model_name} v{model_version} needs: {', '.join(missing)}"
        )
    problems = column_type_problems(model, frame, label_column=dataset.label_column)
    if problems:
        raise InvalidInputError(
            f"dataset {dataset.name} v{dataset.version} does not match the signature of "
            f"{model_name} v{model_version}: {'; '.join(problems)}"
        )
    suites = [str(s) for s in params["suites"]]
    outputs = predict_outputs(model, frame, label_column=dataset.label_column)
    y_true = frame[dataset.label_column].to_numpy()
    metrics = evaluate_outputs(
        dataset.task, suites, y_true, outputs, require=[str(r) for r in params.get("require", [])]
    )
    if "efficiency" in suites:
        from keelwatch.inference.efficiency import measure_efficiency

        options = dict(params.get("efficiency") or {})
        features = frame.drop(columns=[dataset.label_column])
        efficiency = measure_efficiency(
            model.predict,
            features,
            batch_sizes=tuple(options.get("batch_sizes", (1, 32, 256))),
            repeats=int(options.get("repeats", 20)),
            warmup=int(options.get("warmup", 2)),
            device=loaded.device,
            model_size_bytes=model_size_bytes(model_uri),
        )
        metrics["efficiency"] = efficiency.as_dict()
    from keelwatch.monitoring.service.evaluation_mlflow import EvaluationRecord, log_evaluation

    run_id = log_evaluation(
        settings,
        EvaluationRecord(
            job_id=job_id,
            model_name=model_name,
            model_version=model_version,
            dataset=dataset,
            suites=tuple(suites),
            metrics=metrics,
            trigger=str(params.get("trigger", "manual")),
            device=loaded.device,
            frame=frame,
            y_true=y_true,
            outputs=outputs,
        ),
    )
    with db.session() as session:
        finished = _store_success(
            session, job_id, dataset, model_name, model_version, metrics, run_id
        )
    if not finished:
        with db.session() as session:
            run = store.run_for_job(session, job_id)
        return EvaluationOutcome(job_id, "already_finished", run.metrics, run.mlflow_run_id)
    return EvaluationOutcome(job_id, "succeeded", metrics, run_id)


def _store_success(
    session: Session,
    job_id: str,
    dataset: EvalDataset,
    model_name: str,
    model_version: str,
    metrics: dict[str, dict[str, float]],
    run_id: str,
) -> bool:
    """Run row, job and signals in one transaction, once per job."""
    finished_at = utcnow()
    if not finish_job(
        session,
        job_id,
        status=JobStatus.SUCCEEDED,
        result={
            "model_name": model_name,
            "model_version": model_version,
            "dataset": f"{dataset.name}:{dataset.version}",
            "mlflow_run_id": run_id,
            "metrics": metrics,
        },
    ):
        return False
    store.finish_run(
        session,
        job_id,
        status=JobStatus.SUCCEEDED.value,
        metrics=metrics,
        mlflow_run_id=run_id,
        finished_at=finished_at,
    )
    signals = evaluation_signals(
        metrics,
        labels={"model": model_name, "version": model_version, "dataset": dataset.name},
        observed_at=finished_at,
        source=f"job:{job_id}",
    )
    from keelwatch.storage.signals import write_signals

    write_signals(session, signals)
    evaluate_or_defer(session, signals, utcnow(), what="evaluation")
    return True


def evaluation_signals(
    metrics: Mapping[str, Mapping[str, float]],
    *,
    labels: Mapping[str, str],
    observed_at: Any,
    source: str,
) -> list[Signal]:
    """``evaluation.<metric>`` per suite metric, labelled with ``suite`` (per-batch-size
    timings, ``name@batch``, stay in MLflow: the largest batch's are the signal)."""
    signals = []
    for suite, values in metrics.items():
        for name, value in values.items():
            signal_name = f"evaluation.{name}"
            if not SIGNAL_NAME_PATTERN.match(signal_name) or not math.isfinite(value):
                continue
            signals.append(
                Signal(
                    name=signal_name,
                    value=float(value),
                    labels={**labels, "suite": suite},
                    observed_at=observed_at,
                    source=source,
                )
            )
    return signals
