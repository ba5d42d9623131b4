"""Prometheus collectors for the API and the worker fleet.

Every process builds its own :class:`KeelwatchMetrics` around a private ``CollectorRegistry``
rather than the global default one: tests (and a process that builds several apps) would
otherwise fail with "Duplicated timeseries" the second time a collector is declared.

Two kinds of series live here:

* in-process instruments (request latency, errors), updated as things happen;
* scrape-time collectors that ask the source of truth when Prometheus scrapes: queue depth
  (a passive ``queue_declare`` through kombu, on any broker), fleet-wide inference progress and
  jobs per state (the jobs table), and each model's champion version (the registry, cached for
  :data:`CHAMPION_CACHE_S`), so the API reports the whole fleet and not only what it saw itself.

The workers' own series (rows scored, chunk time, task errors) live in
``keelwatch_workers.metrics`` and are served by each worker, never by the API: a collector here
that nothing in the API process sets would always read zero.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from keelwatch.contract import ALL_QUEUES
from keelwatch.entities import JobStatus

if TYPE_CHECKING:
    from prometheus_client import Metric

    from keelwatch.registry import ModelRegistry
    from keelwatch.settings import Settings
    from keelwatch.storage.db import Database

logger = logging.getLogger(__name__)

#: Latency buckets (seconds) for an API whose calls range from a health probe to a registry
#: write that goes through MLflow.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

#: Route label for requests that matched no route, so random paths cannot blow up cardinality.
UNMATCHED_ROUTE = "<unmatched>"


class KeelwatchMetrics:
    """The collectors of one process, registered on a private registry."""

    def __init__(self, namespace: str = "keelwatch") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_request_duration = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency by route template, method and status code.",
            ["route", "method", "status"],
            namespace=namespace,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "errors",
            "Errors by component and kind (exception class, failed check, failed task).",
            ["component", "kind"],
            namespace=namespace,
            registry=self.registry,
        )

    def observe_request(self, *, route: str, method: str, status: int, seconds: float) -> None:
        """Record one served HTTP request."""
        self.http_request_duration.labels(route=route, method=method, status=str(status)).observe(
            seconds
        )

    def count_error(self, component: str, kind: str) -> None:
        """Count one error of ``kind`` in ``component``."""
        self.errors.labels(component=component, kind=kind).inc()

    def add_collector(self, collector: Collector) -> None:
        """Register a scrape-time collector."""
        self.registry.register(collector)

    def render(self) -> tuple[bytes, str]:
        """The registry in Prometheus text exposition format, with its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


# --------------------------------------------------------------------------- queue depth


T = TypeVar("T")


def read_for_scrape(
    read: Callable[[], T], what: str, on_error: Callable[[Exception], None] | None
) -> T | None:
    """``read()``, or None when it fails: a scrape must not fail because a source is down.

    The failure is logged (naming ``what``) and counted through ``on_error``; the collector then
    reports no series for this scrape.
    """
    try:
        return read()
    except Exception as exc:  # noqa: BLE001 - any source failure: no series this scrape, counted
        logger.warning("%s unavailable: %s", what, exc)
        if on_error is not None:
            on_error(exc)
        return None


def broker_queue_depths(settings: Settings, queues: Sequence[str] = ALL_QUEUES) -> dict[str, int]:
    """Messages waiting in each queue of the configured broker (kombu's public API)."""
    from keelwatch.celery_config import queue_depths

    return queue_depths(settings, queues)


class QueueDepthCollector(Collector):
    """``keelwatch_queue_depth{queue}``, read from the broker at scrape time."""

    def __init__(
        self,
        probe: Callable[[], dict[str, int]],
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self._probe = probe
        self._on_error = on_error

    def describe(self) -> Iterable[Metric]:
        # An explicit description keeps registration from calling the probe (no broker I/O).
        return [GaugeMetricFamily("keelwatch_queue_depth", "Messages waiting per queue.")]

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "keelwatch_queue_depth", "Messages waiting per queue.", labels=["queue"]
        )
        depths = read_for_scrape(self._probe, "queue depth", self._on_error) or {}
        for queue, depth in sorted(depths.items()):
            family.add_metric([queue], depth)
        yield family


# --------------------------------------------------------------------------- job progress


class InferenceProgressCollector(Collector):
    """Fleet-wide rows scored per job kind (``keelwatch_inference_rows_total``), from the jobs
    table at scrape time; ``rate()`` over it gives inference rows/s for the whole fleet."""

    def __init__(
        self, database: Database, on_error: Callable[[Exception], None] | None = None
    ) -> None:
        self._database = database
        self._on_error = on_error

    def describe(self) -> Iterable[Metric]:
        return [CounterMetricFamily("keelwatch_inference_rows", "Rows scored by the fleet.")]

    def collect(self) -> Iterator[Metric]:
        from keelwatch.storage.jobs import rows_done_by_kind

        family = CounterMetricFamily(
            "keelwatch_inference_rows", "Rows scored by the fleet, by job kind.", labels=["kind"]
        )

        def read() -> dict[str, int]:
            with self._database.session() as session:
                return rows_done_by_kind(session)

        totals = read_for_scrape(read, "inference progress", self._on_error) or {}
        for kind, rows in sorted(totals.items()):
            family.add_metric([kind], rows)
        yield family


