"""Evaluation schedules (SQLite and PostgreSQL): CRUD and audit, the slot each tick fires, at
most one firing per slot under racing ticks, and two real ``celery beat`` processes with a real
worker against PostgreSQL and Redis firing one slot once."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from keelwatch.cli.commands import beat_command
from keelwatch.cli.supervisor import stop_process
from keelwatch.contract import EVALUATION_REALIZED, EVALUATION_RUN, JOB_EVALUATION
from keelwatch.entities.eval_schedules import ScheduleKind
from keelwatch.errors import InvalidInputError, NotFoundError
from keelwatch.monitoring.service import eval_schedules as schedules
from keelwatch.monitoring.service.evaluations import register_dataset
from keelwatch.settings import Settings
from keelwatch.storage.audit import list_audit
from keelwatch.storage.db import Database, upgrade_database
from keelwatch.storage.jobs import list_jobs
from keelwatch.wiring import Services
from tests.conftest import WorkerProcess, make_settings, subprocess_env

pytestmark = pytest.mark.integration

MODEL = "churn"
SCHEDULES = 6
T0 = datetime(2026, 12, 1, 10, 2, tzinfo=UTC)


class _Sent:
    def __init__(self, task_id: str) -> None:
        self.id = task_id


class RecordingSender:
    """A TaskSender that keeps what was sent and answers with a task id, as Celery does."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        self._lock = threading.Lock()

    def send_task(self, name: str, args: Any = None, kwargs: Any = None, **options: Any) -> _Sent:
        del args
        with self._lock:
            self.sent.append((name, dict(kwargs or {}), options))
            return _Sent(f"task-{len(self.sent)}")


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    services = Services(settings)
    yield services
    services.close()


def _frame(rows: int = 40) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "income": [float(i) for i in range(rows)],
            "debt": [float((i * 7) % 11) for i in range(rows)],
            "default": [int(i >= rows // 2) for i in range(rows)],
        }
    )


def _dataset(db: Database, tmp_path: Path, name: str = "holdout") -> str:
    path = tmp_path / f"{name}.csv"
    _frame().to_csv(path, index=False)
    with db.session() as session:
        register_dataset(
            session,
            name=name,
            uri=str(path),
            label_column="default",
            task="classification",
            actor="ann",
        )
    return name


def _register_model(services: Services) -> str:
    data = _frame()
    model = LogisticRegression(max_iter=200).fit(data[["income", "debt"]], data["default"])
    return services.registry.register_sklearn_model(
        MODEL, model, data, "default", actor="ann"
    ).version


def _realized(db: Database, name: str, cron: str, *, now: datetime = T0) -> None:
    with db.session() as session:
        schedules.set_schedule(
            session,
            name=name,
            model=MODEL,
            cron=cron,
            kind="realized",
            window_s=3600,
            actor="ann",
            now=now,
        )


def _ticks_sent(folder: Path) -> list[int]:
    """How many dispatch ticks each of the two beats (logs ``beat-<i>.log``) has sent."""
    return [
        (folder / f"beat-{i}.log").read_text().count("keelwatch-evaluation-dispatch")
        if (folder / f"beat-{i}.log").exists()
        else 0
        for i in range(2)
    ]


def _firings(db: Database, name: str | None = None) -> list[tuple[str, datetime]]:
    with db.session() as session:
        by_id = {s.id: s.name for s in schedules.list_schedules(session)}
        return sorted((by_id[f.schedule_id], f.slot) for f in schedules.list_firings(session, name))


# ----------------------------------------------------------------------------- CRUD


