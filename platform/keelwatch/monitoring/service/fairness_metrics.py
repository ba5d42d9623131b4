"""Bias-audit gauges, read from SQL when Prometheus scrapes:

- ``keelwatch_fairness_gap{model, version, attribute, metric, bound}``: each gap of the newest
  audit of every model version and attribute set; ``bound`` is ``value``, ``ci_low`` or
  ``ci_high``; ``attribute`` the slice (``gender&age_band``);
- ``keelwatch_fairness_group_metric{model, version, attribute, slice, metric}``: each group's
  metric; ``slice`` is the group (``f&18-29``).

An undefined number (null in the stored result) has no sample: never NaN. Two audits of one
version that share a slice (``gender`` alone in an audit of ``gender`` and in one of
``gender, age``) give one series, the newer audit's.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from prometheus_client import Metric

    from keelwatch.storage.bias_audits import AuditRecord
    from keelwatch.storage.db import Database

logger = logging.getLogger(__name__)

GAP_GAUGE = "keelwatch_fairness_gap"
GROUP_GAUGE = "keelwatch_fairness_group_metric"
_GAP_LABELS = ["model", "version", "attribute", "metric", "bound"]
_GROUP_LABELS = ["model", "version", "attribute", "slice", "metric"]
_GAP_HELP = "Gap between the groups of a slice in the latest bias audit of a model version."
_GROUP_HELP = "Metric of one group in the latest bias audit of a model version."
BOUNDS = ("value", "ci_low", "ci_high")


class FairnessAuditCollector(Collector):
    """The two fairness gauges from the newest audit per (model, version, attribute set)."""

    def __init__(
        self, database: Database, on_error: Callable[[Exception], None] | None = None
    ) -> None:
        self._database = database
        self._on_error = on_error

    def describe(self) -> Iterable[Metric]:
        # Explicit, so registering does not query the database.
        return [
            GaugeMetricFamily(GAP_GAUGE, _GAP_HELP, labels=_GAP_LABELS),
            GaugeMetricFamily(GROUP_GAUGE, _GROUP_HELP, labels=_GROUP_LABELS),
        ]

    def collect(self) -> Iterator[Metric]:
        from keelwatch.storage.bias_audits import latest_audits

        try:
            with self._database.session() as session:
                audits = latest_audits(session)
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail because the database is down
            logger.warning("bias audit results unavailable: %s", exc)
            if self._on_error is not None:
                self._on_error(exc)
            audits = []
        yield from fairness_families(audits)


def fairness_families(audits: Iterable[AuditRecord]) -> list[GaugeMetricFamily]:
    """The two gauge families of ``audits`` (newest first: a label set seen once is kept)."""
    gaps = GaugeMetricFamily(GAP_GAUGE, _GAP_HELP, labels=_GAP_LABELS)
    groups = GaugeMetricFamily(GROUP_GAUGE, _GROUP_HELP, labels=_GROUP_LABELS)
    seen: set[tuple[str, ...]] = set()
    for audit in audits:
        model, version = audit.model_name, audit.model_version
        for slice_dict in _list(audit.result.get("slices")):
            attribute = str(slice_dict.get("slice", ""))
            for gap in _list(slice_dict.get("gaps")):
                metric = str(gap.get("metric", ""))
                for bound in BOUNDS:
                    labels = (model, version, attribute, metric, bound)
                    value = _finite(gap.get(bound))
                    if value is not None and ("gap", *labels) not in seen:
                        seen.add(("gap", *labels))
                        gaps.add_metric(list(labels), value)
            for group in _list(slice_dict.get("groups")):
                name = str(group.get("group", ""))
                metrics = group.get("metrics")
                for metric, raw in sorted((metrics or {}).items()):
                    labels = (model, version, attribute, name, str(metric))
                    value = _finite(raw)
                    if value is not None and ("group", *labels) not in seen:
                        seen.add(("group", *labels))
                        groups.add_metric(list(labels), value)
    return [gaps, groups]


def _list(value: Any) -> list[Mapping[str, Any]]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None