# --------------------------------------------------------------------------- jobs per state


class JobStatesCollector(Collector):
    """``keelwatch_jobs{state}``: how many jobs are in each state, one ``GROUP BY`` per scrape.

    Every known state is reported (0 when there is none), so an alert on
    ``keelwatch_jobs{state="failed"}`` has a series to compare from the first scrape.
    """

    def __init__(
        self, database: Database, on_error: Callable[[Exception], None] | None = None
    ) -> None:
        self._database = database
        self._on_error = on_error

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily("keelwatch_jobs", "Jobs per state.")]

    def collect(self) -> Iterator[Metric]:
        from keelwatch.storage.jobs import count_jobs_by_status

        family = GaugeMetricFamily(
            "keelwatch_jobs", "Jobs per state, from the jobs table.", labels=["state"]
        )

        def read() -> dict[str, int]:
            with self._database.session() as session:
                return count_jobs_by_status(session)

        counts = read_for_scrape(read, "job states", self._on_error)
        if counts is None:
            yield family
            return
        states = {state.value: 0 for state in JobStatus} | counts
        for state, count in sorted(states.items()):
            family.add_metric([state], count)
        yield family


# --------------------------------------------------------------------------- champions

#: Seconds a registry read of the champions serves scrapes (a scrape every 15 s would otherwise
#: list the whole registry four times a minute).
CHAMPION_CACHE_S = 30.0
CHAMPION_ALIAS = "champion"


class ChampionVersionCollector(Collector):
    """``keelwatch_champion_version{model}``: the version number the ``champion`` alias points
    to, read from MLflow's registry at scrape time and cached for :data:`CHAMPION_CACHE_S`.

    Reading the registry (rather than counting promotions this process saw) keeps the gauge
    true after a promotion through another API replica, the CLI or MLflow's own UI, at the cost
    of up to ``CHAMPION_CACHE_S`` of delay. Models without a champion have no series.
    """

    def __init__(
        self,
        probe: Callable[[], dict[str, str]],
        on_error: Callable[[Exception], None] | None = None,
        *,
        cache_s: float = CHAMPION_CACHE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._probe = probe
        self._on_error = on_error
        self._cache_s = cache_s
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, str]] | None = None

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily("keelwatch_champion_version", "Champion version per model.")]

    def _champions(self) -> dict[str, str]:
        with self._lock:
            now = self._clock()
            if self._cached is not None and now - self._cached[0] < self._cache_s:
                return self._cached[1]
            champions = self._probe()
            self._cached = (now, champions)
            return champions

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "keelwatch_champion_version",
            "Version number the champion alias points to, per registered model.",
            labels=["model"],
        )
        champions = read_for_scrape(self._champions, "champion versions", self._on_error) or {}
        for model, version in sorted(champions.items()):
            if version.isdigit():
                family.add_metric([model], float(version))
        yield family


def registry_champions(registry: ModelRegistry) -> dict[str, str]:
    """model name → version of its ``champion`` alias, for every model that has one."""
    return {
        info.name: info.aliases[CHAMPION_ALIAS]
        for info in registry.list_models()
        if CHAMPION_ALIAS in info.aliases
    }


# --------------------------------------------------------------------------- alert loop


