"""Evaluation suites and the champion/challenger gate: pure functions, arrays in, results out.

Metric code calls well-kept libraries (scikit-learn, sacrebleu, rouge-score) rather than
hand-written formulas. Nothing here reads files, settings or databases: the evaluation job
(``monitoring.service``) loads the dataset and the model, the worker times the model.
"""
