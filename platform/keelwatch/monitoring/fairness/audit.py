"""The bias audit: per-group metrics over every slice, gaps, bootstrap intervals, verdicts.

INTERFACE STUB (being implemented): the signature and behaviour below are agreed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from keelwatch.monitoring.fairness.results import AuditConfig, AuditResult, AuditTask

if TYPE_CHECKING:
    import numpy as np


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
    """
    raise NotImplementedError
