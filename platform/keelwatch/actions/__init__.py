"""Actions: what Keelwatch does when an alert fires (rollback, retrain, promote, notify).

What belongs here:

- ``policies`` and ``guards``, pure: policies parsed from YAML text or dicts (alert matchers,
  the action, its parameters, guards and mode), and the guard decision (allow, wait for
  approval, skip) from the history of executions. They import only ``keelwatch.entities``,
  ``keelwatch.errors`` and ``keelwatch.alerting.matchers``/``rules`` (listed in the pure
  import-linter contract in ``pyproject.toml``).
- ``dispatch``: firing alerts → executions (one per policy and firing episode, by a unique
  constraint), committed, then enqueued by name.
- ``executor``: runs one execution against the registry and records the outcome in the audit
  log and on the MLflow versions involved. Workers call it from a thin task.
"""
