"""Keelwatch's own SQL state: models (ORM), repositories (plain functions taking a session) and
the ORM → entity conversion. Nothing outside this package touches an ORM object.

Where new code goes: a table in ``models.py`` plus an Alembic revision in ``migrations/versions``;
queries in the repository module named after the concept (``jobs.py``, ``audit.py`` ...).
"""

from keelwatch.storage.db import Database, make_engine, upgrade_database

__all__ = ["Database", "make_engine", "upgrade_database"]
