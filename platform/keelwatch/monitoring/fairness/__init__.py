"""Bias audits: per-group metrics, intersectional slices, gaps with bootstrap intervals and a
multiple-comparison correction, counterfactual audits of text models. Pure: arrays in, results
out (the audit service in ``monitoring.service`` reads the prediction log or a file).

Metric definitions follow Fairlearn's (``MetricFrame`` and its ``between_groups``
difference/ratio); the tests compare our numbers with Fairlearn's on generated data.
"""
