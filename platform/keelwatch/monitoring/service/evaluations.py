"""Evaluation datasets and evaluation jobs: register, validate, write (audited), then enqueue.

A dataset is a local CSV or Parquet file registered under a name; each registration of changed
bytes is a new version, and the SHA-256 of the bytes is kept so the worker can refuse a file
that changed since. An evaluation pins one model version and one dataset version in a job of
kind ``evaluation`` (plus an ``eval_runs`` row); :func:`create_evaluation` writes, the caller
commits, :func:`enqueue_evaluation` sends (:func:`submit_evaluation` does the three in order).
The worker side is :mod:`keelwatch.monitoring.service.evaluation_runner`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keelwatch.alerting.signals import register_signal_names
from keelwatch.contract import (
    EVALUATION_RUN,
    JOB_EVALUATION,
    QUEUE_CPU,
    QUEUE_GPU,
    BrokerUnavailableError,
    EvaluationPayload,
)
from keelwatch.entities import Job, JobStatus
from keelwatch.entities.evaluation import EvalDataset, EvalRun
from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.evaluation.suites import TASKS, check_suites
from keelwatch.storage import evaluations as store
from keelwatch.storage.audit import record_audit
from keelwatch.storage.jobs import create_job, finish_job

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from keelwatch.contract import TaskSender
    from keelwatch.registry import ModelRegistry
    from keelwatch.storage.db import Database

#: Model (or version) tag that sends a model's evaluations to the gpu queue.
DEVICE_TAG = "keelwatch.device"
#: Version tag pointing at the MLflow run of the version's latest evaluation.
LAST_RUN_TAG = "keelwatch.eval.last_run_id"
#: Metric names an evaluation may emit as ``evaluation.<metric>`` signals.
EVALUATION_METRICS = (
    "rows",
    "accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
    "roc_auc",
    "log_loss",
    "ece",
    "mae",
    "rmse",
    "r2",
    "bleu",
    "chrf",
    "rouge_l",
    "perplexity",
    "latency_p50_s",
    "latency_p95_s",
    "rows_per_s",
    "peak_memory_bytes",
    "model_size_bytes",
)
SIGNAL_NAMES = frozenset(f"evaluation.{name}" for name in EVALUATION_METRICS)
register_signal_names(SIGNAL_NAMES)

_DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_HASH_BLOCK = 1 << 20


def dataset_target(name: str) -> str:
    """Audit-log target of an evaluation dataset."""
    return f"eval_dataset:{name}"


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of the file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def register_dataset(
    session: Session,
    *,
    name: str,
    uri: str,
    label_column: str,
    task: str,
    actor: str,
    description: str = "",
    read_roots: Sequence[str | Path] | None = None,
) -> EvalDataset:
    """Register the file at ``uri`` as the next version of dataset ``name``.

    ``read_roots``: confine ``uri`` to these data roots (the API passes the configured ones; a
    local administrator's CLI may pass None). The same bytes, label column and task as the
    latest version return that version unchanged (idempotent); different bytes make a new
    version. InvalidInputError for a bad name or task, an unreadable file or a label column the
    file does not have.
    """
    from keelwatch.data_roots import resolve_read
    from keelwatch.inference.dataset import inspect_input, local_path

    actor = _actor(actor)
    if not _DATASET_NAME.match(name or ""):
        raise InvalidInputError(
            f"invalid dataset name {name[:130]!r}: letters, digits, '.', '_' and '-' "
            "(at most 128, starting with a letter or digit)"
        )
    if task not in TASKS:
        raise InvalidInputError(f"unknown task {task!r}: use one of {', '.join(TASKS)}")
    path = resolve_read(uri, read_roots, field="uri") if read_roots is not None else local_path(uri)
    info = inspect_input(str(path))
    if label_column not in info.columns:
        raise InvalidInputError(
            f"label column {label_column!r} is not in {path.name} "
            f"(columns: {', '.join(info.columns)})"
        )
    if info.rows == 0:
        raise InvalidInputError(f"dataset file {path.name} has no rows")
    content_hash = file_sha256(path)
    latest = store.find_dataset(session, name)
    if (
        latest is not None
        and latest.content_hash == content_hash
        and latest.label_column == label_column
        and latest.task == task
        and latest.uri == str(path)
    ):
        return latest
    dataset = store.insert_dataset(
        session,
        name=name,
        uri=str(path),
        content_hash=content_hash,
        rows=info.rows,
        columns=info.columns,
        label_column=label_column,
        task=task,
        description=description,
        created_by=actor,
    )
    record_audit(
        session,
        actor=actor,
        action="evaluation.dataset.register",
        target=dataset_target(name),
        reason=description or f"evaluation dataset {name} v{dataset.version}",
        details={
            "version": dataset.version,
            "uri": dataset.uri,
            "content_hash": content_hash,
            "rows": dataset.rows,
            "label_column": label_column,
            "task": task,
        },
    )
    return dataset


def parse_dataset_ref(ref: str) -> tuple[str, int | None]:
    """``name`` (latest version) or ``name:3``; InvalidInputError for a bad version."""
    name, sep, version = ref.strip().partition(":")
    if not sep:
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise InvalidInputError(f"dataset reference {ref!r}: the version after ':' is a number")
    return name, int(version)


def get_dataset(session: Session, name: str, version: int | None = None) -> EvalDataset:
    """Version ``version`` of dataset ``name`` (the latest when None); NotFoundError."""
    return store.get_dataset(session, name, version)


def list_datasets(session: Session, name: str | None = None) -> list[EvalDataset]:
    """Every registered dataset version, by name then version."""
    return store.list_datasets(session, name)


def queue_for_model(registry: ModelRegistry, name: str, version: str) -> str:
    """``gpu`` when the version's (else the model's) ``keelwatch.device`` tag says ``gpu``."""
    tags = registry.get_version(name, version).tags
    device = tags.get(DEVICE_TAG)
    if device is None:
        model = registry.client.get_registered_model(name)
        device = dict(getattr(model, "tags", None) or {}).get(DEVICE_TAG)
    return QUEUE_GPU if (device or "").strip().lower() == "gpu" else QUEUE_CPU


def create_evaluation(
    session: Session,
    registry: ModelRegistry,
    *,
    model_ref: str,
    dataset: str,
    suites: Sequence[str] | None = None,
    actor: str,
    trigger: str = "manual",
    reason: str = "",
    require: Sequence[str] = (),
    efficiency: dict[str, Any] | None = None,
) -> Job:
    """Pin the model version and dataset version, create the job and its run, audit it.

    ``dataset``: ``name`` or ``name:version``. ``require``: metric names that must be
    computable (``roc_auc`` on a model without probabilities then fails the job).
    ``efficiency``: optional ``batch_sizes``/``repeats``/``warmup`` for the timing suite.
    Nothing is sent: the caller commits, then calls :func:`enqueue_evaluation`.
    """
    actor = _actor(actor)
    resolved = registry.resolve(model_ref)
    name, version = parse_dataset_ref(dataset)
    pinned = store.get_dataset(session, name, version)
    chosen = check_suites(pinned.task, suites or None)
    queue = queue_for_model(registry, resolved.name, resolved.version)
    params: dict[str, Any] = {
        "model_ref": model_ref,
        "model_name": resolved.name,
        "model_version": resolved.version,
        "model_uri": resolved.model_uri,
        "dataset": {
            "name": pinned.name,
            "version": pinned.version,
            "content_hash": pinned.content_hash,
        },
        "suites": list(chosen),
        "require": [str(metric) for metric in require],
        "efficiency": _efficiency_options(efficiency),
        "trigger": trigger,
        "queue": queue,
    }
    job = create_job(session, kind=JOB_EVALUATION, params=params, submitted_by=actor)
    store.insert_run(
        session,
        job_id=job.id,
        model_name=resolved.name,
        model_version=resolved.version,
        dataset_name=pinned.name,
        dataset_version=pinned.version,
        suites=chosen,
        trigger=trigger,
    )
    record_audit(
        session,
        actor=actor,
        action="evaluation.run",
        target=f"model:{resolved.name}"[:255],
        reason=reason or f"evaluate {resolved.model_uri} on {pinned.name} v{pinned.version}",
        details={
            "job_id": job.id,
            "model_version": resolved.version,
            "dataset": f"{pinned.name}:{pinned.version}",
            "suites": list(chosen),
            "trigger": trigger,
            "queue": queue,
        },
    )
    return job


def enqueue_evaluation(db: Database, sender: TaskSender, job: Job) -> None:
    """Send a committed evaluation job to its queue (``cpu`` or ``gpu``).

    If the broker refuses it, the job and its run are marked failed (in a transaction of their
    own) and BrokerUnavailableError says why.
    """
    queue = str(job.params.get("queue") or QUEUE_CPU)
    try:
        sender.send_task(
            EVALUATION_RUN,
            kwargs=EvaluationPayload(job_id=job.id).model_dump(),
            queue=queue,
            # The job row is the truth; nobody waits on the Celery result.
            ignore_result=True,
        )
    except Exception as exc:
        message = (
            f"could not enqueue the evaluation: the broker is unreachable "
            f"({type(exc).__name__}); run it again once the broker is back"
        )
        with db.session() as session:
            fail_evaluation(session, job.id, message)
        raise BrokerUnavailableError(f"job {job.id}: {message}") from exc


def submit_evaluation(
    db: Database,
    sender: TaskSender,
    registry: ModelRegistry,
    *,
    model_ref: str,
    dataset: str,
    suites: Sequence[str] | None = None,
    actor: str,
    trigger: str = "manual",
    reason: str = "",
    require: Sequence[str] = (),
    efficiency: dict[str, Any] | None = None,
) -> Job:
    """Create the evaluation in one transaction, commit, and only then enqueue it."""
    with db.session() as session:
        job = create_evaluation(
            session,
            registry,
            model_ref=model_ref,
            dataset=dataset,
            suites=suites,
            actor=actor,
            trigger=trigger,
            reason=reason,
            require=require,
            efficiency=efficiency,
        )
    enqueue_evaluation(db, sender, job)
    return job


def fail_evaluation(session: Session, job_id: str, message: str) -> bool:
    """Fail the job and its run once; False when the job had already finished."""
    store.finish_run(session, job_id, status=JobStatus.FAILED.value, error=message)
    return finish_job(session, job_id, status=JobStatus.FAILED, error=message)


def get_run(session: Session, run_id: int) -> EvalRun:
    """One evaluation run by id."""
    return store.get_run(session, run_id)


def run_for_job(session: Session, job_id: str) -> EvalRun:
    """The evaluation run of job ``job_id``."""
    return store.run_for_job(session, job_id)


def list_runs(
    session: Session,
    *,
    model_name: str | None = None,
    model_version: str | None = None,
    status: str | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> list[EvalRun]:
    """Evaluation runs, newest first (``before_id``: see ``storage.evaluations.list_runs``)."""
    return store.list_runs(
        session,
        model_name=model_name,
        model_version=model_version,
        status=status,
        limit=limit,
        before_id=before_id,
    )


def _efficiency_options(options: dict[str, Any] | None) -> dict[str, Any]:
    options = dict(options or {})
    unknown = set(options) - {"batch_sizes", "repeats", "warmup"}
    if unknown:
        raise InvalidInputError(f"unknown efficiency options: {', '.join(sorted(unknown))}")
    checked: dict[str, Any] = {}
    if "batch_sizes" in options:
        sizes = options["batch_sizes"]
        if not isinstance(sizes, list | tuple) or not sizes:
            raise InvalidInputError("efficiency batch_sizes must be a non-empty list of integers")
        if not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes):
            raise InvalidInputError("efficiency batch_sizes must be positive integers")
        checked["batch_sizes"] = sorted(set(sizes))
    for key, low in (("repeats", 1), ("warmup", 0)):
        if key in options:
            value = options[key]
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise InvalidInputError(f"efficiency {key} must be an integer >= {low}")
            checked[key] = value
    return checked


def _actor(actor: str) -> str:
    if not actor or not actor.strip():
        raise InvalidInputError("actor must not be empty")
    return actor.strip()
