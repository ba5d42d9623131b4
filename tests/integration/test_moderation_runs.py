"""Batch moderation runs on SQLite and PostgreSQL: over a dataset column and over a window of
the prediction log, every decision equal to the moderation pipeline's own on the same texts,
tallies and review items recorded, a redelivered run after a crash recording nothing twice,
bad requests refused with the file or column named, the API (operator, 202), the CLI, and a
run carried out by a real worker."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from keelwatch.celery_config import queue_depths
from keelwatch.cli.app import app
from keelwatch.data_roots import DataPathError
from keelwatch.entities import JobStatus, PredictionRecord
from keelwatch.entities.auth import Role
from keelwatch.entities.time import utcnow
from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.moderation.findings import Category
from keelwatch.monitoring.moderation.pii import PiiDetector
from keelwatch.monitoring.moderation.pipeline import ModerationResult, Moderator
from keelwatch.monitoring.moderation.policy import ModerationPolicy
from keelwatch.monitoring.moderation.rules import DEFAULT_PROFANITY, Blocklist, RuleFilter
from keelwatch.monitoring.service.moderation_runs import (
    DECISIONS_FILE,
    SUBMIT_ACTION,
    create_moderation_run,
    run_moderation_job,
)
from keelwatch.monitoring.service.review_queue import list_review_items
from keelwatch.schemas.moderation_runs import ModerationRunIn
from keelwatch.settings import Settings
from keelwatch.storage.audit import list_audit
from keelwatch.storage.db import Database, upgrade_database
from keelwatch.storage.jobs import get_job
from keelwatch.storage.moderation_tallies import list_tallies
from keelwatch.storage.predictions import insert_predictions
from tests.conftest import make_settings, settings_env
from tests.integration.conftest import api_client

pytestmark = pytest.mark.integration

#: Texts covering every decision under :func:`moderator`'s policy: clean (allow), PII
#: (redact), profanity (review), an operator's own list (block), NUL (fail closed: review).
TEXTS = [
    "the weather is lovely today",
    "mail me at jane@example.com",
    "what the f.u.c.k is this",
    "this is forbidden content",
    None,  # a missing value: skipped
    "binary\x00data",
    "Scunthorpe cocktail party",
    "call +44 20 7946 0958 you bastard",
]


def moderator() -> Moderator:
    """Rules and PII with profanity sent to review and a custom list that blocks."""
    return Moderator(
        [
            RuleFilter([DEFAULT_PROFANITY, Blocklist(Category.CUSTOM, ("forbidden",))]),
            PiiDetector(),
        ],
        ModerationPolicy.from_overrides({"profanity": {"review": 0.5}}),
    )


def write_dataset(path: Path, texts: Sequence[str | None] = TEXTS, *, repeat: int = 1) -> Path:
    values = list(texts) * repeat
    table = pa.table({"text": values, "n": list(range(len(values)))})
    if path.suffix == ".csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path)
    return path


def expected(texts: Sequence[str | None]) -> list[tuple[int, ModerationResult]]:
    """(row, the pipeline's own verdict) of every non-missing text: the reference."""
    rows = [i for i, text in enumerate(texts) if text is not None]
    results = moderator().moderate_many([texts[i] for i in rows])
    return list(zip(rows, results, strict=True))


def decisions_of(path: Path) -> list[dict[str, Any]]:
    return list(pq.read_table(path).to_pylist())


def dataset_run(database: Database, settings: Settings, dataset: Path, **extra: Any) -> str:
    request = ModerationRunIn(source="dataset", column="text", dataset=str(dataset), **extra)
    with database.session() as session:
        job = create_moderation_run(
            session,
            request,
            actor="ops",
            output_root=settings.inference.output_dir,
            now=utcnow(),
            data_roots=settings.data_roots,
        )
    return job.id


# --------------------------------------------------------------------------- the service


def test_a_dataset_run_records_what_the_pipeline_decides(
    settings: Settings, database: Database, tmp_path: Path
) -> None:
    dataset = write_dataset(tmp_path / "texts.parquet", repeat=3)  # 24 rows
    job_id = dataset_run(database, settings, dataset, model="bot", version="2", reason="sweep")
    outcome = run_moderation_job(
        database, job_id, moderator=moderator(), now=utcnow(), batch_rows=5
    )
    reference = expected(list(TEXTS) * 3)
    assert outcome.status == "succeeded"
    assert outcome.texts == len(reference) == 21 and outcome.skipped_rows == 3
    written = decisions_of(Path(outcome.output_path))
    assert [(r["row"], r["decision"]) for r in written] == [
        (row, result.decision.value) for row, result in reference
    ]
    assert [r["categories"] for r in written] == [
        [c.value for c in result.categories] for _, result in reference
    ]
    assert {r["decision"] for r in written} == {"allow", "redact", "review", "block"}
    for record in written:
        # Never a text in clear: PII and profanity replaced, a failed text not kept at all.
        assert "jane@example.com" not in (record["redacted"] or "")
        assert "f.u.c.k" not in (record["redacted"] or "")
        assert (record["redacted"] is None) == bool(record["error"])
    with database.session() as session:
        job = get_job(session, job_id)
        tallies = list_tallies(session, source_prefix=f"job:{job_id}:")
        items, _ = list_review_items(session, model_name="bot", limit=100)
        [entry] = list_audit(session, action=SUBMIT_ACTION)
    assert job.status is JobStatus.SUCCEEDED and job.kind == "moderation_run"
    assert job.result["decisions"] == outcome.decisions
    assert job.result["output_uri"] == Path(outcome.output_path).as_uri()
    assert (
        Path(outcome.output_path) == Path(settings.inference.output_dir) / job_id / DECISIONS_FILE
    )
    assert len(tallies) == 5  # 24 rows in batches of 5
    assert sum(t.texts for t in tallies) == 21
    assert {(t.model_name, t.model_version, t.direction) for t in tallies} == {("bot", "2", "text")}
    assert sum(t.decisions["review"] for t in tallies) == outcome.decisions["review"]
    review_rows = [row for row, r in reference if r.decision.value == "review"]
    assert sorted(item.source_key for item in items) == sorted(
        f"job:{job_id}:{row}:text" for row in review_rows
    )
    assert all(
        "f.u.c.k" in item.text or item.text == "" or "[PHONE]" in item.text for item in items
    )
    assert (
        entry.actor == "ops" and entry.reason == "sweep" and entry.target == "dataset:texts.parquet"
    )
    # A finished job is skipped on redelivery.
    again = run_moderation_job(database, job_id, moderator=moderator(), now=utcnow())
    assert again.status == "skipped"


class CrashesOnSecondBatch:
    """A worker dying mid-run: the moderator raises on its second batch."""

    def __init__(self, inner: Moderator) -> None:
        self.inner = inner
        self.max_chars = inner.max_chars
        self.calls = 0

    def moderate_many(self, texts: Sequence[object]) -> list[ModerationResult]:
        self.calls += 1
        if self.calls == 2:
            raise ConnectionError("worker lost")
        return self.inner.moderate_many(texts)


def test_a_redelivered_run_records_nothing_twice(
    settings: Settings, database: Database, tmp_path: Path
) -> None:
    dataset = write_dataset(tmp_path / "texts.csv", repeat=2)
    job_id = dataset_run(database, settings, dataset)
    crashing = CrashesOnSecondBatch(moderator())
    with pytest.raises(ConnectionError):
        run_moderation_job(database, job_id, moderator=crashing, now=utcnow(), batch_rows=6)  # type: ignore[arg-type]
    output = Path(settings.inference.output_dir) / job_id
    assert not (output / DECISIONS_FILE).exists()
    assert [p.name for p in output.iterdir()] == []  # no half-written file left behind
    with database.session() as session:
        assert get_job(session, job_id).status is JobStatus.RUNNING
        first_items, _ = list_review_items(session, limit=100)
    assert first_items  # the first batch queued its review texts
    outcome = run_moderation_job(
        database, job_id, moderator=moderator(), now=utcnow(), batch_rows=6
    )
    # CSV has no missing text: an empty field is an empty string (and allowed).
    reference = expected([text if text is not None else "" for text in TEXTS] * 2)
    assert outcome.texts == len(reference) and outcome.skipped_rows == 0
    with database.session() as session:
        tallies = list_tallies(session, source_prefix=f"job:{job_id}:")
        items, _ = list_review_items(session, limit=100)
    assert sum(t.texts for t in tallies) == len(reference)  # the first batch's tally replaced
    assert len(items) == sum(1 for _, r in reference if r.decision.value == "review")
    assert {i.id for i in first_items} <= {i.id for i in items}
    assert len(decisions_of(Path(outcome.output_path))) == len(reference)


def test_a_log_run_reads_one_models_window_per_version(
    settings: Settings, database: Database
) -> None:
    now = utcnow()
    records = [
        PredictionRecord(
            request_id=f"r-{i}",
            model_name="bot",
            model_version="1" if i % 2 else "2",
            inputs={"prompt": "hi"},
            outputs={"answer": text} if text is not None else {"other": 1},
            latency_ms=1.0,
            created_at=now - timedelta(hours=1),
        )
        for i, text in enumerate(TEXTS)
    ]
    old = PredictionRecord(
        request_id="r-old",
        model_name="bot",
        model_version="1",
        inputs={},
        outputs={"answer": "you bastard"},
        latency_ms=1.0,
        created_at=now - timedelta(days=3),
    )
    with database.session() as session:
        insert_predictions(session, [*records, old])
    request = ModerationRunIn(
        source="predictions", column="answer", model="bot", direction="output"
    )
    with database.session() as session:
        job = create_moderation_run(
            session, request, actor="ops", output_root=settings.inference.output_dir, now=now
        )
    outcome = run_moderation_job(database, job.id, moderator=moderator(), now=now, batch_rows=3)
    reference = dict(expected(TEXTS))
    written = decisions_of(Path(outcome.output_path))
    assert outcome.texts == len(reference) and outcome.skipped_rows == 1  # the old row: outside
    assert {r["request_id"]: r["decision"] for r in written} == {
        f"r-{row}": result.decision.value for row, result in reference.items()
    }
    with database.session() as session:
        tallies = list_tallies(session, source_prefix=f"job:{job.id}:")
    by_version: dict[str, int] = {}
    for tally in tallies:
        assert tally.direction == "output" and tally.source.endswith(f":{tally.model_version}")
        by_version[tally.model_version] = by_version.get(tally.model_version, 0) + tally.texts
    assert by_version == {
        "1": sum(1 for row in reference if row % 2),
        "2": sum(1 for row in reference if not row % 2),
    }


def test_bad_requests_name_the_file_or_column(
    settings: Settings, database: Database, tmp_path: Path
) -> None:
    dataset = write_dataset(tmp_path / "texts.parquet")
    with pytest.raises(InvalidInputError, match=r"no column 'body' \(columns: 'text', 'n'\)"):
        _run_column(database, settings, dataset, "body")
    with pytest.raises(InvalidInputError, match=r"column 'n' of texts\.parquet is int64, not text"):
        _run_column(database, settings, dataset, "n")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.csv"
    write_dataset(outside)
    try:
        with pytest.raises(DataPathError, match="dataset"):
            dataset_run(database, settings, outside)
    finally:
        outside.unlink()
    now = utcnow()
    with (
        pytest.raises(InvalidInputError, match="since must be before until"),
        database.session() as session,
    ):
        create_moderation_run(
            session,
            ModerationRunIn(source="predictions", column="a", model="m", since=now, until=now),
            actor="ops",
            output_root=settings.inference.output_dir,
            now=now,
        )
    with pytest.raises(ValueError, match="needs `model`"):
        ModerationRunIn(source="predictions", column="a")


def _run_column(database: Database, settings: Settings, dataset: Path, column: str) -> str:
    request = ModerationRunIn(source="dataset", column=column, dataset=str(dataset))
    with database.session() as session:
        return create_moderation_run(
            session,
            request,
            actor="ops",
            output_root=settings.inference.output_dir,
            now=utcnow(),
            data_roots=settings.data_roots,
        ).id


# --------------------------------------------------------------------------- API and CLI


def test_the_api_accepts_runs_from_operators(settings: Settings, tmp_path: Path) -> None:
    settings.ensure_data_dir()
    dataset = write_dataset(tmp_path / "texts.parquet")
    body = {"source": "dataset", "column": "text", "dataset": str(dataset)}
    with api_client(settings, role=Role.VIEWER) as viewer:
        assert viewer.post("/moderation/runs", json=body).status_code == 403
    with api_client(settings, role=Role.OPERATOR, name="ops") as operator:
        accepted = operator.post("/moderation/runs", json=body)
        assert accepted.status_code == 202, accepted.text
        job = accepted.json()
        assert job["kind"] == "moderation_run" and job["status"] == "pending"
        assert operator.get(f"/jobs/{job['id']}").json()["submitted_by"] == "token:ops"
        missing = operator.post("/moderation/runs", json={"source": "dataset", "column": "text"})
        assert missing.status_code == 422 and "needs `dataset`" in missing.json()["error"]
        wrong = operator.post("/moderation/runs", json={**body, "column": "body"})
        assert wrong.status_code == 422 and "no column 'body'" in wrong.json()["error"]
        outside = operator.post("/moderation/runs", json={**body, "dataset": "/etc/hostname"})
        assert outside.status_code == 422 and "outside" in outside.json()["error"]
    assert queue_depths(settings)["monitoring"] == 1  # the one accepted run, after its commit


def test_the_cli_submits_a_run(settings: Settings, tmp_path: Path) -> None:
    settings.ensure_data_dir()
    dataset = write_dataset(tmp_path / "texts.csv")
    runner = CliRunner(env={**settings_env(settings), "COLUMNS": "200"})
    done = runner.invoke(
        app,
        ["moderation", "run", "--dataset", str(dataset), "--column", "text", "--model", "bot",
         "--actor", "cli-ops", "--json"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    job = json.loads(done.output)
    assert job["submitted_by"] == "cli-ops" and job["params"]["model_name"] == "bot"
    text = runner.invoke(
        app, ["moderation", "run", "--predictions", "--model", "bot", "--column", "answer",
              "--since", "2h"],
    )  # fmt: skip
    assert text.exit_code == 0 and "keelwatch jobs status" in text.output, text.output
    assert queue_depths(settings)["monitoring"] == 2
    for args, fragment in [
        (["--dataset", str(dataset), "--column", "nope"], "no column 'nope'"),
        (["--column", "text"], "exactly one of --dataset PATH or --predictions"),
        (["--predictions", "--column", "a"], "--predictions needs --model"),
        (["--predictions", "--model", "m", "--column", "a", "--since", "soon"], "since"),
    ]:
        bad = runner.invoke(app, ["moderation", "run", *args])
        assert bad.exit_code == 2, (args, bad.output)
        assert fragment in bad.output and len(bad.output.strip().splitlines()) == 1, bad.output


# --------------------------------------------------------------------------- a real worker


def test_a_worker_carries_out_a_run(
    tmp_path: Path, mlflow_uri: str, start_worker: Callable[..., Any]
) -> None:
    settings = make_settings(
        tmp_path, database_url=f"sqlite:///{tmp_path / 'kw.db'}", mlflow_uri=mlflow_uri
    )
    upgrade_database(settings.database.url)
    settings.ensure_data_dir()
    dataset = write_dataset(tmp_path / "texts.parquet")
    start_worker(settings, queues="monitoring", concurrency=1)
    with api_client(settings, role=Role.OPERATOR) as operator:
        body = {"source": "dataset", "column": "text", "dataset": str(dataset), "model": "bot"}
        job_id = operator.post("/moderation/runs", json=body).json()["id"]
        deadline = time.monotonic() + 180
        while True:
            job = operator.get(f"/jobs/{job_id}").json()
            if job["status"] not in ("pending", "running") or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    assert job["status"] == "succeeded", job
    # The worker's moderator is the configured one (rules, PII, profanity-check): the clean
    # text passes, the e-mail address is redacted, the NUL text goes to review (fail closed).
    written = decisions_of(Path(settings.inference.output_dir) / job_id / DECISIONS_FILE)
    by_row = {r["row"]: r for r in written}
    assert job["result"]["texts"] == len(written) == 7
    assert by_row[0]["decision"] == "allow"
    assert by_row[1]["decision"] == "redact" and by_row[1]["redacted"] == "mail me at [EMAIL]"
    assert by_row[5]["decision"] == "review" and by_row[5]["error"]
