"""The bootstrap over cells against a brute-force row bootstrap, the Bonferroni correction.

Brute force: draw ``n`` row indices with replacement, recompute every group metric and gap
from the drawn rows (real sums of the drawn scores, errors and predictions), take percentile
intervals. Keelwatch draws cell counts (exact for the count-based metrics) and continuous sums
from their normal limit. Both are Monte Carlo estimates of the same interval, so they agree
up to simulation noise: within 15 % of the interval's width at 2,000 resamples each.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import numpy.typing as npt
import pytest

from keelwatch.monitoring.fairness import AuditConfig, AuditResult, audit_predictions
from tests.unit.fairness.conftest import AuditData, make_data

RESAMPLES = 2_000
#: Agreement asked of two independent 2,000-resample estimates of the same interval endpoint.
WIDTH_TOLERANCE = 0.15
Metrics = dict[str, npt.NDArray[np.float64]]


@pytest.fixture(scope="module")
def data() -> AuditData:
    return make_data(2_400, bias=0.3, seed=7)


def _groups(data: AuditData, attributes: tuple[str, ...]) -> npt.NDArray[np.int64]:
    keys = np.stack([np.asarray(data.sensitive[a]).astype(str) for a in attributes], axis=1)
    _, inverse = np.unique(keys, axis=0, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64)


def _brute_force(
    groups: npt.NDArray[np.int64],
    columns: dict[str, npt.NDArray[np.float64]],
    metrics: Callable[[npt.NDArray[np.int64], dict[str, npt.NDArray[np.float64]], int], Metrics],
) -> dict[str, npt.NDArray[np.float64]]:
    """Every metric per resample (resamples, groups) from rows drawn with replacement."""
    rng = np.random.default_rng(2024)
    count = int(groups.max()) + 1
    out: dict[str, list[npt.NDArray[np.float64]]] = {}
    for _ in range(RESAMPLES):
        rows = rng.integers(0, len(groups), len(groups))
        drawn = {k: v[rows] for k, v in columns.items()}
        for name, values in metrics(groups[rows], drawn, count).items():
            out.setdefault(name, []).append(values)
    return {k: np.asarray(v) for k, v in out.items()}


def _binary_metrics(
    g: npt.NDArray[np.int64], c: dict[str, npt.NDArray[np.float64]], k: int
) -> Metrics:
    def total(weights: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.asarray(np.bincount(g, weights=weights, minlength=k), dtype=np.float64)

    n = np.bincount(g, minlength=k).astype(float)
    y, p, s = c["y"], c["p"], c["s"]
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "selection_rate": total(p) / n,
            "tpr": total(y * p) / total(y),
            "fpr": total((1 - y) * p) / total(1 - y),
            "precision": total(y * p) / total(p),
            "calibration_gap": (total(s) - total(y)) / n,
        }


def _regression_metrics(
    g: npt.NDArray[np.int64], c: dict[str, npt.NDArray[np.float64]], k: int
) -> Metrics:
    n = np.bincount(g, minlength=k).astype(float)
    return {
        "mean_prediction": np.bincount(g, weights=c["p"], minlength=k) / n,
        "mae": np.bincount(g, weights=np.abs(c["p"] - c["y"]), minlength=k) / n,
    }


def _interval(samples: npt.NDArray[np.float64], level: float) -> tuple[float, float]:
    tail = (1 - level) / 2
    low, high = np.quantile(samples, [tail, 1 - tail])
    return float(low), float(high)


def _compare(
    result: AuditResult,
    data: AuditData,
    columns: dict[str, npt.NDArray[np.float64]],
    metrics: Callable[..., Metrics],
    gaps: Mapping[str, tuple[str, ...]],
) -> list[float]:
    """Endpoint differences (as a share of the brute-force width) over every gap and group."""
    shares = []
    for slice_result in result.slices:
        samples = _brute_force(_groups(data, slice_result.attributes), columns, metrics)
        for gap in slice_result.gaps:
            parts = [samples[m].max(axis=1) - samples[m].min(axis=1) for m in gaps[gap.metric]]
            expected = _interval(np.max(parts, axis=0), result.interval_level)
            width = expected[1] - expected[0]
            assert gap.ci_low is not None and gap.ci_high is not None
            shares += [
                abs(gap.ci_low - expected[0]) / width,
                abs(gap.ci_high - expected[1]) / width,
            ]
        for index, group in enumerate(slice_result.groups):
            for metric, (low, high) in group.ci.items():
                if metric not in samples:
                    continue
                expected = _interval(samples[metric][:, index], result.interval_level)
                width = expected[1] - expected[0]
                shares += [abs(low - expected[0]) / width, abs(high - expected[1]) / width]
    return shares


def test_binary_intervals_match_a_row_bootstrap(data: AuditData) -> None:
    sensitive = {"region": data.sensitive["region"], "age": data.sensitive["age"]}
    config = AuditConfig(resamples=RESAMPLES, confidence=0.9, correction="none", seed=3)
    result = audit_predictions(
        sensitive, data.y_pred, y_true=data.y_true, score=data.score, config=config
    )
    columns = {"y": data.y_true.astype(float), "p": data.y_pred.astype(float), "s": data.score}
    gaps = {
        "demographic_parity_difference": ("selection_rate",),
        "equalized_odds_difference": ("tpr", "fpr"),
        "equal_opportunity_difference": ("tpr",),
        "predictive_parity_difference": ("precision",),
        "calibration_gap_difference": ("calibration_gap",),
    }
    result = _without(result, "demographic_parity_ratio")
    shares = _compare(result, data, columns, _binary_metrics, gaps)
    assert len(shares) > 100
    assert max(shares) <= WIDTH_TOLERANCE, max(shares)
    # Most endpoints agree far closer than the bound: the bound is noise, not bias.
    assert float(np.median(shares)) <= 0.05


def test_regression_intervals_match_a_row_bootstrap(data: AuditData) -> None:
    sensitive = {"region": data.sensitive["region"], "age": data.sensitive["age"]}
    config = AuditConfig(resamples=RESAMPLES, confidence=0.9, correction="none", seed=3)
    result = audit_predictions(sensitive, data.estimate, y_true=data.target, config=config)
    columns = {"y": data.target, "p": data.estimate}
    gaps = {"mean_prediction_difference": ("mean_prediction",), "mae_difference": ("mae",)}
    shares = _compare(result, data, columns, _regression_metrics, gaps)
    assert max(shares) <= WIDTH_TOLERANCE, max(shares)
    assert float(np.median(shares)) <= 0.05


def _without(result: AuditResult, metric: str) -> AuditResult:
    from dataclasses import replace

    slices = tuple(
        replace(s, gaps=tuple(g for g in s.gaps if g.metric != metric)) for s in result.slices
    )
    return replace(result, slices=slices)


def test_the_ratio_interval_matches_a_row_bootstrap(data: AuditData) -> None:
    config = AuditConfig(resamples=RESAMPLES, confidence=0.9, correction="none", seed=3)
    region = data.sensitive["region"]
    result = audit_predictions({"region": region}, data.y_pred, config=config)
    samples = _brute_force(
        _groups(data, ("region",)),
        {"y": data.y_true.astype(np.float64), "p": data.y_pred.astype(np.float64), "s": data.score},
        _binary_metrics,
    )["selection_rate"]
    expected = _interval(samples.min(axis=1) / samples.max(axis=1), 0.9)
    gap = {g.metric: g for g in result.slices[0].gaps}["demographic_parity_ratio"]
    width = expected[1] - expected[0]
    assert gap.ci_low is not None and gap.ci_high is not None
    assert abs(gap.ci_low - expected[0]) <= WIDTH_TOLERANCE * width
    assert abs(gap.ci_high - expected[1]) <= WIDTH_TOLERANCE * width


def test_bonferroni_widens_every_interval(data: AuditData) -> None:
    def run(correction: str) -> AuditResult:
        config = AuditConfig(resamples=400, seed=9, correction=correction)  # type: ignore[arg-type]
        return audit_predictions(
            data.sensitive, data.y_pred, y_true=data.y_true, score=data.score, config=config
        )

    plain, corrected = run("none"), run("bonferroni")
    assert plain.interval_level == 0.95
    assert corrected.comparisons == 7 * 6
    assert corrected.interval_level == pytest.approx(1 - 0.05 / 42)
    strictly_wider = 0
    for narrow_slice, wide_slice in zip(plain.slices, corrected.slices, strict=True):
        for narrow, wide in zip(narrow_slice.gaps, wide_slice.gaps, strict=True):
            assert narrow.value == wide.value
            assert wide.ci_low is not None and narrow.ci_low is not None
            assert wide.ci_high is not None and narrow.ci_high is not None
            assert wide.ci_low <= narrow.ci_low and wide.ci_high >= narrow.ci_high
            strictly_wider += (wide.ci_high - wide.ci_low) > (narrow.ci_high - narrow.ci_low)
            # A corrected violation is always a plain one, never the other way round.
            assert narrow.violation or not wide.violation
    assert strictly_wider == plain.comparisons
