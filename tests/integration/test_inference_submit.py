"""Submitting batch inference: bad input is refused with a clear error, leaving no job row, no
audit entry and no broker message; through the domain call, the API and the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from typer.testing import CliRunner

from keelwatch.cli.app import app as cli_app
from keelwatch.contract import BatchInferenceRequest
from keelwatch.entities.auth import Role
from keelwatch.errors import ConflictError, InvalidInputError, KeelwatchError, NotFoundError
from keelwatch.inference import submit_batch_inference
from keelwatch.settings import Settings
from keelwatch.storage.audit import list_audit
from keelwatch.storage.jobs import list_jobs
from keelwatch.wiring import Services
from tests.conftest import settings_env
from tests.integration.conftest import api_client
from tests.integration.test_inference_fleet import (
    feature_frame,
    register_sklearn_model,
    upgraded_settings,
    write_input,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def fleet(
    db_url: str, mlflow_uri: str, redis_url: str, tmp_path: Path
) -> Iterator[tuple[Services, str, redis.Redis]]:
    """Services on a Redis broker with model ``churn`` v1 registered; no worker runs."""
    settings = upgraded_settings(tmp_path, db_url, mlflow_uri, redis_url)
    version, _ = register_sklearn_model(mlflow_uri, tmp_path / "mlartifacts")
    services = Services(settings)
    broker = redis.Redis.from_url(redis_url)
    yield services, version, broker
    broker.close()
    services.close()


def bad_inputs(tmp_path: Path, version: str) -> list[tuple[dict[str, Any], type[Exception], str]]:
    """(request fields, expected error, text its message must contain) per kind of bad input."""
    good = write_input(tmp_path / "good.parquet", feature_frame(100))
    missing = write_input(tmp_path / "missing.parquet", feature_frame(100).drop(columns="tenure"))
    extra = feature_frame(100).assign(customer_id=range(100))
    extra_path = write_input(tmp_path / "extra.csv", extra)
    empty = write_input(tmp_path / "empty.parquet", feature_frame(0))
    header_only = tmp_path / "header_only.csv"
    header_only.write_text(",".join(feature_frame(1).columns) + "\n")
    zero_bytes = tmp_path / "zero.csv"
    zero_bytes.write_bytes(b"")
    as_json = tmp_path / "rows.json"
    as_json.write_text(feature_frame(5).to_json())
    not_parquet = tmp_path / "broken.parquet"
    not_parquet.write_text("this is not parquet")
    used = tmp_path / "used"
    used.mkdir()
    (used / "part-00000.parquet").write_bytes(b"")
    return [
        ({"model": "nope/1", "input_uri": str(good)}, NotFoundError, "nope"),
        ({"model": f"churn/{int(version) + 5}", "input_uri": str(good)}, NotFoundError, "churn"),
        ({"model": "churn@champion", "input_uri": str(good)}, NotFoundError, "champion"),
        (
            {"model": f"churn/{version}", "input_uri": str(missing)},
            InvalidInputError,
            "missing columns ['tenure']",
        ),
        (
            {"model": f"churn/{version}", "input_uri": str(extra_path)},
            InvalidInputError,
            "unexpected columns ['customer_id']",
        ),
        ({"model": f"churn/{version}", "input_uri": str(empty)}, InvalidInputError, "no rows"),
        (
            {"model": f"churn/{version}", "input_uri": str(header_only)},
            InvalidInputError,
            "no rows",
        ),
        ({"model": f"churn/{version}", "input_uri": str(zero_bytes)}, InvalidInputError, "empty"),
        (
            {"model": f"churn/{version}", "input_uri": str(as_json)},
            InvalidInputError,
            "unsupported input format '.json'",
        ),
        (
            {"model": f"churn/{version}", "input_uri": str(not_parquet)},
            InvalidInputError,
            "cannot read parquet input",
        ),
        (
            {"model": f"churn/{version}", "input_uri": str(tmp_path / "absent.parquet")},
            InvalidInputError,
            "not found",
        ),
        (
            {"model": f"churn/{version}", "input_uri": "s3://bucket/data.parquet"},
            InvalidInputError,
            "only local files",
        ),
        (
            {"model": f"churn/{version}", "input_uri": str(good), "output_uri": str(used)},
            ConflictError,
            "already holds part files",
        ),
    ]


def assert_nothing_written(services: Services, broker: redis.Redis) -> None:
    with services.db.session() as session:
        assert list_jobs(session) == []
        assert list_audit(session, action="job.submit") == []
    assert broker.llen("cpu") == 0
    assert broker.llen("gpu") == 0


def test_bad_input_is_refused_and_nothing_is_written(
    fleet: tuple[Services, str, redis.Redis], tmp_path: Path
) -> None:
    services, version, broker = fleet
    for fields, error, text in bad_inputs(tmp_path, version):
        with pytest.raises(error) as caught:
            submit_batch_inference(
                services.db,
                services.sender,
                services.registry,
                services.settings.inference,
                BatchInferenceRequest(**fields),
                actor="tester",
            )
        assert text in str(caught.value), (fields, str(caught.value))
    assert_nothing_written(services, broker)


def test_good_submission_writes_job_audit_and_one_message_per_chunk(
    fleet: tuple[Services, str, redis.Redis], tmp_path: Path
) -> None:
    services, version, broker = fleet
    source = write_input(tmp_path / "in.parquet", feature_frame(2_500), row_group_rows=500)
    job = submit_batch_inference(
        services.db,
        services.sender,
        services.registry,
        services.settings.inference,
        BatchInferenceRequest(model=f"churn/{version}", input_uri=str(source), chunk_rows=1_000),
        actor="tester",
    )
    # Row groups of 500 are packed two to a chunk: 1000, 1000, 500.
    assert (job.chunks_total, job.rows_total) == (3, 2_500)
    assert broker.llen("cpu") == 3
    with services.db.session() as session:
        [entry] = list_audit(session, target=f"job:{job.id}")
    assert (entry.actor, entry.action, entry.details["rows"]) == ("tester", "job.submit", 2_500)


# --------------------------------------------------------------------------- API


def test_api_maps_errors_to_json_and_accepts_good_jobs(
    fleet: tuple[Services, str, redis.Redis], tmp_path: Path
) -> None:
    services, version, broker = fleet
    client = api_client(services.settings, role=Role.OPERATOR, name="erin")
    with client:
        for fields, error, text in bad_inputs(tmp_path / "api", version):
            response = client.post("/jobs/batch-inference", json=fields)
            assert response.status_code == error.status_code, (fields, response.text)  # type: ignore[attr-defined]
            assert text in json.dumps(response.json())
        assert_nothing_written(services, broker)
        assert client.get("/jobs/not-a-job").status_code == 404
        response = client.post("/jobs/batch-inference", json={"model": "churn/1", "device": "tpu"})
        assert response.status_code == 422

        source = write_input(tmp_path / "in.parquet", feature_frame(300))
        response = client.post(
            "/jobs/batch-inference",
            json={"model": f"churn/{version}", "input_uri": str(source), "device": "gpu"},
        )
        assert response.status_code == 202, response.text
        job = response.json()
        assert (job["status"], job["submitted_by"], job["rows_total"]) == (
            "pending",
            "token:erin",
            300,
        )
        assert broker.llen("gpu") == 1
        detail = client.get(f"/jobs/{job['id']}").json()
        assert [c["status"] for c in detail["chunks"]] == ["pending"]
        assert [j["id"] for j in client.get("/jobs").json()["items"]] == [job["id"]]


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def cli(
    fleet: tuple[Services, str, redis.Redis], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Any]:
    """Run ``keelwatch ...`` in-process with the test's settings in the environment."""
    settings: Settings = fleet[0].settings
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(cli_app, list(args))

    return run