def test_set_list_edit_delete_are_validated_and_audited(database: Database, tmp_path: Path) -> None:
    dataset = _dataset(database, tmp_path)
    with database.session() as session:
        hourly = schedules.set_schedule(
            session,
            name="hourly",
            model=f"{MODEL}@champion",
            cron="0  *  * * *",
            kind="evaluation",
            dataset=dataset,
            suites=["classification"],
            actor="ann",
            reason="watch the champion",
            now=T0,
        )
        schedules.set_schedule(
            session,
            name="realized-daily",
            model=MODEL,
            cron="0 6 * * *",
            kind=ScheduleKind.REALIZED,
            window_s=86_400,
            actor="ann",
            now=T0,
        )
    assert hourly.cron == "0 * * * *"  # normalised
    assert hourly.kind is ScheduleKind.EVALUATION
    assert hourly.suites == ("classification",)
    assert hourly.armed_at == T0

    later = T0 + timedelta(minutes=5)
    with database.session() as session:
        assert [s.name for s in schedules.list_schedules(session)] == ["hourly", "realized-daily"]
        # Same cron, disabled: not re-armed.
        disabled = schedules.set_schedule(
            session,
            name="hourly",
            model=f"{MODEL}@champion",
            cron="0 * * * *",
            kind="evaluation",
            dataset=dataset,
            enabled=False,
            actor="bob",
            now=later,
        )
        assert (disabled.enabled, disabled.armed_at, disabled.updated_by) == (False, T0, "bob")
        assert (disabled.created_by, disabled.suites) == ("ann", ())
        # A new cron re-arms it.
        edited = schedules.set_schedule(
            session,
            name="hourly",
            model=f"{MODEL}@champion",
            cron="30 * * * *",
            kind="evaluation",
            dataset=dataset,
            actor="bob",
            now=later,
        )
        assert (edited.id, edited.armed_at, edited.enabled) == (hourly.id, later, True)
        schedules.delete_schedule(session, "realized-daily", actor="bob", reason="not needed")
        assert [s.name for s in schedules.list_schedules(session)] == ["hourly"]
        with pytest.raises(NotFoundError, match="realized-daily"):
            schedules.delete_schedule(session, "realized-daily", actor="bob")
        entries = list_audit(session, target="eval_schedule:realized-daily")
        assert [e.action for e in entries] == [
            "evaluation.schedule.delete",
            "evaluation.schedule.set",
        ]
        assert entries[0].actor == "bob" and entries[0].reason == "not needed"
        sets = list_audit(session, target="eval_schedule:hourly")
        assert [e.action for e in sets] == ["evaluation.schedule.set"] * 3
        assert sets[-1].reason == "watch the champion"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "evaluation"}, "needs a dataset"),
        ({"kind": "evaluation", "dataset": "holdout", "window_s": 60}, "window is for realized"),
        ({"kind": "realized"}, "needs a window"),
        ({"kind": "realized", "window_s": 60, "dataset": "holdout"}, "not a dataset"),
        ({"kind": "realized", "window_s": 0}, "needs a window"),
        ({"kind": "nightly", "window_s": 60}, "invalid schedule kind"),
        ({"kind": "realized", "window_s": 60, "cron": "61 * * * *"}, "minute field"),
        ({"kind": "realized", "window_s": 60, "cron": "* * *"}, "expected 5 fields"),
        ({"kind": "realized", "window_s": 60, "name": "bad name"}, "invalid schedule name"),
        ({"kind": "realized", "window_s": 60, "model": "a@b@c"}, "invalid"),
        ({"kind": "evaluation", "dataset": "holdout", "suites": ["regression"]}, "regression"),
    ],
)
def test_bad_schedules_are_refused_and_nothing_is_written(
    database: Database, tmp_path: Path, fields: dict[str, Any], message: str
) -> None:
    _dataset(database, tmp_path)
    arguments: dict[str, Any] = {"name": "s", "model": MODEL, "cron": "* * * * *", **fields}
    with pytest.raises(InvalidInputError, match=message), database.session() as session:
        schedules.set_schedule(session, actor="ann", **arguments)
    with database.session() as session:
        assert schedules.list_schedules(session) == []
        assert list_audit(session, action="evaluation.schedule.set") == []


def test_an_unknown_dataset_is_not_found(database: Database) -> None:
    with pytest.raises(NotFoundError, match="missing"), database.session() as session:
        schedules.set_schedule(
            session,
            name="s",
            model=MODEL,
            cron="* * * * *",
            kind="evaluation",
            dataset="missing",
            actor="ann",
        )


