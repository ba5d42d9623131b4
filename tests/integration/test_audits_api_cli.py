"""Bias audits through the real CLI and the real app.

Standalone: ``keelwatch audit run --data FILE`` in a subprocess with no ``KEELWATCH_*`` variable,
no server and no data dir prints numbers equal to Fairlearn's on the same file, writes an HTML
report that agrees, and refuses bad files with one line and exit 2. On the platform:
predictions logged with a sensitive input, labels and a second attribute POSTed through the
API, then ``POST /audits``, the list, the detail, the report, the CLI's ``audit run --model``,
``history``, ``show``, ``report`` and ``predictions attributes FILE``; bad requests are 4xx.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equalized_odds_difference,
    selection_rate,
    true_positive_rate,
)
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from keelwatch.cli.app import app
from keelwatch.entities import PredictionRecord
from keelwatch.entities.auth import Role
from keelwatch.entities.time import utcnow
from keelwatch.settings import Settings
from keelwatch.storage.audit import list_audit
from keelwatch.storage.db import Database
from keelwatch.storage.predictions import insert_predictions
from tests.conftest import REPO_ROOT, settings_env
from tests.integration.conftest import api_client, issue_token
from tests.integration.test_api_lists import check_list
from tests.integration.test_api_server import api_server  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration

MODEL = "churn"
RESAMPLES = "200"


def no_nan(text: str) -> Any:
    """JSON that must not contain NaN or Infinity (``json.loads`` accepts them by default)."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in JSON output")

    return json.loads(text, parse_constant=refuse)


def biased_frame(rows: int = 3000, seed: int = 0) -> pd.DataFrame:
    """Women are selected less often (about 0.3 against 0.5); age bands barely differ."""
    rng = np.random.default_rng(seed)
    gender = rng.choice(["female", "male"], rows)
    age = rng.choice(["18-29", "30-49", "50+"], rows)
    label = rng.integers(0, 2, rows)
    rate = np.where(gender == "female", 0.3, 0.5) + 0.2 * (label - 0.5)
    prediction = (rng.random(rows) < rate).astype(int)
    score = np.clip(rate + rng.normal(0, 0.1, rows), 0, 1)
    return pd.DataFrame(
        {"gender": gender, "age_band": age, "y": label, "pred": prediction, "score": score}
    )


