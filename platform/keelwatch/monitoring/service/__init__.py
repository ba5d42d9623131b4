"""Drift monitors on the platform: reference profiles attached to model versions, monitor
definitions, drift checks run on the fleet, their results and where people look at them.

This is service code (sessions, MLflow, the task sender); the statistics it calls are the pure
domain code in :mod:`keelwatch.monitoring.drift`. Where new code goes:

* ``entities.py``: plain values returned to callers (no ORM, no MLflow objects);
* ``specs.py``: validated request shapes (monitor spec, window spec) shared by CLI and API;
* ``schedule.py``: when a monitor is due (interval or cron), pure;
* ``profiles.py``: compute/attach/load a version's reference profile (MLflow artifact + row);
* ``service.py``: monitor CRUD and submitting a check (audit, job row, then enqueue);
* ``windows.py``: what a window is made of (prediction-log id ranges, dataset row ranges, a
  batch job's profile) and reading one partition of it;
* ``checks.py``: the worker side of a check (partition profiles, merge, test, store);
* ``outputs.py``: the MLflow run of a check, linked to its model version, with its reports;
* ``html_report.py``: Keelwatch's HTML drift report (verdict first, per-column bars), pure;
* ``job_profiles.py``: batch jobs profile what they score; merged and capped when they finish;
* ``metrics.py``: Prometheus gauges read from the latest results at scrape time.

Importing this package imports nothing heavy.
"""
