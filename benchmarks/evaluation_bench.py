"""Evaluation benchmarks: the classification suite vs scikit-learn's metric calls alone, and
the efficiency suite's timing overhead vs a bare ``time.perf_counter`` loop.

    .venv/bin/python benchmarks/evaluation_bench.py            # 1,000,000 rows, 15 rounds
    .venv/bin/python benchmarks/evaluation_bench.py --quick    # 200,000 rows, 9 rounds

(a) ``classification_metrics`` (labels checked and encoded once, one confusion matrix, ROC-AUC,
    log loss and ECE) against the scikit-learn calls that give the same figures: accuracy,
    precision/recall/F1 macro and weighted, ROC-AUC, log loss and the confusion matrix (ECE
    has no scikit-learn counterpart, so Keelwatch does strictly more work). Binary labels with
    probabilities; medians over the runs. Target: <= 2x scikit-learn. The figures are checked
    equal first.
(b) ``measure_efficiency`` on a scikit-learn model's ``predict`` against a bare loop timing
    the same pre-sliced batches with ``time.perf_counter`` in the same process, back to back
    per batch size, alternating which goes first. Compared: p50 latency, as the median over
    rounds of the paired ratio (pairing cancels the drift of a shared machine). Target: within
    5 %.
"""

from __future__ import annotations

import argparse
import os
import platform as host_platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "platform"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    accuracy_score,
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
    roc_auc_score,
)

from keelwatch.inference.efficiency import measure_efficiency  # noqa: E402
from keelwatch.monitoring.evaluation.classification import classification_metrics  # noqa: E402

SUITE_TARGET = 2.0
OVERHEAD_TARGET = 0.05
BATCH_SIZES = (1, 32, 256)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return host_platform.processor() or "unknown"


def median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sklearn_calls(
    y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray, labels: list[object]
) -> dict[str, float]:
    out = {"accuracy": float(accuracy_score(y_true, y_pred))}
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, average=average, zero_division=0
        )
        out |= {f"precision_{average}": p, f"recall_{average}": r, f"f1_{average}": f}
    out["roc_auc"] = float(roc_auc_score(y_true == labels[1], proba[:, 1]))
    out["log_loss"] = float(log_loss(y_true, proba, labels=labels))
    confusion_matrix(y_true, y_pred, labels=labels)
    return out


def suite_case(rows: int, labels: list[object], runs: int) -> tuple[float, float, str]:
    rng = np.random.default_rng(rows)
    p = rng.random(rows)
    codes = (rng.random(rows) < p).astype(np.int64)
    names = np.asarray(labels)
    y_true, y_pred = names[codes], names[(p > 0.5).astype(np.int64)]
    proba = np.c_[1 - p, p]
    expected = sklearn_calls(y_true, y_pred, proba, labels)
    got = classification_metrics(y_true, y_pred, proba=proba, classes=labels).as_dict()
    worst = max(abs(got[k] - v) for k, v in expected.items())
    agreement = f"{'identical' if worst <= 1e-9 else 'MISMATCH'} (max |diff| {worst:.1e})"
    sk = median_time(lambda: sklearn_calls(y_true, y_pred, proba, labels), runs)
    kw = median_time(
        lambda: classification_metrics(y_true, y_pred, proba=proba, classes=labels), runs
    )
    return kw, sk, agreement


def bench_suite(rows: int, runs: int) -> bool:
    print(f"\n== (a) classification suite, {rows:,} rows, binary with probabilities ==")
    print(f"  median of {runs} runs each; ratio = Keelwatch / scikit-learn calls alone")
    print(
        f"  {'labels':24s} {'Keelwatch':>10s} {'sklearn':>10s} {'ratio':>7s} {'target':>8s}  check"
    )
    ok = True
    cases: tuple[tuple[str, list[object]], ...] = (
        ("int 0/1", [0, 1]),
        ("strings ham/spam", ["ham", "spam"]),
    )
    for name, labels in cases:
        kw, sk, agreement = suite_case(rows, labels, runs)
        ratio = kw / sk
        target = f"<= {SUITE_TARGET:.0f}x" if name.startswith("int") else "(info)"
        if name.startswith("int"):
            ok = ok and ratio <= SUITE_TARGET
        print(f"  {name:24s} {kw:9.3f}s {sk:9.3f}s {ratio:6.2f}x {target:>8s}  {agreement}")
    return ok