# ----------------------------------------------------------------------------- dispatch


def test_the_latest_slot_fires_once_and_missed_slots_are_not_back_filled(
    services: Services,
) -> None:
    db, sender = services.db, RecordingSender()
    _realized(db, "five-minutely", "*/5 * * * *")
    _realized(db, "off", "* * * * *")
    with db.session() as session:
        off = schedules.get_schedule(session, "off")
        schedules.set_schedule(
            session,
            name="off",
            model=off.model,
            cron=off.cron,
            kind=off.kind,
            window_s=off.window_s,
            enabled=False,
            actor="ann",
            now=T0,
        )

    def tick(at: datetime) -> schedules.ScheduleDispatchOutcome:
        return schedules.dispatch_due_schedules(db, sender, services.registry, now=at)

    # 10:00 is a slot, but before the schedule was created (10:02): not fired.
    assert tick(T0 + timedelta(minutes=2)).fired == {}
    first = tick(datetime(2026, 12, 1, 10, 5, 10, tzinfo=UTC))
    assert first.fired == {"five-minutely": "task-1"} and first.failed == {}
    assert tick(datetime(2026, 12, 1, 10, 9, 59, tzinfo=UTC)).fired == {}
    # Beat was down from 10:10 to 10:31: only 10:30 fires, once.
    assert tick(datetime(2026, 12, 1, 10, 31, tzinfo=UTC)).fired == {"five-minutely": "task-2"}
    assert tick(datetime(2026, 12, 1, 10, 34, tzinfo=UTC)).fired == {}

    slots = [datetime(2026, 12, 1, 10, m, tzinfo=UTC) for m in (5, 30)]
    assert _firings(db) == [("five-minutely", slot) for slot in slots]
    with db.session() as session:
        schedule_id = schedules.get_schedule(session, "five-minutely").id
        recorded = sorted((f.slot, f.job_id, f.fired_by) for f in schedules.list_firings(session))
    assert recorded == [(slots[0], "task-1", "beat"), (slots[1], "task-2", "beat")]
    assert [(name, kwargs, options["queue"]) for name, kwargs, options in sender.sent] == [
        (
            EVALUATION_REALIZED,
            {
                "model": MODEL,
                "window_s": 3600,
                "schedule_id": schedule_id,
                "slot": slot.isoformat(),
            },
            "monitoring",
        )
        for slot in slots
    ]

    # Editing the cron at 10:34:30 re-arms the schedule: 10:34 is past and never fires.
    with db.session() as session:
        schedules.set_schedule(
            session,
            name="five-minutely",
            model=MODEL,
            cron="* * * * *",
            kind="realized",
            window_s=3600,
            actor="ann",
            now=datetime(2026, 12, 1, 10, 34, 30, tzinfo=UTC),
        )
    assert tick(datetime(2026, 12, 1, 10, 34, 50, tzinfo=UTC)).fired == {}
    assert tick(datetime(2026, 12, 1, 10, 35, 1, tzinfo=UTC)).fired == {"five-minutely": "task-3"}


