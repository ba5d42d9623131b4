"""Drift result → alert → rollback policy → champion alias moved in MLflow, median of 20
(target <= 2 s).

The loop runs as in production, on loopback: Redis as the broker (a database no test session
holds, flushed before and after), two Celery worker processes started with the compose file's
commands (``keelwatch worker --role monitoring --concurrency 2`` and ``--role cpu
--concurrency 2``), Keelwatch's database on SQLite (default) or PostgreSQL (``--db
postgresql``), and an MLflow store in a temporary folder (MLflow's global URIs are never set).

Set up once, not timed: a model with two approved versions, each with a reference profile,
promoted v1 then v2 (so v1 is the last known-good champion); a ``for: 0s`` rule on
``drift.dataset.drifted`` for the champion; a rollback policy with permissive guards (no
cooldown, no cap on consecutive automatic actions: every repetition acts on the same model).

Each repetition uses a fresh monitor (its name is an alert label, so every repetition raises a
new alert and a new execution) on a drifted window, after promoting v2 back to champion.
Two ways to make the drift result, ``--via``:

* ``check`` (default): the drift check runs on the monitoring worker, exactly what the beat's
  dispatch or ``keelwatch monitors run`` starts: it stores the result and its signals, which
  evaluate the rules in the same transaction, logs the check's MLflow run, then dispatches;
* ``evaluate``: the bench stores the signals of a real drift result (relabelled with the
  repetition's monitor) and calls ``alerting.service.evaluate`` in that transaction, commits,
  then ``after_commit_dispatch``, as the check's task does; the drift check itself is left out.

The clock starts when the result is stored (its ``finished_at``; with ``evaluate``, when the
transaction begins) and stops when the bench, polling MLflow's alias every 10 ms, sees the
champion at v1. Stages come from the rows the loop writes (execution created, claimed,
finished). One warm-up repetition (the worker processes import MLflow and scikit-learn on their
first task) is shown and left out of the statistics.

Usage: ``python benchmarks/alert_rollback_bench.py [--quick] [--runs N] [--via check|evaluate]
[--db sqlite|postgresql]``
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT / "workers"), str(ROOT / "benchmarks")]

from inference_bench import bench_database, free_redis_db  # noqa: E402

if TYPE_CHECKING:
    import pandas as pd

    from keelwatch.settings import Settings
    from keelwatch.wiring import Services

TARGET_S = 2.0
MODEL = "bench-credit"
CHAMPION = "champion"
RULE_YAML = f"""\
rules:
  - name: dataset-drift
    signal: drift.dataset.drifted
    matchers: '{{model="{MODEL}", alias="{CHAMPION}"}}'
    comparison: ">="
    threshold: 1
    for: 0s
    severity: critical
    annotations:
      summary: "{{{{ $labels.model }}}} v{{{{ $labels.version }}}}: the input features drifted"
"""
POLICY = {
    "name": "rollback-on-drift",
    "match": '{alertname="dataset-drift", severity="critical"}',
    "action": "rollback",
    "mode": "auto",
    # Every repetition acts on the same model: no cooldown, no cap on consecutive actions.
    "guards": {"cooldown": "0s", "max_consecutive": None, "max_actions": None},
}
POLL_S = 0.01


# --------------------------------------------------------------------------- shared fleet


@contextmanager
def bench_settings(folder: Path, db: str) -> Iterator[Settings]:
    """Settings for a throw-away installation under ``folder``: SQLite (or a ``kw_bench_*``
    PostgreSQL database), MLflow store in ``folder``, Redis on loopback (a free database)."""
    from keelwatch.settings import Settings
    from keelwatch.storage.db import upgrade_database

    with contextlib.ExitStack() as stack:
        redis_url = stack.enter_context(free_redis_db())
        database = {} if db == "sqlite" else {"url": stack.enter_context(bench_database())}
        settings = Settings(
            data_dir=folder / "data",
            database=database,
            broker={"url": redis_url, "result_backend": redis_url},
        )
        settings.ensure_data_dir()
        upgrade_database(settings.database.url)
        yield settings


class Worker:
    """A Celery worker process started with the compose file's command for ``role``."""

    def __init__(self, settings: Settings, role: str, concurrency: int, log: Path) -> None:
        from keelwatch.cli.commands import worker_command
        from keelwatch.cli.environment import child_environment

        self.log = log
        command = worker_command(
            role=role, concurrency=concurrency, hostname=f"{role}-{uuid.uuid4().hex[:6]}@%h"
        )
        env = child_environment(settings)
        roots = [str(ROOT / "platform"), str(ROOT / "workers")]
        env["PYTHONPATH"] = os.pathsep.join([*roots, env.get("PYTHONPATH", "")]).rstrip(":")
        env["DO_NOT_TRACK"] = "1"
        self._out = log.open("wb")
        self.process = subprocess.Popen(
            command,
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            cwd=str(settings.data_dir.parent),
            start_new_session=True,
        )

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        """Until the worker logs that it consumes; SystemExit with its log if it died."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"worker exited early:\n{self.tail()}")
            if b" ready." in self.log.read_bytes():
                return
            time.sleep(0.2)
        raise SystemExit(f"worker not ready after {timeout_s:.0f} s:\n{self.tail()}")

    def tail(self) -> str:
        """The end of the worker's log."""
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        """Warm shutdown (SIGKILL of the group after 30 s)."""
        from keelwatch.cli.supervisor import stop_process

        stop_process(self.process, 30.0)
        self._out.close()