def standalone(args: list[str], workdir: Path) -> subprocess.CompletedProcess[str]:
    """``keelwatch ARGS`` with no Keelwatch settings at all and an empty home directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEELWATCH_")}
    roots = [str(REPO_ROOT / "platform"), str(REPO_ROOT / "workers")]
    env["PYTHONPATH"] = os.pathsep.join(roots)
    env["HOME"] = str(workdir / "home")
    (workdir / "home").mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "keelwatch.cli.entry", *args],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )


def gaps_of(result: dict[str, Any], slice_name: str) -> dict[str, dict[str, Any]]:
    [chosen] = [s for s in result["slices"] if s["slice"] == slice_name]
    return {gap["metric"]: gap for gap in chosen["gaps"]}


def groups_of(result: dict[str, Any], slice_name: str) -> dict[str, dict[str, Any]]:
    [chosen] = [s for s in result["slices"] if s["slice"] == slice_name]
    return {group["group"]: group for group in chosen["groups"]}


def assert_matches_fairlearn(result: dict[str, Any], frame: pd.DataFrame) -> None:
    """Every slice's gaps and group rates equal Fairlearn's on the same rows."""
    y, pred = frame["y"].to_numpy(), frame["pred"].to_numpy()
    for slice_name, columns in (
        ("gender", ["gender"]),
        ("age_band", ["age_band"]),
        ("gender&age_band", ["gender", "age_band"]),
    ):
        sensitive = frame[columns]
        gaps = gaps_of(result, slice_name)
        expected = {
            "demographic_parity_difference": demographic_parity_difference(
                y, pred, sensitive_features=sensitive
            ),
            "demographic_parity_ratio": demographic_parity_ratio(
                y, pred, sensitive_features=sensitive
            ),
            "equalized_odds_difference": equalized_odds_difference(
                y, pred, sensitive_features=sensitive
            ),
            "equal_opportunity_difference": equal_opportunity_difference(
                y, pred, sensitive_features=sensitive
            ),
        }
        for metric, value in expected.items():
            assert gaps[metric]["value"] == pytest.approx(value, abs=1e-12), (slice_name, metric)
            assert gaps[metric]["ci_low"] <= gaps[metric]["value"] <= gaps[metric]["ci_high"]
        frame_metrics = MetricFrame(
            metrics={"selection_rate": selection_rate, "tpr": true_positive_rate},
            y_true=y,
            y_pred=pred,
            sensitive_features=sensitive,
        ).by_group
        groups = groups_of(result, slice_name)
        assert len(groups) == len(frame_metrics)
        for key, row in frame_metrics.iterrows():
            name = "&".join(key) if isinstance(key, tuple) else str(key)
            keys = sensitive.astype(str).agg("&".join, axis=1)
            assert groups[name]["count"] == int((keys == name).sum())
            assert groups[name]["metrics"]["selection_rate"] == pytest.approx(row["selection_rate"])
            assert groups[name]["metrics"]["tpr"] == pytest.approx(row["tpr"])


# --------------------------------------------------------------------------- standalone


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_standalone_file_audit_equals_fairlearn_and_writes_a_report(
    tmp_path: Path, suffix: str
) -> None:
    frame = biased_frame()
    data = tmp_path / f"scored{suffix}"
    if suffix == ".csv":
        frame.to_csv(data, index=False)
    else:
        frame.to_parquet(data, index=False)
    report = tmp_path / "audit.html"
    args = [
        "audit", "run", "--data", str(data), "--prediction", "pred", "--label", "y",
        "--score", "score", "--attributes", "gender,age_band", "--resamples", RESAMPLES,
    ]  # fmt: skip
    done = standalone([*args, "--json", "--report", str(report)], tmp_path)
    assert done.returncode == 0, done.stderr
    result = no_nan(done.stdout)
    assert result["rows"] == len(frame) and result["labelled"] and result["scored"]
    assert result["verdict"] == "violation"
    assert_matches_fairlearn(result, frame)
    gender = gaps_of(result, "gender")
    assert gender["demographic_parity_difference"]["violation"] is True
    assert gaps_of(result, "age_band")["demographic_parity_difference"]["violation"] is False
    html = report.read_text()
    assert "data-verdict='violation'" in html
    # Standalone means standalone: no data dir, no database, nothing but what was asked for.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["home", data.name, report.name])
    # (matplotlib, which draws the report's charts, may cache its fonts in the home directory)
    home = tmp_path / "home"
    assert not [p for p in home.rglob("*") if "keelwatch" in str(p.relative_to(home)).lower()]

    # The same audit as text: a verdict line and the tables; exit 3 only when asked.
    text = standalone([*args, "--fail-on-violation"], tmp_path)
    assert text.returncode == 3, text.stderr
    first = text.stdout.splitlines()[0]
    assert first.startswith(f"bias audit of {data.name}: VIOLATION (")
    assert "demographic_parity_difference" in text.stdout and "VIOLATION" in text.stdout
    fair = standalone([*args, "--fail-on-violation", "--difference-threshold", "0.9",
                       "--ratio-threshold", "0.1"], tmp_path)  # fmt: skip
    assert fair.returncode == 0, fair.stderr
    assert "PASS" in fair.stdout.splitlines()[0]


def test_a_group_with_no_positive_labels_is_undefined_never_nan(tmp_path: Path) -> None:
    frame = biased_frame(rows=1200, seed=1)
    frame.loc[frame["age_band"] == "50+", "y"] = 0  # no positives: TPR undefined there
    data = tmp_path / "scored.jsonl"
    frame.to_json(data, orient="records", lines=True)
    args = ["audit", "run", "--data", str(data), "--prediction", "pred", "--label", "y",
            "--attributes", "age_band", "--resamples", RESAMPLES]  # fmt: skip
    done = standalone([*args, "--json"], tmp_path)
    assert done.returncode == 0, done.stderr
    result = no_nan(done.stdout)
    old = groups_of(result, "age_band")["50+"]
    assert old["metrics"]["tpr"] is None
    assert "tpr" in old["undefined"]
    assert groups_of(result, "age_band")["18-29"]["metrics"]["tpr"] is not None
    text = standalone(args, tmp_path)
    assert text.returncode == 0, text.stderr
    assert "undefined" in text.stdout
    assert "tpr undefined" in text.stdout
    assert re.search(r"\bnan\b", text.stdout, re.IGNORECASE) is None


@pytest.mark.parametrize(
    ("content", "extra", "fragment"),
    [
        ("pred,gender\n1,f\n", ["--attributes", "race"], "no column 'race' (the file has: pred"),
        ("pred,gender\n1,f\n0,\n", ["--attributes", "gender"], "'gender' has 1 missing value"),
        ("pred,gender\n", ["--attributes", "gender"], "no rows"),
        ("pred,gender\n1,f\n2,m\n3,f\n", ["--attributes", "gender", "--task", "binary"],
         "non-binary"),
        ("pred,gender\n1,f\n", ["--attributes", "gender", "--task", "multiclass"], "--task"),
        ("pred,gender\n1,f\n", ["--attributes", " , "], "--attributes"),
        ("pred,gender\n1,f\n", ["--attributes", "gender", "--window", "1h"], "--window"),
    ],
)  # fmt: skip
def test_bad_file_audits_exit_2_with_one_line(
    tmp_path: Path, content: str, extra: list[str], fragment: str
) -> None:
    data = tmp_path / "scored.csv"
    data.write_text(content)
    result = CliRunner().invoke(
        app, ["audit", "run", "--data", str(data), "--prediction", "pred", *extra]
    )
    assert result.exit_code == 2, result.output
    assert fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.output


def test_file_errors_in_a_subprocess_name_the_column(tmp_path: Path) -> None:
    data = tmp_path / "scored.csv"
    biased_frame(rows=50).to_csv(data, index=False)
    done = standalone(
        ["audit", "run", "--data", str(data), "--prediction", "pred", "--attributes", "religion"],
        tmp_path,
    )
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert "'religion'" in line and "gender" in line
    for args in (
        ["audit", "run", "--attributes", "gender"],
        ["audit", "run", "--attributes", "gender", "--model", "m", "--data", str(data)],
    ):
        neither = standalone(args, tmp_path)
        assert neither.returncode == 2
        assert "exactly one of --model" in neither.stderr
    unreadable = tmp_path / "broken.parquet"
    unreadable.write_bytes(b"PAR1 not really")
    broken = standalone(
        ["audit", "run", "--data", str(unreadable), "--prediction", "p", "--attributes", "g"],
        tmp_path,
    )
    assert broken.returncode == 2 and "cannot read the file" in broken.stderr
    assert "Traceback" not in broken.stderr


# --------------------------------------------------------------------------- platform


class Logged:
    """What :func:`log_window` logged: version 1's rows (for Fairlearn) and every request id."""

    def __init__(self, frame: pd.DataFrame, request_ids: list[str]) -> None:
        self.frame = frame
        self.request_ids = request_ids


