"""Bias-audit results as alert signals.

INTERFACE STUB (being implemented).

Names: ``fairness.<gap metric>`` (the point estimate), ``fairness.<gap metric>.ci_low`` and
``fairness.<gap metric>.ci_high`` for every defined gap, and ``fairness.violations`` (the
audit's count of violating gaps, always). Labels: ``model``, ``version``, ``attribute`` (the
slice name, e.g. ``gender&age_band``; absent on ``fairness.violations``), ``window`` when the
audit covered a prediction-log window, and ``alias`` when the version held one. A rule such as
``fairness.equalized_odds_difference.ci_low > 0.1`` fires on a corrected interval.
"""
