"""The tasks' shared retry policy and the worker's entry-point environment.

A real Celery app on the embedded filesystem broker: a retry is a real message on the queue.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from celery.exceptions import Retry

from keelwatch.celery_config import queue_depths
from keelwatch.settings import Settings
from keelwatch_workers.celery_app import create_app
from keelwatch_workers.tasks.retry import MAX_RETRIES, retry_or_give_up

REPO_ROOT = Path(__file__).resolve().parents[2]
TASKS = REPO_ROOT / "workers" / "keelwatch_workers" / "tasks"


def _embedded_settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database={"url": f"sqlite:///{tmp_path / 'k.db'}"},
        mlflow={"tracking_uri": (tmp_path / "mlruns").as_uri()},
    )


def _bound_task(settings: Settings) -> Any:
    app = create_app(settings)

    @app.task(bind=True, name="kwtest.flaky", max_retries=MAX_RETRIES)
    def flaky(self: Any) -> None:  # only its request and retry() are used
        """A task to retry."""

    return flaky


def test_retry_enqueues_again_with_backoff_on_the_given_queue(tmp_path: Path) -> None:
    settings = _embedded_settings(tmp_path)
    settings.ensure_data_dir()
    task = _bound_task(settings)
    given_up: list[str] = []
    task.push_request(id="r1", retries=2, called_directly=False, args=[], kwargs={})
    try:
        with pytest.raises(Retry) as raised:
            retry_or_give_up(
                task,
                what="test work",
                cause="ValueError: boom",
                give_up=given_up.append,
                retry_exc=ValueError("boom"),
                queue="monitoring",
            )
    finally:
        task.pop_request()
    assert raised.value.when == 4  # 2**retries seconds
    assert given_up == []
    depths = queue_depths(settings)
    assert depths["monitoring"] == 1
    assert depths["cpu"] == 0


def test_out_of_attempts_records_the_give_up_message_once(tmp_path: Path) -> None:
    settings = _embedded_settings(tmp_path)
    settings.ensure_data_dir()
    task = _bound_task(settings)
    given_up: list[str] = []
    task.push_request(id="r2", retries=MAX_RETRIES, called_directly=False, args=[], kwargs={})
    try:
        message = retry_or_give_up(
            task,
            what="test work",
            cause="OSError: disk full",
            give_up=given_up.append,
            retry_exc=OSError("disk full"),
            queue="cpu",
        )
    finally:
        task.pop_request()
    assert message == f"gave up after {MAX_RETRIES + 1} attempts: OSError: disk full"
    assert given_up == [message]
    assert queue_depths(settings)["cpu"] == 0


def test_task_modules_retry_only_through_the_shared_helper() -> None:
    offenders = []
    for path in TASKS.glob("*.py"):
        if path.name == "retry.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "retry":
                offenders.append(f"{path.name}:{node.lineno}")
            if isinstance(node, ast.FunctionDef) and "backoff" in node.name:
                offenders.append(f"{path.name}:{node.lineno} {node.name}")
    assert offenders == [], f"retry logic outside tasks/retry.py: {offenders}"


def _run_python(code: str, tmp_path: Path, **extra_env: str) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEELWATCH_")}
    env.pop("DO_NOT_TRACK", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        KEELWATCH_DATA_DIR=str(tmp_path / "data"),
        KEELWATCH_DATABASE__URL=f"sqlite:///{tmp_path / 'k.db'}",
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT / "platform"), str(REPO_ROOT / "workers")]),
        **extra_env,
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    ).stdout
    return json.loads(out.splitlines()[-1])


def test_importing_task_modules_leaves_the_environment_alone(tmp_path: Path) -> None:
    code = (
        "import os, json\n"
        "before = dict(os.environ)\n"
        "import keelwatch_workers.tasks.drift, keelwatch_workers.tasks.inference\n"
        "print(json.dumps(sorted(set(os.environ.items()) ^ set(before.items()))))\n"
    )
    assert _run_python(code, tmp_path) == []


def test_worker_entry_prepares_telemetry_and_multiprocess_metrics(tmp_path: Path) -> None:
    folder = tmp_path / "prometheus"
    folder.mkdir()
    # The role module is what `celery -A keelwatch_workers.roles.all` imports first.
    code = (
        "import os, json\n"
        "import keelwatch_workers.roles.all\n"
        "from keelwatch_workers.metrics import multiprocess_dir\n"
        "from prometheus_client import values\n"
        "print(json.dumps([os.environ.get('DO_NOT_TRACK'),\n"
        "    os.environ.get('PROMETHEUS_MULTIPROC_DIR'), multiprocess_dir(),\n"
        "    values.ValueClass.__name__]))\n"
    )
    telemetry, exported, seen, value_class = _run_python(
        code, tmp_path, KEELWATCH_WORKER__METRICS_MULTIPROC_DIR=str(folder)
    )
    assert telemetry == "1"  # Evidently telemetry off by default
    assert exported == seen == str(folder)
    assert value_class == "MmapedValue"  # prometheus_client is in multiprocess mode


def test_worker_entry_leaves_telemetry_on_when_asked(tmp_path: Path) -> None:
    code = (
        "import os, json\n"
        "import keelwatch_workers.roles.monitoring\n"
        "from keelwatch_workers.metrics import multiprocess_dir\n"
        "print(json.dumps([os.environ.get('DO_NOT_TRACK'), multiprocess_dir()]))\n"
    )
    result = _run_python(code, tmp_path, KEELWATCH_WORKER__EVIDENTLY_TELEMETRY="true")
    assert result == [None, None]
