"""A batch job's chunk profiles are merged once, capped and deleted when the job finishes; a
``job:<id>`` monitor reads the merged profile and reaches the verdict an in-process check on the
scored rows reaches. Real worker subprocess, Redis, SQLite, a real MLflow store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from keelwatch.contract import BatchInferenceRequest
from keelwatch.entities import JobStatus
from keelwatch.entities.monitors import DriftStatus
from keelwatch.inference import submit_batch_inference
from keelwatch.monitoring.drift import build_profile, compute_drift, load_profile, save_profile
from keelwatch.monitoring.service import service
from keelwatch.monitoring.service.job_profiles import (
    JOB_PROFILE_SAMPLE_VALUES,
    merge_job_profile,
    merged_job_profile,
)
from keelwatch.monitoring.service.profiles import load_reference_profile
from keelwatch.monitoring.service.windows import JOB_PROFILE_NAME, JOB_PROFILE_PART_PREFIX
from keelwatch.storage import profiles as profile_store
from keelwatch.wiring import Services
from tests.conftest import make_settings
from tests.integration.test_drift_checks import MODEL, frame, register, setup, wait_result
from tests.integration.test_inference_fleet import wait_for_job

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ROWS = 30_000  # more distinct values per column than the merged profile keeps
#: Values and priorities (8 bytes each) per numeric column, plus headroom for the sketch,
#: histogram and metadata of every column.
PROFILE_CAP_BYTES = 3 * JOB_PROFILE_SAMPLE_VALUES * 16 + 200_000


def test_job_leaves_one_capped_profile_and_its_window_agrees_with_an_in_process_check(
    tmp_path: Path,
    sqlite_url: str,
    mlflow_uri: str,
    redis_url: str,
    start_worker: Callable[..., Any],
) -> None:
    settings = make_settings(
        tmp_path, database_url=sqlite_url, mlflow_uri=mlflow_uri, broker_url=redis_url
    )
    services = setup(settings)
    version = register(services, rows=3000)
    shifted = frame(ROWS, seed=5, shift=3.0)
    source = tmp_path / "in" / "shifted.parquet"
    source.parent.mkdir()
    shifted.to_parquet(source, index=False, row_group_size=5000)
    start_worker(settings, queues="cpu,monitoring", concurrency=2)
    try:
        submitted = submit_batch_inference(
            services.db,
            services.sender,
            services.registry,
            services.settings.inference,
            BatchInferenceRequest(
                model=f"{MODEL}/{version}", input_uri=source.as_uri(), chunk_rows=5000
            ),
            actor="ann",
        )
        job = wait_for_job(services, submitted.id)
        assert job.status is JobStatus.SUCCEEDED, job.error
        assert job.chunks_total == 6
        output = Path(job.params["output_dir"])
        profiles = sorted(p.name for p in output.glob("_*.npz"))
        assert profiles == [JOB_PROFILE_NAME], profiles
        assert not list(output.glob(f"{JOB_PROFILE_PART_PREFIX}*"))
        merged_path = output / JOB_PROFILE_NAME
        assert merged_path.stat().st_size < PROFILE_CAP_BYTES
        merged = load_profile(merged_path)
        assert merged.rows == ROWS
        income = merged.columns["income"].numeric
        assert income is not None and income.count == ROWS
        assert income.support.values.size == JOB_PROFILE_SAMPLE_VALUES  # a capped sample
        assert int(income.bin_counts.sum()) == ROWS  # histograms stay exact

        with services.db.session() as session:
            service.create_monitor(session, services.registry,
                {"name": "batch", "model": f"{MODEL}/{version}",
                 "window": {"kind": "job", "job_id": job.id}},
                actor="ann",
            )  # fmt: skip
        check = service.submit_check(
            services.db, services.sender, services.registry, "batch", actor="ann"
        )
        result = wait_result(services, check.id)
    finally:
        services.close()
    assert result.status is DriftStatus.DRIFT, result.report
    assert result.mode == "job_profile" and result.window_rows == ROWS

    # The same verdict, column by column, as testing the scored rows themselves.
    services = Services(settings)
    try:
        with services.db.session() as session:
            info = profile_store.get_reference_profile(session, MODEL, version)
        reference = load_reference_profile(settings, info)
    finally:
        services.close()
    scored = pq.read_table(output).to_pandas().sort_values("row_index").reset_index(drop=True)
    window = shifted.copy()
    for name, column in reference.columns.items():
        if column.role == "prediction":
            window[name] = scored[name].to_numpy()
    exact = compute_drift(reference, window)
    for verdict in exact.columns:
        stored = result.columns[verdict.column]
        assert (stored["status"], stored["drifted"]) == (verdict.status, verdict.drifted), verdict
    assert result.columns["income"]["drifted"] is True
    assert result.report["prediction_drifted"] == exact.prediction_drifted


def test_jobs_finished_before_merging_still_read_their_parts(tmp_path: Path) -> None:
    """Old outputs hold only parts: the reader merges them (capped) and leaves them."""
    data = frame(3 * JOB_PROFILE_SAMPLE_VALUES, seed=3)
    reference = build_profile(frame(2000, seed=1))
    for index, start in enumerate(range(0, len(data), JOB_PROFILE_SAMPLE_VALUES)):
        part = build_profile(
            data.iloc[start : start + JOB_PROFILE_SAMPLE_VALUES], like=reference, seed=index + 1
        )
        save_profile(part, tmp_path / f"{JOB_PROFILE_PART_PREFIX}{index:05d}.npz")
    read = merged_job_profile(tmp_path)
    assert read.rows == len(data)
    assert len(list(tmp_path.glob(f"{JOB_PROFILE_PART_PREFIX}*"))) == 3
    assert (tmp_path / JOB_PROFILE_NAME).exists()
    income = read.columns["income"].numeric
    assert income is not None and income.support.values.size == JOB_PROFILE_SAMPLE_VALUES

    # A single chunk bigger than the cap is capped too, and its part deleted.
    single = tmp_path / "single"
    single.mkdir()
    save_profile(
        build_profile(data, like=reference), single / f"{JOB_PROFILE_PART_PREFIX}00000.npz"
    )
    capped = merge_job_profile(single, delete_parts=True)
    assert [p.name for p in single.iterdir()] == [JOB_PROFILE_NAME]
    income = capped.columns["income"].numeric
    assert income is not None and income.support.values.size == JOB_PROFILE_SAMPLE_VALUES
    assert capped.rows == len(data) and int(income.bin_counts.sum()) == len(data)
