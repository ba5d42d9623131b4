"""Rule evaluation: 10,000 rules against one batch of 5,000 signals, median of 7 (target <= 1 s).

The rules and signals look like a fleet's: 100 models, 10 signal names, 5 columns per model and
signal name (5,000 series); each model has 10 rules per signal name with an equality matcher on
``model`` (what the engine indexes on), half of them with a regex on ``column`` and some with a
``!=``. Thresholds are spread so that a realistic share of series cross. Three timings:

- ``index``: building the :class:`RuleIndex` (done once when rules change);
- ``cold``: a fresh index and the batch against no alerts (every crossing opens an alert, and
  every alert identity is computed: the first evaluation after a restart or a rule change);
- ``first``: the batch against no alerts with a warm index (its alert identities cached);
- ``steady``: the same batch a minute later, against the alerts the first pass made.

Usage: ``python benchmarks/rules_bench.py [--quick] [--rules N] [--signals N] [--runs N]``
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT / "workers")]

from keelwatch.alerting.evaluation import RuleIndex, evaluate  # noqa: E402
from keelwatch.alerting.rules import rule_from_dict  # noqa: E402
from keelwatch.entities.alerts import Rule  # noqa: E402
from keelwatch.entities.signals import Signal  # noqa: E402

TARGET_S = 1.0
SIGNAL_NAMES = tuple(f"bench.metric{i}.value" for i in range(10))
COLUMNS = tuple(f"f{i}" for i in range(5))


def make_rules(count: int, models: int) -> list[Rule]:
    """``count`` rules spread evenly over models and signal names."""
    rng = random.Random(7)
    rules = []
    for i in range(count):
        model = f"model-{i % models}"
        name = SIGNAL_NAMES[(i // models) % len(SIGNAL_NAMES)]
        matchers = [f'model="{model}"']
        if i % 2:
            matchers.append('column=~"f[0-9]+"')
        if i % 5 == 0:
            matchers.append('env!="dev"')
        rules.append(
            rule_from_dict(
                {
                    "name": f"rule-{i}",
                    "signal": name,
                    "matchers": matchers,
                    "comparison": ">" if i % 3 else "<",
                    "threshold": round(rng.uniform(0.5, 1.0), 3),
                    "for": "5m" if i % 4 == 0 else "0s",
                    "severity": ("info", "warning", "critical")[i % 3],
                    "annotations": {"summary": "{{ $labels.column }} at {{ $value }}"},
                }
            )
        )
    return rules


def make_signals(count: int, models: int, now: datetime) -> list[Signal]:
    """``count`` signals, one per series, over models x signal names x columns."""
    rng = random.Random(11)
    out = []
    for i in range(count):
        column = COLUMNS[i % len(COLUMNS)]
        name = SIGNAL_NAMES[(i // len(COLUMNS)) % len(SIGNAL_NAMES)]
        model = f"model-{(i // (len(COLUMNS) * len(SIGNAL_NAMES))) % models}"
        labels = {"model": model, "column": column, "env": "prod", "monitor": "bench"}
        out.append(Signal(name, rng.random(), labels, now, "bench"))
    return out


def timed(fn: Callable[[], object], runs: int) -> tuple[float, object]:
    times = []
    result: object = None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 rules, 500 signals, 3 runs")
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--signals", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    if args.quick:
        args.rules, args.signals, args.runs = 1_000, 500, 3
    models = max(1, args.signals // (len(COLUMNS) * len(SIGNAL_NAMES)))
    now = datetime(2026, 1, 1, tzinfo=UTC)
    rules = make_rules(args.rules, models)
    signals = make_signals(args.signals, models, now)

    index_s, index = timed(lambda: RuleIndex(rules), args.runs)
    assert isinstance(index, RuleIndex)
    cold_s, _ = timed(lambda: evaluate(RuleIndex(rules), signals, now, {}), args.runs)
    first_s, first = timed(lambda: evaluate(index, signals, now, {}), args.runs)
    alerts = first.alerts  # type: ignore[attr-defined]
    later = now + timedelta(minutes=1)
    steady_s, _ = timed(lambda: evaluate(index, signals, later, alerts), args.runs)
    matches = sum(len(index.matching(s)) for s in signals)

    print(f"rules={args.rules:,} signals={args.signals:,} models={models} runs={args.runs}")
    print(f"rule/signal matches={matches:,}  alerts opened={len(alerts):,}")
    print(f"{'step':<10} {'median s':>10} {'signals/s':>12}")
    steps = (("index", index_s), ("cold", cold_s), ("first", first_s), ("steady", steady_s))
    for step, seconds in steps:
        rate = args.signals / seconds if step != "index" else float("nan")
        print(f"{step:<10} {seconds:>10.3f} {rate:>12,.0f}")
    worst = max(cold_s, first_s, steady_s)
    verdict = "PASS" if worst <= TARGET_S else "FAIL"
    print(f"evaluation (worst of cold/first/steady) {worst:.3f} s, target <= {TARGET_S:.1f} s:")
    print(verdict)
    return 0 if worst <= TARGET_S or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
