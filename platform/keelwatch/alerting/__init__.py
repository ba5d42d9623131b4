"""Alerting: from signals to alerts to notifications, as pure code wherever possible.

What belongs here:

- ``signals``: the one place that turns a result (a drift result today; bias audits,
  moderation rates and evaluations later) into :class:`~keelwatch.entities.signals.Signal`
  values, through a registry of converters, so new result kinds plug in without touching the
  rule engine.
- the rule engine, pure: rule parsing and validation, label matchers (``=``, ``!=``, ``=~``,
  ``!~``), the alert lifecycle (pending, firing, resolved), fingerprints, silences,
  inhibition and grouping (``group_by``, ``group_wait``, ``group_interval``,
  ``repeat_interval`` as Alertmanager defines them).
- ``notifiers/``: delivery, one module per notifier type behind one contract.
- ``service``: the engine service that loads rules and state through ``storage/`` and runs them
  when a result arrives and on a beat tick (not pure: it takes a session).

What does not: SQLAlchemy sessions, Celery tasks, HTTP servers or settings in the pure modules
(signal conversion, rules, lifecycle, grouping, silences). Those modules import only
``keelwatch.entities``, ``keelwatch.errors`` and the standard library, and they are listed in
the pure import-linter contract in ``pyproject.toml``. Storage of signals lives in
``keelwatch.storage.signals``; operational anomaly detection (EWMA, CUSUM) in
``keelwatch.monitoring.anomaly``.
"""
