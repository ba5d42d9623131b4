"""Labels through the real app and the real CLI: ``POST /predictions/labels``, labels in
``GET /predictions``, bad payloads as JSON 4xx, and ``keelwatch predictions label FILE`` with
CSV and Parquet files, batches and a progress bar for large files."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from keelwatch.cli.app import app
from keelwatch.entities import PredictionRecord
from keelwatch.entities.auth import Role
from keelwatch.settings import Settings
from keelwatch.storage.audit import list_audit
from keelwatch.storage.db import Database
from keelwatch.storage.labels import labels_for_request_ids
from keelwatch.storage.models import PredictionLabelRow
from keelwatch.storage.predictions import bulk_write_predictions
from tests.conftest import settings_env, subprocess_env
from tests.integration.conftest import api_client

pytestmark = pytest.mark.integration

START = datetime(2025, 7, 1, 9, 0, tzinfo=UTC)


def log_predictions(database: Database, request_ids: list[str]) -> None:
    records = [
        PredictionRecord(
            request_id=rid,
            model_name="churn",
            model_version="1",
            inputs={"x": i},
            outputs={"p": 0.5},
            latency_ms=1.0,
            created_at=START + timedelta(seconds=i),
        )
        for i, rid in enumerate(request_ids)
    ]
    bulk_write_predictions(database.engine, records)


def label_rows(database: Database) -> int:
    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(PredictionLabelRow)) or 0)


@pytest.fixture
def logged(database: Database) -> list[str]:
    request_ids = ["a-1", "a-2", "a-3", "a-4"]
    log_predictions(database, request_ids)
    return request_ids


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The app, called with an operator token named ``ana`` (audit actor ``token:ana``)."""
    with api_client(
        settings, role=Role.OPERATOR, name="ana", raise_server_exceptions=False
    ) as test_client:
        yield test_client


def post_labels(
    client: TestClient, labels: list[dict[str, Any]], headers: dict[str, str] | None = None
) -> Any:
    return client.post("/predictions/labels", json={"labels": labels}, headers=headers)


# --------------------------------------------------------------------------- API


def test_post_labels_then_list_them(
    client: TestClient, database: Database, logged: list[str]
) -> None:
    response = post_labels(
        client,
        [
            {"request_id": "a-1", "label": 1},
            {"request_id": "a-2", "label": "fraud"},
            {"request_id": "a-3", "label": False},
            {"request_id": "sampled-out", "label": 1},
        ],
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "inserted": 3,
        "updated": 0,
        "unchanged": 0,
        "unknown_request_ids": ["sampled-out"],
    }

    items = {item["request_id"]: item for item in client.get("/predictions").json()["items"]}
    assert items["a-1"]["label"] == 1
    assert items["a-2"]["label"] == "fraud"
    assert items["a-3"]["label"] is False
    assert items["a-4"]["label"] is None
    assert items["a-4"]["labelled_at"] is None
    assert datetime.fromisoformat(items["a-1"]["labelled_at"]) > START

    # Same labels again: nothing changes; a new label for a-1 replaces the old one.
    again = post_labels(
        client, [{"request_id": "a-1", "label": 0}, {"request_id": "a-2", "label": "fraud"}]
    )
    assert again.json() == {"inserted": 0, "updated": 1, "unchanged": 1, "unknown_request_ids": []}
    items = {item["request_id"]: item for item in client.get("/predictions").json()["items"]}
    assert items["a-1"]["label"] == 0

    audit = client.get("/audit", params={"action": "labels.record"}).json()["items"]
    assert [(e["actor"], e["details"]["updated"]) for e in audit] == [
        ("token:ana", 1),
        ("token:ana", 0),
    ]
    assert audit[1]["details"] == {
        "received": 4,
        "inserted": 3,
        "updated": 0,
        "unchanged": 0,
        "unknown": 1,
    }


