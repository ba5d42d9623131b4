"""Entities are plain values any layer may import: one module per area, the clock included."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC
from pathlib import Path

import keelwatch.entities as entities
from keelwatch.entities import audit, jobs, predictions, time

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_entities_import_nothing_of_keelwatch_but_errors_and_themselves() -> None:
    modules = ("audit", "jobs", "predictions", "time", "monitors", "registry")
    code = (
        "import sys, json; "
        + "; ".join(f"import keelwatch.entities.{m}" for m in modules)
        + "; print(json.dumps(sorted(m for m in sys.modules if m.startswith('keelwatch')"
        + " or m in ('sqlalchemy', 'pydantic', 'mlflow'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    ).stdout
    loaded = json.loads(out)
    outside = [
        m
        for m in loaded
        if m not in ("keelwatch", "keelwatch.errors") and not m.startswith("keelwatch.entities")
    ]
    assert outside == [], f"entities pulled in {outside}"


def test_the_package_re_exports_each_area() -> None:
    assert entities.Job is jobs.Job
    assert entities.JobStatus is jobs.JobStatus
    assert entities.PredictionRecord is predictions.PredictionRecord
    assert entities.LabelRecord is predictions.LabelRecord
    assert entities.AuditEntry is audit.AuditEntry
    assert entities.AliasChange is audit.AliasChange
    assert entities.utcnow is time.utcnow
    assert set(entities.__all__) <= set(dir(entities))


def test_utcnow_is_aware_and_the_storage_clock() -> None:
    from keelwatch.storage import models

    now = time.utcnow()
    assert now.tzinfo is UTC
    # The ORM column defaults use the same clock, not a second definition.
    assert models.utcnow is time.utcnow