def log_window(database: Database, rows: int = 600) -> Logged:
    """Version 1: ``rows`` predictions in the last hours with gender as a logged input;
    version 2: 20 predictions (every group too small to judge)."""
    frame = biased_frame(rows=rows, seed=7)
    now = utcnow()
    ids = [f"r-{i}" for i in range(rows)]
    records = [
        PredictionRecord(
            request_id=rid,
            model_name=MODEL,
            model_version="1",
            inputs={"gender": row.gender, "income": float(i)},
            outputs={"prediction": int(row.pred), "proba_1": float(row.score)},
            latency_ms=1.0,
            created_at=now - timedelta(hours=3, seconds=i),
        )
        for i, (rid, row) in enumerate(zip(ids, frame.itertuples(), strict=True))
    ]
    records += [
        PredictionRecord(
            request_id=f"v2-{i}",
            model_name=MODEL,
            model_version="2",
            inputs={"gender": "female" if i % 2 else "male"},
            outputs={"prediction": i % 2, "proba_1": 0.5},
            latency_ms=1.0,
            created_at=now - timedelta(hours=1, seconds=i),
        )
        for i in range(20)
    ]
    with database.session() as session:
        insert_predictions(session, records)
    return Logged(frame, ids)


@pytest.fixture
def operator(settings: Settings) -> Iterator[TestClient]:
    """The app with an operator token named ``ana``; no rate limit (the tests page lists)."""
    settings.auth.rate_limit_per_s = 0
    with api_client(
        settings, role=Role.OPERATOR, name="ana", raise_server_exceptions=False
    ) as client:
        yield client


