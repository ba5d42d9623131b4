"""The new-version trigger (SQLite and PostgreSQL): versions registered with a plain
``MlflowClient`` (not Keelwatch) start an evaluation on the model's schedule dataset, or the
gate when the model has a gate policy; first sight triggers nothing; racing watchers trigger a
version once; the MLflow webhook ``model_version.created`` queues the watch, which a real
worker runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from pydantic import SecretStr

from keelwatch.contract import JOB_EVALUATION, JOB_GATE_CHECK
from keelwatch.monitoring.service import eval_schedules as schedules
from keelwatch.monitoring.service.gate import set_policy
from keelwatch.monitoring.service.version_watch import (
    WATCHER_ACTOR,
    VersionTrigger,
    VersionWatchOutcome,
    watch_versions,
)
from keelwatch.settings import Settings
from keelwatch.storage.jobs import list_jobs
from keelwatch.wiring import Services
from tests.conftest import WorkerProcess
from tests.integration.conftest import api_client
from tests.integration.test_alias_governance_webhooks import ROUTE, SECRET, delivery
from tests.integration.test_eval_schedules import (
    MODEL,
    RecordingSender,
    _dataset,
    _register_model,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    services = Services(settings)
    yield services
    services.close()


def _outside_version(settings: Settings, name: str = MODEL) -> str:
    """A version created as a script outside Keelwatch would: a plain MlflowClient, from the
    artifacts of the model's first version."""
    client = MlflowClient(
        tracking_uri=settings.mlflow.tracking_uri, registry_uri=settings.mlflow.registry_uri
    )
    source = client.get_model_version(name, "1").source
    assert source is not None
    return str(client.create_model_version(name, source).version)


def _evaluation_schedule(services: Services, dataset: str, model: str = MODEL) -> None:
    with services.db.session() as session:
        schedules.set_schedule(
            session,
            name=f"{model}-nightly",
            model=f"{model}@champion",
            cron="0 2 * * *",
            kind="evaluation",
            dataset=dataset,
            suites=["classification"],
            actor="ann",
        )


def _kinds(outcome: VersionWatchOutcome) -> list[tuple[str, str, str, bool]]:
    return [(t.model, t.version, t.kind, t.job_id is not None) for t in outcome.triggered]


def test_new_versions_start_an_evaluation_or_the_gate_once(
    services: Services, settings: Settings, tmp_path: Path
) -> None:
    db, registry, sender = services.db, services.registry, RecordingSender()
    _register_model(services)
    dataset = _dataset(db, tmp_path)

    def watch() -> VersionWatchOutcome:
        return watch_versions(db, sender, registry)

    # First sight: recorded, nothing triggered (no storm at install).
    first = watch()
    assert (first.models, first.first_seen, first.triggered) == (1, [MODEL], [])

    # No gate policy, no schedule: a new version is noticed and starts nothing.
    v2 = _outside_version(settings)
    assert _kinds(watch()) == [(MODEL, v2, "none", False)]

    # A schedule with a dataset: its dataset and suites evaluate the new version.
    _evaluation_schedule(services, dataset)
    v3 = _outside_version(settings)
    outcome = watch()
    assert _kinds(outcome) == [(MODEL, v3, "evaluation", True)]
    assert watch().triggered == []  # seen: never again
    with db.session() as session:
        (job,) = list_jobs(session, kind=JOB_EVALUATION)
    assert job.id == outcome.triggered[0].job_id
    assert (job.params["model_version"], job.params["trigger"]) == (v3, "new_version")
    assert (job.params["dataset"]["name"], job.params["suites"]) == (dataset, ["classification"])
    assert job.submitted_by == WATCHER_ACTOR

    # A gate policy wins over the schedule: a gate check with the new version as challenger,
    # for every version registered since the last look (two at once here).
    registry.approve(MODEL, "1", actor="carol", reason="baseline")
    registry.set_alias(MODEL, "champion", "1", actor="carol", reason="baseline")
    with db.session() as session:
        set_policy(
            session,
            MODEL,
            {"dataset": dataset, "any_of": [{"all_of": [{"metric": "f1_macro", "min_gain": 0}]}]},
            actor="ann",
        )
    v4, v5 = _outside_version(settings), _outside_version(settings)
    outcome = watch()
    assert _kinds(outcome) == [
        (MODEL, v4, "gate_check", True),
        (MODEL, v5, "gate_check", True),
    ]
    with db.session() as session:
        checks = sorted(list_jobs(session, kind=JOB_GATE_CHECK), key=lambda j: j.created_at)
    assert [j.id for j in checks] == [t.job_id for t in outcome.triggered]
    assert [j.params["challenger"]["version"] for j in checks] == [v4, v5]
    assert {j.params["champion"]["version"] for j in checks} == {"1"}
    assert {j.params.get("trigger") for j in checks} == {"new_version"}

    # A trigger that cannot start records why; the version is still spent.
    registry.clear_alias(MODEL, "champion", actor="carol", reason="test")
    v6 = _outside_version(settings)
    (failed,) = watch().triggered
    assert (failed.version, failed.kind, failed.job_id) == (v6, "gate_check", None)
    assert failed.error is not None and "ConflictError" in failed.error
    assert watch().triggered == []


def test_racing_watchers_trigger_each_version_once(
    services: Services, settings: Settings, tmp_path: Path
) -> None:
    db, registry, sender = services.db, services.registry, RecordingSender()
    _register_model(services)
    _evaluation_schedule(services, _dataset(db, tmp_path))
    watch_versions(db, sender, registry)
    _outside_version(settings)
    _outside_version(settings)
    barrier = threading.Barrier(3)
    outcomes: list[VersionWatchOutcome] = []

    def watch() -> None:
        barrier.wait()
        outcomes.append(watch_versions(db, sender, registry))

    threads = [threading.Thread(target=watch) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    triggered: list[VersionTrigger] = [t for outcome in outcomes for t in outcome.triggered]
    assert sorted(t.version for t in triggered) == ["2", "3"]
    assert all(t.kind == "evaluation" and t.job_id for t in triggered), triggered
    with db.session() as session:
        assert len(list_jobs(session, kind=JOB_EVALUATION)) == 2
    assert len(sender.sent) == 2


def test_the_webhook_queues_a_version_watch_that_a_worker_runs(
    settings: Settings,
    services: Services,
    tmp_path: Path,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    _register_model(services)
    _evaluation_schedule(services, _dataset(services.db, tmp_path))
    watch_versions(services.db, RecordingSender(), services.registry)  # first sight
    version = _outside_version(settings)

    start_worker(settings, queues="monitoring", concurrency=1)  # no beat: only the webhook
    settings.registry.webhook_secret = SecretStr(SECRET)
    with api_client(settings) as client:
        client.headers.pop("Authorization")  # MLflow sends no Keelwatch token
        body, headers = delivery("model_version.created", data={"name": MODEL, "version": version})
        accepted = client.post(ROUTE, content=body, headers=headers)
    assert accepted.status_code == 202, accepted.text
    assert accepted.json() == {"event": "model_version.created", "model": MODEL, "queued": True}

    jobs: list[Any] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not jobs:
        with services.db.session() as session:
            jobs = list_jobs(session, kind=JOB_EVALUATION)
        time.sleep(0.3)
    assert [(j.params["model_version"], j.params["trigger"]) for j in jobs] == [
        (version, "new_version")
    ]
