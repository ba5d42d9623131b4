"""Issue #13's safe-input findings, each replayed as a request through the real app.

Paths from callers stay inside the data roots (and a worker refuses to write outside its own);
NUL characters, malformed run ids and values the database refuses are 422s naming the field;
bodies over the limit are 413 before they are read; a 500 keeps the keep-alive connection; every
answer carries the security headers. Authentication is off here (``KEELWATCH_AUTH__MODE``):
these are the checks that stand in front of it.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from keelwatch.api.app import create_app
from keelwatch.settings import Settings
from keelwatch.storage.audit import list_audit
from keelwatch.storage.db import Database, upgrade_database
from keelwatch.wiring import Services
from tests.conftest import subprocess_env
from tests.integration.test_api import closed_port
from tests.integration.test_inference_fleet import (
    feature_frame,
    register_sklearn_model,
    wait_for_job,
    write_input,
)

pytestmark = pytest.mark.integration

READ_OUTSIDE = "the path is outside the configured data roots (KEELWATCH_DATA_ROOTS__READ)"
WRITE_OUTSIDE = "the path is outside the configured data roots (KEELWATCH_DATA_ROOTS__WRITE)"
NUL_MESSAGE = "contains a NUL character (\\u0000), which is not allowed"


def confined_settings(
    tmp_path: Path, database_url: str, mlflow_uri: str, *, broker_url: str = "", **overrides: Any
) -> Settings:
    """Everything under ``tmp_path/inside``, which is the one read root; outputs go to
    ``inside/outputs``, the one write root. ``tmp_path/elsewhere`` is outside both."""
    inside = tmp_path / "inside"
    fields: dict[str, Any] = {
        "data_dir": inside / "data",
        "database": {"url": database_url},
        "mlflow": {"tracking_uri": mlflow_uri, "artifact_root": (tmp_path / "mlart").as_uri()},
        "broker": {"url": broker_url, "result_backend": broker_url},
        "inference": {"output_dir": str(inside / "outputs")},
        "data_roots": {"read": [str(inside)], "write": [str(inside / "outputs")]},
        "auth": {"mode": "disabled"},
    }
    fields.update(overrides)
    return Settings(**fields)


@pytest.fixture
def settings(database: Database, db_url: str, mlflow_uri: str, tmp_path: Path) -> Settings:
    return confined_settings(tmp_path, db_url, mlflow_uri)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def secret_csv(tmp_path: Path) -> Path:
    """A CSV outside every root whose header must never show up in an answer."""
    path = tmp_path / "elsewhere" / "secret.csv"
    path.parent.mkdir()
    path.write_text("ssn,salary\n123-45-6789,100000\n")
    return path


def refused(response: Any, status: int = 422) -> str:
    assert response.status_code == status, response.text
    assert "traceback" not in response.text.lower()
    return str(response.json()["error"])


def assert_nothing_written(settings: Settings, client: TestClient) -> None:
    assert client.get("/jobs").json()["count"] == 0
    assert client.get("/monitors").json()["count"] == 0
    database = Database(settings.database.url)
    try:
        with database.session() as session:
            assert list_audit(session, limit=10) == []
    finally:
        database.dispose()


# --------------------------------------------------------------------------- paths


def test_paths_outside_the_roots_are_refused_without_saying_more(
    client: TestClient, settings: Settings, tmp_path: Path, secret_csv: Path
) -> None:
    inside = tmp_path / "inside"
    (inside / "datasets").mkdir(parents=True)
    link = inside / "datasets" / "link.csv"
    link.symlink_to(secret_csv)

    def submit(**fields: Any) -> Any:
        return client.post("/jobs/batch-inference", json={"model": "churn/1", **fields})

    # The same answer, byte for byte, whether the file exists or not, and whatever it holds.
    answers = {
        submit(input_uri=location).text
        for location in (
            "/etc/passwd",
            "/etc/does-not-exist",
            "file:///etc/passwd",
            "file:///etc/does-not-exist",
            str(secret_csv),
            str(link),  # a symlink inside a root that points out of it
        )
    }
    assert len(answers) == 1, answers
    (answer,) = answers
    assert json.loads(answer) == {"error": f"input_uri: {READ_OUTSIDE}"}
    assert "ssn" not in answer and "salary" not in answer

    dotdot = refused(submit(input_uri=str(inside / "datasets" / ".." / ".." / "elsewhere")))
    assert dotdot.startswith("input_uri: '..' segments are not allowed")
    assert "unsupported location scheme 's3'" in refused(submit(input_uri="s3://b/x.parquet"))
    fifo = inside / "datasets" / "pipe.csv"
    os.mkfifo(fifo)  # reading it would block the API forever
    assert refused(submit(input_uri=str(fifo))) == (
        f"input_uri: {fifo} is not a regular file (a folder, device, FIFO or socket)"
    )
    good = write_input(inside / "datasets" / "in.parquet", feature_frame(10))
    assert refused(submit(input_uri=str(good), output_uri="/etc")) == f"output_uri: {WRITE_OUTSIDE}"
    assert refused(submit(input_uri=str(good), output_uri=str(inside / "datasets"))) == (
        f"output_uri: {WRITE_OUTSIDE}"
    )

    monitor = {"name": "m", "model": "churn/1", "window": {"kind": "dataset", "uri": ""}}
    for location in ("/etc/passwd", str(secret_csv), str(link)):
        monitor["window"] = {"kind": "dataset", "uri": location}
        assert refused(client.post("/monitors", json=monitor)) == f"window.uri: {READ_OUTSIDE}"
    patched = client.patch("/monitors/m", json={"window": {"kind": "dataset", "uri": "/etc/x"}})
    assert refused(patched) == f"window.uri: {READ_OUTSIDE}"
    profile = client.put(
        "/models/churn/versions/1/reference-profile", json={"data_uri": str(secret_csv)}
    )
    assert refused(profile) == f"data_uri: {READ_OUTSIDE}"
    # A local model folder to register is a path like any other; store URIs pass through.
    outside_model = tmp_path / "outside-model"
    outside_model.mkdir()
    for location in (str(outside_model), f"file://{outside_model}", "/etc"):
        version = client.post("/models/churn/versions", json={"model_uri": location})
        assert refused(version) == f"model_uri: {READ_OUTSIDE}"
    not_a_folder = refused(client.post("/models/churn/versions", json={"model_uri": str(good)}))
    assert not_a_folder == f"model_uri: {good} is not a folder"
    assert not Path("/etc/part-00000.parquet").exists()
    assert_nothing_written(settings, client)


def test_nul_characters_and_malformed_ids_are_422_naming_the_field(
    client: TestClient, settings: Settings
) -> None:
    labels = client.post(
        "/predictions/labels", json={"labels": [{"request_id": "a\x00b", "label": 1}]}
    )
    assert refused(labels) == f"invalid request: body.labels.0.request_id: {NUL_MESSAGE}"
    job = client.post("/jobs/batch-inference", json={"model": "m/1", "input_uri": "/x\x00.csv"})
    assert refused(job) == f"invalid request: body.input_uri: {NUL_MESSAGE}"
    key = client.post("/monitors", json={"name": "m", "config": {"a\x00": 1}})
    assert refused(key) == f"invalid request: body.config.a?: {NUL_MESSAGE}"
    assert refused(client.get("/monitors/a%00b")) == f"invalid request: path: {NUL_MESSAGE}"
    assert refused(client.get("/jobs?kind=a%00")) == f"invalid request: query.kind: {NUL_MESSAGE}"
    for run_id in ("", "../../etc", "a" * 31, "g" * 32):
        answer = refused(client.post("/models/churn/versions", json={"run_id": run_id}))
        assert "body.run_id" in answer and "32 hexadecimal characters" in answer
    runs_uri = client.post("/models/churn/versions", json={"model_uri": "runs:/../../etc/model"})
    assert "32 hexadecimal characters" in refused(runs_uri)
    path = client.post(
        "/models/churn/versions", json={"run_id": "0" * 32, "artifact_path": "../../etc"}
    )
    assert "'..' segments are not allowed" in refused(path)
    assert_nothing_written(settings, client)
    # An escaped backslash before u0000 is text, not a NUL: the request goes through.
    fine = client.post(
        "/predictions/labels",
        content=b'{"labels": [{"request_id": "a\\\\u0000b", "label": 1}]}',
        headers={"content-type": "application/json"},
    )
    assert fine.status_code == 200, fine.text
    assert fine.json()["unknown_request_ids"] == ["a\\u0000b"]


def test_a_value_the_database_refuses_is_422_not_500(
    settings: Settings, db_url: str, mlflow_uri: str, tmp_path: Path
) -> None:
    register_sklearn_model(mlflow_uri, tmp_path / "mlart")
    monitor = {
        "name": "big",
        "model": "churn/1",
        "window": {"kind": "rows", "last_rows": 10},
        "schedule_interval_s": 2**40,  # an INTEGER column: out of range on PostgreSQL
    }
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        answer = client.post("/monitors", json=monitor)
    if db_url.startswith("postgresql"):
        assert refused(answer) == "invalid request: the database refused a value of this request"
        assert str(2**40) not in answer.text
    else:  # SQLite stores any integer
        assert answer.status_code == 201, answer.text


# --------------------------------------------------------------------------- headers, CORS


def test_security_headers_on_every_answer_and_cors_off_by_default(
    client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    origin = {"Origin": "https://evil.example"}
    for response in (
        client.get("/healthz", headers=origin),
        client.get("/no/such/route", headers=origin),
        client.post("/jobs/batch-inference", json={}, headers=origin),
    ):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["content-security-policy"].startswith("default-src 'none'")
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert not any(name.startswith("access-control-") for name in response.headers)
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in docs.text
    csp = docs.headers["content-security-policy"]
    assert "script-src 'self' 'unsafe-inline'" in csp and "frame-ancestors 'none'" in csp
    assert "connect-src 'self'" in csp  # Swagger UI fetches /openapi.json
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200

    allowed = settings.model_copy(
        update={"api": settings.api.model_copy(update={"cors_origins": ["https://ui.example"]})}
    )
    with TestClient(create_app(allowed), raise_server_exceptions=False) as cors_client:
        ok = cors_client.get("/healthz", headers={"Origin": "https://ui.example"})
        other = cors_client.get("/healthz", headers=origin)
    assert ok.headers["access-control-allow-origin"] == "https://ui.example"
    assert "access-control-allow-origin" not in other.headers


# --------------------------------------------------------------------------- real server


@pytest.fixture
def broken_mlflow_server(
    database: Database, db_url: str, tmp_path: Path
) -> Iterator[tuple[str, int]]:
    """``keelwatch api`` on a free port, with an MLflow store that is not a database (so
    registry routes fail for real); yields (host, port)."""
    garbage = tmp_path / "broken-mlflow.db"
    garbage.write_bytes(b"this is not an SQLite database " * 200)
    settings = confined_settings(tmp_path, db_url, f"sqlite:///{garbage}")
    settings.ensure_data_dir()
    host, port = "127.0.0.1", closed_port()
    env = {**subprocess_env(settings), "KEELWATCH_AUTH__MODE": "disabled"}
    log_path = tmp_path / "api.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "keelwatch.cli.app", "api", "--host", host, "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"API exited early:\n{log_path.read_text()}")
            try:
                if httpx.get(f"http://{host}:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"API not up after 60s:\n{log_path.read_text()}")
            time.sleep(0.2)
        yield host, port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_500_keeps_the_connection_and_big_bodies_are_413_before_they_are_read(
    broken_mlflow_server: tuple[str, int],
) -> None:
    host, port = broken_mlflow_server
    connection = http.client.HTTPConnection(host, port, timeout=30)
    try:
        connection.request("GET", "/models")
        failed = connection.getresponse()
        body = json.loads(failed.read())
        assert failed.status == 500
        assert set(body) == {"error", "error_id"} and body["error_id"] in body["error"]
        assert "sqlite" not in json.dumps(body).lower()  # no settings value, no stack trace
        sock = connection.sock
        assert sock is not None
        # The same connection serves the next request (uvicorn closes it when an exception
        # escapes the app, and http.client would then fail here or open a new socket).
        connection.request("GET", "/healthz")
        healthy = connection.getresponse()
        assert healthy.status == 200, healthy.read()
        healthy.read()
        assert connection.sock is sock
    finally:
        connection.close()

    # 52 MB announced, 64 KiB sent: the 413 arrives without the server waiting for the rest.
    with socket.create_connection((host, port), timeout=30) as raw:
        raw.sendall(
            b"POST /predictions/labels HTTP/1.1\r\nHost: test\r\n"
            b"Content-Type: application/json\r\nContent-Length: 52000000\r\n\r\n" + b"x" * 65536
        )
        status, answer = read_http_response(raw)
    assert status == 413
    assert "KEELWATCH_API__MAX_BODY_BYTES" in answer["error"]

    # Chunked: refused once the count passes 10 MiB, the terminating chunk never sent.
    with socket.create_connection((host, port), timeout=30) as raw:
        raw.sendall(
            b"POST /predictions/labels HTTP/1.1\r\nHost: test\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"y" * (1024 * 1024)
        for _ in range(11):
            raw.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        status, answer = read_http_response(raw)
    assert status == 413
    assert "larger than 10485760 bytes" in answer["error"]


def read_http_response(raw: socket.socket) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of one HTTP/1.1 response with a Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = raw.recv(65536)
        assert piece, f"connection closed before a response: {data!r}"
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    length = int(headers["content-length"])
    while len(body) < length:
        piece = raw.recv(65536)
        assert piece
        body += piece
    return int(lines[0].split()[1]), json.loads(body[:length])


# --------------------------------------------------------------------------- the worker


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_worker_refuses_to_write_outside_its_roots_and_demo_paths_work(
    database: Database,
    db_url: str,
    mlflow_uri: str,
    redis_url: str,
    tmp_path: Path,
    start_worker: Any,
) -> None:
    """The API's roots allow a second output folder the worker's do not: a job submitted there
    through the API fails in the worker before anything is written; a job on the demo's paths
    (an input in the data dir, the default output folder) succeeds."""
    inside = tmp_path / "inside"
    extra = tmp_path / "api-only-outputs"
    worker_settings = confined_settings(tmp_path, db_url, mlflow_uri, broker_url=redis_url)
    api_settings = confined_settings(
        tmp_path,
        db_url,
        mlflow_uri,
        broker_url=redis_url,
        data_roots={"read": [str(inside)], "write": [str(inside / "outputs"), str(extra)]},
    )
    upgrade_database(db_url)
    version, _ = register_sklearn_model(mlflow_uri, tmp_path / "mlart")
    demo_input = write_input(worker_settings.data_dir / "demo-scoring.parquet", feature_frame(40))
    start_worker(worker_settings, queues="cpu")
    with TestClient(create_app(api_settings), raise_server_exceptions=False) as client:
        request = {"model": f"churn/{version}", "input_uri": str(demo_input), "chunk_rows": 20}
        outside = client.post(
            "/jobs/batch-inference", json={**request, "output_uri": str(extra / "job")}
        )
        assert outside.status_code == 202, outside.text
        demo = client.post("/jobs/batch-inference", json=request)
        assert demo.status_code == 202, demo.text
    services = Services(worker_settings)
    try:
        refused_job = wait_for_job(services, outside.json()["id"])
        demo_job = wait_for_job(services, demo.json()["id"])
    finally:
        services.close()
    assert refused_job.status.value == "failed"
    assert refused_job.error is not None
    assert "outside the configured write roots (KEELWATCH_DATA_ROOTS__WRITE)" in (refused_job.error)
    assert not extra.exists()  # not even the folder
    assert demo_job.status.value == "succeeded", demo_job.error
    assert Path(demo_job.params["output_dir"]).is_relative_to(inside / "outputs")
    assert demo_job.rows_done == 40