def send_labels_and_attributes(client: TestClient, logged: Logged) -> None:
    labels = [
        {"request_id": rid, "label": int(y)}
        for rid, y in zip(logged.request_ids, logged.frame["y"], strict=True)
    ]
    response = client.post("/predictions/labels", json={"labels": labels})
    assert response.status_code == 200, response.text
    attributes = [
        {"request_id": rid, "attributes": {"age_band": band}}
        for rid, band in zip(logged.request_ids, logged.frame["age_band"], strict=True)
    ]
    attributes += [
        {"request_id": f"v2-{i}", "attributes": {"age_band": "18-29"}} for i in range(20)
    ]
    attributes.append({"request_id": "sampled-out", "attributes": {"age_band": "50+"}})
    response = client.post("/predictions/attributes", json={"attributes": attributes})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "stored": len(attributes) - 1,
        "unknown_request_ids": ["sampled-out"],
    }


def test_post_audits_over_the_log_then_list_show_and_report(
    operator: TestClient, settings: Settings, database: Database
) -> None:
    logged = log_window(database)
    send_labels_and_attributes(operator, logged)
    body = {
        "model": MODEL,
        "attributes": ["gender", "age_band"],
        "window": "24h",
        "resamples": int(RESAMPLES),
        "reason": "quarterly review",
    }
    response = operator.post("/audits", json=body)
    assert response.status_code == 200, response.text
    run = no_nan(response.text)
    assert run["model"] == MODEL and run["window"] == "24h" and run["signals_written"] > 0
    by_version = {audit["model_version"]: audit for audit in run["results"]}
    v1, v2 = by_version["1"], by_version["2"]
    assert (v1["source"], v1["rows"], v1["computed_by"]) == ("prediction_log", 600, "token:ana")
    assert v1["attributes"] == ["gender", "age_band"]
    assert v1["verdict"] == v1["result"]["verdict"]
    assert v1["violations"] == sum(
        gap["violation"] for s in v1["result"]["slices"] for gap in s["gaps"]
    )
    # Every row is labelled: the audit covers them all, with their labels, like Fairlearn.
    assert_matches_fairlearn(v1["result"], logged.frame)
    assert v1["has_report"] is True
    assert v2["verdict"] == "insufficient_data" and v2["rows"] == 20

    listed = operator.get("/audits", params={"model": MODEL})
    assert listed.status_code == 200
    page = listed.json()
    assert {item["id"] for item in page["items"]} == {v1["id"], v2["id"]}
    assert "result" not in page["items"][0]
    only_v1 = operator.get("/audits", params={"model": MODEL, "version": "1"}).json()
    assert [item["id"] for item in only_v1["items"]] == [v1["id"]]
    insufficient = operator.get("/audits", params={"verdict": "insufficient_data"}).json()
    assert [item["id"] for item in insufficient["items"]] == [v2["id"]]

    detail = operator.get(f"/audits/{v1['id']}")
    assert detail.status_code == 200
    assert no_nan(detail.text)["result"]["slices"] == v1["result"]["slices"]
    report = operator.get(f"/audits/{v1['id']}/report")
    assert report.status_code == 200
    assert report.headers["content-type"].startswith("text/html")
    assert f"data-verdict='{v1['verdict']}'" in report.text

    with database.session() as session:
        [entry] = list_audit(session, action="fairness.audit")
    assert (entry.actor, entry.reason) == ("token:ana", "quarterly review")