def test_racing_ticks_fire_each_slot_once(services: Services) -> None:
    """Four threads tick at the same instant over eight due schedules: each slot is claimed
    by exactly one of them, and exactly one message per schedule is sent."""
    db, sender = services.db, RecordingSender()
    names = [f"s{i}" for i in range(8)]
    for name in names:
        _realized(db, name, "*/10 * * * *")
    at = datetime(2026, 12, 1, 10, 10, 3, tzinfo=UTC)
    barrier = threading.Barrier(4)
    outcomes: list[schedules.ScheduleDispatchOutcome] = []

    def tick() -> None:
        barrier.wait()
        outcomes.append(schedules.dispatch_due_schedules(db, sender, services.registry, now=at))

    threads = [threading.Thread(target=tick) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(outcomes) == 4
    fired = [name for outcome in outcomes for name in outcome.fired]
    assert sorted(fired) == names
    assert all(outcome.failed == {} for outcome in outcomes)
    assert sorted(kwargs["schedule_id"] for _, kwargs, _ in sender.sent) == sorted(
        {kwargs["schedule_id"] for _, kwargs, _ in sender.sent}
    )
    assert len(sender.sent) == len(names)
    assert _firings(db) == [(name, at.replace(minute=10, second=0)) for name in names]


def test_an_evaluation_schedule_submits_an_evaluation_job(
    services: Services, tmp_path: Path
) -> None:
    db, sender = services.db, RecordingSender()
    version = _register_model(services)
    dataset = _dataset(db, tmp_path)
    with db.session() as session:
        for name, model in (("nightly", f"{MODEL}/latest"), ("ghost", "no-such-model/1")):
            schedules.set_schedule(
                session,
                name=name,
                model=model,
                cron="0 2 * * *",
                kind="evaluation",
                dataset=dataset,
                actor="ann",
                now=T0,
            )
    outcome = schedules.dispatch_due_schedules(
        db, sender, services.registry, now=datetime(2026, 12, 2, 2, 0, 5, tzinfo=UTC)
    )
    assert list(outcome.fired) == ["nightly"]
    # A schedule whose model is gone: the slot is spent, the firing row says why.
    assert list(outcome.failed) == ["ghost"] and "NotFoundError" in outcome.failed["ghost"]
    with db.session() as session:
        jobs = list_jobs(session, kind=JOB_EVALUATION)
        firings = {f.job_id: f.error for f in schedules.list_firings(session)}
    assert [job.id for job in jobs] == [outcome.fired["nightly"]]
    job = jobs[0]
    assert (job.params["trigger"], job.params["model_version"]) == ("schedule", version)
    assert job.submitted_by == "beat"
    assert firings[job.id] is None
    assert any(
        job_id is None and "NotFoundError" in str(error) for job_id, error in firings.items()
    )
    assert [(name, kwargs) for name, kwargs, _ in sender.sent] == [
        (EVALUATION_RUN, {"job_id": job.id})
    ]
    # Deleting a schedule takes its firings with it.
    with db.session() as session:
        schedules.delete_schedule(session, "nightly", actor="ann")
    assert [name for name, _ in _firings(db)] == ["ghost"]


# ----------------------------------------------------------------------------- two real beats


def test_two_beat_processes_fire_a_slot_once(
    pg_url: str,
    redis_url: str,
    mlflow_uri: str,
    tmp_path: Path,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    """Two ``celery beat`` processes (the compose beat's command, each with its own schedule
    file, as two replicas would have) send the tick every second to a real monitoring worker
    with two processes; PostgreSQL holds the schedule. The schedule is armed just before the
    current minute, so the current minute's slot is due at once (no wait for a boundary)."""
    upgrade_database(pg_url)
    settings = make_settings(
        tmp_path, database_url=pg_url, mlflow_uri=mlflow_uri, broker_url=redis_url
    )
    settings.ensure_data_dir()
    services = Services(settings)
    try:
        _register_model(services)
        dataset = _dataset(services.db, tmp_path)
        started = datetime.now(UTC)
        with services.db.session() as session:
            # Several schedules make each tick long enough that the two beats' ticks overlap.
            for index in range(SCHEDULES):
                schedules.set_schedule(
                    session,
                    name=f"every-minute-{index}",
                    model=f"{MODEL}/latest",
                    cron="* * * * *",
                    kind="evaluation",
                    dataset=dataset,
                    actor="ann",
                    now=started.replace(second=0, microsecond=0) - timedelta(seconds=1),
                )
        env = {**subprocess_env(settings), "KEELWATCH_EVALUATION__DISPATCH_INTERVAL_S": "1"}
        beats = []
        for index in range(2):
            command = beat_command(settings)
            command[command.index("--schedule") + 1] = str(tmp_path / f"beat-{index}.db")
            log = (tmp_path / f"beat-{index}.log").open("wb")
            beats.append(
                (
                    subprocess.Popen(
                        command,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        cwd=str(tmp_path),
                        start_new_session=True,
                    ),
                    log,
                )
            )
        try:
            # Both beats queue ticks before any worker consumes them, so that the worker's two
            # processes start on two ticks at once: a real race for the due slot, not the luck
            # of two ticks arriving together.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and min(_ticks_sent(tmp_path)) < 2:
                time.sleep(0.5)
            assert min(_ticks_sent(tmp_path)) >= 2, _ticks_sent(tmp_path)
            worker = start_worker(settings, queues="monitoring", concurrency=2)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not _firings(services.db):
                time.sleep(0.5)
            assert _firings(services.db), "no slot fired within 60 s"
            time.sleep(6)  # a dozen more ticks from the two beats: none may fire it again
        finally:
            for process, log in beats:
                stop_process(process, 20.0)
                log.close()
        with services.db.session() as session:
            firings = schedules.list_firings(session)
            jobs = list_jobs(session, kind=JOB_EVALUATION)
    finally:
        services.close()

    sent = _ticks_sent(tmp_path)
    assert all(count >= 3 for count in sent), sent  # both beats really ticked, repeatedly
    keys = [(firing.schedule_id, firing.slot) for firing in firings]
    assert len(keys) == len(set(keys)), keys  # one firing per schedule and slot
    slots = {firing.slot for firing in firings}
    assert len(firings) == SCHEDULES * len(slots)
    # The ticks really raced: some tick found a slot claimed by the other beat's tick.
    assert re.search(r"'lost': \['every-minute", worker.output()), worker.output()[-3000:]
    # One submitted job per firing: a tick that lost the claim submitted nothing.
    assert sorted(job.id for job in jobs) == sorted(str(firing.job_id) for firing in firings)
    assert all(firing.error is None for firing in firings), firings
    # The current minute's slot, or (a slow start crossed a boundary first) a later one.
    first_slot = started.replace(second=0, microsecond=0)
    assert all(first_slot <= slot <= first_slot + timedelta(minutes=2) for slot in slots)
    assert {job.params["trigger"] for job in jobs} == {"schedule"}


def test_beat_ticks_the_schedules_and_the_version_watch_on_the_monitoring_queue() -> None:
    from keelwatch.celery_config import celery_config
    from keelwatch.contract import EVALUATION_DISPATCH_DUE, REGISTRY_WATCH_VERSIONS

    settings = Settings(evaluation={"dispatch_interval_s": 7}, registry={"watch_interval_s": 11})
    config = celery_config(settings)
    dispatch = config["beat_schedule"]["keelwatch-evaluation-dispatch"]
    watch = config["beat_schedule"]["keelwatch-version-watch"]
    assert (dispatch["task"], dispatch["schedule"]) == (EVALUATION_DISPATCH_DUE, 7)
    assert (watch["task"], watch["schedule"]) == (REGISTRY_WATCH_VERSIONS, 11)
    assert dispatch["options"]["queue"] == watch["options"]["queue"] == "monitoring"
    assert config["task_routes"][REGISTRY_WATCH_VERSIONS] == {"queue": "monitoring"}
    assert Settings().evaluation.dispatch_interval_s == 30


# ----------------------------------------------------------------------------- API and CLI


def test_api_operators_write_viewers_read(settings: Settings, tmp_path: Path) -> None:
    from keelwatch.entities.auth import Role
    from tests.integration.conftest import api_client

    services = Services(settings)
    try:
        dataset = _dataset(services.db, tmp_path)
    finally:
        services.close()
    body = {"model": MODEL, "cron": "0 * * * *", "dataset": dataset, "suites": ["classification"]}
    with api_client(settings, role=Role.VIEWER, raise_server_exceptions=False) as viewer:
        assert viewer.put("/evaluations/schedules/hourly", json=body).status_code == 403
        assert viewer.delete("/evaluations/schedules/hourly").status_code == 403
    with api_client(
        settings, role=Role.OPERATOR, name="olga", raise_server_exceptions=False
    ) as operator:
        created = operator.put("/evaluations/schedules/hourly", json=body)
        assert created.status_code == 200, created.text
        assert created.json()["created_by"] == "token:olga"
        realized = operator.put(
            "/evaluations/schedules/daily",
            json={"model": MODEL, "cron": "0 6 * * *", "kind": "realized", "window": "1d"},
        )
        assert realized.status_code == 200, realized.text
        assert (realized.json()["window"], realized.json()["dataset"]) == ("24h", None)
        refusals = {
            "bad window": ({**body, "kind": "realized", "window": "2 weeks"}, 422, "window"),
            "bad cron": ({**body, "cron": "* * *"}, 422, "expected 5 fields"),
            "unknown dataset": ({**body, "dataset": "nope"}, 404, "nope"),
            "unknown field": ({**body, "every": "1h"}, 422, "every"),
        }
        for why, (bad, code, text) in refusals.items():
            answer = operator.put("/evaluations/schedules/bad", json=bad)
            assert (answer.status_code, text in answer.text) == (code, True), (why, answer.text)
    with api_client(settings, role=Role.VIEWER, raise_server_exceptions=False) as viewer:
        listed = viewer.get("/evaluations/schedules")
        assert [s["name"] for s in listed.json()] == ["daily", "hourly"]
        one = viewer.get("/evaluations/schedules/hourly")
        assert (one.json()["suites"], one.json()["firings"]) == (["classification"], [])
        assert viewer.get("/evaluations/schedules/nope").status_code == 404
    with api_client(settings, role=Role.OPERATOR, raise_server_exceptions=False) as operator:
        gone = operator.delete("/evaluations/schedules/daily", params={"reason": "done"})
        assert gone.status_code == 204
        assert operator.delete("/evaluations/schedules/daily").status_code == 404
        assert [s["name"] for s in operator.get("/evaluations/schedules").json()] == ["hourly"]


def test_cli_set_list_delete(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from typer.testing import CliRunner

    from keelwatch.cli.app import app as cli_app
    from tests.conftest import settings_env

    services = Services(settings)
    try:
        dataset = _dataset(services.db, tmp_path)
    finally:
        services.close()
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        outcome = runner.invoke(cli_app, ["eval", "schedule", *args])
        return outcome.exit_code, outcome.output

    code, out = run(
        *("set", "hourly", "--model", MODEL, "--cron", "0 * * * *", "--dataset", dataset),
        *("--suite", "classification", "--actor", "dave"),
    )
    assert code == 0, out
    assert "evaluation on holdout (classification) on '0 * * * *' (UTC), enabled" in out
    code, out = run(
        *("set", "daily", "--model", MODEL, "--cron", "0 6 * * *", "--realized"),
        *("--window", "24h", "--disable", "--actor", "dave"),
    )
    assert code == 0 and "realized performance over 24h" in out and "disabled" in out, out
    code, out = run("set", "bad", "--model", MODEL, "--cron", "0 6 * * *", "--realized")
    assert code == 2 and "needs a window" in out, out
    code, out = run("set", "bad", "--model", MODEL, "--cron", "* *", "--dataset", dataset)
    assert code == 2 and "expected 5 fields" in out, out
    code, out = run(
        *("set", "bad", "--model", MODEL, "--cron", "* * * * *", "--realized"),
        *("--dataset", dataset, "--window", "1h"),
    )
    assert code == 2 and "exclude each other" in out, out
    code, out = run("list", "--json")
    listed = json.loads(out)
    assert [(s["name"], s["enabled"], s["created_by"]) for s in listed] == [
        ("daily", False, "dave"),
        ("hourly", True, "dave"),
    ]
    code, out = run("delete", "daily", "--actor", "dave")
    assert code == 0, out
    code, out = run("delete", "daily")
    assert code == 2 and "not found" in out, out
    code, out = run("list")
    assert code == 0 and "hourly" in out and "daily" not in out, out