class AlertLoopCollector(Collector):
    """The alert loop's state, four ``GROUP BY`` queries per scrape (``keelwatch.storage.ops``):

    * ``keelwatch_alerts{state, severity}``: alerts per state and severity (every pair, 0
      when none);
    * ``keelwatch_notifications{notifier, outcome}``: notification-log rows per notifier and
      outcome (``pending``, ``failed``: retry scheduled, ``sent``, ``dead_lettered``; each
      outcome of a notifier that has rows, 0 when none);
    * ``keelwatch_action_executions{action, status}``: executions per action and status (every
      pair, 0 when none);
    * ``keelwatch_notification_dead_letters{notifier}``: dead letters not replayed yet (every
      configured notifier, 0 when none).

    All four are gauges: a row changes outcome (a retried notification is sent, a dead letter is
    replayed), so none of them only goes up.
    """

    def __init__(
        self, database: Database, on_error: Callable[[Exception], None] | None = None
    ) -> None:
        self._database = database
        self._on_error = on_error

    def describe(self) -> Iterable[Metric]:
        return [
            GaugeMetricFamily("keelwatch_alerts", "Alerts per state and severity."),
            GaugeMetricFamily("keelwatch_notifications", "Notifications per outcome."),
            GaugeMetricFamily("keelwatch_action_executions", "Action executions per status."),
            GaugeMetricFamily("keelwatch_notification_dead_letters", "Open dead letters."),
        ]

    def collect(self) -> Iterator[Metric]:
        from keelwatch.entities.actions import ActionKind, ExecutionStatus
        from keelwatch.entities.alerts import AlertState, Severity
        from keelwatch.storage import ops as ops_store

        alerts = GaugeMetricFamily(
            "keelwatch_alerts",
            "Alerts per state and severity, from the alerts table.",
            labels=["state", "severity"],
        )
        notifications = GaugeMetricFamily(
            "keelwatch_notifications",
            "Notification-log rows per notifier and outcome (pending, failed: retry scheduled, "
            "sent, dead_lettered).",
            labels=["notifier", "outcome"],
        )
        actions = GaugeMetricFamily(
            "keelwatch_action_executions",
            "Action executions per action and status.",
            labels=["action", "status"],
        )
        dead_letters = GaugeMetricFamily(
            "keelwatch_notification_dead_letters",
            "Dead letters not replayed yet, per notifier.",
            labels=["notifier"],
        )

        def read() -> tuple[
            dict[tuple[str, str], int],
            dict[tuple[str, str], int],
            dict[tuple[str, str], int],
            dict[str, int],
        ]:
            with self._database.session() as session:
                return (
                    ops_store.count_alerts(session),
                    ops_store.count_notifications(session),
                    ops_store.count_action_executions(session),
                    ops_store.count_open_dead_letters(session),
                )

        counts = read_for_scrape(read, "alert loop state", self._on_error)
        if counts is not None:
            by_alert, by_notification, by_action, open_letters = counts
            grid = {(st.value, sv.value): 0 for st in AlertState for sv in Severity}
            for (state, severity), n in sorted((grid | by_alert).items()):
                alerts.add_metric([state, severity], n)
            notifiers = {notifier for notifier, _ in by_notification}
            outcomes = {
                (notifier, outcome): 0
                for notifier in notifiers
                for outcome in ops_store.NOTIFICATION_OUTCOMES
            }
            for (notifier, outcome), n in sorted((outcomes | by_notification).items()):
                notifications.add_metric([notifier, outcome], n)
            pairs = {(a.value, s.value): 0 for a in ActionKind for s in ExecutionStatus}
            for (action, status), n in sorted((pairs | by_action).items()):
                actions.add_metric([action, status], n)
            for notifier, n in sorted(open_letters.items()):
                dead_letters.add_metric([notifier], n)
        yield from (alerts, notifications, actions, dead_letters)


def api_metrics(
    settings: Settings,
    database: Database,
    champions: Callable[[], dict[str, str]] | None = None,
) -> KeelwatchMetrics:
    """The API's collectors: request latency, errors, queue depth, fleet inference rows, jobs
    per state, the alert loop (alerts, notifications, actions, dead letters), drift results,
    evaluation and bias-audit results and (given ``champions``) each model's champion version."""
    metrics = KeelwatchMetrics()
    metrics.add_collector(
        QueueDepthCollector(
            lambda: broker_queue_depths(settings),
            on_error=lambda _exc: metrics.count_error("metrics", "queue_depth"),
        )
    )
    metrics.add_collector(
        InferenceProgressCollector(
            database, on_error=lambda _exc: metrics.count_error("metrics", "inference_rows")
        )
    )
    metrics.add_collector(
        JobStatesCollector(database, on_error=lambda _exc: metrics.count_error("metrics", "jobs"))
    )
    if champions is not None:
        metrics.add_collector(
            ChampionVersionCollector(
                champions, on_error=lambda _exc: metrics.count_error("metrics", "champions")
            )
        )
    metrics.add_collector(
        AlertLoopCollector(
            database, on_error=lambda _exc: metrics.count_error("metrics", "alert_loop")
        )
    )
    from keelwatch.monitoring.service.metrics import DriftResultsCollector

    metrics.add_collector(
        DriftResultsCollector(
            database, on_error=lambda _exc: metrics.count_error("metrics", "drift_results")
        )
    )
    from keelwatch.monitoring.service.evaluation_metrics import EvaluationResultsCollector

    metrics.add_collector(
        EvaluationResultsCollector(
            database, on_error=lambda _exc: metrics.count_error("metrics", "evaluations")
        )
    )
    from keelwatch.monitoring.service.fairness_metrics import FairnessAuditCollector

    metrics.add_collector(
        FairnessAuditCollector(
            database, on_error=lambda _exc: metrics.count_error("metrics", "fairness")
        )
    )
    return metrics