def test_the_audits_list_pages_with_a_cursor(
    operator: TestClient, settings: Settings, database: Database
) -> None:
    logged = log_window(database, rows=120)
    send_labels_and_attributes(operator, logged)
    for attributes in (["gender"], ["age_band"]):
        response = operator.post(
            "/audits", json={"model": MODEL, "attributes": attributes, "resamples": 20}
        )
        assert response.status_code == 200, response.text
    ids = check_list(operator, "/audits", lambda item: item["id"], 1000)
    assert len(ids) == 4 and ids == sorted(ids, reverse=True)


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"model": "never-logged", "attributes": ["gender"]}, 404, "model 'never-logged'"),
        ({"model": MODEL, "attributes": ["gender"], "window": "soon"}, 422, "window"),
        ({"model": MODEL, "attributes": []}, 422, "attributes"),
        ({"model": MODEL, "attributes": ["gender", "gender"]}, 422, "named twice"),
        ({"model": MODEL, "attributes": ["religion"]}, 422, "'religion'"),
        ({"model": MODEL, "attributes": ["gender"], "version": "7"}, 422, "version '7'"),
        ({"model": MODEL, "attributes": ["gender"], "confidence": 1.5}, 422, "confidence"),
        ({"model": MODEL, "attributes": "gender"}, 422, "attributes"),
        ({"model": MODEL, "attributes": ["gender"], "actor": "bo"}, 422, "actor"),
    ],
)
def test_bad_audit_requests_are_4xx(
    operator: TestClient,
    database: Database,
    body: dict[str, Any],
    status: int,
    fragment: str,
) -> None:
    log_window(database, rows=40)
    response = operator.post("/audits", json=body)
    assert response.status_code == status, response.text
    assert fragment in response.json()["error"]


def test_unknown_audits_roles_and_attribute_payloads(
    settings: Settings, database: Database, operator: TestClient
) -> None:
    for path in ("/audits/987654", "/audits/987654/report"):
        response = operator.get(path)
        assert response.status_code == 404, response.text
        assert "no bias audit with id 987654" in response.json()["error"]
    assert operator.get("/audits/0").status_code == 422
    assert operator.get("/audits", params={"verdict": "great"}).status_code == 422
    with api_client(settings, role=Role.VIEWER, raise_server_exceptions=False) as viewer:
        assert viewer.post("/audits", json={"model": MODEL, "attributes": ["g"]}).status_code == 403
        refused = viewer.post(
            "/predictions/attributes",
            json={"attributes": [{"request_id": "a", "attributes": {"g": "f"}}]},
        )
        assert refused.status_code == 403
        assert viewer.get("/audits").json() == {"count": 0, "items": [], "next_cursor": None}
    for payload, fragment in (
        ({"attributes": []}, "at least 1"),
        ({"attributes": [{"request_id": "a", "attributes": {}}]}, "at least 1"),
        ({"attributes": [{"request_id": "a", "attributes": {"g": None}}]}, "not NoneType"),
        ({"attributes": [{"request_id": "a", "attributes": {"g": 1.5}}]}, "not float"),
        ({"attributes": [{"request_id": "a", "attributes": {"g": ""}}]}, "empty value"),
        ({"attributes": [{"request_id": "", "attributes": {"g": "f"}}]}, "request_id"),
    ):
        response = operator.post("/predictions/attributes", json=payload)
        assert response.status_code == 422, (payload, response.text)
        assert fragment in response.json()["error"], response.text


# --------------------------------------------------------------------------- CLI on the platform


