"""The bias audit: per-group metrics over every slice, gaps, bootstrap intervals, verdicts.

The rows are reduced once to cell counts and sums at the finest intersection of the sensitive
attributes (``_cells``); every slice, its point estimates and every bootstrap resample are
computed from those cells, vectorised over resamples. See ``_cells`` for why a multinomial
draw over cells is exactly the row bootstrap for count-based metrics and how continuous sums
are drawn.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from keelwatch.monitoring.fairness._cells import (
    Cells,
    SliceIndex,
    reduce_rows,
    resamples,
    slice_index,
)
from keelwatch.monitoring.fairness._inputs import (
    EncodedAttribute,
    attributes_of,
    check_config,
    encode_outcomes,
)
from keelwatch.monitoring.fairness._metrics import (
    GAP_COMPONENTS,
    UNDEFINED_REASONS,
    available_gaps,
    available_metrics,
    gap_values,
    group_metrics,
)
from keelwatch.monitoring.fairness.results import (
    RATIO_GAPS,
    SLICE_SEPARATOR,
    AuditConfig,
    AuditResult,
    AuditTask,
    Gap,
    GroupStats,
    SliceResult,
)

if TYPE_CHECKING:
    FloatArray = npt.NDArray[np.float64]
    BoolArray = npt.NDArray[np.bool_]


def audit_predictions(
    sensitive: Mapping[str, Sequence[Any] | np.ndarray[Any, Any]],
    y_pred: Sequence[Any] | np.ndarray[Any, Any],
    *,
    y_true: Sequence[Any] | np.ndarray[Any, Any] | None = None,
    score: Sequence[Any] | np.ndarray[Any, Any] | None = None,
    task: AuditTask | None = None,
    positive_label: Any = 1,
    config: AuditConfig | None = None,
) -> AuditResult:
    """Audit ``y_pred`` across the groups of every combination of the ``sensitive`` attributes.

    ``sensitive``: attribute name → one value per row (turned into strings; a missing value
    (None/NaN) is an InvalidInputError naming the attribute and how many rows lack it).
    ``y_true`` (labels) and ``score`` (the positive class's probability) are optional; the
    metrics they need are left out when absent. ``task``: None guesses (two distinct
    prediction values, or bools, or exactly {positive_label, other} → binary; numeric with more
    values → regression); ``binary`` with more than two prediction values is an
    InvalidInputError ("non-binary predictions for a binary audit: N distinct values").
    Lengths must match (InvalidInputError naming the column). Never NaN in the result.

    Slices: every non-empty combination of attributes up to ``config.max_order``, singles
    first in the given order, then pairs, and so on. A gap compares the *sufficient* groups
    (``count >= min_group_size``) whose group metric is defined; bootstrap intervals are
    percentile intervals of ``config.resamples`` seeded resamples at
    :attr:`AuditResult.interval_level` (Bonferroni-widened over the audit's defined gaps). In
    a resample, a group whose metric becomes undefined (no positive labels drawn) sits out that
    resample's gap, and a gap undefined in a resample is left out of its interval.
    """
    config = AuditConfig() if config is None else config
    check_config(config)
    outcomes = encode_outcomes(y_pred, y_true, score, task, positive_label)
    attributes = attributes_of(sensitive, outcomes.rows)
    cells = reduce_rows(attributes, outcomes)
    labelled, scored = outcomes.label is not None, outcomes.score is not None
    metrics = available_metrics(outcomes.task, labelled, scored)
    gaps = available_gaps(metrics, outcomes.task)
    top = len(attributes) if config.max_order is None else min(config.max_order, len(attributes))
    plans = [
        _plan_slice(combo, attributes, cells, outcomes.task, metrics, gaps, config)
        for order in range(1, top + 1)
        for combo in itertools.combinations(range(len(attributes)), order)
    ]
    _bootstrap(plans, cells, outcomes.task, metrics, config)
    comparisons = sum(1 for plan in plans for gap in plan.gaps if plan.point_gaps[gap] is not None)
    level = config.confidence
    if config.correction == "bonferroni" and comparisons > 0:
        level = 1 - (1 - config.confidence) / comparisons
    return AuditResult(
        task=outcomes.task,
        rows=outcomes.rows,
        labelled=labelled,
        scored=scored,
        attributes=tuple(a.name for a in attributes),
        slices=tuple(plan.result(level, config) for plan in plans),
        comparisons=comparisons,
        interval_level=level,
        config=config,
    )


@dataclass
class _SlicePlan:
    """One slice while it is computed: point estimates, which groups enter which gap, and the
    bootstrap samples."""

    attributes: tuple[str, ...]
    index: SliceIndex
    names: list[tuple[str, ...]]
    counts: npt.NDArray[np.int64]
    sufficient: BoolArray
    point: dict[str, FloatArray]
    eligible: dict[str, BoolArray]
    gaps: tuple[str, ...]
    point_gaps: dict[str, tuple[float, int, int] | None]
    reasons: dict[str, str]
    group_samples: dict[str, FloatArray] = field(default_factory=dict)
    gap_samples: dict[str, FloatArray] = field(default_factory=dict)

    def result(self, level: float, config: AuditConfig) -> SliceResult:
        sufficient_position = np.cumsum(self.sufficient) - 1
        intervals = {m: _intervals(v, level) for m, v in self.group_samples.items()}
        groups = []
        for g, key in enumerate(self.names):
            values: dict[str, float | None] = {}
            undefined: dict[str, str] = {}
            ci: dict[str, tuple[float, float]] = {}
            for metric, array in self.point.items():
                value = float(array[g])
                if np.isfinite(value):
                    values[metric] = value
                    if self.sufficient[g]:
                        low, high = intervals[metric][sufficient_position[g]]
                        if np.isfinite(low):
                            ci[metric] = (float(low), float(high))
                else:
                    values[metric] = None
                    undefined[metric] = UNDEFINED_REASONS.get(metric, "no rows")
            groups.append(
                GroupStats(
                    key=key,
                    count=int(self.counts[g]),
                    sufficient=bool(self.sufficient[g]),
                    metrics=values,
                    undefined=undefined,
                    ci=ci,
                )
            )
        return SliceResult(
            attributes=self.attributes,
            groups=tuple(groups),
            gaps=tuple(self._gap(gap, level, config) for gap in self.gaps),
        )

    def _gap(self, gap: str, level: float, config: AuditConfig) -> Gap:
        threshold, direction = config.threshold_for(gap)
        point = self.point_gaps[gap]
        if point is None:
            return Gap(gap, None, None, None, threshold, direction, False, None, self.reasons[gap])
        value, high, low = point
        interval = _interval(self.gap_samples[gap], level)
        violation = False
        if interval is not None:
            low_ci, high_ci = interval
            violation = high_ci < threshold if gap in RATIO_GAPS else low_ci > threshold
        return Gap(
            metric=gap,
            value=value,
            ci_low=None if interval is None else interval[0],
            ci_high=None if interval is None else interval[1],
            threshold=threshold,
            direction=direction,
            violation=violation,
            groups=(SLICE_SEPARATOR.join(self.names[high]), SLICE_SEPARATOR.join(self.names[low])),
        )


def _plan_slice(
    combo: tuple[int, ...],
    attributes: Sequence[EncodedAttribute],
    cells: Cells,
    task: AuditTask,
    metrics: tuple[str, ...],
    gaps: tuple[str, ...],
    config: AuditConfig,
) -> _SlicePlan:
    index = slice_index(cells.group_codes, combo)
    counts = index.aggregate(cells.counts.astype(np.float64))
    sums = {name: index.aggregate(values) for name, values in cells.sums.items()}
    point = {m: v[None, :] for m, v in group_metrics(task, metrics, counts, sums).items()}
    rows = counts.sum(axis=-1).astype(np.int64)
    sufficient = rows >= config.min_group_size
    eligible = {m: sufficient & np.isfinite(v[0]) for m, v in point.items()}
    point_gaps: dict[str, tuple[float, int, int] | None] = {}
    reasons: dict[str, str] = {}
    for gap in gaps:
        value, high, low = gap_values(gap, point, eligible)
        if np.isfinite(value[0]):
            point_gaps[gap] = (float(value[0]), int(high[0]), int(low[0]))
        else:
            point_gaps[gap] = None
            reasons[gap] = _gap_reason(gap, sufficient, eligible, config.min_group_size)
    names = [
        tuple(attributes[a].levels[code] for a, code in zip(combo, key, strict=True))
        for key in index.keys.tolist()
    ]
    return _SlicePlan(
        attributes=tuple(attributes[a].name for a in combo),
        index=index,
        names=names,
        counts=rows,
        sufficient=sufficient,
        point={m: v[0] for m, v in point.items()},
        eligible=eligible,
        gaps=gaps,
        point_gaps=point_gaps,
        reasons=reasons,
    )


def _gap_reason(
    gap: str, sufficient: BoolArray, eligible: Mapping[str, BoolArray], min_group_size: int
) -> str:
    count = int(sufficient.sum())
    if count < 2:
        return (
            f"fewer than 2 sufficient groups: {count} of {len(sufficient)} groups have at "
            f"least {min_group_size} rows"
        )
    for metric in GAP_COMPONENTS[gap]:
        if int(eligible[metric].sum()) < 2:
            return f"fewer than 2 sufficient groups define {metric}"
    if gap in RATIO_GAPS:
        return "every sufficient group's selection rate is 0"
    return "undefined"


def _bootstrap(
    plans: Sequence[_SlicePlan],
    cells: Cells,
    task: AuditTask,
    metrics: tuple[str, ...],
    config: AuditConfig,
) -> None:
    """Fill each plan's group and gap samples from ``config.resamples`` seeded resamples."""
    total = config.resamples
    for plan in plans:
        kept = int(plan.sufficient.sum())
        plan.group_samples = {m: np.empty((total, kept)) for m in metrics}
        plan.gap_samples = {g: np.empty(total) for g, p in plan.point_gaps.items() if p}
    rng = np.random.default_rng(config.seed)
    start = 0
    for block in resamples(cells, total, rng):
        stop = start + len(block.counts)
        for plan in plans:
            counts = plan.index.aggregate(block.counts)
            sums = {name: plan.index.aggregate(values) for name, values in block.sums.items()}
            values = group_metrics(task, metrics, counts, sums)
            for metric, array in values.items():
                plan.group_samples[metric][start:stop] = array[:, plan.sufficient]
            for gap in plan.gap_samples:
                plan.gap_samples[gap][start:stop] = gap_values(gap, values, plan.eligible)[0]
        start = stop


def _intervals(samples: FloatArray, level: float) -> FloatArray:
    """``(groups, 2)`` percentile intervals of each column of ``(resamples, groups)`` samples
    over its finite values (NaN where none is)."""
    out = np.full((samples.shape[1], 2), np.nan)
    complete = np.isfinite(samples).all(axis=0)
    if complete.any():
        # One vectorised quantile call for the usual case of columns without undefined draws.
        tail = (1 - level) / 2
        out[complete] = np.quantile(samples[:, complete], [tail, 1 - tail], axis=0).T
    for column in np.flatnonzero(~complete):
        interval = _interval(samples[:, column], level)
        if interval is not None:
            out[column] = interval
    return out


def _interval(samples: FloatArray, level: float) -> tuple[float, float] | None:
    """The percentile interval of the finite samples at ``level`` (None when none is)."""
    finite = samples[np.isfinite(samples)]
    if not finite.size:
        return None
    tail = (1 - level) / 2
    low, high = np.quantile(finite, [tail, 1 - tail])
    return float(low), float(high)