def test_cli_bad_input_exits_2_with_message(
    cli: Callable[..., Any], fleet: tuple[Services, str, redis.Redis], tmp_path: Path
) -> None:
    services, version, broker = fleet
    missing = write_input(tmp_path / "m.parquet", feature_frame(10).drop(columns="discount"))
    result = cli("infer", "submit", "--model", f"churn/{version}", "--input", str(missing))
    assert result.exit_code == 2
    assert "missing columns ['discount']" in result.output
    assert "Traceback" not in result.output
    result = cli("infer", "submit", "--model", "ghost@champion", "--input", str(missing))
    assert result.exit_code == 2 and "ghost" in result.output
    result = cli("jobs", "status", "no-such-job")
    assert result.exit_code == 2 and "unknown job" in result.output
    assert_nothing_written(services, broker)

    good = write_input(tmp_path / "g.parquet", feature_frame(10))
    result = cli("infer", "submit", "-m", f"churn/{version}", "-i", str(good), "--json")
    assert result.exit_code == 0, result.output
    job = json.loads(result.output)
    assert job["status"] == "pending"
    status = json.loads(cli("jobs", "status", job["id"], "--json", "--chunks").output)
    assert status["chunks_total"] == 1 and status["chunks"][0]["status"] == "pending"
    listing = cli("jobs", "list", "--json")
    assert listing.exit_code == 0 and [j["id"] for j in json.loads(listing.output)] == [job["id"]]
    table = cli("jobs", "list")
    assert table.exit_code == 0 and job["id"] in table.output
    waited = cli("jobs", "wait", job["id"], "--timeout", "0.5")
    assert waited.exit_code == 1 and "still pending" in waited.output


def test_keelwatch_error_hierarchy_holds() -> None:
    # The API and CLI rely on these status codes; a change here must be deliberate.
    assert (NotFoundError.status_code, ConflictError.status_code) == (404, 409)
    assert InvalidInputError.status_code == 422 and issubclass(InvalidInputError, KeelwatchError)
