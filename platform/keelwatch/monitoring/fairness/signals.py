"""Bias-audit results as alert signals.

Names: ``fairness.<gap metric>`` (the point estimate), ``fairness.<gap metric>.ci_low`` and
``fairness.<gap metric>.ci_high`` for every defined gap, and ``fairness.violations`` (the
audit's count of violating gaps, always). Labels: ``model``, ``version``, ``attribute`` (the
slice name, e.g. ``gender&age_band``; absent on ``fairness.violations``), ``window`` when the
audit covered a prediction-log window, and ``alias`` when the version held one. A rule such as
``fairness.equalized_odds_difference.ci_low > 0.1`` fires on a corrected interval.

Importing this module registers :data:`SIGNAL_NAMES` in the rule catalogue, so rules on
``fairness.*`` validate wherever the audit's signals can be produced.
"""

from __future__ import annotations

from datetime import datetime

from keelwatch.alerting.signals import register_signal_names
from keelwatch.entities.signals import Signal
from keelwatch.monitoring.fairness.results import (
    BINARY_GAP_METRICS,
    REGRESSION_GAP_METRICS,
    AuditResult,
)

SIGNAL_PREFIX = "fairness."
#: The audit's count of violating gaps (every audit emits it, 0 included).
VIOLATIONS = SIGNAL_PREFIX + "violations"
#: Every name :func:`audit_signals` can emit.
SIGNAL_NAMES = frozenset(
    {VIOLATIONS}
    | {
        SIGNAL_PREFIX + metric + suffix
        for metric in (*BINARY_GAP_METRICS, *REGRESSION_GAP_METRICS)
        for suffix in ("", ".ci_low", ".ci_high")
    }
)

register_signal_names(SIGNAL_NAMES)


def audit_signals(
    result: AuditResult,
    *,
    model: str,
    version: str,
    observed_at: datetime,
    source: str,
    window: str | None = None,
    alias: str | None = None,
) -> list[Signal]:
    """The signals of one audit (see the module docstring).

    ``window`` is the window's label as the other window-based signals spell it (``24h``,
    ``30m``: ``monitoring.evaluation.realized.window_label``); None for an audit of a file.
    Undefined gaps emit nothing (no NaN reaches a rule); a defined gap without an interval
    (no resample defined it) emits only its point estimate.
    """
    base = {"model": model, "version": version}
    if window:
        base["window"] = window
    if alias:
        base["alias"] = alias
    out = [Signal(VIOLATIONS, float(len(result.violations)), base, observed_at, source)]
    for slice_result in result.slices:
        labels = {**base, "attribute": slice_result.name}
        for gap in slice_result.gaps:
            if gap.value is None:
                continue
            name = SIGNAL_PREFIX + gap.metric
            out.append(Signal(name, gap.value, labels, observed_at, source))
            if gap.ci_low is not None and gap.ci_high is not None:
                out.append(Signal(name + ".ci_low", gap.ci_low, labels, observed_at, source))
                out.append(Signal(name + ".ci_high", gap.ci_high, labels, observed_at, source))
    return out
