"""Generated audit data: three sensitive attributes, labels, scores and predictions whose
rates depend on the groups by a chosen amount of bias."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest


@dataclass(frozen=True)
class AuditData:
    sensitive: dict[str, npt.NDArray[np.str_] | npt.NDArray[np.int64]]
    y_true: npt.NDArray[np.int64]
    y_pred: npt.NDArray[np.int64]
    score: npt.NDArray[np.float64]
    target: npt.NDArray[np.float64]
    """A continuous label for regression audits."""
    estimate: npt.NDArray[np.float64]
    """A regression model's prediction."""


def make_data(rows: int, *, bias: float = 0.15, seed: int = 0) -> AuditData:
    """Rows with attributes ``region`` (4 strings), ``age`` (3 ints) and ``tier`` (5 strings);
    the positive rate, scores and predictions rise with ``bias`` times the region's code."""
    rng = np.random.default_rng(seed)
    region = rng.integers(0, 4, rows)
    age = rng.integers(0, 3, rows)
    tier = rng.integers(0, 5, rows)
    base = 0.25 + bias * region / 3 + 0.03 * age
    y_true = (rng.random(rows) < base).astype(np.int64)
    score = np.clip(base + 0.35 * (y_true - base) + rng.normal(0, 0.15, rows), 0, 1)
    y_pred = (score > 0.45).astype(np.int64)
    target = 2.0 + bias * region + 0.2 * tier + rng.normal(0, 1, rows)
    estimate = target + rng.normal(0.1 * age, 0.5 + 0.1 * region, rows)
    sensitive = {
        "region": np.asarray(["north", "south", "east", "west"])[region],
        "age": age + 18,
        "tier": np.asarray([f"t{i}" for i in range(5)])[tier],
    }
    return AuditData(sensitive, y_true, y_pred, score, target, estimate)


@pytest.fixture
def data_factory() -> Callable[..., AuditData]:
    return make_data
