"""``/metrics`` is honest: every family it exposes is set by the API process and documented;
failed jobs and each model's champion version are gauges read from their source of truth."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from keelwatch.api.app import create_app
from keelwatch.entities import JobStatus
from keelwatch.metrics import ChampionVersionCollector
from keelwatch.settings import Settings
from keelwatch.storage.jobs import create_job, finish_job
from keelwatch.wiring import Services
from tests.conftest import REPO_ROOT
from tests.integration.test_drift_checks import MODEL, register

pytestmark = pytest.mark.integration

DOCUMENTED_IN = ("docs/operations.md", "docs/monitoring.md")


def scrape(client: TestClient) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """family name → {sorted labels: value} of one real scrape."""
    response = client.get("/metrics")
    assert response.status_code == 200
    families: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(response.text):
        samples = families.setdefault(family.name, {})
        for sample in family.samples:
            if sample.name in (family.name, f"{family.name}_total"):
                samples[tuple(sorted(sample.labels.items()))] = sample.value
    return families


def test_failed_jobs_and_champion_version_gauges(settings: Settings, tmp_path: Path) -> None:
    services = Services(settings)
    try:
        register(services, rows=300)
        second = register(services, rows=300)
        with services.db.session() as session:
            for outcome in (JobStatus.FAILED, JobStatus.FAILED, JobStatus.SUCCEEDED):
                job = create_job(session, kind="batch_inference", params={}, submitted_by="t")
                finish_job(session, job.id, status=outcome, error="boom")
            create_job(session, kind="batch_inference", params={}, submitted_by="t")
    finally:
        services.close()

    with TestClient(create_app(settings)) as client:
        families = scrape(client)
    jobs = {labels[0][1]: value for labels, value in families["keelwatch_jobs"].items()}
    expected = {"failed": 2.0, "pending": 1.0, "running": 0.0, "succeeded": 1.0}
    assert {state: jobs[state] for state in expected} == expected
    # Every other state (one added later included) is reported, as 0 here.
    assert {value for state, value in jobs.items() if state not in expected} <= {0.0}
    assert families["keelwatch_champion_version"] == {(("model", MODEL),): float(second)}


def test_every_exposed_family_is_set_and_documented(client: TestClient) -> None:
    client.get("/healthz")
    client.get("/no/such/route")
    families = scrape(client)
    # Declared in the API but never set there, a worker-side counter would always read 0.
    assert "keelwatch_worker_inference_rows" not in families
    docs = "\n".join((REPO_ROOT / path).read_text() for path in DOCUMENTED_IN)
    # prometheus_client adds a "<name>_created" timestamp beside counters and histograms.
    names = {name.removesuffix("_created") for name in families}
    undocumented = sorted(
        name for name in names if f"`{name}`" not in docs and f"`{name}_total`" not in docs
    )
    assert undocumented == [], undocumented
    assert {"keelwatch_jobs", "keelwatch_queue_depth", "keelwatch_errors"} <= set(families)


def test_champion_gauge_reads_the_registry_at_most_once_per_cache_period() -> None:
    now = [0.0]
    reads: list[dict[str, str]] = [{"churn": "3"}, {"churn": "4"}]
    calls = []

    def probe() -> dict[str, str]:
        calls.append(now[0])
        return reads[min(len(calls) - 1, 1)]

    collector = ChampionVersionCollector(probe, cache_s=30.0, clock=lambda: now[0])

    def value() -> float:
        [family] = collector.collect()
        [sample] = family.samples
        return sample.value

    assert value() == 3.0
    now[0] = 29.0
    assert value() == 3.0
    now[0] = 31.0
    assert value() == 4.0
    assert calls == [0.0, 31.0]


def test_worker_series_are_documented_under_their_exposed_names() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from keelwatch_workers import metrics as worker_metrics

    registry = CollectorRegistry()
    for collector in (
        worker_metrics.ROWS_SCORED,
        worker_metrics.CHUNK_SECONDS,
        worker_metrics.TASK_ERRORS,
    ):
        registry.register(collector)
    exposed = {
        family.name for family in text_string_to_metric_families(generate_latest(registry).decode())
    }
    assert len(exposed) >= 3, exposed
    docs = (REPO_ROOT / "docs/inference.md").read_text()
    for name in exposed - {n for n in exposed if n.endswith("_created")}:
        assert f"`{name}`" in docs or f"`{name}_total`" in docs, name
