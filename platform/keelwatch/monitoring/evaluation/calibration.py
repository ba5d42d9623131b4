"""Calibration: expected calibration error (ECE) and the reliability curve behind its plot.

Top-label calibration (Guo et al., 2017): each row's confidence is its largest predicted
probability and it is *correct* when that column's class is the true label. Rows fall into
``bins`` equal-width confidence bins, right-closed ``(lo, hi]`` (a confidence of exactly 0
joins the first bin; edges are ``np.linspace(0, 1, bins + 1)``); ECE is the row-weighted mean
of ``|accuracy - mean confidence|`` over the bins. scikit-learn has no ECE and its
``calibration_curve`` is binary-only, so the few lines here are the formula itself, checked in
the tests against a hand-worked example and a monotonic property.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.evaluation._labels import Array, as_label_array, encode_labels

DEFAULT_BINS = 15


@dataclass(frozen=True)
class ReliabilityCurve:
    """Per-bin counts, mean confidence and accuracy; empty bins hold ``nan`` (plots skip them)."""

    bin_edges: tuple[float, ...]
    counts: tuple[int, ...]
    confidence: tuple[float, ...]
    accuracy: tuple[float, ...]
    ece: float


def check_proba(proba: object, rows: int, classes: int) -> npt.NDArray[np.float64]:
    """A ``(rows, classes)`` float array of probabilities; rows summing to 1 within 1e-3 are
    renormalised (float32 softmax output drifts by ~1e-7), anything else raises."""
    array = np.asarray(proba, dtype=np.float64)
    if array.ndim != 2 or array.shape != (rows, classes):
        raise InvalidInputError(
            f"proba has shape {array.shape}; expected ({rows}, {classes}): one row per label "
            "and one column per class"
        )
    if not np.isfinite(array).all():
        raise InvalidInputError(
            f"proba has {int((~np.isfinite(array)).sum())} missing or infinite values"
        )
    if (array < 0).any() or (array > 1).any():
        raise InvalidInputError("proba has values outside [0, 1]; pass probabilities")
    sums = array.sum(axis=1)
    off = np.abs(sums - 1.0) > 1e-3
    if off.any():
        raise InvalidInputError(
            f"proba rows must sum to 1; {int(off.sum())} row(s) do not (pass probabilities, "
            "not scores)"
        )
    if not np.all(sums == 1.0):
        array = array / sums[:, None]
    return array


def bin_index(confidence: Array, edges: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
    # Right-closed bins (lo, hi]: a row's bin is the number of inner edges strictly below its
    # confidence; comparing with the reported edges keeps rows on an edge where a reader expects.
    return np.searchsorted(edges[1:-1], confidence, side="left").astype(np.intp, copy=False)


def curve_from_codes(
    true_codes: npt.NDArray[np.intp], proba: npt.NDArray[np.float64], bins: int
) -> ReliabilityCurve:
    """The reliability curve and ECE from encoded labels and proba columns in class order."""
    if bins < 1:
        raise InvalidInputError(f"bins must be at least 1, got {bins}")
    top = proba.argmax(axis=1)
    confidence = proba[np.arange(proba.shape[0]), top]
    correct = (top == true_codes).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = bin_index(confidence, edges)
    counts = np.bincount(index, minlength=bins)
    conf_sum = np.bincount(index, weights=confidence, minlength=bins)
    acc_sum = np.bincount(index, weights=correct, minlength=bins)
    filled = counts > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(filled, conf_sum / counts, np.nan)
        mean_acc = np.where(filled, acc_sum / counts, np.nan)
    # sum_b (n_b / n) |acc_b - conf_b| == sum_b |acc_sum_b - conf_sum_b| / n
    ece = float(np.abs(acc_sum - conf_sum).sum() / proba.shape[0])
    return ReliabilityCurve(
        bin_edges=tuple(float(e) for e in edges),
        counts=tuple(int(c) for c in counts),
        confidence=tuple(float(c) for c in mean_conf),
        accuracy=tuple(float(a) for a in mean_acc),
        ece=ece,
    )


def reliability_curve(
    y_true: object, proba: object, classes: Sequence[object], bins: int = DEFAULT_BINS
) -> ReliabilityCurve:
    """Reliability curve of ``proba`` (columns in ``classes`` order) against ``y_true``."""
    labels = as_label_array("y_true", y_true)
    encoded = encode_labels([("y_true", labels)], classes)
    assert encoded.given_positions is not None  # classes was given
    checked = check_proba(proba, labels.size, len(classes))
    ordered = np.empty_like(checked)
    ordered[:, encoded.given_positions] = checked
    return curve_from_codes(encoded.codes[0], ordered, bins)


def expected_calibration_error(
    y_true: object, proba: object, classes: Sequence[object], bins: int = DEFAULT_BINS
) -> float:
    """Top-label expected calibration error over ``bins`` equal-width bins (0 is perfect)."""
    return reliability_curve(y_true, proba, classes, bins).ece
