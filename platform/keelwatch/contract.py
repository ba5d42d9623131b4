"""The contract between the platform and the worker fleet: task names, queues and payloads.

The API, beat and the alert engine enqueue work by name through a :class:`TaskSender` (a Celery
app in production) and never import task modules. Payloads carry ids and URIs, never ORM
objects, and are enqueued only after the database commit. No heavy imports here.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from keelwatch.errors import UnavailableError

# Queues. A worker role consumes one or more of these.
QUEUE_CPU = "cpu"
QUEUE_GPU = "gpu"
QUEUE_MONITORING = "monitoring"
ALL_QUEUES = (QUEUE_CPU, QUEUE_GPU, QUEUE_MONITORING)

# Task names (stable: they are the wire format).
INFERENCE_CHUNK = "keelwatch.inference.run_chunk"
HOUSEKEEPING_HEARTBEAT = "keelwatch.housekeeping.heartbeat"
#: Daily: delete signals older than ``alerting.signal_retention_days``.
HOUSEKEEPING_PURGE_SIGNALS = "keelwatch.housekeeping.purge_signals"
#: Beat (``jobs.reconcile_interval_s``): send again the chunks and drift checks whose task
#: vanished (no progress for ``jobs.lost_after_s``), fail the jobs that keep losing them.
HOUSEKEEPING_RECONCILE_JOBS = "keelwatch.housekeeping.reconcile_jobs"
# Drift checks (queue ``monitoring``; every ``keelwatch.monitoring.*`` name is routed there).
DRIFT_CHECK_START = "keelwatch.monitoring.drift.start_check"
DRIFT_PARTITION_PROFILE = "keelwatch.monitoring.drift.profile_partition"
DRIFT_CHECK_FINISH = "keelwatch.monitoring.drift.finish_check"
DRIFT_DISPATCH_DUE = "keelwatch.monitoring.drift.dispatch_due"
#: Run one action execution (queue ``cpu``, or ``gpu`` for a policy with ``queue: gpu``):
#: rollback, retrain, promote or notify.
ACTION_EXECUTE = "keelwatch.actions.execute"
#: Deliver one notification-log row through its notifier (queue ``monitoring``, acks_late).
ALERTING_DELIVER = "keelwatch.alerting.deliver"
#: Beat: evaluate every rule on the latest signal of each series (``for`` and resolution).
ALERTING_EVALUATE_TICK = "keelwatch.alerting.evaluate_tick"
#: Beat: write the fleet's operational series (ops.*) and new EWMA/CUSUM alarms, then evaluate
#: the rules on them (queue ``monitoring``, like every ``keelwatch.monitoring.*`` name).
MONITORING_OPS_SIGNALS = "keelwatch.monitoring.ops_signals"
#: Beat (``registry.watch_interval_s``, queue ``monitoring``): compare every model's governed
#: aliases in MLflow with alias history; record, audit, signal (and in ``enforce`` mode undo)
#: the changes Keelwatch did not make. Optional kwarg ``model``: that model only (a webhook).
REGISTRY_WATCH_ALIASES = "keelwatch.registry.watch_aliases"
#: Evaluate one model version on one registered evaluation dataset (queue ``cpu``, or ``gpu``
#: when the model's ``keelwatch.device`` tag says ``gpu``); payload :class:`EvaluationPayload`.
EVALUATION_RUN = "keelwatch.evaluation.run"
#: Evaluate champion and challenger on one dataset in one job and decide promote/reject by the
#: model's gate policy (queue as for EVALUATION_RUN); payload :class:`EvaluationPayload`.
EVALUATION_GATE_CHECK = "keelwatch.evaluation.gate_check"
#: Beat: fire the evaluation schedules that are due (one firing per schedule and slot, however
#: many beat processes run); queue ``monitoring``.
EVALUATION_DISPATCH_DUE = "keelwatch.monitoring.evaluation.dispatch_due"
#: Realized performance of one model over a prediction-log window joined with its labels
#: (queue ``monitoring``).
EVALUATION_REALIZED = "keelwatch.monitoring.evaluation.realized"
#: A bias audit of one model's versions over a prediction-log window (their labels and
#: sensitive attributes joined by request id); queue ``monitoring``.
BIAS_AUDIT_RUN = "keelwatch.monitoring.fairness.audit"
#: Beat (``registry.watch_interval_s``): start the gate (or an evaluation) for model versions
#: registered since the last look, by anyone; optional kwarg ``model`` (a webhook).
REGISTRY_WATCH_VERSIONS = "keelwatch.registry.watch_versions"
#: Beat (``privacy.purge_interval_s``, queue ``monitoring``): delete rows older than their
#: table's retention (``privacy.retention_days``), in batches; audited.
RETENTION_PURGE = "keelwatch.monitoring.privacy.retention_purge"
#: Moderate a dataset's text column or a window of the prediction log (queue ``monitoring``);
#: kwargs ``job_id`` (a ``moderation_run`` job row holds the request).
MODERATION_RUN = "keelwatch.monitoring.moderation.run"

# Job kinds stored in the jobs table.
JOB_BATCH_INFERENCE = "batch_inference"
JOB_DRIFT_CHECK = "drift_check"
JOB_EVALUATION = "evaluation"
JOB_GATE_CHECK = "gate_check"
JOB_MODERATION_RUN = "moderation_run"

Device = Literal["auto", "cpu", "gpu"]


class BatchInferenceRequest(BaseModel):
    """What a user submits: a model reference and an input dataset."""

    model: str = Field(description="'name@alias', 'name/version' or 'models:/name/version'.")
    input_uri: str = Field(description="Parquet or CSV file (path or file:// URI).")
    output_uri: str | None = Field(None, description="Output Parquet dataset folder.")
    device: Device = Field(
        "auto",
        description="gpu: the gpu queue; cpu and auto: the cpu queue (auto never picks the gpu).",
    )
    chunk_rows: int | None = Field(None, gt=0, description="Rows per chunk (default: settings).")
    log_sample_rate: float | None = Field(None, ge=0.0, le=1.0)


class InferenceChunkPayload(BaseModel):
    """The message of one chunk task: ids only, everything else is read from the job row."""

    job_id: str
    chunk_index: int


class DriftCheckPayload(BaseModel):
    """Start (or finish) drift check ``job_id``; everything else is in the job row."""

    job_id: str


class DriftPartitionPayload(BaseModel):
    """Profile partition ``partition_index`` of drift check ``job_id`` (one job chunk)."""

    job_id: str
    partition_index: int


class EvaluationPayload(BaseModel):
    """Run evaluation (or gate check) job ``job_id``; everything else is in the job row."""

    job_id: str


class ActionExecutePayload(BaseModel):
    """Run action execution ``execution_id``; everything else is in its row."""

    execution_id: int


class BrokerUnavailableError(UnavailableError):
    """The broker refused or could not take a message: the API answers 503 with
    ``Retry-After``, the CLI exits non-zero; the work is not lost (the message says where it is).
    """

    retry_after_s = 30


class TaskSender(Protocol):
    """What enqueues work by name (``celery.Celery`` satisfies it)."""

    def send_task(
        self,
        name: str,
        args: Any = None,
        kwargs: Any = None,
        **options: Any,
    ) -> Any:
        """Enqueue task ``name``; ``options`` carries ``queue`` and friends."""
        ...
