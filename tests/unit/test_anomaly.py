"""EWMA and CUSUM control charts against sequences computed by hand from their formulas."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from keelwatch.entities.signals import Signal
from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.anomaly import (
    CusumParams,
    CusumPoint,
    EwmaParams,
    EwmaPoint,
    anomaly_signals,
    cusum_chart,
    ewma_chart,
)

T0 = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
# Warm-up [1, 2, 3, 4]: mean 2.5, sample variance ((1.5² + 0.5²) · 2) / 3 = 5/3.
MEAN = 2.5
SD = math.sqrt(5.0 / 3.0)  # 1.2909944...


def test_ewma_by_hand() -> None:
    """lam = 0.5, L = 3, warm-up 4: z_i = (x_i + z_(i-1)) / 2 from z_0 = 2.5, half-width
    3 · sd · sqrt(1/3 · (1 - 0.25^i))."""
    values = [1, 2, 3, 4, 2.5, 3.5, 7, 10, 10, 10, 10, 10, 11]
    points = ewma_chart([float(v) for v in values], EwmaParams(lam=0.5, limit_sigmas=3, warmup=4))
    assert len(points) == len(values)
    assert [p.warming_up for p in points] == [True] * 4 + [False] * 3 + [True] * 4 + [False] * 2
    assert all(p.ewma is None and p.alarm is None for p in points if p.warming_up)
    monitored = [p for p in points if not p.warming_up]
    # i = 1: z = (2.5 + 2.5) / 2 = 2.5; i = 2: z = (3.5 + 2.5) / 2 = 3.0; i = 3: z = (7 + 3) / 2
    assert [p.ewma for p in monitored[:3]] == pytest.approx([2.5, 3.0, 5.0])
    widths = [3 * SD * math.sqrt(1 / 3 * (1 - 0.25**i)) for i in (1, 2, 3)]
    # = 1.9364917, 2.1650635, 2.2185299
    assert widths == pytest.approx([1.9364917, 2.1650635, 2.2185299])
    for point, width in zip(monitored[:3], widths, strict=True):
        assert point.mean == pytest.approx(MEAN) and point.sigma == pytest.approx(SD)
        assert point.lower == pytest.approx(MEAN - width)
        assert point.upper == pytest.approx(MEAN + width)
    # |z - 2.5| = 0, 0.5, 2.5: only the third is outside its half-width 2.2185
    assert [p.alarm for p in monitored[:3]] == [None, None, "up"]
    assert monitored[2].score == pytest.approx(2.5 / (widths[2] / 3))  # 3.3806, beyond L
    # Reset: the next four points (all 10) are a fresh warm-up: mean 10, sd floored at 1e-8.
    # z = (10 + 10) / 2 = 10 stays inside; z = (11 + 10) / 2 = 10.5 is outside.
    assert monitored[3].mean == 10.0 and monitored[3].sigma == pytest.approx(1e-8)
    assert monitored[3].ewma == 10.0 and monitored[3].alarm is None
    assert monitored[4].ewma == pytest.approx(10.5) and monitored[4].alarm == "up"


def test_cusum_by_hand() -> None:
    """k = 0.5, h = 2, warm-up 4: y = (x - 2.5) / sd; C+ = max(0, C+ + y - 0.5),
    C- = max(0, C- - y - 0.5)."""
    values = [1, 2, 3, 4, 2.5, 4, 4, 4, 4, 5, 6, 7, 8, 6.5, 2.5]
    points = cusum_chart([float(v) for v in values], CusumParams(k=0.5, h=2, warmup=4))
    assert [p.warming_up for p in points] == ([True] * 4 + [False] * 5 + [True] * 4 + [False] * 2)
    monitored = [p for p in points if not p.warming_up]
    y = 1.5 / SD  # 1.1618950 for x = 4
    upper = [0.0, y - 0.5, 2 * (y - 0.5), 3 * (y - 0.5), 4 * (y - 0.5)]
    assert upper == pytest.approx([0.0, 0.6618950, 1.3237900, 1.9856850, 2.6475800])
    assert [p.upper_sum for p in monitored[:5]] == pytest.approx(upper)
    assert [p.lower_sum for p in monitored[:5]] == [0.0] * 5
    assert [p.alarm for p in monitored[:5]] == [None, None, None, None, "up"]
    assert monitored[4].score == pytest.approx(2.6475800)
    assert {p.threshold for p in monitored} == {2.0}
    # Reset: warm-up [5, 6, 7, 8] (mean 6.5, same sd); x = 6.5 gives y = 0, both sums 0;
    # x = 2.5 gives y = -4 / sd = -3.0983867, C- = 3.0983867 - 0.5 = 2.5983867 > 2.
    assert monitored[5].mean == 6.5 and monitored[5].upper_sum == 0.0
    assert monitored[5].lower_sum == 0.0 and monitored[5].alarm is None
    assert monitored[6].lower_sum == pytest.approx(2.5983867)
    assert monitored[6].alarm == "down" and monitored[6].score == pytest.approx(-2.5983867)


@pytest.mark.parametrize("value", [0.0, 0.1, 1234.5678])
def test_a_constant_series_never_alarms(value: float) -> None:
    series = [value] * 200
    assert [p for p in ewma_chart(series) if p.alarm] == []
    assert [p for p in cusum_chart(series) if p.alarm] == []


def _step(shift: float, seed: int = 11) -> list[float]:
    """30 warm-up and 40 in-control points of N(0, 1), then 40 points shifted by ``shift``."""
    rng = np.random.default_rng(seed)
    return [float(v) for v in np.concatenate([rng.normal(0, 1, 70), rng.normal(shift, 1, 40)])]


def test_a_step_shift_alarms_once_within_the_expected_run_length() -> None:
    series = _step(3.0)
    charts: list[Sequence[EwmaPoint | CusumPoint]] = [
        ewma_chart(series, EwmaParams(warmup=30)),
        cusum_chart(series, CusumParams(warmup=30)),
    ]
    for points in charts:
        alarms = [i for i, p in enumerate(points) if p.alarm]
        # In control for 40 points, then a 3-sd shift: the average run length is about 2-4
        # points for both charts; 10 leaves room for the warm-up's estimation error.
        assert alarms and 70 <= alarms[0] < 80, alarms
        assert points[alarms[0]].alarm == "up"
        # After the alarm the chart re-learns on the shifted level: one shift, one alarm.
        assert len(alarms) == 1, alarms
        assert all(p.warming_up for p in points[alarms[0] + 1 : alarms[0] + 31])


def test_a_downward_shift_alarms_down() -> None:
    series = _step(-3.0)
    assert next(p.alarm for p in ewma_chart(series, EwmaParams(warmup=30)) if p.alarm) == "down"
    assert next(p.alarm for p in cusum_chart(series, CusumParams(warmup=30)) if p.alarm) == "down"


def test_a_series_shorter_than_the_warm_up_only_warms_up() -> None:
    assert [p.warming_up for p in ewma_chart([1.0, 2.0, 50.0], EwmaParams(warmup=5))] == [True] * 3
    assert cusum_chart([]) == []


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: EwmaParams(lam=0.0), "lam must be in"),
        (lambda: EwmaParams(lam=1.5), "lam must be in"),
        (lambda: EwmaParams(limit_sigmas=0), "limit_sigmas must be positive"),
        (lambda: EwmaParams(warmup=1), "warmup must be at least 2"),
        (lambda: CusumParams(k=-1), "k must be >= 0"),
        (lambda: CusumParams(h=0), "h must be positive"),
        (lambda: CusumParams(sigma_floor=0), "sigma_floor must be positive"),
    ],
)
def test_bad_parameters_are_rejected_by_name(build: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        build()  # type: ignore[operator]


def test_non_finite_values_are_rejected_with_their_position() -> None:
    with pytest.raises(InvalidInputError, match="position 2 is not finite"):
        ewma_chart([1.0, 2.0, float("nan")])


def _series(values: list[float]) -> list[Signal]:
    labels = {"model": "credit", "queue": "cpu"}
    return [
        Signal("ops.queue.depth", v, labels, T0 + timedelta(minutes=i), source=f"job:{i}")
        for i, v in enumerate(values)
    ]


def test_alarms_become_anomaly_signals_with_the_series_labels() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 2.5, 4.0, 4.0, 4.0, 4.0]
    shuffled = list(reversed(_series(values)))  # charted in time order whatever the input order
    signals = anomaly_signals(shuffled, "cusum", CusumParams(k=0.5, h=2, warmup=4))
    assert len(signals) == 1
    (alarm,) = signals
    assert alarm.name == "anomaly.cusum"
    assert alarm.value == pytest.approx(2.6475800)  # C+ at the alarm, computed by hand above
    assert alarm.labels == {
        "detector": "cusum",
        "direction": "up",
        "model": "credit",
        "queue": "cpu",
        "signal": "ops.queue.depth",
    }
    assert alarm.observed_at == T0 + timedelta(minutes=8)
    assert alarm.source == "job:8"
    ewma = anomaly_signals(_series([1, 2, 3, 4, 2.5, 3.5, 7]), "ewma", EwmaParams(0.5, 3, 4))
    assert [(s.name, s.labels["detector"], s.observed_at) for s in ewma] == [
        ("anomaly.ewma", "ewma", T0 + timedelta(minutes=6))
    ]
    assert ewma[0].value > 3  # the score is beyond L
    assert anomaly_signals([], "ewma") == []


def test_anomaly_signals_refuse_mixed_series_and_wrong_parameters() -> None:
    mixed = [*_series([1.0, 2.0]), Signal("ops.queue.depth", 1.0, {"queue": "gpu"}, T0)]
    with pytest.raises(InvalidInputError, match="one series"):
        anomaly_signals(mixed, "ewma")
    with pytest.raises(InvalidInputError, match="the ewma detector takes EwmaParams"):
        anomaly_signals(_series([1.0]), "ewma", CusumParams())
    with pytest.raises(InvalidInputError, match="unknown anomaly detector 'zscore'"):
        anomaly_signals(_series([1.0]), "zscore")  # type: ignore[arg-type]