def test_ten_thousand_labels_per_call_and_not_one_more(
    client: TestClient, database: Database
) -> None:
    log_predictions(database, [f"b-{i}" for i in range(10_000)])
    labels = [{"request_id": f"b-{i}", "label": i % 3} for i in range(10_000)]
    response = post_labels(client, labels)
    assert response.status_code == 200, response.text
    assert response.json()["inserted"] == 10_000

    too_many = post_labels(client, [*labels, {"request_id": "b-extra", "label": 1}])
    assert too_many.status_code == 422
    assert "at most 10000" in too_many.json()["error"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ('{"labels": []}', "at least 1"),
        ('{"labels": [{"request_id": "a-1"}]}', "body.labels.0.label: Field required"),
        ('{"labels": [{"label": 1}]}', "body.labels.0.request_id: Field required"),
        ('{"labels": [{"request_id": "", "label": 1}]}', "body.labels.0.request_id"),
        ('{"labels": [{"request_id": "' + "x" * 129 + '", "label": 1}]}', "at most 128"),
        ('{"labels": [{"request_id": 7, "label": 1}]}', "body.labels.0.request_id"),
        ('{"labels": [{"request_id": "a-1", "label": NaN}]}', "must be finite"),
        ('{"labels": [{"request_id": "a-1", "label": -Infinity}]}', "must be finite"),
        ('{"labels": [{"request_id": "a-1", "label": null}]}', "not null"),
        ('{"labels": [{"request_id": "a-1", "label": [1, 2]}]}', "not list"),
        ('{"labels": [{"request_id": "a-1", "label": {"y": 1}}]}', "not dict"),
        (
            '{"labels": [{"request_id": "a-1", "label": 1}, {"request_id": "a-1", "label": 2}]}',
            "'a-1' appears twice with different labels",
        ),
        ('{"labels": [{"request_id": "a-1", "label": 1}], "actor": "bo"}', "body.actor"),
        ('[{"request_id": "a-1", "label": 1}]', "valid dictionary"),
        ('{"labels": {"a-1": 1}}', "body.labels"),
    ],
)
def test_bad_payloads_are_json_422(
    client: TestClient, database: Database, logged: list[str], body: str, fragment: str
) -> None:
    response = client.post(
        "/predictions/labels", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/json"
    assert fragment in response.json()["error"]
    assert label_rows(database) == 0


def test_an_actor_header_is_ignored(client: TestClient, logged: list[str]) -> None:
    # X-Keelwatch-Actor is gone: the audit actor is the token's identity, whatever is sent.
    spoof = {"X-Keelwatch-Actor": "ceo@bank (approved by risk committee)" + "x" * 300}
    response = post_labels(client, [{"request_id": "a-1", "label": 1}], headers=spoof)
    assert response.status_code == 200, response.text
    audit = client.get("/audit", params={"action": "labels.record"}).json()["items"]
    assert [entry["actor"] for entry in audit] == ["token:ana"]


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def runner(settings: Settings) -> CliRunner:
    return CliRunner(env=settings_env(settings))


def test_cli_labels_a_csv_file(
    runner: CliRunner, database: Database, logged: list[str], tmp_path: Path
) -> None:
    log_predictions(database, ["007"])  # must not be read as the number 7
    path = tmp_path / "labels.csv"
    path.write_text(
        "request_id,label,comment\n"
        "a-1,1,first\n"
        "a-2,0,\n"
        "007,1,leading zeros\n"
        "ghost,1,never logged\n"
        "a-1,1,same label twice is fine\n"
    )
    result = runner.invoke(app, ["predictions", "label", str(path), "--actor", "labeller"])
    assert result.exit_code == 0, result.output
    assert "3 inserted, 0 updated, 0 unchanged, 1 unknown request ids" in result.stdout
    assert "ghost" in result.stderr
    with database.session() as session:
        assert labels_for_request_ids(session, ["a-1", "a-2", "007", "ghost"]) == {
            "a-1": 1,
            "a-2": 0,
            "007": 1,
        }
        [entry] = list_audit(session, action="labels.record")
    assert entry.actor == "labeller"

    # Sending the file again changes nothing.
    again = runner.invoke(app, ["predictions", "label", str(path), "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == {
        "inserted": 0,
        "updated": 0,
        "unchanged": 3,
        "unknown_request_ids": ["ghost"],
    }


def test_cli_labels_a_large_parquet_file_in_batches(
    runner: CliRunner, database: Database, tmp_path: Path
) -> None:
    rows = 25_000
    log_predictions(database, [f"c-{i}" for i in range(rows - 5)])  # five ids sampled out
    path = tmp_path / "labels.parquet"
    frame = pd.DataFrame(
        {"request_id": [f"c-{i}" for i in range(rows)], "label": [i % 2 == 0 for i in range(rows)]}
    )
    frame.to_parquet(path, index=False)

    result = runner.invoke(app, ["predictions", "label", str(path), "--actor", "bulk"])
    assert result.exit_code == 0, result.output
    assert "24,995 inserted, 0 updated, 0 unchanged, 5 unknown request ids" in result.stdout
    assert f"{rows}/{rows}" in result.stderr  # the progress bar
    with database.session() as session:
        entries = list_audit(session, action="labels.record")
        labels = labels_for_request_ids(session, ["c-0", "c-1"])
    assert len(entries) == 3  # one per batch of 10,000
    assert sum(e.details["inserted"] for e in entries) == rows - 5
    assert labels == {"c-0": True, "c-1": False}

    # Relabel: every label flipped, read from the same file.
    frame["label"] = ~frame["label"]
    frame.to_parquet(path, index=False)
    result = runner.invoke(app, ["predictions", "label", str(path), "--json"])
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)
    assert (counts["inserted"], counts["updated"], counts["unchanged"]) == (0, rows - 5, 0)
    assert counts["unknown_request_ids"] == [f"c-{i}" for i in range(rows - 5, rows)]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("request_id,value\na-1,1\n", "missing column(s) label"),
        ("request_id,label\n", "no labels"),
        ("request_id,label\na-1,1\na-2,\n", "labels.csv row 2 ('a-2'): the label is missing (NaN)"),
        ("request_id,label\na-1,1\n,1\n", "labels.csv row 2: request_id must be a non-empty"),
        ("request_id,label\na-1,1\na-2,0\na-1,0\n", "'a-1' appears twice with different labels"),
    ],
)
def test_cli_refuses_a_bad_file_before_writing_anything(
    runner: CliRunner,
    database: Database,
    logged: list[str],
    tmp_path: Path,
    content: str,
    fragment: str,
) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(content)
    result = runner.invoke(app, ["predictions", "label", str(path)])
    assert result.exit_code == 2, result.output
    assert fragment in result.stderr
    assert label_rows(database) == 0


def test_cli_bad_file_is_a_clean_error(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "labels.json"
    path.write_text("{}")
    result = subprocess.run(
        [sys.executable, "-m", "keelwatch.cli.app", "predictions", "label", str(path)],
        env=subprocess_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "expected a CSV or Parquet file" in result.stderr
    assert "Traceback" not in result.stderr
