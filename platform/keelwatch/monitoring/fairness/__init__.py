"""Bias audits: per-group metrics, intersectional slices, gaps with bootstrap intervals and a
multiple-comparison correction, counterfactual audits of text models. Pure: arrays in, results
out (the audit service in ``monitoring.service`` reads the prediction log or a file).

Metric definitions follow Fairlearn's (``MetricFrame`` and its ``between_groups``
difference/ratio); the tests compare our numbers with Fairlearn's on generated data.
"""

from keelwatch.monitoring.fairness.audit import audit_predictions
from keelwatch.monitoring.fairness.counterfactual import (
    DEFAULT_REFUSAL_PATTERNS,
    CounterfactualGroup,
    CounterfactualPrompt,
    CounterfactualResult,
    counterfactual_audit,
    expand_templates,
)
from keelwatch.monitoring.fairness.results import (
    AuditConfig,
    AuditResult,
    Gap,
    GroupStats,
    SliceResult,
)
from keelwatch.monitoring.fairness.signals import SIGNAL_NAMES, SIGNAL_PREFIX, audit_signals

__all__ = [
    "DEFAULT_REFUSAL_PATTERNS",
    "SIGNAL_NAMES",
    "SIGNAL_PREFIX",
    "AuditConfig",
    "AuditResult",
    "CounterfactualGroup",
    "CounterfactualPrompt",
    "CounterfactualResult",
    "Gap",
    "GroupStats",
    "SliceResult",
    "audit_predictions",
    "audit_signals",
    "counterfactual_audit",
    "expand_templates",
]
