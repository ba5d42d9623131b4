"""``deploy/prometheus/keelwatch-rules.yml`` is valid, behaves as its unit tests say, and watches
only series that Keelwatch really exposes.

``promtool`` (Debian package ``prometheus``) checks the syntax and runs the rule unit tests in
``tests/data/prometheus/keelwatch-rules.test.yml`` (input series → expected alerts, labels and
rendered annotations). The metric-name check scrapes the real API's ``/metrics`` and renders the
workers' collectors, so a renamed metric breaks this test rather than silently muting an alert.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from keelwatch.api.app import create_app
from keelwatch.storage.db import upgrade_database
from tests.conftest import REPO_ROOT, make_settings

pytestmark = pytest.mark.integration

RULES_FILE = REPO_ROOT / "deploy" / "prometheus" / "keelwatch-rules.yml"
RULES_TEST_FILE = REPO_ROOT / "tests" / "data" / "prometheus" / "keelwatch-rules.test.yml"
PROMETHEUS_CONFIG = REPO_ROOT / "deploy" / "prometheus.yml"
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
#: A Keelwatch series name in a PromQL expression or annotation template.
KEELWATCH_NAME = re.compile(r"\bkeelwatch_[a-z0-9_]*[a-z0-9]\b")
#: Sample names a family of each type exposes (prometheus_client adds ``_created``).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "gauge": ("",),
}

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (apt-get install -y prometheus)"
)


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def load_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES_FILE.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def names_used(rules: list[dict[str, Any]]) -> dict[str, set[str]]:
    """keelwatch_* name → the alerts that use it, in their expression or annotations."""
    used: dict[str, set[str]] = {}
    for rule in rules:
        texts = [rule["expr"], *rule.get("annotations", {}).values()]
        for text in texts:
            for name in KEELWATCH_NAME.findall(text):
                used.setdefault(name, set()).add(rule["alert"])
    return used


def exposed_names(exposition: str) -> set[str]:
    """Every sample name the families in ``exposition`` can carry, with or without samples."""
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.update(f"{family.name}{suffix}" for suffix in SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


@pytest.fixture
def keelwatch_exposition(tmp_path: Path, sqlite_url: str, mlflow_uri: str) -> Iterator[str]:
    """What the API's /metrics and a worker's metrics port serve, as one exposition text."""
    upgrade_database(sqlite_url)
    settings = make_settings(tmp_path, database_url=sqlite_url, mlflow_uri=mlflow_uri)
    with TestClient(create_app(settings)) as client:
        client.get("/healthz")  # at least one request, so the latency histogram has samples
        response = client.get("/metrics")
    assert response.status_code == 200

    from keelwatch.monitoring.service import moderation_metrics
    from keelwatch_workers import metrics as worker_metrics

    registry = CollectorRegistry()
    for collector in (
        worker_metrics.ROWS_SCORED,
        worker_metrics.CHUNK_SECONDS,
        worker_metrics.TASK_ERRORS,
        moderation_metrics.MODERATION_TEXTS,
    ):
        registry.register(collector)
    yield response.text + "\n" + generate_latest(registry).decode()


@needs_promtool
def test_rules_pass_promtool_check() -> None:
    result = promtool("check", "rules", RULES_FILE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(load_rules())} rules found" in result.stdout


@needs_promtool
def test_rule_unit_tests_pass() -> None:
    result = promtool("test", "rules", RULES_TEST_FILE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
def test_rule_unit_tests_can_fail(tmp_path: Path) -> None:
    """A changed threshold is caught: the unit tests pin behaviour, not just syntax."""
    broken_rules = tmp_path / "keelwatch-rules.yml"
    text = RULES_FILE.read_text()
    assert 'queue=~"cpu|monitoring"} == 0' in text
    broken_rules.write_text(text.replace('queue=~"cpu|monitoring"} == 0', 'queue="cpu"} == 0'))
    tests = yaml.safe_load(RULES_TEST_FILE.read_text())
    tests["rule_files"] = [str(broken_rules)]
    test_file = tmp_path / "rules.test.yml"
    test_file.write_text(yaml.safe_dump(tests))
    result = promtool("test", "rules", test_file)
    assert result.returncode != 0
    assert "KeelwatchQueueNoConsumer" in result.stdout + result.stderr


@needs_promtool
def test_prometheus_config_loads_the_rules() -> None:
    result = promtool("check", "config", PROMETHEUS_CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    [rule_file] = config["rule_files"]
    # Compose mounts deploy/prometheus/ beside the config, where the relative path points.
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    mounts = compose["services"]["prometheus"]["volumes"]
    container_dir = Path("/etc/prometheus")
    host_dir = Path(rule_file).parent
    assert f"./deploy/{host_dir}:{container_dir / host_dir}:ro" in mounts
    assert (PROMETHEUS_CONFIG.parent / rule_file).resolve() == RULES_FILE.resolve()


def test_every_alert_has_severity_component_and_summary() -> None:
    rules = load_rules()
    assert len(rules) >= 10
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["labels"]["component"], rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert rule["alert"].startswith("Keelwatch"), rule["alert"]


def test_rules_use_only_metrics_keelwatch_exposes(keelwatch_exposition: str) -> None:
    exposed = exposed_names(keelwatch_exposition)
    used = names_used(load_rules())
    # The rules cover the fleet, jobs, the API and the models.
    assert {
        "keelwatch_queue_consumers",
        "keelwatch_queue_depth",
        "keelwatch_jobs",
        "keelwatch_http_request_duration_seconds_count",
        "keelwatch_drift_status",
        "keelwatch_champion_version",
        "keelwatch_notification_dead_letters",
        "keelwatch_action_executions",
        "keelwatch_moderation_texts_total",
    } <= set(used)
    unknown = {name: sorted(alerts) for name, alerts in used.items() if name not in exposed}
    assert unknown == {}, f"rules use series Keelwatch does not expose: {unknown}"


def test_the_name_check_catches_an_unknown_series(keelwatch_exposition: str) -> None:
    rule = {"alert": "Typo", "expr": "keelwatch_queue_dept > 0", "annotations": {}}
    used = names_used([rule])
    assert set(used) - exposed_names(keelwatch_exposition) == {"keelwatch_queue_dept"}
