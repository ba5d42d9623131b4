"""The retrain action on a training window: the champion's reference rows plus the labelled
prediction-log rows of the last N days, registered as the challenger with its reference
profile; refusals (too few rows, a trainer that raises) leave the champion alone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from keelwatch.actions.dispatch import dispatch_for_alerts
from keelwatch.actions.executor import TAG_TRAINER, execute_action
from keelwatch.actions.policies import parse_policy
from keelwatch.actions.training import TAG_TRAINING_DATA
from keelwatch.entities import LabelRecord, PredictionRecord
from keelwatch.entities.actions import ExecutionStatus
from keelwatch.entities.time import utcnow
from keelwatch.monitoring.service.profiles import attach_reference_profile
from keelwatch.settings import Settings
from keelwatch.storage import actions as store
from keelwatch.storage.audit import list_audit
from keelwatch.storage.labels import record_labels
from keelwatch.storage.predictions import insert_predictions
from keelwatch.storage.profiles import find_reference_profile
from keelwatch.wiring import Services
from tests.integration import trainers
from tests.integration.test_actions import MODEL, champion_chain, firing_alert, frame

pytestmark = pytest.mark.integration


class QueueRecorder:
    """A TaskSender that keeps each task name, its kwargs and its queue."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any], str | None]] = []

    def send_task(self, name: str, args: Any = None, kwargs: Any = None, **options: Any) -> None:
        del args
        self.sent.append((name, dict(kwargs or {}), options.get("queue")))


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    trainers.RECORDED.clear()
    built = Services(settings)
    yield built
    built.close()


def with_reference(services: Services, tmp_path: Path) -> tuple[str, Path]:
    """A champion (v1) whose reference profile was attached from a CSV file."""
    (v1,) = champion_chain(services, 1)
    path = tmp_path / "reference.csv"
    frame().to_csv(path, index=False)
    with services.db.session() as session:
        attach_reference_profile(
            session,
            services.registry,
            services.settings.mlflow,
            MODEL,
            v1,
            path,
            "ann",
            target="default",
        )
    return v1, path


def log_rows(services: Services, now: datetime) -> None:
    """Five labelled rows a day old, two unlabelled ones, three labelled ones 10 days old,
    and one labelled row of another model: only the first five are in a 7d window."""
    records = [("new", i, now - timedelta(days=1), MODEL) for i in range(5)]
    records += [("unlabelled", i, now - timedelta(hours=5), MODEL) for i in range(2)]
    records += [("old", i, now - timedelta(days=10), MODEL) for i in range(3)]
    records.append(("other", 0, now - timedelta(hours=1), "fraud"))
    with services.db.session() as session:
        insert_predictions(
            session,
            [
                PredictionRecord(
                    request_id=f"{kind}-{i}",
                    model_name=model,
                    model_version="1",
                    inputs={"income": 100.0 + i, "debt": float(i), "ignored": "x"},
                    outputs={"prediction": 0},
                    latency_ms=1.0,
                    created_at=at,
                )
                for kind, i, at, model in records
            ],
        )
        labels = [LabelRecord(f"new-{i}", i % 2) for i in range(5)]
        labels += [LabelRecord(f"old-{i}", 1) for i in range(3)]
        labels.append(LabelRecord("other-0", 1))
        record_labels(session, labels, "labeller")


def retrain_policy(**params: Any) -> Any:
    return parse_policy({"name": "retrain-on-drift", "action": "retrain", "params": params})


def run_retrain(services: Services, version: str, **params: Any) -> Any:
    sender = QueueRecorder()
    policy = retrain_policy(**params)
    now = utcnow()
    assert dispatch_for_alerts(services.db, sender, [firing_alert(version)], now, policies=[policy])
    ((_, payload, _),) = sender.sent
    return execute_action(services.db, services.registry, payload["execution_id"])


def set_trainer(services: Services, name: str) -> str:
    spec = f"tests.integration.trainers:{name}"
    services.registry.client.set_registered_model_tag(MODEL, TAG_TRAINER, spec)
    return spec


