"""Bias-audit benchmark: Keelwatch's audit against Fairlearn's MetricFrame with its bootstrap.

    .venv/bin/python benchmarks/fairness_bench.py             # 1,000,000 rows, 1,000 resamples
    .venv/bin/python benchmarks/fairness_bench.py --quick     # 100,000 rows
    .venv/bin/python benchmarks/fairness_bench.py --rows 50000 --fairlearn-boot 1

Data: ``--rows`` rows, three sensitive attributes with 4, 3 and 5 levels, binary labels, scores
and thresholded predictions, all leaning on the first attribute (a biased model). Both sides
compute the same eight per-group metrics (selection rate, mean score, base rate, TPR, FPR,
precision, accuracy, calibration gap) and the six gaps over the same seven slices (each
attribute, each pair, all three), with ``--resamples`` bootstrap resamples.

Keelwatch: one ``audit_predictions`` call (every slice, gaps, intervals), median of ``--runs``.
Fairlearn: one ``MetricFrame`` per slice with all eight metrics (scores through
``sample_params``), then ``difference``/``ratio`` and their ``_ci`` variants. Fairlearn's
bootstrap recomputes a whole MetricFrame per resample, which at 1,000 resamples on a million
rows takes hours, so it is *measured* with ``--fairlearn-boot`` resamples (default 2) and the
per-resample cost ``(t(boot) - t(no boot)) / boot`` is *extrapolated* linearly to
``--resamples``. Point estimates of both are checked equal (max |diff| < 1e-9) first.
Target: Keelwatch >= 5x faster than the extrapolated Fairlearn.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform as host_platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "platform"))

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402
import pandas as pd  # noqa: E402
from fairlearn.metrics import (  # noqa: E402
    MetricFrame,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score, precision_score  # noqa: E402

from keelwatch.monitoring.fairness import AuditConfig, AuditResult, audit_predictions  # noqa: E402

TARGET = 5.0
ATTRIBUTES = {"region": 4, "age_band": 3, "tier": 5}
SLICES = [
    combo for order in (1, 2, 3) for combo in itertools.combinations(tuple(ATTRIBUTES), order)
]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return host_platform.processor() or "unknown"


def generate(rows: int, seed: int = 0) -> dict[str, Any]:
    """Attributes, labels, scores and predictions with a bias along ``region``."""
    rng = np.random.default_rng(seed)
    codes = {name: rng.integers(0, levels, rows) for name, levels in ATTRIBUTES.items()}
    base = 0.2 + 0.08 * codes["region"] + 0.02 * codes["age_band"]
    y_true = (rng.random(rows) < base).astype(np.int64)
    score = np.clip(base + 0.4 * (y_true - base) + rng.normal(0, 0.12, rows), 0, 1)
    y_pred = (score > 0.45).astype(np.int64)
    return {"sensitive": codes, "y_true": y_true, "y_pred": y_pred, "score": score}


def _mean_score(y_true: Any, y_pred: Any, score: Any) -> float:
    del y_true, y_pred
    return float(np.mean(score))


def _base_rate(y_true: Any, y_pred: Any) -> float:
    del y_pred
    return float(np.mean(y_true))


def _calibration_gap(y_true: Any, y_pred: Any, score: Any) -> float:
    del y_pred
    return float(np.mean(score) - np.mean(y_true))


def _precision(y_true: Any, y_pred: Any) -> float:
    return float(precision_score(y_true, y_pred, zero_division=np.nan))


METRICS = {
    "selection_rate": selection_rate,
    "mean_score": _mean_score,
    "base_rate": _base_rate,
    "tpr": true_positive_rate,
    "fpr": false_positive_rate,
    "precision": _precision,
    "accuracy": accuracy_score,
    "calibration_gap": _calibration_gap,
}


def fairlearn_slice(
    data: dict[str, Any], attributes: tuple[str, ...], boot: int | None, level: float
) -> MetricFrame:
    """One slice the Fairlearn way: a MetricFrame with every metric, its gaps (and their
    bootstrap intervals when ``boot`` is set)."""
    score: npt.NDArray[np.float64] = data["score"]
    tail = (1 - level) / 2
    frame = MetricFrame(
        metrics=METRICS,
        y_true=data["y_true"],
        y_pred=data["y_pred"],
        sensitive_features=pd.DataFrame({a: data["sensitive"][a] for a in attributes}),
        sample_params={"mean_score": {"score": score}, "calibration_gap": {"score": score}},
        n_boot=boot,
        ci_quantiles=[tail, 1 - tail] if boot else None,
        random_state=0 if boot else None,
    )
    frame.difference(method="between_groups")
    frame.ratio(method="between_groups")
    if boot:
        frame.difference_ci(method="between_groups")
        frame.ratio_ci(method="between_groups")
    return frame


def max_difference(result: AuditResult, frames: dict[tuple[str, ...], MetricFrame]) -> float:
    """Largest |Keelwatch - Fairlearn| over every group metric and gap of every slice."""
    worst = 0.0
    for slice_result in result.slices:
        frame = frames[slice_result.attributes]
        table = frame.by_group
        for index, row in table.iterrows():
            key = tuple(str(k) for k in (index if isinstance(index, tuple) else (index,)))
            (group,) = [g for g in slice_result.groups if g.key == key]
            for metric, value in row.items():
                ours = group.metrics[str(metric)]
                worst = max(worst, abs((np.inf if ours is None else ours) - value))
        differences = frame.difference(method="between_groups")
        expected = {
            "demographic_parity_difference": differences["selection_rate"],
            "demographic_parity_ratio": frame.ratio(method="between_groups")["selection_rate"],
            "equalized_odds_difference": max(differences["tpr"], differences["fpr"]),
            "equal_opportunity_difference": differences["tpr"],
            "predictive_parity_difference": differences["precision"],
            "calibration_gap_difference": differences["calibration_gap"],
        }
        for gap in slice_result.gaps:
            value = np.inf if gap.value is None else gap.value
            worst = max(worst, abs(value - expected[gap.metric]))
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 rows, one Fairlearn boot")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument(
        "--fairlearn-boot", type=int, default=None, help="Fairlearn resamples measured (2)"
    )
    parser.add_argument("--runs", type=int, default=3, help="Keelwatch runs (median)")
    args = parser.parse_args()
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    boot = args.fairlearn_boot or (1 if args.quick else 2)
    print(
        f"CPU: {_cpu_model()} ({os.cpu_count()} logical cores); numpy {np.__version__}; "
        f"load average {os.getloadavg()[0]:.1f} (a concurrent job on this machine slows both)"
    )
    data = generate(rows)
    config = AuditConfig(resamples=args.resamples, min_group_size=1, seed=0)
    sensitive = {a: data["sensitive"][a] for a in ATTRIBUTES}
    times = []
    result = None
    for _ in range(args.runs):
        start = time.perf_counter()
        result = audit_predictions(
            sensitive, data["y_pred"], y_true=data["y_true"], score=data["score"], config=config
        )
        times.append(time.perf_counter() - start)
    assert result is not None
    keelwatch = statistics.median(times)
    groups = sum(len(sl.groups) for sl in result.slices)
    print(
        f"\n== bias audit, {rows:,} rows, attributes with 4, 3 and 5 levels, {len(SLICES)} slices "
        f"(each attribute, pairs, all three: {groups} groups), 8 group metrics, 6 gaps =="
    )

    start = time.perf_counter()
    frames = {s: fairlearn_slice(data, s, None, result.interval_level) for s in SLICES}
    no_boot = time.perf_counter() - start
    worst = max_difference(result, frames)
    agreement = f"{'identical' if worst < 1e-9 else 'MISMATCH'} (max |diff| {worst:.1e})"

    start = time.perf_counter()
    for s in SLICES:
        fairlearn_slice(data, s, boot, result.interval_level)
    with_boot = time.perf_counter() - start
    per_resample = max(with_boot - no_boot, 0.0) / boot
    extrapolated = no_boot + args.resamples * per_resample
    ratio = extrapolated / keelwatch

    print(f"  point estimates vs Fairlearn: {agreement}")
    print(f"  {'what':60s} {'seconds':>10s}")
    table = (
        (
            f"Keelwatch audit_predictions, {args.resamples} resamples (median of {args.runs})",
            keelwatch,
        ),
        ("Fairlearn, 7 MetricFrames, no bootstrap (measured)", no_boot),
        (f"Fairlearn, 7 MetricFrames, n_boot={boot} (measured)", with_boot),
        ("Fairlearn, cost of one resample over the 7 slices (measured)", per_resample),
        (f"Fairlearn, n_boot={args.resamples} (EXTRAPOLATED linearly)", extrapolated),
    )
    for label, seconds in table:
        print(f"  {label:60s} {seconds:10.3f}")
    print(
        f"\n  ratio Fairlearn (extrapolated) / Keelwatch: {ratio:,.0f}x; target >= {TARGET:.0f}x: "
        f"{'met' if ratio >= TARGET and worst < 1e-9 else 'MISSED'}"
    )
    return 0 if worst < 1e-9 else 1


if __name__ == "__main__":
    sys.exit(main())