def test_the_cli_audits_a_logged_model_and_reads_the_history(
    settings: Settings, database: Database, tmp_path: Path
) -> None:
    logged = log_window(database, rows=300)
    runner = CliRunner(env=settings_env(settings))
    attributes = tmp_path / "attributes.csv"
    pd.DataFrame(
        {"request_id": [*logged.request_ids, "ghost"], "age_band": [*logged.frame["age_band"], "x"]}
    ).to_csv(attributes, index=False)
    sent = runner.invoke(app, ["predictions", "attributes", str(attributes), "--actor", "hr"])
    assert sent.exit_code == 0, sent.output
    assert "300 request ids stored, 1 unknown request ids" in sent.stdout
    assert "ghost" in sent.stderr
    lines = tmp_path / "more.jsonl"
    lines.write_text(
        json.dumps({"request_id": "v2-1", "attributes": {"age_band": "50+"}})
        + "\n"
        + json.dumps({"request_id": "nowhere", "attributes": {"age_band": "50+"}})
        + "\n"
    )
    more = runner.invoke(app, ["predictions", "attributes", str(lines), "--json"])
    assert more.exit_code == 0, more.output
    assert json.loads(more.stdout) == {"stored": 1, "unknown_request_ids": ["nowhere"]}

    args = ["audit", "run", "--model", MODEL, "--attributes", "gender,age_band",
            "--version", "1", "--resamples", "50"]  # fmt: skip
    done = runner.invoke(app, [*args, "--json", "--actor", "auditor"])
    assert done.exit_code == 0, done.output
    [audit] = no_nan(done.stdout)["results"]
    assert (audit["model_version"], audit["rows"], audit["computed_by"]) == ("1", 300, "auditor")
    # No labels: only the prediction-side metrics, the same as Fairlearn's selection rates.
    assert audit["result"]["labelled"] is False
    dp = gaps_of(audit["result"], "gender")["demographic_parity_difference"]["value"]
    assert dp == pytest.approx(
        demographic_parity_difference(
            logged.frame["y"], logged.frame["pred"], sensitive_features=logged.frame["gender"]
        )
    )

    history = runner.invoke(app, ["audit", "history", "--model", MODEL, "--json"])
    assert history.exit_code == 0, history.output
    assert [item["id"] for item in json.loads(history.stdout)] == [audit["id"]]
    table = runner.invoke(app, ["audit", "history"])
    assert table.exit_code == 0 and "bias audits" in table.stdout and MODEL in table.stdout
    shown = runner.invoke(app, ["audit", "show", str(audit["id"])])
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.startswith(f"audit {audit['id']}: {MODEL} version 1 over 24h: ")
    assert "slice gender&age_band: gaps" in shown.stdout
    assert "audited 300 of 300 logged predictions: every row, without labels" in shown.stdout
    report = tmp_path / "report.html"
    written = runner.invoke(app, ["audit", "report", str(audit["id"]), "-o", str(report)])
    assert written.exit_code == 0, written.output
    assert f"data-verdict='{audit['verdict']}'" in report.read_text()

    missing = runner.invoke(app, ["audit", "show", "424242"])
    assert missing.exit_code == 2 and "no bias audit with id 424242" in missing.stderr
    nothing = runner.invoke(app, ["audit", "run", "--model", "ghost", "--attributes", "gender"])
    assert nothing.exit_code == 2 and "model 'ghost'" in nothing.stderr
    mixed = runner.invoke(app, [*args, "--prediction", "pred"])
    assert mixed.exit_code == 2 and "--prediction only apply to --data" in mixed.stderr
    # The audit log still answers `audit list`.
    log = runner.invoke(app, ["audit", "list", "--action", "fairness.audit", "--json"])
    assert log.exit_code == 0 and json.loads(log.stdout)[0]["actor"] == "auditor"


def test_audit_commands_have_help() -> None:
    for command in (["audit"], ["audit", "run"], ["audit", "history"], ["audit", "show"],
                    ["audit", "report"], ["predictions", "attributes"]):  # fmt: skip
        result = CliRunner().invoke(app, [*command, "-h"])
        assert result.exit_code == 0, (command, result.output)
        assert "Usage:" in result.output


