"""Prometheus gauges of the latest drift result of every monitor, read from SQL at scrape time.

* ``keelwatch_drift_statistic{monitor, model, version, feature, statistic}``: the statistic's
  value per column (``statistic`` is its name: ks, psi, chi2, ...);
* ``keelwatch_drift_pvalue`` and ``keelwatch_drift_column_drifted`` (0/1), same labels;
* ``keelwatch_drift_share_drifted{monitor, model, version}`` and
  ``keelwatch_drift_status{monitor, model, version, status}`` (1 for the current status);
* ``keelwatch_drift_last_check_timestamp_seconds{monitor, model, version}``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from keelwatch.entities.monitors import DriftStatus

if TYPE_CHECKING:
    from prometheus_client import Metric

    from keelwatch.storage.db import Database

logger = logging.getLogger(__name__)

_COLUMN_LABELS = ["monitor", "model", "version", "feature", "statistic"]
_MONITOR_LABELS = ["monitor", "model", "version"]


class DriftResultsCollector(Collector):
    """Reads the newest result per monitor when Prometheus scrapes."""

    def __init__(
        self, database: Database, on_error: Callable[[Exception], None] | None = None
    ) -> None:
        self._database = database
        self._on_error = on_error

    def describe(self) -> Iterable[Metric]:
        # Explicit, so registering does not query the database.
        return [GaugeMetricFamily("keelwatch_drift_statistic", "Drift statistic per feature.")]

    def collect(self) -> Iterator[Metric]:
        from keelwatch.storage.monitors import latest_results

        statistic = GaugeMetricFamily(
            "keelwatch_drift_statistic",
            "Latest drift statistic per monitored feature.",
            labels=_COLUMN_LABELS,
        )
        pvalue = GaugeMetricFamily(
            "keelwatch_drift_pvalue", "Latest drift p-value per feature.", labels=_COLUMN_LABELS
        )
        drifted = GaugeMetricFamily(
            "keelwatch_drift_column_drifted",
            "1 if the feature drifted in the latest check.",
            labels=_COLUMN_LABELS,
        )
        share = GaugeMetricFamily(
            "keelwatch_drift_share_drifted",
            "Share of tested features that drifted in the latest check.",
            labels=_MONITOR_LABELS,
        )
        status = GaugeMetricFamily(
            "keelwatch_drift_status",
            "1 for the status of the latest check.",
            labels=[*_MONITOR_LABELS, "status"],
        )
        finished = GaugeMetricFamily(
            "keelwatch_drift_last_check_timestamp_seconds",
            "When the latest check finished (Unix time).",
            labels=_MONITOR_LABELS,
        )
        try:
            with self._database.session() as session:
                latest = latest_results(session)
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail because the database is down
            logger.warning("drift results unavailable: %s", exc)
            if self._on_error is not None:
                self._on_error(exc)
            latest = []
        for monitor, result in latest:
            base = [monitor.name, result.model_name, result.model_version]
            for value in DriftStatus:
                status.add_metric([*base, value.value], float(result.status is value))
            finished.add_metric(base, result.finished_at.timestamp())
            if result.share_drifted is not None:
                share.add_metric(base, float(result.share_drifted))
            for entry in result.columns.values():
                if entry.get("status") != "ok" or entry.get("value") is None:
                    continue
                labels = [*base, str(entry["column"]), str(entry["statistic"])]
                statistic.add_metric(labels, float(entry["value"]))
                drifted.add_metric(labels, float(bool(entry.get("drifted"))))
                if entry.get("pvalue") is not None:
                    pvalue.add_metric(labels, float(entry["pvalue"]))
        yield from (statistic, pvalue, drifted, share, status, finished)
