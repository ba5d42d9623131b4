"""The champion/challenger gate: decide from both versions' outputs on the same rows.

Conservative, so that noise never promotes:

- Quality metrics (classification, regression) use a **paired bootstrap over rows**: each
  sample draws row indices once (``numpy.random.Generator(seed)``) and computes the metric for
  both versions on those same rows; the interval is the percentile interval of
  ``challenger - champion`` over the samples. Resampling is expressed as per-row counts, so
  every statistic is a weighted sum and the point estimate (all counts 1) is exactly
  scikit-learn's figure.
- Latency metrics (``latency_p50_s``, ``latency_p95_s``) bootstrap each version's per-batch
  latency samples independently (the two were timed in separate calls, so there is no pairing)
  and take the percentile of each resample.
- Exact measurements (``model_size_bytes``, ``peak_memory_bytes``) have no sampling noise: the
  interval is the point difference.

A condition passes only when the interval's worse end clears the threshold: for a
higher-is-better metric the lower bound of the difference, for a lower-is-better one the upper
bound. Relative conditions use the per-sample relative change ``(challenger - champion) /
|champion|``. Fewer rows than ``min_rows`` (or no latency samples, or a missing exact
measurement) is ``insufficient_data``: the gate never promotes without evidence.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.evaluation._labels import as_label_array, encode_labels
from keelwatch.monitoring.evaluation.calibration import DEFAULT_BINS, bin_index, check_proba
from keelwatch.monitoring.evaluation.gate_policy import (
    CLASSIFICATION_METRICS,
    EXACT_METRICS,
    LATENCY_METRICS,
    REGRESSION_METRICS,
    GateCondition,
    GatePolicy,
    parse_gate_policy,
)

__all__ = [
    "GateDecision",
    "GatePolicy",
    "MetricComparison",
    "MetricInterval",
    "VersionEvaluation",
    "decide_gate",
    "parse_gate_policy",
]

Outcome = Literal["promote", "reject", "insufficient_data"]
Floats = npt.NDArray[np.float64]
#: Bootstrap weight matrices are built in chunks of at most this many cells (memory bound).
_CHUNK_CELLS: Final = 2_000_000
_PROBA_METRICS: Final = frozenset({"roc_auc", "log_loss", "ece"})


@dataclass(frozen=True)
class VersionEvaluation:
    """One version's outputs on the gate's dataset (rows in dataset order)."""

    version: str
    metrics: Mapping[str, float]
    y_true: npt.NDArray[Any]
    y_pred: npt.NDArray[Any]
    proba: npt.NDArray[Any] | None = None
    classes: tuple[str, ...] | None = None
    latencies_s: Floats = field(default_factory=lambda: np.zeros(0))


@dataclass(frozen=True)
class MetricInterval:
    """Both versions' point values and the bootstrap interval of their difference."""

    metric: str
    champion: float
    challenger: float
    difference: float
    ci_low: float
    ci_high: float
    relative: float
    relative_ci_low: float
    relative_ci_high: float


