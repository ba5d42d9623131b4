"""Classification suite: accuracy, precision/recall/F1 (macro and weighted), ROC-AUC, log loss, ECE.

Labels are checked and encoded once (:mod:`._labels`); the confusion matrix is one
``np.bincount`` over the encoded pairs and the count-based metrics are read off it with
scikit-learn's definitions (``zero_division=0``; macro and weighted averages over the classes
present in ``y_true`` or ``y_pred``, as ``precision_recall_fscore_support`` does by default).
The unit tests compare every figure with scikit-learn's own functions. ROC-AUC and log loss
are scikit-learn's functions, called on the encoded labels so they do not re-encode.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from sklearn.metrics import log_loss as sk_log_loss
from sklearn.metrics import roc_auc_score

from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.evaluation._labels import as_label_array, encode_labels
from keelwatch.monitoring.evaluation.calibration import (
    DEFAULT_BINS,
    check_proba,
    curve_from_codes,
)

#: Metrics a caller may insist on through ``require``; the rest are always computed.
PROBABILITY_METRICS: Final = ("roc_auc", "log_loss", "ece")
METRICS: Final = (
    "accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
    *PROBABILITY_METRICS,
)


@dataclass(frozen=True)
class ClassificationMetrics:
    """One model's classification metrics on one labelled dataset."""

    rows: int
    classes: tuple[str, ...]
    accuracy: float
    precision_macro: float
    recall_macro: float
    f1_macro: float
    precision_weighted: float
    recall_weighted: float
    f1_weighted: float
    roc_auc: float | None
    log_loss: float | None
    ece: float | None
    #: rows = true class, columns = predicted class, both in :attr:`classes` order.
    confusion: tuple[tuple[int, ...], ...]

    def as_dict(self) -> dict[str, float]:
        """Flat metric name -> value; metrics that could not be computed are left out."""
        out: dict[str, float] = {}
        for name in METRICS:
            value = getattr(self, name)
            if value is not None:
                out[name] = float(value)
        return out


def _safe_divide(
    num: npt.NDArray[np.float64], den: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    # scikit-learn's zero_division=0: 0/0 is 0 rather than nan.
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _count_metrics(confusion: npt.NDArray[np.int64]) -> dict[str, float]:
    tp = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1).astype(np.float64)  # true count per class
    predicted = confusion.sum(axis=0).astype(np.float64)
    precision = _safe_divide(tp, predicted)
    recall = _safe_divide(tp, support)
    f1 = _safe_divide(2 * tp, support + predicted)
    present = (support + predicted) > 0
    weights = support / support.sum()
    return {
        "accuracy": float(tp.sum() / support.sum()),
        "precision_macro": float(precision[present].mean()),
        "recall_macro": float(recall[present].mean()),
        "f1_macro": float(f1[present].mean()),
        "precision_weighted": float((precision * weights).sum()),
        "recall_weighted": float((recall * weights).sum()),
        "f1_weighted": float((f1 * weights).sum()),
    }


def _roc_auc(true_codes: npt.NDArray[np.intp], proba: npt.NDArray[np.float64]) -> float | None:
    k = proba.shape[1]
    present = np.bincount(true_codes, minlength=k) > 0
    if k == 2:
        if not present.all():
            return None  # one class only: ROC-AUC is undefined
        return float(roc_auc_score(true_codes == 1, proba[:, 1]))
    if not present.all():
        return None  # one-vs-rest needs positives and negatives for every class
    return float(
        roc_auc_score(true_codes, proba, multi_class="ovr", average="macro", labels=np.arange(k))
    )


def classification_metrics(
    y_true: object,
    y_pred: object,
    *,
    proba: object | None = None,
    classes: Sequence[object] | None = None,
    require: Sequence[str] = (),
    bins: int = DEFAULT_BINS,
) -> ClassificationMetrics:
    """The classification suite for ``y_pred`` (and ``proba``) against ``y_true``.

    ``proba`` is ``(rows, len(classes))`` with columns in ``classes`` order (binary: two
    columns); without ``classes`` its columns follow the sorted labels. With ``proba``, every
    label must be one of ``classes``; without it, ``classes`` only adds classes the data lacks.

    ``require`` names metrics that must be computable (e.g. ``("roc_auc",)``): missing
    probabilities, or ROC-AUC undefined because ``y_true`` lacks a class, then raise
    :class:`~keelwatch.errors.InvalidInputError` instead of leaving the metric out.
    """
    unknown = [name for name in require if name not in METRICS]
    if unknown:
        raise InvalidInputError(
            f"unknown classification metric(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(METRICS)}"
        )
    truth = as_label_array("y_true", y_true)
    predicted = as_label_array("y_pred", y_pred)
    if truth.size != predicted.size:
        raise InvalidInputError(
            f"y_true has {truth.size} rows but y_pred has {predicted.size}; they must match"
        )
    if proba is None:
        for name in PROBABILITY_METRICS:
            if name in require:
                raise InvalidInputError(
                    f"{name} needs predicted probabilities; the model gives none"
                )
    # Without probabilities a label the model never learnt is simply a class it gets wrong.
    encoded = encode_labels(
        [("y_true", truth), ("y_pred", predicted)], classes, strict=proba is not None
    )
    true_codes, pred_codes = encoded.codes
    k = len(encoded.classes)
    confusion = np.bincount(true_codes * k + pred_codes, minlength=k * k).reshape(k, k)
    counts = _count_metrics(confusion)
    roc_auc = log_loss = ece = None
    if proba is not None:
        if k < 2:
            raise InvalidInputError(
                "proba needs at least two classes; pass the model's classes with it"
            )
        checked = check_proba(proba, truth.size, k if classes is None else len(classes))
        if encoded.given_positions is None:
            ordered = checked
        else:
            ordered = np.empty((truth.size, k), dtype=np.float64)
            ordered[:, encoded.given_positions] = checked
        roc_auc = _roc_auc(true_codes, ordered)
        if roc_auc is None and "roc_auc" in require:
            raise InvalidInputError(
                "roc_auc is undefined: y_true must contain every class at least once"
            )
        log_loss = float(sk_log_loss(true_codes, ordered, labels=np.arange(k)))
        ece = curve_from_codes(true_codes, ordered, bins).ece
    return ClassificationMetrics(
        rows=int(truth.size),
        classes=encoded.classes,
        roc_auc=roc_auc,
        log_loss=log_loss,
        ece=ece,
        confusion=tuple(tuple(int(c) for c in row) for row in confusion),
        **counts,
    )
