"""Chaos, bounded (issue #13 item 7): workers SIGKILLed mid-chunk, the Redis broker restarted
empty mid-job, PostgreSQL backends terminated mid-job, MLflow killed before a promotion.

Each test runs one scenario of :mod:`tests.integration.chaos_scenarios` at
:data:`~tests.integration.chaos.BOUNDED` sizes on real processes (PostgreSQL, Redis, compose's
worker command, an MLflow server) and asserts 0 rows lost, 0 duplicated, none wrong, no job hung.
``pytest -s`` shows each scenario's table; ``benchmarks/chaos_bench.py`` runs the same scenarios
at full size.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.integration.chaos import BOUNDED, ChaosEnv, ChaosResult, format_table
from tests.integration.chaos_scenarios import RUNNERS

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.timeout(240)]


@pytest.fixture
def env(pg_url: str, redis_url: str, mlflow_uri: str, tmp_path: Path) -> ChaosEnv:
    """A throw-away PostgreSQL database, this session's Redis database, a fresh MLflow store."""
    return ChaosEnv(tmp_path, pg_url, redis_url, mlflow_uri)


@pytest.fixture(autouse=True)
def _restore_mlflow_http_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    # The registry sets MLflow's process-wide HTTP limits; put MLflow's defaults back after.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7")


def run_scenario(name: str, env: ChaosEnv) -> ChaosResult:
    result = RUNNERS[name](env, BOUNDED)
    print(f"\n{format_table([result])}")
    return result


def assert_exact(result: ChaosResult) -> None:
    """Nothing lost, duplicated, wrong or hung, in the output and in the prediction log."""
    assert result.rows_expected > 0
    figures = (
        result.output_lost,
        result.output_dup,
        result.output_wrong,
        result.predlog_lost,
        result.predlog_dup,
        result.jobs_hung,
    )
    assert figures == (0, 0, 0, 0, 0, 0), format_table([result])
    assert result.problems == [], format_table([result])


def test_workers_sigkilled_mid_chunk_lose_and_duplicate_nothing(env: ChaosEnv) -> None:
    result = run_scenario("worker-kill", env)
    assert result.runs == BOUNDED.worker_kills
    assert result.reruns > 0  # the kills interrupted chunks, which then ran again
    assert result.jobs_completed == BOUNDED.worker_kill_jobs
    assert_exact(result)


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_broker_restarted_empty_mid_job_the_job_completes_exactly(env: ChaosEnv) -> None:
    result = run_scenario("broker-restart", env)
    assert result.runs == BOUNDED.broker_restarts
    assert result.jobs_completed == BOUNDED.broker_restart_jobs
    assert_exact(result)


def test_postgres_backends_terminated_mid_job_complete_or_fail_with_a_message(
    env: ChaosEnv,
) -> None:
    result = run_scenario("pg-terminate", env)
    assert result.runs == BOUNDED.pg_terminations
    assert result.jobs_completed + result.jobs_failed == BOUNDED.pg_terminate_jobs
    assert all(message.split(": ", 1)[1] for message in result.failures)
    if result.jobs_completed:
        assert_exact(result)
    else:
        assert result.jobs_hung == 0 and result.problems == [], format_table([result])


def test_promotion_with_mlflow_down_answers_503_and_writes_nothing(env: ChaosEnv) -> None:
    result = run_scenario("mlflow-down-promote", env)
    assert result.runs == BOUNDED.mlflow_outages
    assert result.problems == [], format_table([result])