def bare_p50(
    predict: Callable[[pd.DataFrame], object], batches: list[pd.DataFrame], warmup: int
) -> float:
    clock = time.perf_counter
    for batch in batches[:warmup]:
        predict(batch)
    latencies = []
    for batch in batches[warmup:]:
        start = clock()
        predict(batch)
        latencies.append(clock() - start)
    return float(np.percentile(latencies, 50))


def _batches(frame: pd.DataFrame, size: int, count: int) -> list[pd.DataFrame]:
    span = len(frame) - size + 1
    return [frame.iloc[(i * size) % span : (i * size) % span + size] for i in range(count)]


def overhead_pair(
    predict: Callable[[pd.DataFrame], object],
    frame: pd.DataFrame,
    size: int,
    repeats: int,
    harness_first: bool,
) -> tuple[float, float, int | None]:
    """p50 from the harness and from the bare loop, run back to back on the same batches."""
    warmup = 2
    out: dict[str, float] = {}
    peak: int | None = None
    for which in ("harness", "bare") if harness_first else ("bare", "harness"):
        if which == "harness":
            got = measure_efficiency(
                predict, frame, batch_sizes=(size,), repeats=repeats, warmup=warmup
            )
            out[which], peak = got.timings[0].latency_p50_s, got.peak_memory_bytes
        else:
            out[which] = bare_p50(predict, _batches(frame, size, warmup + repeats), warmup)
    return out["harness"], out["bare"], peak


def bench_overhead(repeats: int, rounds: int) -> bool:
    print(
        f"\n== (b) efficiency suite overhead: p50 latency over {repeats} calls, {rounds} paired "
        "rounds per batch size (order alternates) =="
    )
    print(
        "  diff = median over rounds of (harness p50 / bare p50 - 1); spread = its interquartile "
        "range (the machine's noise)"
    )
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(4_096, 8)), columns=[f"f{i}" for i in range(8)])
    target = frame["f0"] + frame["f1"] > 0
    models = {
        "LogisticRegression": LogisticRegression().fit(frame, target),
        "RandomForest(30 trees)": RandomForestClassifier(
            n_estimators=30, max_depth=8, random_state=0
        ).fit(frame, target),
    }
    ok = True
    print(
        f"  {'model':24s} {'batch':>5s} {'harness p50':>12s} {'bare p50':>12s} {'diff':>8s} "
        f"{'spread':>15s} {'target':>8s}"
    )
    for model_name, model in models.items():
        peak = None
        for size in BATCH_SIZES:
            pairs = []
            for round_no in range(rounds):
                h, b, peak = overhead_pair(model.predict, frame, size, repeats, round_no % 2 == 0)
                pairs.append((h, b))
            diffs = [h / b - 1 for h, b in pairs]
            diff = statistics.median(diffs)
            q1, _, q3 = statistics.quantiles(diffs, n=4)
            ok = ok and abs(diff) <= OVERHEAD_TARGET
            h_med = statistics.median(h for h, _ in pairs)
            b_med = statistics.median(b for _, b in pairs)
            print(
                f"  {model_name:24s} {size:5d} {h_med * 1e3:10.3f}ms {b_med * 1e3:10.3f}ms "
                f"{diff:+7.1%} {q1:+6.1%}..{q3:+6.1%} {'<= 5%':>8s}"
            )
        if peak is not None:
            print(f"  {model_name}: peak RSS reported by the harness {peak / 2**20:.0f} MiB")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer runs")
    parser.add_argument("--rows", type=int, default=None)
    args = parser.parse_args()
    rows = args.rows or (200_000 if args.quick else 1_000_000)
    print(
        f"CPU: {_cpu_model()} ({os.cpu_count()} logical cores); numpy {np.__version__}; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    suite_ok = bench_suite(rows, runs=3)
    overhead_ok = bench_overhead(repeats=30 if args.quick else 100, rounds=9 if args.quick else 15)
    print(
        f"\ntargets: suite <= {SUITE_TARGET:.0f}x sklearn: {'met' if suite_ok else 'MISSED'}; "
        f"harness within {OVERHEAD_TARGET:.0%} of a bare loop: "
        f"{'met' if overhead_ok else 'MISSED'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
