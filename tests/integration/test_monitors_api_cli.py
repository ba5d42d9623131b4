"""Monitor CRUD, validation errors, reference profiles and drift gauges through the real API
(TestClient on create_app) and the real CLI (Typer runner on the installed app)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from keelwatch.cli.app import app as cli_app
from keelwatch.entities.auth import Role
from keelwatch.entities.monitors import DriftStatus
from keelwatch.settings import Settings
from keelwatch.storage import monitors as monitor_store
from keelwatch.storage.audit import list_audit
from keelwatch.storage.models import utcnow
from keelwatch.wiring import Services
from tests.conftest import make_settings, settings_env
from tests.integration.conftest import api_client
from tests.integration.test_drift_checks import MODEL, frame, register, setup

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(tmp_path: Path, db_url: str, mlflow_uri: str) -> Settings:
    return make_settings(tmp_path, database_url=db_url, mlflow_uri=mlflow_uri)


def test_api_crud_validation_profiles_and_metrics(settings: Settings, tmp_path: Path) -> None:
    services = setup(settings)
    version = register(services, rows=500)
    services.close()
    data = tmp_path / "train.parquet"
    frame(300, seed=3).to_parquet(data, index=False)
    # An operator token named carol: the audit actor is token:carol, whatever headers say.
    with api_client(settings, role=Role.OPERATOR, name="carol") as client:
        spec = {
            "name": "daily",
            "model": f"{MODEL}@champion",
            "window": {"kind": "rows", "last_rows": 1000},
            "schedule_interval_s": 3600,
            "config": {"column_stattests": {"income": "psi"}},
        }
        created = client.post("/monitors", json=spec)
        assert created.status_code == 201, created.text
        assert created.json()["created_by"] == "token:carol"
        assert client.post("/monitors", json=spec).status_code == 409
        bad_cases = [
            ({**spec, "name": "x1", "window": {"kind": "rows"}}, 422, "last_rows"),
            ({**spec, "name": "x2", "model": "nope@champion"}, 404, "nope"),
            ({**spec, "name": "x3", "config": {"stattest": "magic"}}, 422, "unknown statistic"),
            ({**spec, "name": "x4", "schedule_cron": "61 * * * *"}, 422, "outside"),
            (
                {**spec, "name": "x5", "window": {"kind": "dataset", "uri": "/no/such.parquet"}},
                422,
                "outside the configured data roots",
            ),
        ]
        for body, code, message in bad_cases:
            response = client.post("/monitors", json=body)
            assert response.status_code == code, response.text
            assert message in response.json()["error"]
        assert [m["name"] for m in client.get("/monitors").json()["items"]] == ["daily"]
        assert client.get("/monitors/nope").status_code == 404
        patched = client.patch("/monitors/daily", json={"enabled": False})
        assert patched.status_code == 200 and patched.json()["enabled"] is False
        assert client.patch("/monitors/daily", json={"window": {"kind": "job"}}).status_code == 422

        # Reference profile: attach from a file (refresh of the one attached at registration).
        url = f"/models/{MODEL}/versions/{version}/reference-profile"
        attached = client.put(url, json={"data_uri": str(data)})
        assert attached.status_code == 200, attached.text
        assert attached.json()["rows"] == 300 and attached.json()["created_by"] == "token:carol"
        assert client.get(url).json()["source"] == str(data)
        missing = client.put(
            f"/models/{MODEL}/versions/99/reference-profile", json={"data_uri": str(data)}
        )
        assert missing.status_code == 404

        # Gauges from the latest stored result, read at scrape time.
        with client.app.state.services.db.session() as session:  # type: ignore[attr-defined]
            monitor = monitor_store.get_monitor(session, "daily")
            monitor_store.insert_result(
                session,
                monitor_id=monitor.id,
                job_id="job-x",
                model_name=MODEL,
                model_version=version,
                status=DriftStatus.DRIFT,
                dataset_drift=True,
                share_drifted=0.5,
                columns={
                    "income": {
                        "column": "income",
                        "status": "ok",
                        "statistic": "psi",
                        "value": 0.31,
                        "pvalue": None,
                        "drifted": True,
                    },
                    "debt": {
                        "column": "debt",
                        "status": "ok",
                        "statistic": "ks",
                        "value": 0.01,
                        "pvalue": 0.9,
                        "drifted": False,
                    },
                },
                report={},
                window_rows=1000,
                mode="in_process",
                started_at=utcnow(),
                finished_at=utcnow(),
            )
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(client.get("/metrics").text)
            for sample in family.samples
        }
        base = (("model", MODEL), ("monitor", "daily"), ("version", version))

        def gauge(name: str, **labels: str) -> float:
            return samples[(name, tuple(sorted((*base, *labels.items()))))]

        assert gauge("keelwatch_drift_statistic", feature="income", statistic="psi") == 0.31
        assert gauge("keelwatch_drift_pvalue", feature="debt", statistic="ks") == 0.9
        assert gauge("keelwatch_drift_column_drifted", feature="income", statistic="psi") == 1
        assert gauge("keelwatch_drift_status", status="drift") == 1
        assert gauge("keelwatch_drift_status", status="ok") == 0
        assert gauge("keelwatch_drift_share_drifted") == 0.5
        results = client.get("/monitors/daily/results").json()["items"]
        assert [r["job_id"] for r in results] == ["job-x"]

        assert client.delete("/monitors/daily").status_code == 200
        assert client.get("/monitors/daily").status_code == 404
    services = Services(settings)
    with services.db.session() as session:
        actions = [e.action for e in list_audit(session, limit=50) if e.actor == "token:carol"]
    services.close()
    assert actions == [
        "monitor.delete",
        "profile.refresh",
        "monitor.update",
        "monitor.create",
    ]


def test_cli_commands_and_errors(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    services = setup(settings)
    version = register(services, rows=500)
    services.close()
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        outcome = runner.invoke(cli_app, [*args])
        return outcome.exit_code, outcome.output

    code, out = run(
        *("monitors", "create", "hourly", "--model", MODEL, "--window", "time:24h"),
        *("--every", "1h", "--column-stattest", "debt=psi", "--actor", "dave"),
    )
    assert code == 0, out
    code, out = run("monitors", "create", "hourly", "--model", MODEL, "--window", "rows:10")
    assert code != 0 and "already exists" in out
    code, out = run("monitors", "create", "bad", "--model", MODEL, "--window", "weeks:2")
    assert code != 0 and "invalid window kind" in out
    code, out = run(
        "monitors", "create", "bad", "--model", MODEL, "--window", "rows:5", "--cron", "* *"
    )
    assert code != 0 and "expected 5 fields" in out
    code, out = run("monitors", "list", "--json")
    listed = json.loads(out)
    assert [m["name"] for m in listed] == ["hourly"]
    assert listed[0]["window"] == {"kind": "time", "last_seconds": 86400}
    assert listed[0]["config"]["column_stattests"] == {"debt": "psi"}
    code, out = run("monitors", "show", "hourly")
    assert code == 0 and "time" in out
    code, out = run("monitors", "results", "hourly", "--json")
    assert code == 0 and json.loads(out) == []
    code, out = run("monitors", "show", "nope")
    assert code != 0 and "unknown monitor 'nope'" in out
    data = tmp_path / "train.csv"
    frame(200, seed=4).to_csv(data, index=False)
    code, out = run("monitors", "profile", "attach", MODEL, version, str(data), "--json")
    assert code == 0, out
    assert json.loads(out)["rows"] == 200
    code, out = run("monitors", "profile", "attach", MODEL, version, str(tmp_path / "none.csv"))
    assert code != 0 and "not found" in out
    code, out = run("monitors", "delete", "hourly", "--actor", "dave")
    assert code == 0
    code, out = run("monitors", "delete", "hourly")
    assert code != 0 and "unknown monitor" in out


def test_cli_update_enable_disable_and_readable_show(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = setup(settings)
    register(services, rows=500)
    services.close()
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        outcome = runner.invoke(cli_app, [*args])
        return outcome.exit_code, outcome.output

    code, out = run(
        *("monitors", "create", "nightly", "--model", MODEL, "--window", "rows:500"),
        *("--every", "1h", "--column-stattest", "debt=psi"),
    )
    assert code == 0, out

    code, out = run("monitors", "disable", "nightly", "--reason", "noisy", "--actor", "erin")
    assert code == 0 and "disabled monitor nightly" in out, out
    code, out = run("monitors", "show", "nightly", "--json")
    assert json.loads(out)["enabled"] is False
    code, out = run("monitors", "enable", "nightly", "--json")
    assert code == 0 and json.loads(out)["enabled"] is True

    code, out = run(
        *("monitors", "update", "nightly", "--window", "time:24h", "--cron", "0 6 * * *"),
        *("--column-stattest", "income=ks", "--description", "daily at six", "--json"),
    )
    assert code == 0, out
    updated = json.loads(out)
    assert updated["window"] == {"kind": "time", "last_seconds": 86400}
    assert updated["schedule_cron"] == "0 6 * * *" and updated["schedule_interval_s"] == 3600
    # --column-stattest adds to the stored overrides instead of replacing them.
    assert updated["config"]["column_stattests"] == {"debt": "psi", "income": "ks"}
    code, out = run("monitors", "update", "nightly", "--on-demand")
    assert code == 0, out
    code, out = run("monitors", "update", "nightly")
    assert code != 0 and "nothing to change" in out
    code, out = run("monitors", "update", "nightly", "--window", "weeks:2")
    assert code != 0 and "invalid window kind" in out
    code, out = run("monitors", "update", "nightly", "--every", "1h", "--on-demand")
    assert code != 0 and "--on-demand" in out
    code, out = run("monitors", "enable", "ghost")
    assert code != 0 and "unknown monitor 'ghost'" in out

    # show prints values a person reads, not Python reprs of dicts and lists.
    code, out = run("monitors", "show", "nightly")
    assert code == 0, out
    assert "window: time:1d" in out
    assert "schedule: on demand" in out
    assert "enabled: yes" in out
    assert "config column_stattests: debt=psi, income=ks" in out
    assert "{" not in out and "[" not in out and "None" not in out

    services = Services(settings)
    with services.db.session() as session:
        entries = list_audit(session, action="monitor.update", target="monitor:nightly")
    services.close()
    assert len(entries) == 4
    disabled = entries[-1]
    assert (disabled.actor, disabled.reason) == ("erin", "noisy")
    assert disabled.details == {"changes": ["enabled"], "values": {"enabled": False}}
