"""The regression suite against scikit-learn's functions on generated data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.evaluation.regression import regression_metrics


def test_matches_sklearn() -> None:
    rng = np.random.default_rng(11)
    y_true = rng.normal(50, 10, 10_000)
    y_pred = y_true + rng.normal(0, 3, y_true.size)

    got = regression_metrics(y_true, y_pred)

    assert got.rows == 10_000
    assert got.mae == pytest.approx(mean_absolute_error(y_true, y_pred), rel=1e-12)
    assert got.rmse == pytest.approx(root_mean_squared_error(y_true, y_pred), rel=1e-12)
    assert got.r2 == pytest.approx(r2_score(y_true, y_pred), rel=1e-12)
    assert 0.85 < got.r2 < 0.95
    assert got.as_dict() == {"mae": got.mae, "rmse": got.rmse, "r2": got.r2}


def test_integer_targets_and_lists() -> None:
    got = regression_metrics([1, 2, 3, 4], [1, 2, 3, 5])
    assert got.mae == pytest.approx(0.25)
    assert got.rmse == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("y_true", "y_pred", "message"),
    [
        ([], [], "y_true is empty"),
        ([1.0], [1.0], "r2 needs at least 2 rows"),
        ([1.0, np.nan, 3.0], [1.0, 2.0, 3.0], "y_true has 1 missing"),
        ([1.0, 2.0, 3.0], [1.0, np.inf, 3.0], "y_pred has 1 missing"),
        ([1.0, 2.0], [1.0, 2.0, 3.0], "y_true has 2 rows but y_pred has 3"),
        (["cat", "dog"], [1.0, 2.0], "y_true holds <U3 values; regression needs numbers"),
    ],
)
def test_bad_input(y_true: object, y_pred: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message) as err:
        regression_metrics(y_true, y_pred)
    assert "cat" not in str(err.value)
