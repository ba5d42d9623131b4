"""Expected calibration error: a hand-worked example, the reliability curve and monotonicity."""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt
import pytest

from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.evaluation.calibration import (
    expected_calibration_error,
    reliability_curve,
)
from keelwatch.monitoring.evaluation.classification import classification_metrics

# Four rows, five bins (0, .2], (.2, .4], (.4, .6], (.6, .8], (.8, 1]:
#   conf .9 correct  -> bin (.8, 1]  : acc 1,   conf .9   -> |1 - .9| * 1 = .1
#   conf .8 wrong    -> bin (.6, .8] \
#   conf .7 correct  -> bin (.6, .8] / acc .5, conf .75 -> |.5 - .75| * 2 = .5
#   conf .6 correct  -> bin (.4, .6] : acc 1,   conf .6   -> |1 - .6| * 1 = .4
# ECE = (.1 + .5 + .4) / 4 = .25. Left-closed bins would put .8 with .9 and give .35.
HAND_TRUE = np.array(["pos", "neg", "neg", "pos"])
HAND_PROBA = np.array([[0.1, 0.9], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
HAND_CLASSES = ("neg", "pos")


def test_hand_worked_example() -> None:
    assert expected_calibration_error(HAND_TRUE, HAND_PROBA, HAND_CLASSES, bins=5) == (
        pytest.approx(0.25, abs=1e-12)
    )


def test_reliability_curve_of_the_hand_example() -> None:
    curve = reliability_curve(HAND_TRUE, HAND_PROBA, HAND_CLASSES, bins=5)
    assert curve.counts == (0, 0, 1, 2, 1)
    assert curve.accuracy[2:] == pytest.approx((1.0, 0.5, 1.0))
    assert curve.confidence[2:] == pytest.approx((0.6, 0.75, 0.9))
    assert np.isnan(curve.accuracy[0]) and np.isnan(curve.confidence[1])
    assert curve.bin_edges == pytest.approx((0.0, 0.2, 0.4, 0.6, 0.8, 1.0))
    assert curve.ece == pytest.approx(0.25)


def test_column_order_of_the_model_does_not_change_the_result() -> None:
    swapped = HAND_PROBA[:, ::-1]
    assert expected_calibration_error(HAND_TRUE, swapped, HAND_CLASSES[::-1], bins=5) == (
        pytest.approx(0.25)
    )


def test_classification_suite_reports_the_same_ece() -> None:
    pred = np.array(HAND_CLASSES)[HAND_PROBA.argmax(axis=1)]
    got = classification_metrics(HAND_TRUE, pred, proba=HAND_PROBA, classes=HAND_CLASSES, bins=5)
    assert got.ece == pytest.approx(0.25)


def _sharpen(p: npt.NDArray[np.float64], power: float) -> npt.NDArray[np.float64]:
    a, b = p**power, (1 - p) ** power
    return a / (a + b)


def test_ece_grows_as_calibrated_probabilities_are_pushed_away_from_calibration() -> None:
    rng = np.random.default_rng(7)
    p = rng.random(200_000)
    y = (rng.random(p.size) < p).astype(np.int64)  # calibrated by construction
    eces = []
    for power in (1.0, 1.5, 2.0, 3.0, 5.0):  # ever more over-confident
        q = _sharpen(p, power)
        eces.append(expected_calibration_error(y, np.c_[1 - q, q], (0, 1)))
    assert eces[0] < 0.01
    assert all(later > earlier for earlier, later in itertools.pairwise(eces))
    under = [
        expected_calibration_error(y, np.c_[1 - q, q], (0, 1))
        for q in (_sharpen(p, power) for power in (1.0, 0.7, 0.4, 0.1))  # under-confident
    ]
    assert all(later > earlier for earlier, later in itertools.pairwise(under))


def test_perfect_confident_predictions_have_zero_ece() -> None:
    y = np.array([0, 1, 2, 1])
    proba = np.eye(3)[y]
    assert expected_calibration_error(y, proba, (0, 1, 2)) == 0.0


def test_bad_bins_and_shape() -> None:
    with pytest.raises(InvalidInputError, match="bins must be at least 1"):
        expected_calibration_error(HAND_TRUE, HAND_PROBA, HAND_CLASSES, bins=0)
    with pytest.raises(InvalidInputError, match=r"proba has shape \(4, 2\); expected \(4, 3\)"):
        expected_calibration_error(HAND_TRUE, HAND_PROBA, ("neg", "pos", "x"))
