"""Monitors' pure domain code: statistics in, verdicts out.

What belongs here: functions and dataclasses that turn arrays, data frames and entities into
results (drift reports, fairness audits, moderation verdicts, evaluation gates, anomaly flags).
What does not: database sessions, Celery tasks, HTTP, reading the environment. Workers and the
API import from here; nothing here imports them.

Subpackages: ``drift`` (reference profiles, two-sample statistics, the drift engine).
"""