def test_the_remote_cli_audits_through_the_api_and_file_audits_stay_local(
    api_server: tuple[str, subprocess.Popen[bytes]],  # noqa: F811
    settings: Settings,
    database: Database,
    tmp_path: Path,
) -> None:
    from tests.integration.test_remote_cli import remote

    url, _process = api_server
    log_window(database, rows=120)
    operator = issue_token(settings, role=Role.OPERATOR, name="remote-ops")
    viewer = issue_token(settings, role=Role.VIEWER, name="remote-viewer")
    code, out = remote(url, operator, "audit", "run", "--model", MODEL, "--attributes", "gender",
                       "--resamples", "20", "--json", tmp_path=tmp_path)  # fmt: skip
    assert code == 0, out
    audits = {a["model_version"]: a for a in no_nan(out)["results"]}
    assert audits["1"]["computed_by"] == "token:remote-ops"
    audit_id = str(audits["1"]["id"])
    code, out = remote(url, viewer, "audit", "run", "--model", MODEL, "--attributes", "gender",
                       tmp_path=tmp_path)  # fmt: skip
    assert code == 2 and "HTTP 403" in out
    code, out = remote(url, viewer, "audit", "history", "--model", MODEL, "--json",
                       tmp_path=tmp_path)  # fmt: skip
    assert code == 0, out
    assert {str(a["id"]) for a in json.loads(out)} == {str(a["id"]) for a in audits.values()}
    code, out = remote(url, viewer, "audit", "show", audit_id, tmp_path=tmp_path)
    assert code == 0 and out.startswith(f"audit {audit_id}: {MODEL} version 1"), out
    report = tmp_path / "remote.html"
    code, out = remote(url, viewer, "audit", "report", audit_id, "-o", str(report),
                       tmp_path=tmp_path)  # fmt: skip
    assert code == 0, out
    assert f"data-verdict='{audits['1']['verdict']}'" in report.read_text()
    code, out = remote(url, viewer, "audit", "report", "999999", "-o", str(report),
                       tmp_path=tmp_path)  # fmt: skip
    assert code == 2 and "no bias audit with id 999999" in out and "HTTP 404" in out
    # A file audit needs no server, so KEELWATCH_API_URL does not send it there.
    data = tmp_path / "scored.csv"
    biased_frame(rows=200).to_csv(data, index=False)
    code, out = remote(url, viewer, "audit", "run", "--data", str(data), "--prediction", "pred",
                       "--attributes", "gender", "--resamples", "20", "--json",
                       tmp_path=tmp_path)  # fmt: skip
    assert code == 0, out
    assert no_nan(out)["rows"] == 200


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("a.csv", "id,age_band\nr-0,18-29\n", "missing column request_id (found: id, age_band)"),
        ("a.csv", "request_id\nr-0\n", "no attribute columns besides request_id"),
        ("a.csv", "request_id,age_band\n", "no attributes (the file has no rows)"),
        ("a.csv", "request_id,age_band\nr-0,18-29\nr-1,\n", "a.csv row 2: attributes"),
        ("a.jsonl", '{"request_id": "r-0", "attributes": {"age": 1.5}}\n', "row 1: attributes"),
        ("a.jsonl", '{"request_id": "r-0"}\n', "line 1: expected exactly the keys"),
        ("a.jsonl", "not json\n", "line 1: not a JSON object"),
        ("a.txt", "request_id,age\n", "expected a JSON Lines, CSV or Parquet file"),
    ],
)
def test_cli_refuses_a_bad_attributes_file_before_writing_anything(
    settings: Settings, database: Database, tmp_path: Path, name: str, content: str, fragment: str
) -> None:
    from keelwatch.storage.attributes import get_attributes

    log_window(database, rows=3)
    path = tmp_path / name
    path.write_text(content)
    result = CliRunner(env=settings_env(settings)).invoke(
        app, ["predictions", "attributes", str(path)]
    )
    assert result.exit_code == 2, result.output
    assert fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    with database.session() as session:
        assert get_attributes(session, ["r-0", "r-1", "r-2"]) == {}


def test_cli_sends_a_large_attributes_file_in_batches(
    settings: Settings, database: Database, tmp_path: Path
) -> None:
    from keelwatch.storage.attributes import get_attributes

    rows = 10_003
    now = utcnow()
    with database.session() as session:
        insert_predictions(
            session,
            [
                PredictionRecord(
                    request_id=f"b-{i}",
                    model_name=MODEL,
                    model_version="1",
                    inputs={},
                    outputs={"prediction": 1},
                    latency_ms=1.0,
                    created_at=now - timedelta(seconds=i),
                )
                for i in range(rows)
            ],
        )
    path = tmp_path / "attributes.parquet"
    pd.DataFrame(
        {"request_id": [f"b-{i}" for i in range(rows)], "band": [i % 3 for i in range(rows)]}
    ).to_parquet(path, index=False)
    result = CliRunner(env=settings_env(settings)).invoke(
        app, ["predictions", "attributes", str(path), "--json", "--actor", "bulk"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"stored": rows, "unknown_request_ids": []}
    with database.session() as session:
        entries = list_audit(session, action="attributes.record")
        stored = get_attributes(session, ["b-0", "b-10002"])
    assert [entry.details["stored"] for entry in entries] == [3, 10_000]  # newest first
    assert {entry.actor for entry in entries} == {"bulk"}
    assert stored == {"b-0": {"band": "0"}, "b-10002": {"band": "0"}}
