"""What a monitor's window is made of, pinned when a check is submitted, and reading it back.

Planning fixes the rows once so a retried or redelivered task reads exactly the same data:

* prediction-log windows (``rows``, ``time``) become inclusive id ranges of ``prediction_log``
  rows of the monitored model version, at most ``partition_rows`` rows each (rows logged later
  are outside every range);
* ``dataset`` windows become row ranges of the file (aligned on Parquet row groups);
* ``job`` windows have no partitions: the batch-inference job already profiled its input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from keelwatch.contract import JOB_BATCH_INFERENCE
from keelwatch.errors import InvalidInputError, NotFoundError
from keelwatch.monitoring.service.specs import WindowSpec
from keelwatch.storage.jobs import get_job
from keelwatch.storage.windows import predictions_in_id_range, window_prediction_ids

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.orm import Session

    from keelwatch.storage.db import Database

SourceKind = Literal["prediction_log", "dataset", "job_profile"]

#: File names of input profiles next to a batch job's output parts. The leading underscore
#: keeps them out of Parquet dataset readers (pyarrow skips ``_`` and ``.`` files).
JOB_PROFILE_PART_PREFIX = "_profile-part-"
JOB_PROFILE_NAME = "_input-profile.npz"


@dataclass(frozen=True)
class WindowPlan:
    """A window pinned to concrete rows: ``partitions`` are ``(start, stop)`` bounds."""

    source: SourceKind
    rows: int
    partitions: list[tuple[int, int]]
    detail: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """Stored in the job's params."""
        return {
            "source": self.source,
            "rows": self.rows,
            "partitions": [list(p) for p in self.partitions],
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WindowPlan:
        """Inverse of :meth:`as_json`."""
        return cls(
            source=data["source"],
            rows=int(data["rows"]),
            partitions=[(int(a), int(b)) for a, b in data["partitions"]],
            detail=dict(data.get("detail", {})),
        )


def plan_window(
    session: Session,
    window: WindowSpec,
    *,
    model_name: str,
    model_version: str,
    partition_rows: int,
    now: datetime,
) -> WindowPlan:
    """Pin ``window`` to rows; raises InvalidInputError/NotFoundError for unusable windows."""
    if window.kind in ("rows", "time"):
        return _plan_log_window(
            session,
            window,
            model_name=model_name,
            model_version=model_version,
            partition_rows=partition_rows,
            now=now,
        )
    if window.kind == "dataset":
        from keelwatch.inference.dataset import inspect_input
        from keelwatch.inference.planning import plan_chunks

        assert window.uri is not None
        info = inspect_input(window.uri)
        return WindowPlan(
            "dataset",
            info.rows,
            plan_chunks(info.rows, partition_rows, info.row_group_rows),
            {"path": str(info.path), "format": info.format.value, "columns": info.columns},
        )
    assert window.job_id is not None
    job = get_job(session, window.job_id)
    if job.kind != JOB_BATCH_INFERENCE:
        raise InvalidInputError(f"job {job.id} is a {job.kind} job, not batch inference")
    return WindowPlan(
        "job_profile",
        job.rows_total,
        [],
        {"job_id": job.id, "output_dir": str(job.params.get("output_dir", ""))},
    )


def _plan_log_window(
    session: Session,
    window: WindowSpec,
    *,
    model_name: str,
    model_version: str,
    partition_rows: int,
    now: datetime,
) -> WindowPlan:
    detail: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if window.kind == "rows":
        assert window.last_rows is not None
        ids = window_prediction_ids(
            session,
            model_name=model_name,
            model_version=model_version,
            last_rows=window.last_rows,
        )
    else:
        since = window.since or now - timedelta(seconds=window.last_seconds or 0)
        until = window.until or now
        ids = window_prediction_ids(
            session, model_name=model_name, model_version=model_version, since=since, until=until
        )
        detail.update(since=since.isoformat(), until=until.isoformat())
    partitions = [
        (ids[i], ids[min(i + partition_rows, len(ids)) - 1])
        for i in range(0, len(ids), partition_rows)
    ]
    counts = [min(partition_rows, len(ids) - i) for i in range(0, len(ids), partition_rows)]
    detail["partition_rows"] = counts
    return WindowPlan("prediction_log", len(ids), partitions, detail)


def read_partition(
    db: Database,
    plan: WindowPlan,
    partition: tuple[int, int],
    columns: list[str],
    roles: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """The rows of one partition, restricted to ``columns`` that exist there.

    ``roles`` (column → feature/prediction/target) says where prediction-log columns come from:
    features from the logged inputs, predictions from the logged outputs, the target from the
    labels recorded for each request (missing where a row has no label yet, so every partition
    has the same columns and their profiles merge).
    """

    start, stop = partition
    roles = roles or {}
    if plan.source == "prediction_log":
        return _read_log_rows(db, plan, start, stop, columns, roles)
    if plan.source == "dataset":
        from keelwatch.inference.dataset import InputFormat, read_rows

        present = [c for c in columns if c in plan.detail["columns"]]
        table = read_rows(
            Path(plan.detail["path"]), InputFormat(plan.detail["format"]), start, stop, present
        )
        frame: pd.DataFrame = table.to_pandas()
        return frame
    raise ValueError(f"a {plan.source} window has no partitions to read")


def _read_log_rows(
    db: Database,
    plan: WindowPlan,
    start: int,
    stop: int,
    columns: list[str],
    roles: Mapping[str, str],
) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    from keelwatch.storage.labels import labels_for_request_ids

    outputs_wanted = [c for c in columns if roles.get(c) == "prediction"]
    targets = [c for c in columns if roles.get(c) == "target"]
    with db.session() as session:
        rows = predictions_in_id_range(
            session,
            model_name=plan.detail["model_name"],
            model_version=plan.detail["model_version"],
            start=start,
            stop=stop,
        )
        labels = labels_for_request_ids(session, [r[0] for r in rows]) if targets else {}
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame.from_records([inputs for _, inputs, _ in rows])
    features = [c for c in columns if roles.get(c, "feature") == "feature" and c in frame.columns]
    frame = frame[features]
    for name in outputs_wanted:
        if any(name in outputs for _, _, outputs in rows):
            frame[name] = [outputs.get(name) for _, _, outputs in rows]
    for name in targets:
        values = [labels.get(request_id) for request_id, _, _ in rows]
        # All-missing as float NaN: an object column of None would infer as categorical.
        frame[name] = values if any(v is not None for v in values) else np.full(len(values), np.nan)
    return frame


def read_window(
    db: Database, plan: WindowPlan, columns: list[str], roles: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """The whole window as one frame (small windows, in-process checks).

    A target column without a single label is left out, which the drift engine reports as
    "no labels in this window yet".
    """
    import pandas as pd

    frames = [read_partition(db, plan, p, columns, roles) for p in plan.partitions]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in columns})
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    unlabelled = [
        c
        for c in columns
        if (roles or {}).get(c) == "target" and c in frame and frame[c].isna().all()
    ]
    return frame.drop(columns=unlabelled)


def job_profile_paths(output_dir: Path) -> tuple[Path, list[Path]]:
    """(merged profile, chunk profile parts) of a batch job's output folder."""
    return output_dir / JOB_PROFILE_NAME, sorted(output_dir.glob(f"{JOB_PROFILE_PART_PREFIX}*"))


def require_job_finished(session: Session, job_id: str) -> None:
    """NotFoundError/InvalidInputError unless ``job_id`` is a succeeded batch job."""
    job = get_job(session, job_id)
    if job.status.value != "succeeded":
        raise InvalidInputError(f"batch job {job_id} is {job.status.value}, not succeeded")
    if not job.params.get("output_dir"):
        raise NotFoundError(f"batch job {job_id} has no output folder")
