"""Keelwatch's worker fleet: the Celery app (``celery_app``), worker roles (``roles/``) and thin
task adapters (``tasks/``) that call domain code in ``keelwatch``. Heavy ML imports live here."""
