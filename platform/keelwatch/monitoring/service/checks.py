"""The worker side of a drift check: read the window, profile it, test it, store the result.

Three shapes, chosen when the check is submitted (see :mod:`keelwatch.monitoring.service.service`):

* **in process**: one partition or fewer: the start task reads the window and calls
  :func:`~keelwatch.monitoring.drift.engine.compute_drift` on the data frame: exact statistics;
* **distributed**: the start task fans the partitions out as a Celery chord; each partition
  task builds a profile of its rows ``like=`` the reference (same kinds and bin edges) with at
  most :data:`PARTITION_SAMPLE_VALUES` sorted values per column, saves it next to the job, and
  the chord's body merges them and tests the merged profile;
* **job profile**: the window is a batch-inference job, whose chunks profiled their input while
  scoring and whose last step merged them into one capped profile
  (:mod:`keelwatch.monitoring.service.job_profiles`): that profile is tested, no data is re-read.

What merged profiles give (also in the result's ``distributed`` entry and docs/monitoring.md):
row, missing and infinite counts, histograms, category counts, moments, min and max are exact,
so PSI, KL, JS, chi² and z are exactly what an in-process check gives. KS and Wasserstein use
the merged sorted values: exact when a column has at most ``PARTITION_SAMPLE_VALUES`` distinct
values in the window, else a uniform random sample of that many values (the engine notes it);
the KS statistic of such a sample is within ε of the whole window's with probability at least
``1 - 2·exp(-2·k·ε²)`` (DKW), and its p-value is the sample's, i.e. conservative. Each numeric
column also carries ``ks_sketch``: the KS statistic between the reference's and the window's
quantile sketches with its certified deterministic bound.

Every step is idempotent: partition profiles have fixed names and are written atomically, a
chunk is completed once, and the result row is unique per job.
"""

from __future__ import annotations

import logging
import os
import resource
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from keelwatch.alerting.service import evaluate_or_defer
from keelwatch.entities import JobStatus
from keelwatch.entities.monitors import CheckMode, DriftResult, DriftStatus, ReferenceProfileInfo
from keelwatch.entities.time import utcnow
from keelwatch.errors import KeelwatchError, NotFoundError
from keelwatch.monitoring.service.specs import MonitorConfig
from keelwatch.monitoring.service.windows import WindowPlan, read_partition, read_window
from keelwatch.storage import monitors as monitor_store
from keelwatch.storage.jobs import (
    complete_chunk,
    finish_job,
    get_job,
    set_job_running,
    start_chunk,
)

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.orm import Session

    from keelwatch.monitoring.drift.engine import DriftConfig
    from keelwatch.monitoring.drift.profiles import ReferenceProfile
    from keelwatch.monitoring.drift.report import DriftReport
    from keelwatch.monitoring.service.html_report import ColumnPicture
    from keelwatch.settings import Settings
    from keelwatch.storage.db import Database

logger = logging.getLogger(__name__)

#: Sorted values kept per column in a partition profile (and so in the merged window profile).
PARTITION_SAMPLE_VALUES = 100_000
#: Confidence of the DKW bound quoted in distributed results.
DKW_CONFIDENCE = 0.999


class CheckParams(BaseModel):
    """Everything a worker needs about a drift check, stored in the job row's params."""

    monitor_id: int
    monitor_name: str
    model_name: str
    model_version: str
    profile: dict[str, Any]
    window: dict[str, Any]
    plan: dict[str, Any]
    config: dict[str, Any]
    mode: CheckMode


@dataclass(frozen=True)
class StartOutcome:
    """What the start task should do next."""

    action: Literal["skipped", "finished", "fan_out"]
    partitions: int = 0
    result_id: int | None = None


def check_params(db: Database, job_id: str) -> tuple[CheckParams, bool]:
    """The job's params and whether it already finished."""
    with db.session() as session:
        job = get_job(session, job_id)
    return CheckParams.model_validate(job.params), job.finished


