"""Plain values of a bias audit: its settings, the per-group statistics, the gaps between
groups with their confidence intervals, and the verdict.

Undefined numbers are ``None`` with a reason, never NaN: a group with no positive labels has
no true-positive rate, and a gauge or a rule must not see NaN for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

AuditTask = Literal["binary", "regression"]
AUDIT_TASKS: tuple[AuditTask, ...] = ("binary", "regression")
Correction = Literal["bonferroni", "none"]
Verdict = Literal["pass", "violation", "insufficient_data"]
Direction = Literal["above", "below"]

#: How a slice's name joins its attributes ("gender&age_band") and a group's key joins its
#: values ("female&18-29"): one character that is legal in a Prometheus label value and a URL.
SLICE_SEPARATOR = "&"

#: Per-group metrics of a binary audit. ``selection_rate`` and ``mean_score`` need only the
#: predictions (and scores); the others need labels; ``calibration_gap`` (mean score minus the
#: rate of positive labels) needs both.
BINARY_GROUP_METRICS = (
    "selection_rate",
    "mean_score",
    "base_rate",
    "tpr",
    "fpr",
    "precision",
    "accuracy",
    "calibration_gap",
)
#: Per-group metrics of a regression audit.
REGRESSION_GROUP_METRICS = ("mean_prediction", "mean_label", "mae")

#: Gap metrics (between the groups of one slice) as Fairlearn defines them ("between_groups":
#: largest minus smallest, or smallest over largest for a ratio).
BINARY_GAP_METRICS = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "equal_opportunity_difference",
    "predictive_parity_difference",
    "calibration_gap_difference",
)
REGRESSION_GAP_METRICS = ("mean_prediction_difference", "mae_difference")
#: Ratio gaps violate when they fall *below* their threshold (the four-fifths rule); every
#: other gap violates when it rises above.
RATIO_GAPS = frozenset({"demographic_parity_ratio"})


@dataclass(frozen=True)
class AuditConfig:
    """How an audit slices, bootstraps and judges.

    ``max_order`` bounds the intersections (1: each attribute alone; None: every combination
    up to all attributes together). A group with fewer than ``min_group_size`` rows is
    "insufficient data": it is reported but never enters a gap. Intervals are percentile
    bootstrap intervals from ``resamples`` resamples drawn with ``seed``; with
    ``correction="bonferroni"`` each interval's level is widened to ``1 - (1 - confidence) / m``
    for the ``m`` gaps judged in the audit, so the intervals hold simultaneously and a
    violation (the whole interval beyond the threshold) is corrected for multiple comparisons.
    """

    min_group_size: int = 30
    resamples: int = 1000
    confidence: float = 0.95
    seed: int = 0
    difference_threshold: float = 0.1
    ratio_threshold: float = 0.8
    correction: Correction = "bonferroni"
    max_order: int | None = None

    def threshold_for(self, metric: str) -> tuple[float, Direction]:
        """The threshold a gap metric is judged against and which side of it violates."""
        if metric in RATIO_GAPS:
            return self.ratio_threshold, "below"
        return self.difference_threshold, "above"


@dataclass(frozen=True)
class GroupStats:
    """One group of a slice: its attribute values, size and metrics."""

    key: tuple[str, ...]
    """The group's value of each of the slice's attributes, in the slice's order."""
    count: int
    sufficient: bool
    """``count >= min_group_size``: only sufficient groups enter the gaps."""
    metrics: Mapping[str, float | None]
    """Every metric the audit's data allows (labels, scores); None when undefined here."""
    undefined: Mapping[str, str] = field(default_factory=dict)
    """metric → why it is undefined for this group (e.g. "no positive labels")."""
    ci: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    """metric → (low, high) bootstrap interval of the group's metric (same level as the gaps),
    for the defined metrics of sufficient groups: the report's whiskers."""

    @property
    def name(self) -> str:
        return SLICE_SEPARATOR.join(self.key)


@dataclass(frozen=True)
class Gap:
    """A gap metric over one slice's sufficient groups, with its interval and judgement."""

    metric: str
    value: float | None
    """None when fewer than two sufficient groups define the underlying group metric."""
    ci_low: float | None
    ci_high: float | None
    threshold: float
    direction: Direction
    violation: bool
    """The whole (corrected) interval lies beyond the threshold: ``ci_low > threshold`` for a
    difference, ``ci_high < threshold`` for a ratio."""
    groups: tuple[str, str] | None = None
    """Names of the two groups behind the value (largest, smallest of the group metric)."""
    reason: str = ""
    """Why the gap is undefined (empty when it has a value)."""


@dataclass(frozen=True)
class SliceResult:
    """The groups of one combination of attributes and the gaps between them."""

    attributes: tuple[str, ...]
    groups: tuple[GroupStats, ...]
    gaps: tuple[Gap, ...]

    @property
    def name(self) -> str:
        return SLICE_SEPARATOR.join(self.attributes)


@dataclass(frozen=True)
class AuditResult:
    """A whole audit: every slice, and the number of gaps judged (the correction's family)."""

    task: AuditTask
    rows: int
    labelled: bool
    scored: bool
    attributes: tuple[str, ...]
    slices: tuple[SliceResult, ...]
    comparisons: int
    interval_level: float
    """The level each reported interval has (``confidence`` widened by the correction)."""
    config: AuditConfig

    @property
    def violations(self) -> list[tuple[SliceResult, Gap]]:
        return [(s, g) for s in self.slices for g in s.gaps if g.violation]

    @property
    def verdict(self) -> Verdict:
        """``violation`` when any gap violates; ``insufficient_data`` when no gap could be
        judged at all; else ``pass``."""
        if self.violations:
            return "violation"
        if self.comparisons == 0:
            return "insufficient_data"
        return "pass"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (undefined numbers are null, never NaN); the CLI's ``--json`` and the
        stored result use this shape."""
        return {
            "task": self.task,
            "rows": self.rows,
            "labelled": self.labelled,
            "scored": self.scored,
            "attributes": list(self.attributes),
            "verdict": self.verdict,
            "comparisons": self.comparisons,
            "interval_level": self.interval_level,
            "config": {
                "min_group_size": self.config.min_group_size,
                "resamples": self.config.resamples,
                "confidence": self.config.confidence,
                "seed": self.config.seed,
                "difference_threshold": self.config.difference_threshold,
                "ratio_threshold": self.config.ratio_threshold,
                "correction": self.config.correction,
                "max_order": self.config.max_order,
            },
            "slices": [
                {
                    "slice": s.name,
                    "attributes": list(s.attributes),
                    "groups": [
                        {
                            "group": g.name,
                            "key": list(g.key),
                            "count": g.count,
                            "sufficient": g.sufficient,
                            "metrics": dict(g.metrics),
                            "undefined": dict(g.undefined),
                            "ci": {m: [lo, hi] for m, (lo, hi) in g.ci.items()},
                        }
                        for g in s.groups
                    ],
                    "gaps": [
                        {
                            "metric": gap.metric,
                            "value": gap.value,
                            "ci_low": gap.ci_low,
                            "ci_high": gap.ci_high,
                            "threshold": gap.threshold,
                            "direction": gap.direction,
                            "violation": gap.violation,
                            "groups": list(gap.groups) if gap.groups else None,
                            "reason": gap.reason,
                        }
                        for gap in s.gaps
                    ],
                }
                for s in self.slices
            ],
        }
