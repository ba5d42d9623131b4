"""Bias audits: per-group metrics, intersectional slices, gaps with bootstrap intervals and a
multiple-comparison correction, counterfactual audits of text models. Pure: arrays in, results
out (the audit service in ``monitoring.service`` reads the prediction log or a file).

Metric definitions follow Fairlearn's (``MetricFrame`` and its ``between_groups``
difference/ratio); the tests compare our numbers with Fairlearn's on generated data.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Loaded on first use (PEP 562): every entry point imports the audit service for its signal
# names, and the computation's numpy/pandas imports would add about a second to each CLI call.
_EXPORTS = {
    "audit_predictions": "audit",
    "DEFAULT_REFUSAL_PATTERNS": "counterfactual",
    "CounterfactualGroup": "counterfactual",
    "CounterfactualPrompt": "counterfactual",
    "CounterfactualResult": "counterfactual",
    "counterfactual_audit": "counterfactual",
    "expand_templates": "counterfactual",
    "AuditConfig": "results",
    "AuditResult": "results",
    "Gap": "results",
    "GroupStats": "results",
    "SliceResult": "results",
    "SIGNAL_NAMES": "signals",
    "SIGNAL_PREFIX": "signals",
    "audit_signals": "signals",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


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
