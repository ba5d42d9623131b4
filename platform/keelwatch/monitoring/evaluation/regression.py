"""Regression suite: MAE, RMSE and R², scikit-learn's functions on checked numeric arrays."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

from keelwatch.errors import InvalidInputError


@dataclass(frozen=True)
class RegressionMetrics:
    """One model's regression metrics on one labelled dataset."""

    rows: int
    mae: float
    rmse: float
    r2: float

    def as_dict(self) -> dict[str, float]:
        """Flat metric name -> value (``rows`` is a count, not a metric)."""
        return {k: float(v) for k, v in asdict(self).items() if k != "rows"}


def _numeric(name: str, values: object) -> npt.NDArray[np.float64]:
    array = np.asarray(values)
    if array.ndim != 1:
        raise InvalidInputError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        raise InvalidInputError(f"{name} is empty: no rows to evaluate")
    if array.dtype.kind not in "biuf":
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError):
            raise InvalidInputError(
                f"{name} holds {array.dtype} values; regression needs numbers"
            ) from None
    array = array.astype(np.float64, copy=False)
    bad = ~np.isfinite(array)
    if bad.any():
        raise InvalidInputError(f"{name} has {int(bad.sum())} missing (NaN) or infinite values")
    return array


def regression_metrics(y_true: object, y_pred: object) -> RegressionMetrics:
    """MAE, RMSE and R² of ``y_pred`` against ``y_true`` (at least two rows, for R²)."""
    truth = _numeric("y_true", y_true)
    predicted = _numeric("y_pred", y_pred)
    if truth.size != predicted.size:
        raise InvalidInputError(
            f"y_true has {truth.size} rows but y_pred has {predicted.size}; they must match"
        )
    if truth.size < 2:
        raise InvalidInputError("r2 needs at least 2 rows; the dataset has 1")
    return RegressionMetrics(
        rows=int(truth.size),
        mae=float(mean_absolute_error(truth, predicted)),
        rmse=float(root_mean_squared_error(truth, predicted)),
        r2=float(r2_score(truth, predicted)),
    )