@contextmanager
def workers(settings: Settings, roles: Sequence[tuple[str, int]], folder: Path) -> Iterator[None]:
    """Start one worker per (role, concurrency), wait until all consume, stop them after."""
    started: list[Worker] = []
    try:
        for index, (role, concurrency) in enumerate(roles):
            started.append(Worker(settings, role, concurrency, folder / f"worker-{index}.log"))
        for worker in started:
            worker.wait_ready()
        yield
    finally:
        for worker in started:
            worker.stop()


def aware(value: datetime) -> datetime:
    """A stored time as aware UTC (SQLite hands naive UTC back)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def seconds_between(start: datetime | None, end: datetime | None) -> float:
    """``end - start`` in seconds, NaN when either is missing."""
    if start is None or end is None:
        return float("nan")
    return (aware(end) - aware(start)).total_seconds()


# --------------------------------------------------------------------------- setup


def frame(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """Two numeric features (``income`` shiftable) and a categorical one."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "income": rng.normal(50.0 + shift, 10.0, rows),
            "debt": rng.exponential(5.0, rows).round(1),
            "segment": rng.choice(["a", "b", "c"], rows, p=[0.5, 0.3, 0.2]),
        }
    )


def register(services: Services, window: Path) -> tuple[str, str]:
    """Register v1 and v2 (v2 champion, v1 before it) and write a drifted window; returns
    (v1, v2)."""
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from keelwatch.monitoring.service.profiles import attach_reference_profile

    train = frame(2000, seed=1)
    train["default"] = (train["income"] > 50).astype(int)
    features = ["income", "debt", "segment"]
    model = make_pipeline(
        make_column_transformer(
            (OneHotEncoder(handle_unknown="ignore"), ["segment"]), remainder="passthrough"
        ),
        LogisticRegression(max_iter=200),
    ).fit(train[features], train["default"])
    registry = services.registry
    first = registry.register_sklearn_model(MODEL, model, train, target="default", actor="bench")
    second = registry.register_version(MODEL, run_id=str(first.run_id), actor="bench")
    versions = (first.version, second.version)
    for version in versions:
        with services.db.session() as session:
            attach_reference_profile(
                session,
                registry,
                services.settings.mlflow,
                MODEL,
                version,
                train,
                actor="bench",
                target="default",
            )
        registry.approve(MODEL, version, actor="bench", reason="benchmark")
        registry.promote(MODEL, version, actor="bench", reason="benchmark")
    frame(1000, seed=7, shift=6.0).to_csv(window, index=False)
    return versions


def arm(services: Services) -> None:
    """Apply the rule and the rollback policy."""
    from keelwatch.actions.policies import parse_policy
    from keelwatch.alerting.service import apply_rules
    from keelwatch.alerting.signals import known_signal_names
    from keelwatch.entities.time import utcnow
    from keelwatch.storage import actions as action_store

    now = utcnow()
    with services.db.session() as session:
        apply_rules(session, RULE_YAML, "bench", known_signal_names(), now=now, source="bench")
        action_store.save_policy(session, parse_policy(POLICY), actor="bench", now=now)


