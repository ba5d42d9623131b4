"""An evaluation's MLflow run, so the MLflow UI shows it next to the model version.

One run per evaluation job in experiment ``keelwatch-evaluations``, tagged with the model
name and version, the dataset and the job id; parameters; metrics named
``<suite>.<metric>``; the dataset as a run input whose digest is its content hash; artifacts
``metrics.json`` and, for classification, ``confusion_matrix.png`` and ``calibration.png``.
The model version gets the tag ``keelwatch.eval.last_run_id``.

Idempotent: a run tagged with the job id is reused (a redelivered job logs into it again,
and a finished one is returned as it is), never duplicated.

MLflow stores a dataset digest of at most 36 characters, so the input's digest is the first
36 hex digits of the SHA-256; the whole hash is the run tag ``keelwatch.dataset_sha256``.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keelwatch.entities.evaluation import EvalDataset
from keelwatch.monitoring.service.evaluations import LAST_RUN_TAG

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from keelwatch.monitoring.service.evaluation_runner import ModelOutputs
    from keelwatch.settings import Settings

EXPERIMENT = "keelwatch-evaluations"
JOB_TAG = "keelwatch.job_id"
#: MLflow's limit on a dataset digest (``mlflow.utils.validation.MAX_DATASET_DIGEST_SIZE``).
DIGEST_CHARS = 36


@dataclass(frozen=True)
class EvaluationRecord:
    """Everything one evaluation's run records."""

    job_id: str
    model_name: str
    model_version: str
    dataset: EvalDataset
    suites: tuple[str, ...]
    metrics: dict[str, dict[str, float]]
    trigger: str
    device: str
    frame: pd.DataFrame
    y_true: np.ndarray[Any, Any]
    outputs: ModelOutputs


def metric_key(suite: str, name: str) -> str:
    """``<suite>.<metric>``; a per-batch timing ``latency_p95_s@32`` becomes
    ``efficiency.latency_p95_s.batch_32`` (MLflow keys take no ``@``)."""
    metric, _, batch = name.partition("@")
    return f"{suite}.{metric}" + (f".batch_{batch}" if batch else "")


def dataset_digest(content_hash: str) -> str:
    """The run input's digest: the hash cut to what MLflow stores."""
    return content_hash[:DIGEST_CHARS]


def log_evaluation(settings: Settings, record: EvaluationRecord) -> str:
    """Log (or find) the job's run; returns its id. Also tags the model version."""
    from mlflow.entities import Metric, Param, RunStatus
    from mlflow.tracking import MlflowClient

    from keelwatch.registry.registration import ensure_experiment

    client = MlflowClient(
        tracking_uri=settings.mlflow.tracking_uri, registry_uri=settings.mlflow.registry_uri
    )
    experiment_id = ensure_experiment(
        client, EXPERIMENT, f"{settings.mlflow.artifact_root.rstrip('/')}/{EXPERIMENT}"
    )
    existing = client.search_runs(
        [experiment_id], filter_string=f"tags.`{JOB_TAG}` = '{record.job_id}'", max_results=1
    )
    if existing and existing[0].info.status == RunStatus.to_string(RunStatus.FINISHED):
        run_id = str(existing[0].info.run_id)
        _tag_version(client, record, run_id)
        return run_id
    dataset = record.dataset
    if existing:
        run_id = str(existing[0].info.run_id)
    else:
        run = client.create_run(
            experiment_id,
            run_name=f"eval-{record.model_name}-v{record.model_version}-{dataset.name}",
            tags={
                "keelwatch.model_name": record.model_name,
                "keelwatch.model_version": record.model_version,
                JOB_TAG: record.job_id,
                "keelwatch.dataset": f"{dataset.name}:{dataset.version}",
                "keelwatch.dataset_sha256": dataset.content_hash,
                "keelwatch.trigger": record.trigger,
            },
        )
        run_id = str(run.info.run_id)
    now = int(time.time() * 1000)
    params = {
        "model_name": record.model_name,
        "model_version": record.model_version,
        "dataset_name": dataset.name,
        "dataset_version": str(dataset.version),
        "dataset_rows": str(dataset.rows),
        "label_column": dataset.label_column,
        "task": dataset.task,
        "suites": ",".join(record.suites),
        "device": record.device,
    }
    client.log_batch(
        run_id,
        metrics=[
            Metric(metric_key(suite, name), float(value), now, 0)
            for suite, values in record.metrics.items()
            for name, value in values.items()
        ],
        params=[Param(key, value) for key, value in params.items()],
    )
    _log_dataset_input(client, run_id, record)
    with tempfile.TemporaryDirectory(prefix="keelwatch-eval-") as folder:
        for path in write_artifacts(Path(folder), record):
            client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, "FINISHED")
    _tag_version(client, record, run_id)
    return run_id


