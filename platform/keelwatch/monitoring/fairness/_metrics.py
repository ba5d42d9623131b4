"""Group metrics and gaps as array formulas over cell counts and sums.

The same formulas serve the point estimates (one "resample": the data) and every bootstrap
resample, so an interval is always the interval of the number reported. Undefined values are
NaN *inside* these arrays only (0/0: a group without positive labels has no TPR); the audit
turns them into None with a reason before anything leaves the package.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from keelwatch.monitoring.fairness._cells import FN, FP, TN, TP
from keelwatch.monitoring.fairness.results import (
    BINARY_GAP_METRICS,
    BINARY_GROUP_METRICS,
    RATIO_GAPS,
    REGRESSION_GAP_METRICS,
    AuditTask,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: The group metrics each gap compares (equalized odds: both rates).
GAP_COMPONENTS: Mapping[str, tuple[str, ...]] = {
    "demographic_parity_difference": ("selection_rate",),
    "demographic_parity_ratio": ("selection_rate",),
    "equalized_odds_difference": ("tpr", "fpr"),
    "equal_opportunity_difference": ("tpr",),
    "predictive_parity_difference": ("precision",),
    "calibration_gap_difference": ("calibration_gap",),
    "mean_prediction_difference": ("mean_prediction",),
    "mae_difference": ("mae",),
}

#: Why a group metric is undefined (its denominator is zero in the group).
UNDEFINED_REASONS: Mapping[str, str] = {
    "tpr": "no positive labels",
    "fpr": "no negative labels",
    "precision": "no positive predictions",
}


def available_metrics(task: AuditTask, labelled: bool, scored: bool) -> tuple[str, ...]:
    """The group metrics the data allows, in the agreed order."""
    if task == "regression":
        return ("mean_prediction", "mean_label", "mae") if labelled else ("mean_prediction",)
    needs = {
        "selection_rate": True,
        "mean_score": scored,
        "base_rate": labelled,
        "tpr": labelled,
        "fpr": labelled,
        "precision": labelled,
        "accuracy": labelled,
        "calibration_gap": labelled and scored,
    }
    return tuple(m for m in BINARY_GROUP_METRICS if needs[m])


def available_gaps(metrics: tuple[str, ...], task: AuditTask) -> tuple[str, ...]:
    """The gap metrics whose group metrics are all available."""
    names = BINARY_GAP_METRICS if task == "binary" else REGRESSION_GAP_METRICS
    return tuple(g for g in names if all(c in metrics for c in GAP_COMPONENTS[g]))


def group_metrics(
    task: AuditTask,
    metrics: tuple[str, ...],
    counts: FloatArray,
    sums: Mapping[str, FloatArray],
) -> dict[str, FloatArray]:
    """``(..., groups)`` arrays of each metric from ``(..., groups, cells)`` counts and sums."""
    rows = counts.sum(axis=-1)
    out: dict[str, FloatArray] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        if task == "regression":
            out["mean_prediction"] = sums["pred"][..., 0] / rows
            if "mae" in metrics:
                out["mean_label"] = sums["label"][..., 0] / rows
                out["mae"] = sums["abs_error"][..., 0] / rows
            return out
        labelled = "tpr" in metrics
        if labelled:
            tn, fp, fn, tp = (counts[..., i] for i in (TN, FP, FN, TP))
            predicted = fp + tp
        else:
            predicted = counts[..., 1]
        out["selection_rate"] = predicted / rows
        if "mean_score" in metrics:
            out["mean_score"] = sums["score"].sum(axis=-1) / rows
        if labelled:
            out["base_rate"] = (fn + tp) / rows
            out["tpr"] = tp / (fn + tp)
            out["fpr"] = fp / (fp + tn)
            out["precision"] = tp / predicted
            out["accuracy"] = (tp + tn) / rows
        if "calibration_gap" in metrics:
            out["calibration_gap"] = out["mean_score"] - out["base_rate"]
    return {m: out[m] for m in metrics}


def spread(values: FloatArray, eligible: BoolArray) -> tuple[FloatArray, IntArray, IntArray]:
    """Largest minus smallest finite value over the ``eligible`` groups, per row of
    ``(rows, groups)`` values, with the group indices of both (NaN below two finite values)."""
    positions = np.flatnonzero(eligible)
    chosen = values[:, positions]
    finite = np.isfinite(chosen)
    high = np.where(finite, chosen, -np.inf)
    low = np.where(finite, chosen, np.inf)
    arg_high = high.argmax(axis=1) if positions.size else np.zeros(len(values), np.int64)
    arg_low = low.argmin(axis=1) if positions.size else np.zeros(len(values), np.int64)
    enough = finite.sum(axis=1) >= 2
    if not positions.size:
        return np.full(len(values), np.nan), arg_high, arg_low
    top = np.take_along_axis(high, arg_high[:, None], axis=1)[:, 0]
    bottom = np.take_along_axis(low, arg_low[:, None], axis=1)[:, 0]
    return (
        np.where(enough, top - bottom, np.nan),
        positions[arg_high].astype(np.int64),
        positions[arg_low].astype(np.int64),
    )


def gap_values(
    gap: str, metrics: Mapping[str, FloatArray], eligible: Mapping[str, BoolArray]
) -> tuple[FloatArray, IntArray, IntArray]:
    """A gap per row of ``(rows, groups)`` metric arrays, with the (largest, smallest) groups.

    Fairlearn's "between_groups": max - min; the parity ratio is min / max; equalized odds
    is the larger of the TPR and FPR differences (NaN when either is undefined)."""
    components = GAP_COMPONENTS[gap]
    first = components[0]
    value, high, low = spread(metrics[first], eligible[first])
    if gap in RATIO_GAPS:
        rows = np.arange(len(value))
        top = metrics[first][rows, high]
        bottom = metrics[first][rows, low]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(np.isfinite(value) & (top > 0), bottom / top, np.nan)
        return ratio, high, low
    for other in components[1:]:
        other_value, other_high, other_low = spread(metrics[other], eligible[other])
        take_other = other_value > value
        high = np.where(take_other, other_high, high)
        low = np.where(take_other, other_low, low)
        # np.maximum keeps NaN: equalized odds needs both rates.
        value = np.maximum(value, other_value)
    return value, high, low
