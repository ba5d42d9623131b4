"""``keelwatch_evaluation_metric{model, version, dataset, suite, metric}``: the newest succeeded
evaluation of every model version on every dataset, read from SQL when Prometheus scrapes."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from prometheus_client import Metric

    from keelwatch.storage.db import Database

logger = logging.getLogger(__name__)

GAUGE = "keelwatch_evaluation_metric"
_LABELS = ["model", "version", "dataset", "suite", "metric"]


class EvaluationResultsCollector(Collector):
    """One series per metric of the newest succeeded run per (model, version, dataset)."""

    def __init__(
        self, database: Database, on_error: Callable[[Exception], None] | None = None
    ) -> None:
        self._database = database
        self._on_error = on_error

    def describe(self) -> Iterable[Metric]:
        # Explicit, so registering does not query the database.
        return [GaugeMetricFamily(GAUGE, "Latest evaluation metric.", labels=_LABELS)]

    def collect(self) -> Iterator[Metric]:
        from keelwatch.storage.evaluations import latest_succeeded_runs

        family = GaugeMetricFamily(
            GAUGE,
            "Metric of the latest succeeded evaluation of a model version on a dataset.",
            labels=_LABELS,
        )
        try:
            with self._database.session() as session:
                runs = latest_succeeded_runs(session)
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail because the database is down
            logger.warning("evaluation results unavailable: %s", exc)
            if self._on_error is not None:
                self._on_error(exc)
            runs = []
        for run in runs:
            for suite, values in sorted(run.metrics.items()):
                for name, value in sorted(values.items()):
                    if math.isfinite(value):
                        labels = [run.model_name, run.model_version, run.dataset_name, suite, name]
                        family.add_metric(labels, value)
        yield family