def _log_dataset_input(client: Any, run_id: str, record: EvaluationRecord) -> None:
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.entities import DatasetInput, InputTag

    dataset = record.dataset
    data = from_pandas(
        record.frame,
        source=dataset.uri,
        targets=dataset.label_column,
        name=f"{dataset.name}:{dataset.version}",
        digest=dataset_digest(dataset.content_hash),
    )
    client.log_inputs(
        run_id,
        datasets=[
            DatasetInput(
                data._to_mlflow_entity(),
                tags=[InputTag("mlflow.data.context", "evaluation")],
            )
        ],
    )


def _tag_version(client: Any, record: EvaluationRecord, run_id: str) -> None:
    client.set_model_version_tag(record.model_name, record.model_version, LAST_RUN_TAG, run_id)


def write_artifacts(folder: Path, record: EvaluationRecord) -> list[Path]:
    """``metrics.json`` and, for a classification suite, the confusion matrix and the
    reliability diagram as PNGs; returns the files written."""
    written = [folder / "metrics.json"]
    written[0].write_text(
        json.dumps(
            {
                "model": {"name": record.model_name, "version": record.model_version},
                "dataset": {
                    "name": record.dataset.name,
                    "version": record.dataset.version,
                    "content_hash": record.dataset.content_hash,
                },
                "metrics": record.metrics,
            },
            indent=2,
            sort_keys=True,
        )
    )
    if "classification" in record.metrics:
        written.extend(_classification_plots(folder, record))
    return written


def _classification_plots(folder: Path, record: EvaluationRecord) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from keelwatch.monitoring.evaluation.calibration import reliability_curve
    from keelwatch.monitoring.evaluation.classification import classification_metrics

    outputs = record.outputs
    with_proba = outputs.proba is not None and outputs.classes is not None
    result = classification_metrics(
        record.y_true,
        outputs.predictions,
        proba=outputs.proba if with_proba else None,
        classes=outputs.classes if with_proba else None,
    )
    written: list[Path] = []
    figure, axes = plt.subplots(figsize=(5, 4.5))
    try:
        image = axes.imshow(result.confusion, cmap="Blues")
        figure.colorbar(image, ax=axes)
        ticks = range(len(result.classes))
        axes.set_xticks(list(ticks), labels=list(result.classes), rotation=45, ha="right")
        axes.set_yticks(list(ticks), labels=list(result.classes))
        for i, row in enumerate(result.confusion):
            for j, count in enumerate(row):
                axes.text(j, i, str(count), ha="center", va="center")
        axes.set_xlabel("predicted")
        axes.set_ylabel("true")
        axes.set_title(f"{record.model_name} v{record.model_version} on {record.dataset.name}")
        figure.tight_layout()
        path = folder / "confusion_matrix.png"
        figure.savefig(path, dpi=100)
        written.append(path)
    finally:
        plt.close(figure)
    if with_proba:
        assert outputs.proba is not None and outputs.classes is not None
        curve = reliability_curve(record.y_true, outputs.proba, outputs.classes)
        figure, axes = plt.subplots(figsize=(5, 4.5))
        try:
            axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
            points = [
                (c, a)
                for c, a, n in zip(curve.confidence, curve.accuracy, curve.counts, strict=True)
                if n > 0
            ]
            axes.plot([p[0] for p in points], [p[1] for p in points], marker="o", label="model")
            axes.set_xlabel("confidence (top class)")
            axes.set_ylabel("accuracy")
            axes.set_title(f"reliability, ECE {curve.ece:.3f}")
            axes.legend()
            figure.tight_layout()
            path = folder / "calibration.png"
            figure.savefig(path, dpi=100)
            written.append(path)
        finally:
            plt.close(figure)
    return written