def add_monitor(services: Services, name: str, window: Path) -> None:
    """A monitor on the champion over the drifted window (no Evidently second opinion)."""
    from keelwatch.monitoring.service import service

    spec = {
        "name": name,
        "model": f"{MODEL}@{CHAMPION}",
        "window": {"kind": "dataset", "uri": str(window)},
        "config": {"report_sample_rows": 0},
    }
    with services.db.session() as session:
        service.create_monitor(session, services.registry, spec, actor="bench")


# --------------------------------------------------------------------------- one repetition


@dataclass(frozen=True)
class Repetition:
    """One repetition's times in seconds: the headline and its stages."""

    latency: float  # result stored -> champion seen at v1
    to_dispatch: float  # result stored -> execution created (commit, MLflow run, dispatch)
    to_claim: float  # execution created -> claimed by a worker (broker, prefetch)
    to_seen: float  # claimed -> champion seen at v1 (registry rollback, the poll)
    to_finish: float  # claimed -> execution finished (rollback, version tags, audit)
    submitted: float  # submit -> seen (check mode: includes the drift check itself)


def champion_version(services: Services) -> str:
    """The version the champion alias points at, read from MLflow."""
    return str(services.registry.client.get_model_version_by_alias(MODEL, CHAMPION).version)


def wait_for_champion(services: Services, version: str, timeout_s: float = 120.0) -> float:
    """Poll MLflow until the champion is ``version``; returns the wall-clock time seen."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if champion_version(services) == version:
            return time.time()
        time.sleep(POLL_S)
    raise SystemExit(f"champion still not v{version} after {timeout_s:.0f} s")


def reset_champion(services: Services, v2: str) -> None:
    """An operator promotes v2 again (the known-good v1 stays in the alias history)."""
    services.registry.promote(MODEL, v2, actor="bench", reason="benchmark: next repetition")


def drift_signals(services: Services, job_id: str) -> list[Any]:
    """The signals the drift result of check ``job_id`` emitted (a monitor on the champion)."""
    from keelwatch.alerting.signals import signals_for
    from keelwatch.storage import monitors as monitor_store

    with services.db.session() as session:
        result = monitor_store.result_for_job(session, job_id)
    assert result is not None
    return signals_for(result, labels={"alias": CHAMPION})


def finished_execution(services: Services, monitor: str, timeout_s: float = 60.0) -> Any:
    """The one execution the alert of ``monitor`` caused, once it has finished (it records
    its end after moving the alias, so the poll may have seen the move first)."""
    from keelwatch.entities.actions import ExecutionStatus
    from keelwatch.storage import actions as action_store

    deadline = time.monotonic() + timeout_s
    while True:
        with services.db.session() as session:
            executions = [
                e
                for e in action_store.list_executions(session, model=MODEL)
                if e.alert_labels.get("monitor") == monitor
            ]
        if len(executions) != 1:
            raise SystemExit(f"monitor {monitor}: {len(executions)} executions, expected 1")
        (execution,) = executions
        if execution.status is ExecutionStatus.FAILED:
            raise SystemExit(f"monitor {monitor}: the rollback failed: {execution.reason}")
        if execution.status is ExecutionStatus.SUCCEEDED or time.monotonic() > deadline:
            return execution
        time.sleep(POLL_S)


def run_once(
    services: Services, v1: str, monitor: str, via: str, template_signals: list[Any]
) -> Repetition:
    """One drift result crossing the rule, until the champion is seen at v1."""
    from keelwatch.alerting.service import after_commit_dispatch, evaluate
    from keelwatch.entities.signals import Signal
    from keelwatch.entities.time import utcnow
    from keelwatch.monitoring.service import service
    from keelwatch.storage.signals import write_signals

    submitted = time.time()
    if via == "check":
        job = service.submit_check(
            services.db, services.sender, services.registry, monitor, "bench"
        )
        seen = wait_for_champion(services, v1)
        with services.db.session() as session:
            result = service.result_of_job(session, job.id)
        assert result is not None and result.finished_at is not None
        stored = aware(result.finished_at)
    else:
        stored = utcnow()
        signals = [
            Signal(s.name, s.value, {**s.labels, "monitor": monitor}, stored, "bench")
            for s in template_signals
        ]
        with services.db.session() as session:
            write_signals(session, signals)
            evaluate(session, signals, stored)
        after_commit_dispatch(services.db, services.sender, utcnow())
        seen = wait_for_champion(services, v1)
    execution = finished_execution(services, monitor)
    seen_at = datetime.fromtimestamp(seen, UTC)
    return Repetition(
        latency=seconds_between(stored, seen_at),
        to_dispatch=seconds_between(stored, execution.created_at),
        to_claim=seconds_between(execution.created_at, execution.started_at),
        to_seen=seconds_between(execution.started_at, seen_at),
        to_finish=seconds_between(execution.started_at, execution.finished_at),
        submitted=seen - submitted,
    )


# --------------------------------------------------------------------------- report


def percentile(values: Sequence[float], share: float) -> float:
    """The ``share`` quantile by the nearest-rank method (p90 of 20 values: the 18th)."""
    ordered = sorted(values)
    percent = round(share * 100)  # integers: 0.9 * 20 is 18.000000000000004 in floats
    rank = max(1, -(-percent * len(ordered) // 100))
    return ordered[rank - 1]


def report(reps: list[Repetition], warmup: Repetition, via: str) -> float:
    """Print the table; returns the median latency."""
    columns = (
        ("result stored -> champion moved (seen)", "latency"),
        ("  stored -> execution created", "to_dispatch"),
        ("  created -> claimed by a worker", "to_claim"),
        ("  claimed -> champion seen at v1", "to_seen"),
        ("(claimed -> execution finished)", "to_finish"),
        ("submit -> champion moved (seen)", "submitted"),
    )
    print(f"{'step':<42}{'median s':>10}{'p90 s':>9}{'max s':>9}{'warm-up s':>11}")
    for label, name in columns:
        values = [getattr(r, name) for r in reps]
        print(
            f"{label:<42}{statistics.median(values):>10.3f}{percentile(values, 0.9):>9.3f}"
            f"{max(values):>9.3f}{getattr(warmup, name):>11.3f}"
        )
    if via == "check":
        print("(stored -> created includes the check's commit, its MLflow run and the dispatch)")
    return statistics.median(r.latency for r in reps)


# --------------------------------------------------------------------------- main


def main() -> int:
    """Set up, run the repetitions, print the table and the verdict."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 repetitions instead of 20")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--via", choices=("check", "evaluate"), default="check")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    runs = 5 if args.quick else args.runs
    os.environ.setdefault("DO_NOT_TRACK", "1")
    folder = Path(tempfile.mkdtemp(prefix="kw-rollback-bench-"))
    try:
        with bench_settings(folder, args.db) as settings:
            return run(settings, folder, runs, args.via, args.db)
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def run(settings: Settings, folder: Path, runs: int, via: str, db: str) -> int:
    """The benchmark proper, inside a prepared installation."""
    from keelwatch.monitoring.service import checks, service
    from keelwatch.wiring import Services

    services = Services(settings)
    window = folder / "drifted.csv"
    started = time.perf_counter()
    v1, v2 = register(services, window)
    template: list[Any] = []
    if via == "evaluate":
        # One real drift result, computed before the rule exists (it raises no alert), whose
        # signals every repetition emits again under its own monitor's name.
        add_monitor(services, "bench-template", window)
        with services.db.session() as session:
            job = service.create_check(session, services.registry, "bench-template", "bench")
        checks.start_check(services.db, settings, job.id)
        template = drift_signals(services, job.id)
    arm(services)
    print(
        f"model {MODEL}: champion v{v2}, known good v{v1}; via={via}, db={db}, broker=Redis, "
        f"workers: monitoring x2 + cpu x2 processes; "
        f"set up in {time.perf_counter() - started:.1f} s"
    )
    roles = (("monitoring", 2), ("cpu", 2))
    with workers(settings, roles, folder):
        reps: list[Repetition] = []
        warmup: Repetition | None = None
        for index in range(runs + 1):
            monitor = f"bench-{index:02d}"
            add_monitor(services, monitor, window)
            if champion_version(services) != v2:
                reset_champion(services, v2)
            rep = run_once(services, v1, monitor, via, template)
            if warmup is None:
                warmup = rep
            else:
                reps.append(rep)
    assert warmup is not None
    services.close()
    print(f"repetitions={runs} (plus one warm-up), poll every {POLL_S * 1000:.0f} ms")
    median = report(reps, warmup, via)
    verdict = "PASS" if median <= TARGET_S else "FAIL"
    print(f"median result stored -> champion moved {median:.3f} s, target <= {TARGET_S:.1f} s:")
    print(verdict)
    return 0 if median <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