@dataclass(frozen=True)
class MetricComparison:
    """One condition judged: the values, the interval and whether it passed."""

    alternative: int
    metric: str
    condition: str
    threshold: float
    lower_is_better: bool
    champion: float
    challenger: float
    difference: float
    ci_low: float
    ci_high: float
    relative: bool
    passed: bool
    reason: str

    def as_dict(self) -> dict[str, object]:
        """JSON-ready fields (NaN stays a float; callers that need strict JSON map it)."""
        return {
            "alternative": self.alternative,
            "metric": self.metric,
            "condition": self.condition,
            "threshold": self.threshold,
            "lower_is_better": self.lower_is_better,
            "champion": self.champion,
            "challenger": self.challenger,
            "difference": self.difference,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "relative": self.relative,
            "passed": self.passed,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict, a reason line per condition and the comparisons behind them."""

    outcome: Outcome
    reasons: tuple[str, ...]
    comparisons: tuple[MetricComparison, ...]
    rows: int = 0


# --------------------------------------------------------------------------- weights


def _weight_chunks(rng: np.random.Generator, rows: int, samples: int) -> list[Floats]:
    """Bootstrap resamples as per-row counts, ``(chunk, rows)`` each, ``samples`` rows in all."""
    per_chunk = max(1, min(samples, _CHUNK_CELLS // max(rows, 1)))
    chunks = []
    left = samples
    while left > 0:
        size = min(per_chunk, left)
        draws = rng.integers(0, rows, size=(size, rows))
        offsets = (np.arange(size) * rows)[:, None]
        counts = np.bincount((draws + offsets).ravel(), minlength=size * rows)
        chunks.append(counts.reshape(size, rows).astype(np.float64))
        left -= size
    return chunks


# A statistic maps a (samples, rows) weight matrix to one value per sample.
Statistic = Callable[[Floats], Floats]


def _floats(values: Any) -> Floats:
    return np.asarray(values, dtype=np.float64)


def _safe_ratio(num: Floats, den: Floats) -> Floats:
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _count_statistic(
    metric: str, true_codes: npt.NDArray[np.intp], pred_codes: npt.NDArray[np.intp], k: int
) -> Statistic:
    # Weighted confusion matrices: W @ onehot(true * k + pred); then scikit-learn's
    # definitions (zero_division=0, macro over classes present in truth or prediction).
    cells = np.zeros((true_codes.size, k * k), dtype=np.float64)
    cells[np.arange(true_codes.size), true_codes * k + pred_codes] = 1.0

    def statistic(weights: Floats) -> Floats:
        confusion = (weights @ cells).reshape(-1, k, k)
        tp = np.diagonal(confusion, axis1=1, axis2=2)
        support = confusion.sum(axis=2)
        predicted = confusion.sum(axis=1)
        if metric == "accuracy":
            return _floats(tp.sum(axis=1) / support.sum(axis=1))
        average = metric.rsplit("_", 1)[1]
        if metric.startswith("precision"):
            per_class = _safe_ratio(tp, predicted)
        elif metric.startswith("recall"):
            per_class = _safe_ratio(tp, support)
        else:
            per_class = _safe_ratio(2 * tp, support + predicted)
        if average == "weighted":
            return _floats((per_class * support).sum(axis=1) / support.sum(axis=1))
        present = (support + predicted) > 0
        return _floats((per_class * present).sum(axis=1) / present.sum(axis=1))

    return statistic


def _proba_statistic(metric: str, true_codes: npt.NDArray[np.intp], proba: Floats) -> Statistic:
    rows, k = proba.shape
    if metric == "log_loss":
        # scikit-learn clips to the float64 epsilon before the log.
        eps = np.finfo(np.float64).eps
        picked = np.clip(proba[np.arange(rows), true_codes], eps, 1 - eps)
        losses = -np.log(picked)
        return lambda weights: (weights @ losses) / weights.sum(axis=1)
    if metric == "ece":
        top = proba.argmax(axis=1)
        confidence = proba[np.arange(rows), top]
        correct = (top == true_codes).astype(np.float64)
        edges = np.linspace(0.0, 1.0, DEFAULT_BINS + 1)
        index = bin_index(confidence, edges)
        onehot = np.zeros((rows, DEFAULT_BINS), dtype=np.float64)
        onehot[np.arange(rows), index] = 1.0
        gap = onehot * (correct - confidence)[:, None]
        return lambda weights: np.abs(weights @ gap).sum(axis=1) / weights.sum(axis=1)

    if k == 2:
        scorers = [_weighted_auc(proba[:, 1], true_codes == 1)]
    else:  # one-vs-rest, macro: the unweighted mean over classes, as scikit-learn's "ovr"
        scorers = [_weighted_auc(proba[:, c], true_codes == c) for c in range(k)]

    def auc(weights: Floats) -> Floats:
        # NaN where a resample lacks a class: undefined there, left out of the interval
        return _floats(np.mean([scorer(weights) for scorer in scorers], axis=0))

    return auc


def _weighted_auc(scores: Floats, positive: npt.NDArray[np.bool_]) -> Statistic:
    """ROC-AUC with per-row weights (Mann-Whitney: each positive's weight times the negative
    weight scored below it, ties counted half), for many weight rows at once; equal to
    scikit-learn's ``roc_auc_score(..., sample_weight=w)``."""
    order = np.argsort(scores, kind="mergesort")
    ranked = scores[order]
    is_pos = positive[order].astype(np.float64)
    is_neg = 1.0 - is_pos
    new_group = np.r_[True, ranked[1:] != ranked[:-1]]
    group = np.cumsum(new_group) - 1
    starts = np.flatnonzero(new_group)
    ends = np.r_[starts[1:], ranked.size]  # one past each group's last row
    first, past = starts[group], ends[group]

    def statistic(weights: Floats) -> Floats:
        ordered = weights[:, order]
        neg = ordered * is_neg
        below = np.zeros((ordered.shape[0], ordered.shape[1] + 1))
        np.cumsum(neg, axis=1, out=below[:, 1:])
        lower = below[:, first]
        tied = below[:, past] - lower
        pos = ordered * is_pos
        total = pos.sum(axis=1) * neg.sum(axis=1)
        wins = (pos * (lower + 0.5 * tied)).sum(axis=1)
        out = np.full(ordered.shape[0], np.nan)
        np.divide(wins, total, out=out, where=total > 0)
        return out

    return statistic


def _regression_statistic(metric: str, y_true: Floats, y_pred: Floats) -> Statistic:
    errors = y_pred - y_true
    if metric == "mae":
        absolute = np.abs(errors)
        return lambda weights: (weights @ absolute) / weights.sum(axis=1)
    squared = errors**2
    if metric == "rmse":
        return lambda weights: np.sqrt((weights @ squared) / weights.sum(axis=1))

    def r2(weights: Floats) -> Floats:
        total = weights.sum(axis=1)
        mean = (weights @ y_true) / total
        ss_tot = weights @ (y_true**2) - total * mean**2
        ss_res = weights @ squared
        out = np.full(weights.shape[0], np.nan)
        np.subtract(1.0, ss_res / np.where(ss_tot > 0, ss_tot, 1.0), out=out, where=ss_tot > 0)
        return out

    return r2


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class _Prepared:
    rows: int
    champion: dict[str, Statistic]
    challenger: dict[str, Statistic]


def _aligned_proba(
    name: str, evaluation: VersionEvaluation, rows: int, classes: tuple[str, ...]
) -> Floats:
    if evaluation.proba is None or evaluation.classes is None:
        raise InvalidInputError(
            f"{name} v{evaluation.version} gives no predicted probabilities (with classes); "
            "the policy's roc_auc/log_loss/ece conditions need them"
        )
    checked = check_proba(evaluation.proba, rows, len(evaluation.classes))
    position = {c: i for i, c in enumerate(classes)}
    unknown = [c for c in evaluation.classes if c not in position]
    if unknown:
        raise InvalidInputError(
            f"{name} v{evaluation.version}: {len(unknown)} of its classes never occur in the "
            "labels or either version's predictions; probabilities cannot be aligned"
        )
    aligned = np.zeros((rows, len(classes)), dtype=np.float64)
    aligned[:, [position[c] for c in evaluation.classes]] = checked
    return aligned


def _prepare(
    metrics: tuple[str, ...], champion: VersionEvaluation, challenger: VersionEvaluation
) -> _Prepared:
    truth = as_label_array("y_true", champion.y_true)
    if not np.array_equal(truth, as_label_array("challenger y_true", challenger.y_true)):
        raise InvalidInputError(
            "champion and challenger were evaluated on different rows; the gate needs both "
            "on the same dataset frame"
        )
    rows = int(truth.size)
    stats: tuple[dict[str, Statistic], dict[str, Statistic]] = ({}, {})
    versions = (("champion", champion), ("challenger", challenger))
    wanted_classification = [m for m in metrics if m in CLASSIFICATION_METRICS]
    if wanted_classification:
        preds = [as_label_array(f"{n} y_pred", e.y_pred) for n, e in versions]
        for (name, _), pred in zip(versions, preds, strict=True):
            if pred.size != rows:
                raise InvalidInputError(f"{name} y_pred has {pred.size} rows but y_true has {rows}")
        encoded = encode_labels(
            [("y_true", truth), ("champion y_pred", preds[0]), ("challenger y_pred", preds[1])],
            None,
        )
        true_codes = encoded.codes[0]
        k = len(encoded.classes)
        for side, ((name, evaluation), codes) in enumerate(
            zip(versions, encoded.codes[1:], strict=True)
        ):
            proba = None
            for metric in wanted_classification:
                if metric in _PROBA_METRICS:
                    if proba is None:
                        proba = _aligned_proba(name, evaluation, rows, encoded.classes)
                    stats[side][metric] = _proba_statistic(metric, true_codes, proba)
                else:
                    stats[side][metric] = _count_statistic(metric, true_codes, codes, k)
    wanted_regression = [m for m in metrics if m in REGRESSION_METRICS]
    if wanted_regression:
        from keelwatch.monitoring.evaluation.regression import regression_metrics

        for side, (_name, evaluation) in enumerate(versions):
            regression_metrics(truth, evaluation.y_pred)  # the suite's checks and messages
            y_true = np.asarray(truth, dtype=np.float64)
            y_pred = np.asarray(evaluation.y_pred, dtype=np.float64)
            for metric in wanted_regression:
                stats[side][metric] = _regression_statistic(metric, y_true, y_pred)
    return _Prepared(rows, stats[0], stats[1])


def _interval(
    metric: str, champion: Floats, challenger: Floats, point: tuple[float, float], level: float
) -> MetricInterval:
    tail = (1 - level) / 2 * 100
    diffs = challenger - champion
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(np.abs(champion) > 0, diffs / np.abs(champion), np.nan)
    finite = diffs[np.isfinite(diffs)]
    finite_rel = rel[np.isfinite(rel)]
    low, high = np.percentile(finite, [tail, 100 - tail]) if finite.size else (np.nan, np.nan)
    rel_low, rel_high = (
        np.percentile(finite_rel, [tail, 100 - tail]) if finite_rel.size else (np.nan, np.nan)
    )
    champ, chall = point
    return MetricInterval(
        metric=metric,
        champion=champ,
        challenger=chall,
        difference=chall - champ,
        ci_low=float(low),
        ci_high=float(high),
        relative=(chall - champ) / abs(champ) if champ != 0 else float("nan"),
        relative_ci_low=float(rel_low),
        relative_ci_high=float(rel_high),
    )


def _row_intervals(
    prepared: _Prepared, metrics: list[str], policy: GatePolicy, rng: np.random.Generator
) -> dict[str, MetricInterval]:
    ones = np.ones((1, prepared.rows))
    sampled: dict[str, tuple[list[Floats], list[Floats]]] = {m: ([], []) for m in metrics}
    for weights in _weight_chunks(rng, prepared.rows, policy.bootstrap_samples):
        for metric in metrics:
            sampled[metric][0].append(prepared.champion[metric](weights))
            sampled[metric][1].append(prepared.challenger[metric](weights))
    return {
        metric: _interval(
            metric,
            np.concatenate(sampled[metric][0]),
            np.concatenate(sampled[metric][1]),
            (
                float(prepared.champion[metric](ones)[0]),
                float(prepared.challenger[metric](ones)[0]),
            ),
            policy.metric_confidence,
        )
        for metric in metrics
    }


def _latency_interval(
    metric: str,
    champion: Floats,
    challenger: Floats,
    policy: GatePolicy,
    rng: np.random.Generator,
) -> MetricInterval:
    q = 95.0 if metric == "latency_p95_s" else 50.0

    def resampled(samples: Floats) -> Floats:
        draws = rng.integers(0, samples.size, size=(policy.bootstrap_samples, samples.size))
        return np.asarray(np.percentile(samples[draws], q, axis=1), dtype=np.float64)

    return _interval(
        metric,
        resampled(champion),
        resampled(challenger),
        (float(np.percentile(champion, q)), float(np.percentile(challenger, q))),
        policy.metric_confidence,
    )


def _latencies(name: str, evaluation: VersionEvaluation) -> Floats:
    samples = np.asarray(evaluation.latencies_s, dtype=np.float64).ravel()
    if not np.isfinite(samples).all() or (samples < 0).any():
        raise InvalidInputError(f"{name} latencies_s has negative, missing or infinite values")
    return samples


# --------------------------------------------------------------------------- verdict


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _signed(value: float) -> str:
    return f"{value:+.4g}"


def _judge(
    alternative: int, condition: GateCondition, interval: MetricInterval, level: float
) -> MetricComparison:
    lower_better = condition.lower_is_better
    relative = condition.relative
    low, high = (
        (interval.relative_ci_low, interval.relative_ci_high)
        if relative
        else (interval.ci_low, interval.ci_high)
    )
    t = condition.threshold
    # The bound that is worse for the challenger, and the limit it must clear, in the raw
    # (challenger - champion) direction.
    if condition.kind in ("max_drop", "max_regression"):
        limit = t if lower_better else -t
    else:
        limit = -t if lower_better else t
    strict = condition.kind == "min_gain"
    if lower_better:
        bound, bound_name = high, "upper bound"
        op = "<" if strict else "<="
        passed = bool(np.isfinite(bound) and (bound < limit if strict else bound <= limit))
    else:
        bound, bound_name = low, "lower bound"
        op = ">" if strict else ">="
        passed = bool(np.isfinite(bound) and (bound > limit if strict else bound >= limit))
    if relative:
        change = f"change {interval.relative:+.1%} [{level:.0%} CI {low:+.1%}, {high:+.1%}]"
        need = f"{bound_name} {op} {limit:+.1%}"
    else:
        change = (
            f"diff {_signed(interval.difference)} [{level:.0%} CI {_signed(low)}, {_signed(high)}]"
        )
        need = f"{bound_name} {op} {_signed(limit)}"
    direction = " (lower is better)" if lower_better else ""
    reason = (
        f"{condition.metric}: challenger {_fmt(interval.challenger)} vs champion "
        f"{_fmt(interval.champion)}, {change}, {condition.kind} {_fmt(t)}{direction}: "
        f"{need}: {'pass' if passed else 'fail'}"
    )
    return MetricComparison(
        alternative=alternative,
        metric=condition.metric,
        condition=condition.kind,
        threshold=t,
        lower_is_better=lower_better,
        champion=interval.champion,
        challenger=interval.challenger,
        difference=interval.difference,
        ci_low=float(low),
        ci_high=float(high),
        relative=relative,
        passed=passed,
        reason=reason,
    )


def _insufficient(reasons: list[str], rows: int) -> GateDecision:
    return GateDecision("insufficient_data", tuple(reasons), (), rows)


def decide_gate(
    policy: GatePolicy,
    champion: VersionEvaluation,
    challenger: VersionEvaluation,
    *,
    seed: int = 0,
) -> GateDecision:
    """Promote, reject, or insufficient_data for ``challenger`` against ``champion``.

    Deterministic for a given ``seed``. The first reason line is the verdict; one line per
    condition follows, prefixed with its alternative's number.
    """
    metrics = policy.metrics
    rows = int(np.asarray(champion.y_true).size)
    missing: list[str] = []
    if rows < policy.min_rows:
        missing.append(
            f"insufficient data: {rows} rows, the policy needs at least {policy.min_rows}"
        )
    latency = [m for m in metrics if m in LATENCY_METRICS]
    samples: dict[str, Floats] = {}
    for name, evaluation in (("champion", champion), ("challenger", challenger)):
        if latency:
            samples[name] = _latencies(name, evaluation)
            if samples[name].size < 2:
                missing.append(
                    f"insufficient data: {name} v{evaluation.version} has "
                    f"{samples[name].size} latency samples (needs at least 2)"
                )
        missing.extend(
            f"insufficient data: {name} v{evaluation.version} has no {metric}"
            for metric in metrics
            if metric in EXACT_METRICS and metric not in evaluation.metrics
        )
    if missing:
        return _insufficient(missing, rows)
    rng = np.random.default_rng(seed)
    row_metrics = [m for m in metrics if m in CLASSIFICATION_METRICS or m in REGRESSION_METRICS]
    intervals: dict[str, MetricInterval] = {}
    if row_metrics:
        prepared = _prepare(tuple(row_metrics), champion, challenger)
        intervals.update(_row_intervals(prepared, row_metrics, policy, rng))
    for metric in latency:
        intervals[metric] = _latency_interval(
            metric, samples["champion"], samples["challenger"], policy, rng
        )
    for metric in metrics:
        if metric in EXACT_METRICS:
            champ = float(champion.metrics[metric])
            chall = float(challenger.metrics[metric])
            intervals[metric] = _interval(
                metric, np.asarray([champ]), np.asarray([chall]), (champ, chall), 0.0
            )
    comparisons: list[MetricComparison] = []
    holding: list[int] = []
    for number, alternative in enumerate(policy.any_of, start=1):
        judged = [
            _judge(number, c, intervals[c.metric], policy.metric_confidence)
            for c in alternative.conditions
        ]
        comparisons.extend(judged)
        if all(c.passed for c in judged):
            holding.append(number)
    if holding:
        verdict = (
            f"promote: challenger v{challenger.version} over champion v{champion.version}; "
            f"alternative {holding[0]} holds ({rows} rows, {policy.bootstrap_samples} "
            f"bootstrap samples)"
        )
    else:
        verdict = (
            f"reject: challenger v{challenger.version} vs champion v{champion.version}; no "
            f"alternative holds ({rows} rows, {policy.bootstrap_samples} bootstrap samples)"
        )
    reasons = (verdict, *(f"[{c.alternative}] {c.reason}" for c in comparisons))
    return GateDecision("promote" if holding else "reject", reasons, tuple(comparisons), rows)