def start_check(db: Database, settings: Settings, job_id: str) -> StartOutcome:
    """Run an in-process or job-profile check to the end, or say to fan a distributed one out."""
    params, finished = check_params(db, job_id)
    if finished:
        return StartOutcome("skipped")
    with db.session() as session:
        set_job_running(session, job_id)
    plan = WindowPlan.from_json(params.plan)
    if params.mode is CheckMode.DISTRIBUTED:
        return StartOutcome("fan_out", partitions=len(plan.partitions))
    started = utcnow()
    try:
        reference = _reference(settings, params)
        config = MonitorConfig.model_validate(params.config)
        if params.mode is CheckMode.JOB_PROFILE:
            from keelwatch.monitoring.service.job_profiles import merged_job_profile

            window_profile = merged_job_profile(Path(plan.detail["output_dir"]))
            result = conclude(
                db, settings, job_id, params, reference, window_profile, started=started
            )
        else:
            frame = read_window(db, plan, _columns(reference, config), _roles(reference))
            result = conclude(db, settings, job_id, params, reference, frame, started=started)
    except KeelwatchError as exc:
        result = record_error(db, job_id, params, str(exc), started=started)
    return StartOutcome("finished", result_id=result.id)


def profile_partition(db: Database, settings: Settings, job_id: str, index: int) -> dict[str, Any]:
    """Profile partition ``index`` of a distributed check; returns a small JSON-able summary.

    The profile is written to ``data_dir/drift/<job>/profile-part-<index>.npz`` (fixed name,
    atomic rename), so a rerun replaces it; the summary carries its path, row count and the
    task's peak RSS.
    """
    from keelwatch.monitoring.drift.profiles import build_profile, save_profile

    started = time.perf_counter()
    params, finished = check_params(db, job_id)
    path = partition_profile_path(settings, job_id, index)
    if finished:
        return {"index": index, "path": str(path), "rows": 0, "skipped": True}
    with db.session() as session:
        start_chunk(session, job_id, index, device="cpu")
    plan = WindowPlan.from_json(params.plan)
    reference = _reference(settings, params)
    config = MonitorConfig.model_validate(params.config)
    frame = read_partition(
        db, plan, plan.partitions[index], _columns(reference, config), _roles(reference)
    )
    profile = build_profile(
        frame,
        like=_subset(reference, list(frame.columns)),
        max_sorted_values=PARTITION_SAMPLE_VALUES,
        seed=index + 1,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp.npz")
    try:
        save_profile(profile, temporary)
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
    with db.session() as session:
        complete_chunk(
            session, job_id, index, rows_done=profile.rows, output_path=str(path), device="cpu"
        )
    return {
        "index": index,
        "path": str(path),
        "rows": profile.rows,
        "seconds": round(time.perf_counter() - started, 3),
        "pid": os.getpid(),
        "max_rss_bytes": peak_rss_bytes(),
    }


def finish_distributed(
    db: Database, settings: Settings, job_id: str, partitions: list[dict[str, Any]]
) -> dict[str, Any]:
    """The chord's body: merge the partition profiles, test, store; returns a summary."""
    from keelwatch.monitoring.drift.profiles import load_profile, merge_profiles

    params, finished = check_params(db, job_id)
    if finished:
        with db.session() as session:
            stored = monitor_store.result_for_job(session, job_id)
        return {"status": stored.status.value if stored else "skipped", "job_id": job_id}
    started = min((_job_created(db, job_id),), default=utcnow())
    try:
        reference = _reference(settings, params)
        merged: ReferenceProfile | None = None
        ordered = sorted(partitions, key=lambda part: int(part["index"]))
        for part in ordered:
            profile = load_profile(part["path"])
            merged = (
                profile
                if merged is None
                else merge_profiles(merged, profile, max_sorted_values=PARTITION_SAMPLE_VALUES)
            )
        if merged is None:
            raise NotFoundError(f"drift check {job_id} has no partition profiles")
        workers = {
            str(part.get("pid")): int(part.get("max_rss_bytes") or 0)
            for part in ordered
            if part.get("pid") is not None
        }
        result = conclude(
            db,
            settings,
            job_id,
            params,
            reference,
            merged,
            started=started,
            extra={"partitions": len(ordered), "worker_peak_rss_bytes": workers},
        )
    except KeelwatchError as exc:
        result = record_error(db, job_id, params, str(exc), started=started)
    return {"status": result.status.value, "job_id": job_id, "result_id": result.id}


def conclude(
    db: Database,
    settings: Settings,
    job_id: str,
    params: CheckParams,
    reference: ReferenceProfile,
    window: pd.DataFrame | ReferenceProfile,
    *,
    started: datetime,
    extra: dict[str, Any] | None = None,
) -> DriftResult:
    """Test ``window`` against ``reference``, store the result once, then log its outputs.

    The steps, in order: the verdict (pure), the result row and the job's finish (one
    transaction), then, for a result not logged yet, the report's pictures and samples and the
    MLflow run (whose failure never costs the stored result).
    """
    config = MonitorConfig.model_validate(params.config)
    reference = _subset(reference, _columns(reference, config))
    summary = _summary(params, reference, window, extra)
    status, report = _verdict(reference, window, config, summary)
    with db.session() as session:
        result = _store_result(session, job_id, params, status, summary, started=started)
        _finish_check_job(session, job_id, result)
    if result.mlflow_run_id is not None:  # a redelivered task: the run is already logged
        return result
    pictures = _pictures(job_id, reference, window) if report is not None else {}
    samples = _report_samples(reference, window, config) if report is not None else (None, None)
    return _log_outputs(db, settings, job_id, params, result, summary, pictures, samples)


def _window_rows(window: pd.DataFrame | ReferenceProfile) -> int:
    from keelwatch.monitoring.drift.profiles import ReferenceProfile as ProfileType

    return int(window.rows if isinstance(window, ProfileType) else window.shape[0])


def _summary(
    params: CheckParams,
    reference: ReferenceProfile,
    window: pd.DataFrame | ReferenceProfile,
    extra: dict[str, Any] | None,
) -> dict[str, Any]:
    """What the check looked at; :func:`_verdict` adds what it found."""
    from keelwatch.monitoring.drift.profiles import ReferenceProfile as ProfileType

    summary: dict[str, Any] = {
        "monitor": params.monitor_name,
        "model_name": params.model_name,
        "model_version": params.model_version,
        "mode": params.mode.value,
        "window": params.window,
        "window_rows": _window_rows(window),
        "reference_rows": reference.rows,
        **(extra or {}),
    }
    if params.mode is not CheckMode.IN_PROCESS and isinstance(window, ProfileType):
        summary["distributed"] = distributed_note(window)
    return summary


def _drift_config(config: MonitorConfig, reference: ReferenceProfile) -> DriftConfig:
    """The engine's settings from the monitor's, restricted to the reference's columns."""
    from keelwatch.monitoring.drift.engine import DriftConfig

    return DriftConfig(
        stattest=config.stattest,
        column_stattests={
            k: v for k, v in config.column_stattests.items() if k in reference.columns
        },
        fdr_alpha=config.fdr_alpha,
        min_samples=config.min_samples,
        effect_size_floors={**DriftConfig().effect_size_floors, **config.effect_size_floors},
        extra_stattests=tuple(config.extra_stattests),
        column_effect_size_floors={
            k: v for k, v in config.column_effect_size_floors.items() if k in reference.columns
        },
    )


def _verdict(
    reference: ReferenceProfile,
    window: pd.DataFrame | ReferenceProfile,
    config: MonitorConfig,
    summary: dict[str, Any],
) -> tuple[DriftStatus, DriftReport | None]:
    """Test the window (or call it insufficient data) and add the verdict to ``summary``.

    One verdict serves the stored row, the MLflow run and the HTML report.
    """
    from keelwatch.monitoring.drift.engine import compute_drift
    from keelwatch.monitoring.drift.profiles import ReferenceProfile as ProfileType
    from keelwatch.monitoring.service.html_report import summarise_report

    window_rows = summary["window_rows"]
    if window_rows < config.min_rows:
        summary.update(
            status=DriftStatus.INSUFFICIENT_DATA.value,
            detail=f"window has {window_rows} rows; the monitor needs at least {config.min_rows}",
            dataset_drift=None,
            share_drifted=None,
            columns={},
        )
        return DriftStatus.INSUFFICIENT_DATA, None
    report = compute_drift(reference, window, _drift_config(config, reference))
    verdict = summarise_report(report)
    if isinstance(window, ProfileType):
        _add_sketch_ks(verdict["columns"], reference, window)
    summary.update(verdict)
    return DriftStatus(verdict["status"]), report


def _store_result(
    session: Session,
    job_id: str,
    params: CheckParams,
    status: DriftStatus,
    summary: dict[str, Any],
    *,
    started: datetime,
) -> DriftResult:
    """The result row and its signals, once per job (a redelivered task gets the stored one
    back and writes nothing)."""
    result, inserted = monitor_store.insert_result(
        session,
        monitor_id=params.monitor_id,
        job_id=job_id,
        model_name=params.model_name,
        model_version=params.model_version,
        status=status,
        dataset_drift=summary.get("dataset_drift"),
        share_drifted=summary.get("share_drifted"),
        columns=summary.get("columns", {}),
        report=summary,
        window_rows=summary["window_rows"],
        mode=params.mode.value,
        started_at=started,
        finished_at=utcnow(),
    )
    if inserted:  # a redelivered task already wrote the signals with the row
        _write_signals(session, params, result)
    return result


def _write_signals(session: Session, params: CheckParams, result: DriftResult) -> None:
    """The result's signals, in the transaction that stores the result (rules never see
    signals of a result that was rolled back)."""
    from keelwatch.alerting.signals import signals_for
    from keelwatch.storage.signals import write_signals

    labels = {"monitor": params.monitor_name}
    try:
        model_ref = monitor_store.get_monitor_by_id(session, params.monitor_id).model_ref
    except NotFoundError:  # deleted while the check ran: the signals still say which monitor
        model_ref = ""
    if "@" in model_ref:  # the monitor follows an alias; a version ref has none
        labels["alias"] = model_ref.rpartition("@")[2]
    signals = signals_for(result, labels=labels)
    write_signals(session, signals)
    evaluate_or_defer(session, signals, utcnow(), what="drift")


def _finish_check_job(session: Session, job_id: str, result: DriftResult) -> None:
    """The check's job succeeded (whatever the verdict): it points at its result."""
    finish_job(
        session,
        job_id,
        status=JobStatus.SUCCEEDED,
        result={
            "result_id": result.id,
            "status": result.status.value,
            "window_rows": result.window_rows,
        },
    )


def _pictures(
    job_id: str, reference: ReferenceProfile, window: pd.DataFrame | ReferenceProfile
) -> dict[str, ColumnPicture]:
    """Per-column pictures for the HTML report; none if drawing fails."""
    from keelwatch.monitoring.service.html_report import column_pictures

    try:
        return column_pictures(reference, window)
    except Exception:  # a picture must never cost the statistical result
        logger.exception("drift check %s: could not draw its report's pictures", job_id)
        return {}


def _report_samples(
    reference: ReferenceProfile, window: pd.DataFrame | ReferenceProfile, config: MonitorConfig
) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """(reference, current) samples for Evidently's second opinion; none unless configured."""
    import numpy as np

    from keelwatch.monitoring.drift.profiles import ReferenceProfile as ProfileType
    from keelwatch.monitoring.service.outputs import sample_from_profile

    sample_rows = config.report_sample_rows if config.second_opinion else 0
    if not sample_rows:
        return None, None
    rng = np.random.default_rng(0)  # the same samples on every retry
    reference_sample = sample_from_profile(reference, sample_rows, rng)
    if isinstance(window, ProfileType):
        return reference_sample, sample_from_profile(window, sample_rows, rng)
    return reference_sample, window.sample(n=min(sample_rows, len(window)), random_state=0)


def _log_outputs(
    db: Database,
    settings: Settings,
    job_id: str,
    params: CheckParams,
    result: DriftResult,
    summary: dict[str, Any],
    pictures: dict[str, ColumnPicture],
    samples: tuple[pd.DataFrame | None, pd.DataFrame | None],
) -> DriftResult:
    """Log the MLflow run and point the stored result at it; MLflow down leaves it without."""
    from keelwatch.monitoring.service.outputs import log_check_run

    try:
        run_id, html_uri = log_check_run(
            settings,
            monitor_name=params.monitor_name,
            job_id=job_id,
            model_name=params.model_name,
            model_version=params.model_version,
            result=summary,
            pictures=pictures,
            reference_sample=samples[0],
            current_sample=samples[1],
        )
    except Exception:  # MLflow down: the stored result stands, the run is missing
        logger.exception("drift check %s: could not log its MLflow run", job_id)
        return result
    with db.session() as session:
        monitor_store.set_result_outputs(
            session, result.id, mlflow_run_id=run_id, report_artifact_uri=html_uri
        )
        stored = monitor_store.result_for_job(session, job_id)
    assert stored is not None
    return stored


def record_error(
    db: Database, job_id: str, params: CheckParams, message: str, *, started: datetime
) -> DriftResult:
    """Store an ``error`` result and finish the job failed (once)."""
    with db.session() as session:
        result, inserted = monitor_store.insert_result(
            session,
            monitor_id=params.monitor_id,
            job_id=job_id,
            model_name=params.model_name,
            model_version=params.model_version,
            status=DriftStatus.ERROR,
            dataset_drift=None,
            share_drifted=None,
            columns={},
            report={"status": "error", "error": message, "mode": params.mode.value},
            window_rows=0,
            mode=params.mode.value,
            started_at=started,
            finished_at=utcnow(),
            error=message,
        )
        if inserted:
            _write_signals(session, params, result)
        finish_job(session, job_id, status=JobStatus.FAILED, error=message)
    return result


def fail_check(db: Database, job_id: str, message: str) -> None:
    """Record that a check's task gave up (retries exhausted, time limit)."""
    params, finished = check_params(db, job_id)
    if not finished:
        record_error(db, job_id, params, message, started=utcnow())


def distributed_note(window: ReferenceProfile) -> dict[str, Any]:
    """What a check on merged profiles reports, with the DKW bound for sampled columns."""
    import math

    sampled = {}
    for name, column in window.columns.items():
        if column.numeric is not None and column.numeric.is_sample:
            k = int(column.numeric.support.values.size)
            epsilon = math.sqrt(math.log(2 / (1 - DKW_CONFIDENCE)) / (2 * k))
            sampled[name] = {"sample_values": k, "ks_epsilon": round(epsilon, 6)}
    return {
        "exact": [
            "row/missing/infinite counts",
            "histograms",
            "category counts",
            "moments",
            "psi",
            "kl",
            "kl_symmetric",
            "js",
            "chi2",
            "z",
        ],
        "sampled_columns": sampled,
        "dkw_confidence": DKW_CONFIDENCE,
        "note": (
            "KS/Wasserstein on columns listed in sampled_columns use a uniform random sample "
            "of the window's values: the KS statistic is within ks_epsilon of the exact one "
            "with probability dkw_confidence and its p-value is the sample's (conservative); "
            "ks_sketch gives a deterministic bound."
        ),
    }


def partition_profile_path(settings: Settings, job_id: str, index: int) -> Path:
    """Where partition ``index`` of check ``job_id`` keeps its profile."""
    return settings.data_dir / "drift" / job_id / f"profile-part-{index:05d}.npz"


def peak_rss_bytes() -> int:
    """This process's peak resident set size (``getrusage``; kilobytes on Linux)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _add_sketch_ks(
    columns: dict[str, Any], reference: ReferenceProfile, window: ReferenceProfile
) -> None:
    from keelwatch.monitoring.drift.sketch import ks_statistic_from_sketches

    for name, entry in columns.items():
        ref = reference.columns.get(name)
        cur = window.columns.get(name)
        if ref is None or cur is None or ref.numeric is None or cur.numeric is None:
            continue
        if not ref.numeric.count or not cur.numeric.count:
            continue
        statistic, bound = ks_statistic_from_sketches(ref.numeric.sketch, cur.numeric.sketch)
        entry["ks_sketch"] = {"statistic": statistic, "bound": bound}


def _reference(settings: Settings, params: CheckParams) -> ReferenceProfile:
    from keelwatch.monitoring.service.profiles import load_reference_profile

    info = ReferenceProfileInfo(
        id=int(params.profile["id"]),
        model_name=params.model_name,
        model_version=params.model_version,
        artifact_uri=str(params.profile["artifact_uri"]),
        rows=int(params.profile["rows"]),
        columns=list(params.profile["columns"]),
        source="",
        created_by="",
        created_at=datetime.fromisoformat(params.profile["updated_at"]),
        updated_at=datetime.fromisoformat(params.profile["updated_at"]),
    )
    return load_reference_profile(settings, info)


def _roles(reference: ReferenceProfile) -> dict[str, str]:
    return {name: column.role for name, column in reference.columns.items()}


def _columns(reference: ReferenceProfile, config: MonitorConfig) -> list[str]:
    if config.columns is None:
        return list(reference.columns)
    return [c for c in reference.columns if c in set(config.columns)]


def _subset(reference: ReferenceProfile, columns: list[str]) -> ReferenceProfile:
    from keelwatch.monitoring.drift.profiles import ReferenceProfile as ProfileType

    if list(reference.columns) == columns:
        return reference
    kept = {name: reference.columns[name] for name in columns if name in reference.columns}
    return ProfileType(kept, reference.rows, dict(reference.metadata))


def _job_created(db: Database, job_id: str) -> datetime:
    with db.session() as session:
        return get_job(session, job_id).created_at