def test_retrain_trains_on_reference_plus_recent_labelled_rows(
    services: Services, tmp_path: Path
) -> None:
    v1, _ = with_reference(services, tmp_path)
    log_rows(services, utcnow())
    spec = set_trainer(services, "recording_logistic")

    done = run_retrain(services, v1, window="7d", min_rows=20)

    assert done.status is ExecutionStatus.SUCCEEDED, done.reason
    # The frame the trainer got, computed by hand: the 40 reference rows, then the five
    # labelled rows of the last 7 days in log order; the model's input columns only.
    expected = pd.concat(
        [
            frame(),
            pd.DataFrame(
                {
                    "income": [100.0, 101.0, 102.0, 103.0, 104.0],
                    "debt": [0.0, 1.0, 2.0, 3.0, 4.0],
                    "default": [0, 1, 0, 1, 0],
                }
            ),
        ],
        ignore_index=True,
    )
    (seen,) = trainers.RECORDED
    pd.testing.assert_frame_equal(seen, expected, check_dtype=False)

    new = done.result["version"]
    assert new != v1
    assert done.result["trainer"] == spec
    assert done.result["alias"] == "challenger"
    assert done.result["reference_rows"] == 40
    assert done.result["logged_rows"] == 5
    assert done.result["training_rows"] == 45
    assert done.result["window"] == "7d"
    assert done.result["reference"].endswith("reference.csv")
    registry = services.registry
    assert registry.resolve(f"{MODEL}@champion").version == v1  # never champion by itself
    assert registry.resolve(f"{MODEL}@challenger").version == new
    with services.db.session() as session:
        profile = find_reference_profile(session, MODEL, new)
        (succeeded,) = list_audit(session, action="action.succeeded")
    assert profile is not None and profile.rows == 45
    assert succeeded.actor == "policy:retrain-on-drift"
    # The window is kept with the version, so the next retrain (once it is champion) reads
    # its reference rows from there.
    info = registry.get_version(MODEL, new)
    assert info.tags[f"keelwatch.action.{done.id}"].startswith("retrain by policy")
    import mlflow.artifacts

    local = mlflow.artifacts.download_artifacts(
        artifact_uri=info.tags[TAG_TRAINING_DATA],
        dst_path=str(tmp_path / "dl"),
        tracking_uri=registry.tracking_uri,
    )
    pd.testing.assert_frame_equal(pd.read_parquet(local), expected, check_dtype=False)


def test_too_few_rows_fail_the_action_and_nothing_is_registered(
    services: Services, tmp_path: Path
) -> None:
    v1, _ = with_reference(services, tmp_path)
    log_rows(services, utcnow())
    set_trainer(services, "recording_logistic")

    done = run_retrain(services, v1, window="2d", min_rows=1000)

    assert done.status is ExecutionStatus.FAILED
    assert done.reason.startswith("the training data has 45 rows, fewer than min_rows 1000")
    assert "5 labelled rows of the last 2d" in done.reason
    assert trainers.RECORDED == []
    assert [v.version for v in services.registry.list_versions(MODEL)] == [v1]


def test_a_trainer_that_raises_fails_the_action_and_the_champion_is_untouched(
    services: Services, tmp_path: Path
) -> None:
    v1, _ = with_reference(services, tmp_path)
    spec = set_trainer(services, "broken")

    done = run_retrain(services, v1, min_rows=10)

    assert done.status is ExecutionStatus.FAILED
    assert done.reason == f"trainer {spec} raised ValueError: solver did not converge on 40 rows"
    registry = services.registry
    assert registry.resolve(f"{MODEL}@champion").version == v1
    assert [v.version for v in registry.list_versions(MODEL)] == [v1]
    assert "challenger" not in registry.get_model(MODEL).aliases
    with services.db.session() as session:
        (failed,) = list_audit(session, action="action.failed")
    assert "raised ValueError" in failed.reason


