"""The ``keelwatch`` CLI root and its ops commands on real databases and a real worker.

Most cases run the Typer app in-process (``CliRunner`` with a real environment); the ones that
check exit codes and stderr as a user sees them run ``keelwatch`` in a subprocess.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import keelwatch
from keelwatch.cli.app import app
from keelwatch.cli.environment import iter_env_vars
from keelwatch.entities import PredictionRecord
from keelwatch.settings import Settings
from keelwatch.storage.audit import record_audit
from keelwatch.storage.db import Database
from keelwatch.storage.predictions import insert_predictions
from tests.conftest import make_settings, settings_env, subprocess_env
from tests.integration.test_api import closed_port

pytestmark = pytest.mark.integration

OPS_COMMANDS = {"db", "up", "api", "worker", "beat", "mlflow-ui", "audit", "predictions", "config"}
SUB_APP_COMMANDS = {"models", "infer", "jobs", "drift", "monitors"}


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """``keelwatch ARGS`` in a subprocess with the test's settings."""
    return subprocess.run(
        [sys.executable, "-m", "keelwatch.cli.app", *args],
        env=subprocess_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def sqlite_settings(sqlite_url: str, mlflow_uri: str, tmp_path: Path) -> Settings:
    """Settings on SQLite only, for cases that do not depend on the database backend."""
    return make_settings(tmp_path, database_url=sqlite_url, mlflow_uri=mlflow_uri)


@pytest.fixture
def runner(settings: Settings) -> CliRunner:
    """An in-process runner whose environment carries the test's settings."""
    return CliRunner(env=settings_env(settings))


# --------------------------------------------------------------------------- root


def test_every_sub_app_and_ops_command_is_mounted() -> None:
    # Fails (not skips) when a sub-app module is missing: the CLI would silently lose verbs.
    command = typer.main.get_command(app)
    names = set(command.commands)  # type: ignore[attr-defined]
    missing = (SUB_APP_COMMANDS | OPS_COMMANDS) - names
    assert not missing, f"commands not mounted: {sorted(missing)}"


def test_version_and_help_are_fast(tmp_path: Path) -> None:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "keelwatch.cli.app", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"keelwatch {keelwatch.__version__}"
    help_text = subprocess.run(
        [sys.executable, "-m", "keelwatch.cli.app", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert help_text.returncode == 0
    assert "mlflow-ui" in help_text.stdout
    # Two interpreter starts; each must not import MLflow, pandas or Celery.
    assert time.perf_counter() - started < 10


# --------------------------------------------------------------------------- audit, predictions


def test_audit_list_filters_and_json(runner: CliRunner, database: Database) -> None:
    with database.session() as session:
        record_audit(session, actor="ana", action="promote", target="churn/1", reason="first")
        record_audit(session, actor="bo", action="approve", target="churn/2")
    result = runner.invoke(app, ["audit", "list", "--action", "promote", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["actor"], r["target"], r["reason"]) for r in rows] == [("ana", "churn/1", "first")]

    table = runner.invoke(app, ["audit", "list"])
    assert table.exit_code == 0, table.output
    assert "promote" in table.stdout
    assert "approve" in table.stdout


def test_predictions_tail_filters_and_order(runner: CliRunner, database: Database) -> None:
    start = datetime(2025, 5, 1, tzinfo=UTC)
    records = [
        PredictionRecord(
            request_id=str(uuid.uuid4()),
            model_name="churn" if i < 4 else "fraud",
            model_version=str(1 + i % 2),
            inputs={"i": i},
            outputs={"p": i / 10},
            latency_ms=1.0 + i,
            created_at=start + timedelta(minutes=i),
            job_id="job-x",
        )
        for i in range(6)
    ]
    with database.session() as session:
        insert_predictions(session, records)

    result = runner.invoke(app, ["predictions", "tail", "--model", "churn", "-n", "3", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    # The newest three churn rows, printed oldest first like `tail`.
    assert [row["inputs"]["i"] for row in rows] == [1, 2, 3]

    window = runner.invoke(
        app,
        [
            "predictions",
            "tail",
            "--since",
            (start + timedelta(minutes=2)).isoformat(),
            "--until",
            (start + timedelta(minutes=5)).isoformat(),
            "--version",
            "1",
            "--json",
        ],
    )
    assert window.exit_code == 0, window.output
    assert [row["inputs"]["i"] for row in json.loads(window.stdout)] == [2, 4]

    table = runner.invoke(app, ["predictions", "tail"], env={"COLUMNS": "160"})
    assert table.exit_code == 0
    assert "fraud" in table.stdout
    # One latency unit everywhere: milliseconds, said in the header.
    assert "latency ms" in table.stdout
    assert "6.00" in table.stdout  # the newest row's 6 ms


def test_bad_time_filter_is_a_clean_error(sqlite_settings: Settings) -> None:
    result = run_cli(sqlite_settings, "predictions", "tail", "--since", "last tuesday")
    assert result.returncode == 2
    assert "not an ISO 8601" in result.stderr
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------- errors


def test_unreachable_database_is_a_clean_error(mlflow_uri: str, tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{closed_port()}/keelwatch"
    settings = make_settings(tmp_path, database_url=url, mlflow_uri=mlflow_uri)
    for args in (("db", "upgrade"), ("db", "current"), ("audit", "list")):
        result = run_cli(settings, *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert "cannot reach the database" in result.stderr
        assert "Traceback" not in result.stderr


def test_malformed_setting_is_a_clean_error(sqlite_settings: Settings) -> None:
    env = subprocess_env(sqlite_settings) | {"KEELWATCH_API__PORT": "eighty"}
    result = subprocess.run(
        [sys.executable, "-m", "keelwatch.cli.app", "audit", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "invalid KEELWATCH_* settings" in result.stderr
    assert "api.port" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_worker_role_is_rejected(sqlite_settings: Settings) -> None:
    result = run_cli(sqlite_settings, "worker", "--role", "quantum")
    assert result.returncode == 2
    assert "unknown worker role 'quantum'" in result.stderr


def test_db_current_reports_a_schema_behind(mlflow_uri: str, tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, database_url=f"sqlite:///{tmp_path / 'fresh.db'}", mlflow_uri=mlflow_uri
    )
    result = run_cli(settings, "db", "current")
    assert result.returncode == 1
    assert "current: <empty>" in result.stdout
    assert "keelwatch db upgrade" in result.stderr


# --------------------------------------------------------------------------- config


def test_config_markdown_lists_every_variable(runner: CliRunner) -> None:
    result = runner.invoke(app, ["config", "--markdown"])
    assert result.exit_code == 0, result.output
    for var in iter_env_vars():
        assert f"`{var.name}`" in result.stdout


def test_operations_guide_holds_the_generated_settings_table(runner: CliRunner) -> None:
    """docs/operations.md's settings table is `keelwatch config --markdown`'s, row for row: a
    new setting or a changed description shows up here until the guide is regenerated."""
    result = runner.invoke(app, ["config", "--markdown"])
    assert result.exit_code == 0, result.output
    guide = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    stale = [
        line.split("|")[1].strip()
        for line in result.stdout.splitlines()
        if line.startswith("| `KEELWATCH_") and line not in guide
    ]
    assert not stale, f"regenerate docs/operations.md's settings table; stale rows: {stale}"


def test_config_hides_passwords(sqlite_settings: Settings) -> None:
    env = subprocess_env(sqlite_settings) | {
        "KEELWATCH_BROKER__URL": "redis://:s3cret-pw@127.0.0.1:6379/0",
        "COLUMNS": "200",
    }
    result = subprocess.run(
        [sys.executable, "-m", "keelwatch.cli.app", "config"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "KEELWATCH_BROKER__URL" in result.stdout
    assert "s3cret-pw" not in result.stdout


def test_config_at_80_columns_keeps_every_uri_whole(sqlite_settings: Settings) -> None:
    # A deep data dir makes every URI derived from it longer than the terminal.
    deep = sqlite_settings.data_dir.parent / ("a-rather-long-folder-name/" * 3) / "kw-data"
    env = subprocess_env(sqlite_settings) | {"KEELWATCH_DATA_DIR": str(deep), "COLUMNS": "80"}
    for name in ("KEELWATCH_DATABASE__URL", "KEELWATCH_INFERENCE__OUTPUT_DIR"):
        env.pop(name, None)

    def config(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "keelwatch.cli.app", "config", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    expected: dict[str, str] = json.loads(config("--json"))
    text = config()
    lines = text.splitlines()
    assert len([v for v in expected.values() if len(v) > 80]) >= 3  # wider than the terminal
    assert expected["KEELWATCH_DATABASE__URL"] == f"sqlite:///{deep / 'keelwatch.db'}"
    for name, value in expected.items():
        # Each value is on one line, whole: no ellipsis, no folding.
        assert any(line.strip().endswith(value or "(empty)") for line in lines), (name, value)
    assert "…" not in text
    # Lines wider than 80 columns are only whole values on their own line.
    for line in lines:
        if len(line) > 80:
            assert line.startswith("    ") and " " not in line.strip(), line


def test_config_json_is_the_resolved_settings(sqlite_settings: Settings) -> None:
    env = subprocess_env(sqlite_settings) | {
        "KEELWATCH_BROKER__URL": "redis://:s3cret-pw@127.0.0.1:6379/0"
    }
    result = subprocess.run(
        [sys.executable, "-m", "keelwatch.cli.app", "config", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["KEELWATCH_DATA_DIR"] == str(sqlite_settings.data_dir)
    assert values["KEELWATCH_DATABASE__URL"] == sqlite_settings.database.url
    assert values["KEELWATCH_BROKER__URL"] == "redis://:***@127.0.0.1:6379/0"
    assert "s3cret-pw" not in result.stdout


@pytest.mark.parametrize(
    "command",
    [
        ["up"],
        ["api"],
        ["worker"],
        ["beat"],
        ["mlflow-ui"],
        ["config"],
        ["db", "upgrade"],
        ["db", "current"],
        ["audit", "list"],
        ["predictions", "tail"],
    ],
    ids=lambda c: " ".join(c),
)
def test_short_help_flag_works(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "-h"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert "--json" in result.output or command[0] not in ("config", "audit", "predictions")


# --------------------------------------------------------------------------- worker


def test_worker_command_runs_a_real_celery_worker(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "keelwatch.cli.app",
                "worker",
                "--role",
                "all",
                "--queues",
                "cpu",
                "--concurrency",
                "1",
                "--hostname",
                f"clitest-{uuid.uuid4().hex[:6]}@%h",
            ],
            env=subprocess_env(sqlite_settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 90
            while b" ready." not in log_path.read_bytes():
                assert process.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.3)
            output = log_path.read_text()
            # `keelwatch worker` execs celery: same PID, the requested queue only.
            assert ".> cpu" in output
            assert ".> gpu" not in output
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            returncode = process.wait(timeout=60)
    assert returncode == 0, log_path.read_text()
