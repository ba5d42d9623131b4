"""Operational anomaly detection: EWMA and two-sided tabular CUSUM control charts.

Pure: a series of numbers (or of :class:`~keelwatch.entities.signals.Signal` values) in, chart
points and anomaly signals out; no I/O, no clock.

Both charts share one life cycle, so their output is easy to reason about:

1. **Warm-up.** The first ``warmup`` points of the series estimate the in-control mean ``mu0``
   and standard deviation ``sd`` (sample standard deviation, ``n - 1``). No alarm is possible
   while warming up. ``sd`` is floored at ``sigma_floor * max(1, |mu0|)`` so that a constant
   warm-up (an error rate of exactly 0) gives finite limits: after it, any real departure
   alarms, and rounding noise never does.
2. **Monitoring.** Each later point updates the chart statistic and is compared with the limits.
3. **Reset after an alarm.** The point that alarms is reported; the chart then starts again with
   a fresh warm-up on the points that follow. An alarm means the process moved, so the old
   ``mu0`` no longer describes it: keeping it would raise an alarm on every point of a lasting
   shift (one incident, one alarm), and a fresh baseline lets a further move alarm again.

EWMA (Roberts 1959; Montgomery, *Introduction to Statistical Quality Control*, section 9.2):
``z_0 = mu0`` and ``z_i = lam * x_i + (1 - lam) * z_(i-1)`` for the ``i``-th monitored point,
with the exact time-varying limits
``mu0 +/- L * sd * sqrt(lam / (2 - lam) * (1 - (1 - lam)^(2i)))``. A point alarms when ``z_i``
is strictly outside. ``lam`` in (0, 1]: small values remember longer and catch small shifts
(0.05 to 0.25 is usual); ``L`` (``limit_sigmas``) is the half-width in standard deviations of
``z_i`` (Montgomery's table: lam = 0.2 with L = 2.962 gives an in-control average run length
of about 500 points).

CUSUM (Page 1954; Montgomery section 9.1), two-sided and standardised: with
``y_i = (x_i - mu0) / sd``, ``C+_i = max(0, C+_(i-1) + y_i - k)`` and
``C-_i = max(0, C-_(i-1) - y_i - k)``, both starting at 0. A point alarms when either sum
exceeds ``h``. ``k`` (reference value, in sd) is half the shift to detect quickly (0.5 for a
one-sd shift); ``h`` (decision interval, in sd) sets the false-alarm rate: with k = 0.5 and
h = 5 the two-sided in-control average run length is about 465 points and a one-sd shift is
caught after about 10.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from keelwatch.entities.signals import Signal
from keelwatch.errors import InvalidInputError

Detector = Literal["ewma", "cusum"]
Direction = Literal["up", "down"]


@dataclass(frozen=True)
class EwmaParams:
    """EWMA chart settings (see the module docstring)."""

    lam: float = 0.2
    """Weight of the newest point, in (0, 1]."""
    limit_sigmas: float = 3.0
    """``L``: half-width of the limits in standard deviations of the EWMA statistic."""
    warmup: int = 10
    """Points that estimate the mean and standard deviation (at least 2)."""
    sigma_floor: float = 1e-9
    """Smallest sd, relative to ``max(1, |mu0|)``."""

    def __post_init__(self) -> None:
        if not 0.0 < self.lam <= 1.0:
            raise InvalidInputError(f"EWMA lam must be in (0, 1], got {self.lam}")
        if not self.limit_sigmas > 0.0:
            raise InvalidInputError(f"EWMA limit_sigmas must be positive, got {self.limit_sigmas}")
        _check_common(self.warmup, self.sigma_floor)


@dataclass(frozen=True)
class CusumParams:
    """Tabular CUSUM settings, ``k`` and ``h`` in standard deviations (see the module
    docstring)."""

    k: float = 0.5
    """Reference value (slack): half the shift, in sd, to detect quickly."""
    h: float = 5.0
    """Decision interval: alarm when a cumulative sum exceeds it."""
    warmup: int = 10
    """Points that estimate the mean and standard deviation (at least 2)."""
    sigma_floor: float = 1e-9
    """Smallest sd, relative to ``max(1, |mu0|)``."""

    def __post_init__(self) -> None:
        if not self.k >= 0.0:
            raise InvalidInputError(f"CUSUM k must be >= 0, got {self.k}")
        if not self.h > 0.0:
            raise InvalidInputError(f"CUSUM h must be positive, got {self.h}")
        _check_common(self.warmup, self.sigma_floor)


@dataclass(frozen=True)
class EwmaPoint:
    """One point of an EWMA chart; the statistic, limits and score are None while warming up.

    ``score`` is ``z_i - mu0`` in standard deviations of ``z_i``: beyond ±L exactly when the
    point alarms.
    """

    value: float
    warming_up: bool
    mean: float | None = None
    sigma: float | None = None
    ewma: float | None = None
    lower: float | None = None
    upper: float | None = None
    score: float | None = None
    alarm: Direction | None = None


@dataclass(frozen=True)
class CusumPoint:
    """One point of a CUSUM chart; the sums and score are None while warming up.

    ``score`` is the larger sum, signed by its direction (``-C-`` when the lower sum leads).
    """

    value: float
    warming_up: bool
    mean: float | None = None
    sigma: float | None = None
    upper_sum: float | None = None
    lower_sum: float | None = None
    threshold: float | None = None
    score: float | None = None
    alarm: Direction | None = None


def ewma_chart(values: Sequence[float], params: EwmaParams | None = None) -> list[EwmaPoint]:
    """The EWMA chart of ``values``, one point per value, in order."""
    p = params or EwmaParams()
    out: list[EwmaPoint] = []
    for segment in _segments(values, p.warmup):
        mean, sigma = _baseline(segment.warmup, p.sigma_floor)
        out.extend(EwmaPoint(value=v, warming_up=True) for v in segment.warmup)
        z = mean
        for i, x in enumerate(segment.rest, start=1):
            z = p.lam * x + (1.0 - p.lam) * z
            width = (
                p.limit_sigmas
                * sigma
                * math.sqrt(p.lam / (2.0 - p.lam) * (1.0 - (1.0 - p.lam) ** (2 * i)))
            )
            alarm = _direction(z, mean - width, mean + width)
            sd_z = width / p.limit_sigmas
            out.append(
                EwmaPoint(
                    value=x,
                    warming_up=False,
                    mean=mean,
                    sigma=sigma,
                    ewma=z,
                    lower=mean - width,
                    upper=mean + width,
                    score=(z - mean) / sd_z,
                    alarm=alarm,
                )
            )
            if alarm is not None:
                segment.alarm_at(i)
                break
    return out


def cusum_chart(values: Sequence[float], params: CusumParams | None = None) -> list[CusumPoint]:
    """The two-sided tabular CUSUM chart of ``values``, one point per value, in order."""
    p = params or CusumParams()
    out: list[CusumPoint] = []
    for segment in _segments(values, p.warmup):
        mean, sigma = _baseline(segment.warmup, p.sigma_floor)
        out.extend(CusumPoint(value=v, warming_up=True) for v in segment.warmup)
        high = low = 0.0
        for i, x in enumerate(segment.rest, start=1):
            y = (x - mean) / sigma
            high = max(0.0, high + y - p.k)
            low = max(0.0, low - y - p.k)
            alarm: Direction | None = None
            if high > p.h or low > p.h:
                alarm = "up" if high >= low else "down"
            out.append(
                CusumPoint(
                    value=x,
                    warming_up=False,
                    mean=mean,
                    sigma=sigma,
                    upper_sum=high,
                    lower_sum=low,
                    threshold=p.h,
                    score=high if high >= low else -low,
                    alarm=alarm,
                )
            )
            if alarm is not None:
                segment.alarm_at(i)
                break
    return out


def anomaly_signals(
    series: Sequence[Signal],
    detector: Detector,
    params: EwmaParams | CusumParams | None = None,
) -> list[Signal]:
    """Run ``detector`` over one series and return one signal per alarm.

    ``series`` must be one series (one name, one label set); it is charted in ``observed_at``
    order. Each alarm becomes ``anomaly.<detector>`` with the series' labels plus ``detector``,
    ``signal`` (the watched signal's name) and ``direction`` (``up`` or ``down``), observed at
    the alarming point's time, with that point's source, and as value the chart's signed score:
    for EWMA the statistic's distance from the mean in its own standard deviations (beyond
    ±L), for CUSUM the sum that crossed ``h`` (negative for a downward shift).
    """
    if not series:
        return []
    first = series[0]
    if any(s.name != first.name or s.fingerprint != first.fingerprint for s in series):
        raise InvalidInputError(
            "anomaly detection runs over one series: every signal needs the same name and labels"
        )
    ordered = sorted(series, key=lambda s: s.observed_at)
    values = [s.value for s in ordered]
    marks: list[tuple[Direction | None, float | None]]
    if detector == "ewma":
        if params is not None and not isinstance(params, EwmaParams):
            raise InvalidInputError("the ewma detector takes EwmaParams")
        marks = [(pt.alarm, pt.score) for pt in ewma_chart(values, params)]
    elif detector == "cusum":
        if params is not None and not isinstance(params, CusumParams):
            raise InvalidInputError("the cusum detector takes CusumParams")
        marks = [(pt.alarm, pt.score) for pt in cusum_chart(values, params)]
    else:
        raise InvalidInputError(f"unknown anomaly detector {detector!r}: use ewma or cusum")
    out: list[Signal] = []
    for signal, (alarm, score) in zip(ordered, marks, strict=True):
        if alarm is None or score is None:
            continue
        labels = {
            **signal.labels,
            "detector": detector,
            "signal": signal.name,
            "direction": alarm,
        }
        out.append(
            Signal(
                name=f"anomaly.{detector}",
                value=score,
                labels=labels,
                observed_at=signal.observed_at,
                source=signal.source,
            )
        )
    return out


class _Segment:
    """A stretch of the series between resets: its warm-up points and the points after."""

    def __init__(self, values: Sequence[float], start: int, warmup: int) -> None:
        self.warmup = list(values[start : start + warmup])
        self.rest = list(values[start + warmup :])
        self.next_start: int | None = None
        self._start = start + warmup

    def alarm_at(self, i: int) -> None:
        """The ``i``-th monitored point (1-based) alarmed: the chart restarts after it."""
        self.next_start = self._start + i


def _segments(values: Sequence[float], warmup: int) -> Iterator[_Segment]:
    """Yield segments; a segment whose chart alarmed sets where the next one starts."""
    for position, value in enumerate(values):
        if not math.isfinite(value):
            raise InvalidInputError(f"anomaly chart: value at position {position} is not finite")
    start = 0
    while start < len(values):
        segment = _Segment(values, start, warmup)
        if len(segment.warmup) < warmup:  # too few points left to learn a baseline
            segment.rest = []
        yield segment
        if segment.next_start is None:
            return
        start = segment.next_start


def _baseline(warmup: Sequence[float], sigma_floor: float) -> tuple[float, float]:
    """Mean and floored sample standard deviation of the warm-up points."""
    if len(warmup) < 2:
        return (warmup[0] if warmup else 0.0), 1.0  # unused: such a segment has no rest
    mean = statistics.fmean(warmup)
    sigma = statistics.stdev(warmup)
    return mean, max(sigma, sigma_floor * max(1.0, abs(mean)))


def _direction(statistic: float, lower: float, upper: float) -> Direction | None:
    if statistic > upper:
        return "up"
    if statistic < lower:
        return "down"
    return None


def _check_common(warmup: int, sigma_floor: float) -> None:
    if warmup < 2:
        raise InvalidInputError(f"warmup must be at least 2 points, got {warmup}")
    if not sigma_floor > 0.0:
        raise InvalidInputError(f"sigma_floor must be positive, got {sigma_floor}")