def test_without_reference_rows_the_window_is_the_labelled_log_and_says_why(
    services: Services,
) -> None:
    (v1,) = champion_chain(services, 1)  # no reference profile at all
    log_rows(services, utcnow())
    set_trainer(services, "recording_logistic")

    done = run_retrain(services, v1, min_rows=5)

    assert done.status is ExecutionStatus.SUCCEEDED, done.reason
    assert done.result["reference"] == f"none: version {v1} has no reference profile"
    assert (done.result["reference_rows"], done.result["logged_rows"]) == (0, 5)
    (seen,) = trainers.RECORDED
    assert list(seen.columns) == ["income", "debt", "default"]
    assert seen["default"].tolist() == [0, 1, 0, 1, 0]


def test_a_gpu_retrain_is_enqueued_on_the_gpu_queue(services: Services) -> None:
    champion_chain(services, 1)
    sender = QueueRecorder()
    policies = [
        retrain_policy(queue="gpu"),
        parse_policy({"name": "rollback", "action": "rollback"}),
    ]
    assert dispatch_for_alerts(
        services.db, sender, [firing_alert("1")], utcnow(), policies=policies
    )
    assert sorted((name, queue) for name, _, queue in sender.sent) == [
        ("keelwatch.actions.execute", "cpu"),
        ("keelwatch.actions.execute", "gpu"),
    ]


def test_a_resumed_retrain_reuses_the_version_it_registered_before_the_crash(
    services: Services, tmp_path: Path
) -> None:
    v1, _ = with_reference(services, tmp_path)
    set_trainer(services, "recording_logistic")
    sender = QueueRecorder()
    now = utcnow()
    policy = retrain_policy(min_rows=10)
    dispatch_for_alerts(services.db, sender, [firing_alert(v1)], now, policies=[policy])
    ((_, payload, _),) = sender.sent
    execution_id = payload["execution_id"]
    # The first delivery claimed it, trained and registered, then its worker died before it
    # recorded anything: the version's registration reason names the execution.
    with services.db.session() as session:
        assert store.claim_execution(session, execution_id, now, claimed_by="task-1")
    data = frame()
    fitted = LogisticRegression(max_iter=200).fit(data[["income", "debt"]], data["default"])
    crashed = services.registry.register_sklearn_model(
        MODEL,
        fitted,
        data,
        "default",
        actor="policy:retrain-on-drift",
        reason=f"retrain for alert x episode 1 (execution {execution_id}, policy p)",
    )

    # A duplicate message (another task id) leaves the running execution alone...
    other = execute_action(services.db, services.registry, execution_id, delivery_id="task-2")
    assert other.status is ExecutionStatus.RUNNING
    # ...and the redelivered one resumes it without training or registering again.
    done = execute_action(services.db, services.registry, execution_id, delivery_id="task-1")

    assert done.status is ExecutionStatus.SUCCEEDED, done.reason
    assert done.result["version"] == crashed.version and done.result["resumed"] is True
    assert trainers.RECORDED == []
    registry = services.registry
    assert [v.version for v in registry.list_versions(MODEL)] == [v1, crashed.version]
    assert registry.resolve(f"{MODEL}@challenger").version == crashed.version
    with services.db.session() as session:
        profile = find_reference_profile(session, MODEL, crashed.version)
    assert profile is not None and profile.rows == 40
    assert TAG_TRAINING_DATA in registry.get_version(MODEL, crashed.version).tags


def test_bad_window_parameters_are_refused_when_the_policy_is_parsed() -> None:
    from keelwatch.actions.policies import PolicyError

    with pytest.raises(PolicyError, match="window: invalid duration"):
        retrain_policy(window="seven days")
    with pytest.raises(PolicyError, match="min_rows must be a whole number >= 1"):
        retrain_policy(min_rows=0)
    assert dict(retrain_policy(window="3d", min_rows=50).params) == {
        "window": "3d",
        "min_rows": "50",
    }
