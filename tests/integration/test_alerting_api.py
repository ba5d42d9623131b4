"""The alert loop over HTTP on SQLite and PostgreSQL: rules, alerts, silences, dead letters,
action policies and decisions, notifiers.

Every call goes through the real app (TestClient on ``create_app``); what it wrote is read back
from the database and the audit log, and what it enqueued from the embedded broker's queue
folder (no worker consumes it here). The webhook notifier talks to a real HTTP receiver on
loopback.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from keelwatch.entities.time import utcnow
from keelwatch.settings import Settings
from keelwatch.storage.audit import list_audit
from keelwatch.wiring import Services
from tests.integration.conftest import api_client
from tests.integration.notifier_receivers import free_port, http_receiver

pytestmark = pytest.mark.integration

#: Who every request of this module's client acts as (the audit actor): its API token is named
#: carol, and the API records the token's identity.
ACTOR = "token:carol"
YAML = {"Content-Type": "application/yaml"}

RULES = """\
rules:
  - name: column-drift
    signal: drift.column.p_value
    matchers: '{model="credit-risk"}'
    comparison: "<"
    threshold: 0.05
    for: 5m
    severity: warning
    annotations:
      summary: "{{ $labels.column }} drifted"
  - name: dataset-drift
    signal: drift.dataset.drifted
    comparison: "=="
    threshold: 1
    severity: critical
"""

POLICIES = """\
policies:
  - name: rollback-on-drift
    match: '{alertname="dataset-drift", severity="critical"}'
    action: rollback
    mode: manual
  - name: retrain-on-drift
    match: '{alertname="column-drift"}'
    action: retrain
    params: {queue: gpu}
    guards: {cooldown: 2h, max_actions: 2}
"""


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The app for ``settings``; every request carries an admin token named ``carol``, so
    acts as :data:`ACTOR`."""
    with api_client(settings, name="carol", raise_server_exceptions=False) as c:
        yield c


def _services(client: TestClient) -> Services:
    services: Services = client.app.state.services  # type: ignore[attr-defined]
    return services


def _audit(client: TestClient, action: str) -> list[Any]:
    with _services(client).db.session() as session:
        return list_audit(session, action=action)


def _queued(settings: Settings) -> list[tuple[str, list[Any], dict[str, Any]]]:
    """(task name, args, kwargs) of every message waiting in the embedded broker's queue."""
    found = []
    for path in sorted((settings.broker_dir / "queue").glob("*.msg")):
        message = json.loads(path.read_text())
        args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        found.append((message["headers"]["task"], args, kwargs))
    return found


def _error(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    message: str = response.json()["error"]
    return message


# --- rules -------------------------------------------------------------------------------------


def test_rules_apply_yaml_and_json_list_delete(client: TestClient) -> None:
    applied = client.put(
        "/alerts/rules",
        content=RULES,
        params={"source": "rules.yaml", "reason": "first"},
        headers=YAML,
    )
    assert applied.status_code == 200, applied.text
    assert applied.json() == {
        "created": ["column-drift", "dataset-drift"],
        "updated": [],
        "unchanged": [],
    }
    changed = {
        "name": "column-drift",
        "signal": "drift.column.p_value",
        "matchers": '{model="credit-risk"}',
        "comparison": "<",
        "threshold": 0.01,
        "for": "10m",
    }
    updated = client.put("/alerts/rules", json={"rules": [changed]})
    assert updated.json() == {"created": [], "updated": ["column-drift"], "unchanged": []}
    again = client.put("/alerts/rules", json={"rules": [changed]})
    assert again.json() == {"created": [], "updated": [], "unchanged": ["column-drift"]}

    # Malformed: the position in the YAML (line 12, column 13 is the signal's value), the
    # field in JSON; nothing is written, not even the valid first rule.
    bad_yaml = RULES.replace("drift.dataset.drifted", "no.such.signal")
    message = _error(
        client.put("/alerts/rules", content=bad_yaml, params={"source": "r.yaml"}, headers=YAML),
        422,
    )
    assert message.startswith("r.yaml:12:13: rule 'dataset-drift', field 'signal': unknown signal")
    bad_rule = {**changed, "comparison": ">>"}
    message = _error(client.put("/alerts/rules", json={"rules": [bad_rule]}), 422)
    assert "rule 'column-drift', field 'comparison'" in message
    message = _error(client.put("/alerts/rules", content="rules: [", headers=YAML), 422)
    assert message.startswith("api:")
    raw_json = {"Content-Type": "application/json"}
    message = _error(client.put("/alerts/rules", content='{"rules": [', headers=raw_json), 422)
    assert "malformed JSON (line 1, column" in message
    message = _error(client.put("/alerts/rules", json={"rulez": []}), 422)
    assert '{"rules": [...]}' in message
    plain = {"Content-Type": "text/plain"}
    assert "application/yaml" in _error(
        client.put("/alerts/rules", content="x", headers=plain), 415
    )

    listed = client.get("/alerts/rules").json()
    rules = {rule["name"]: rule for rule in listed["items"]}
    assert [rule["name"] for rule in listed["items"]] == ["column-drift", "dataset-drift"]
    assert rules["column-drift"]["threshold"] == 0.01 and rules["column-drift"]["for"] == "10m"
    assert rules["column-drift"]["updated_by"] == ACTOR
    assert rules["column-drift"]["source"] == "api"
    assert rules["dataset-drift"]["source"] == "rules.yaml"
    assert rules["dataset-drift"]["matchers"] == "{}"

    deleted = client.delete("/alerts/rules/dataset-drift", params={"reason": "noisy"})
    assert deleted.status_code == 200 and deleted.json()["name"] == "dataset-drift"
    assert [r["name"] for r in client.get("/alerts/rules").json()["items"]] == ["column-drift"]
    assert "dataset-drift" in _error(client.delete("/alerts/rules/dataset-drift"), 404)

    applies = _audit(client, "rule.apply")
    assert [(e.actor, e.details["source"]) for e in applies] == [
        (ACTOR, "api"),
        (ACTOR, "api"),
        (ACTOR, "rules.yaml"),
    ]
    assert applies[-1].reason == "first"
    assert [(e.actor, e.target, e.reason) for e in _audit(client, "rule.delete")] == [
        (ACTOR, "rule:dataset-drift", "noisy")
    ]


# --- silences ----------------------------------------------------------------------------------


def test_silences_create_list_expire(client: TestClient) -> None:
    created = client.post(
        "/alerts/silences",
        json={
            "matchers": '{model="credit-risk", column=~"inc.*"}',
            "comment": "retraining",
            "duration": "2h",
            "ends_when_resolved": True,
        },
    )
    assert created.status_code == 201, created.text
    now_silence = created.json()
    assert now_silence["matchers"] == ['model="credit-risk"', 'column=~"inc.*"']
    assert now_silence["author"] == ACTOR and now_silence["state"] == "active"
    starts = datetime.fromisoformat(now_silence["starts_at"])
    assert datetime.fromisoformat(now_silence["ends_at"]) - starts == timedelta(hours=2)

    later = utcnow() + timedelta(days=1)
    scheduled = client.post(
        "/alerts/silences",
        json={
            "matchers": ['model="fraud"', 'team!="ml"'],
            "author": "dana",
            "comment": "maintenance window",
            "starts_at": later.isoformat(),
            "ends_at": (later + timedelta(hours=1)).isoformat(),
        },
    )
    assert scheduled.status_code == 201, scheduled.text
    assert scheduled.json()["author"] == "dana"
    assert (scheduled.json()["state"], scheduled.json()["active"]) == ("pending", False)

    listed = client.get("/alerts/silences").json()["items"]
    assert [s["id"] for s in listed] == [scheduled.json()["id"], now_silence["id"]]

    base = {"comment": "x", "duration": "1h"}
    bad_cases = [
        ({**base, "matchers": 'model="a", column=~'}, "silence matchers, column 20"),
        ({**base, "matchers": ['model="a"', "team=ml"]}, "matchers[1], column 6"),
        ({**base, "matchers": ""}, "at least one matcher"),
        ({"matchers": 'model="a"', "comment": "x"}, "exactly one of ends_at and duration"),
        ({**base, "matchers": 'model="a"', "ends_at": later.isoformat()}, "exactly one"),
        ({**base, "matchers": 'model="a"', "duration": "soon"}, "duration: invalid duration"),
        ({**base, "matchers": 'model="a"', "starts_at": "2026-01-01T00:00:00"}, "starts_at"),
        ({**base, "matchers": 'model="a"', "comment": " "}, "comment"),
    ]
    for body, expected in bad_cases:
        assert expected in _error(client.post("/alerts/silences", json=body), 422), body

    expired = client.delete(f"/alerts/silences/{now_silence['id']}")
    assert expired.status_code == 200 and expired.json()["state"] == "expired"
    still = client.get("/alerts/silences", params={"active": "true"}).json()["items"]
    assert [s["id"] for s in still] == [scheduled.json()["id"]]
    assert "no silence" in _error(client.delete("/alerts/silences/no-such-id"), 404)

    creates = _audit(client, "silence.create")
    assert sorted(e.target for e in creates) == sorted(
        f"silence:{s['id']}" for s in (now_silence, scheduled.json())
    )
    assert {e.actor for e in creates} == {ACTOR}
    assert [(e.actor, e.target) for e in _audit(client, "silence.expire")] == [
        (ACTOR, f"silence:{now_silence['id']}")
    ]


# --- alerts ------------------------------------------------------------------------------------


def _raise_alerts(client: TestClient) -> None:
    """Store the two rules and evaluate one batch: one alert firing, one pending."""
    from keelwatch.alerting import service
    from keelwatch.alerting.signals import known_signal_names
    from keelwatch.entities.signals import Signal

    now = utcnow()
    labels = {"model": "credit-risk", "version": "2"}
    batch = [
        Signal("drift.column.p_value", 0.01, {**labels, "column": "income"}, now),
        Signal("drift.dataset.drifted", 1.0, labels, now),
    ]
    with _services(client).db.session() as session:
        service.apply_rules(session, RULES, "setup", known_signal_names(), now=now)
        service.evaluate(session, batch, now)


def test_alerts_list_show_ack(client: TestClient) -> None:
    _raise_alerts(client)
    everything = client.get("/alerts").json()
    assert sorted(a["state"] for a in everything["items"]) == ["firing", "pending"]
    firing = client.get("/alerts", params={"state": "firing"}).json()["items"]
    assert [a["rule"] for a in firing] == ["dataset-drift"]
    pending = client.get("/alerts", params={"rule": "column-drift"}).json()["items"]
    assert [(a["rule"], a["state"]) for a in pending] == [("column-drift", "pending")]
    both = client.get("/alerts", params=[("state", "firing"), ("state", "pending")]).json()
    assert both["count"] == 2
    assert "state" in _error(client.get("/alerts", params={"state": "burning"}), 422)
    first = client.get("/alerts", params={"limit": 1}).json()
    rest = client.get("/alerts", params={"limit": 1, "cursor": first["next_cursor"]}).json()
    paged = [a["fingerprint"] for a in first["items"] + rest["items"]]
    assert paged == [a["fingerprint"] for a in everything["items"]]
    assert rest["next_cursor"] is None

    fingerprint = firing[0]["fingerprint"]
    shown = client.get(f"/alerts/{fingerprint[:8]}").json()
    assert shown["fingerprint"] == fingerprint and shown["labels"]["model"] == "credit-risk"
    assert [(h["from"], h["to"]) for h in shown["history"]] == [(None, "firing")]
    assert "hexadecimal" in _error(client.get("/alerts/not-hex"), 422)
    assert "no alert" in _error(client.get("/alerts/" + "0" * 64), 404)

    acked = client.post(
        f"/alerts/{fingerprint[:10]}/ack",
        json={"assignee": "dana", "comment": "on it"},
    )
    assert acked.status_code == 200, acked.text
    assert acked.json()["acknowledgement"]["assignee"] == "dana"
    again = client.get(f"/alerts/{fingerprint}").json()["acknowledgement"]
    assert (again["assignee"], again["comment"]) == ("dana", "on it")
    assert [(e.actor, e.target, e.reason) for e in _audit(client, "alert.ack")] == [
        (ACTOR, f"alert:{fingerprint}", "on it")
    ]
    assert "assignee" in _error(
        client.post(f"/alerts/{fingerprint}/ack", json={"assignee": "  "}), 422
    )
    assert "assignee" in _error(client.post(f"/alerts/{fingerprint}/ack", json={}), 422)


# --- dead letters ------------------------------------------------------------------------------


def test_dead_letters_list_and_replay(client: TestClient, settings: Settings) -> None:
    from keelwatch.storage import notifications as store

    now = utcnow()
    with _services(client).db.session() as session:
        (log_id,) = store.insert_notifications(
            session,
            [
                {
                    "idempotency_key": "k1",
                    "notifier": "ops-hook",
                    "group_key": "g",
                    "state": "firing",
                    "sequence": 1,
                    "payload": {},
                    "created_at": now,
                }
            ],
        )
        # A delivery gives up on a row it claimed, as the delivery task does.
        claimed = store.claim_notification(session, log_id, now=now, lease=timedelta(minutes=5))
        assert claimed is not None and claimed.claimed_at is not None
        letter = store.dead_letter(
            session,
            log_id,
            reason="receiver down",
            attempts=5,
            at=now,
            claimed_at=claimed.claimed_at,
        )
    assert letter is not None

    listed = client.get("/alerts/dead-letters").json()["items"]
    assert [(d["id"], d["log_id"], d["reason"]) for d in listed] == [
        (letter.id, log_id, "receiver down")
    ]
    replayed = client.post(f"/alerts/dead-letters/{letter.id}/replay")
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["replayed_at"] is not None
    assert _queued(settings) == [("keelwatch.alerting.deliver", [log_id], {})]
    assert client.get("/alerts/dead-letters").json()["items"] == []
    assert len(client.get("/alerts/dead-letters", params={"all": "true"}).json()["items"]) == 1
    assert "replayed already" in _error(
        client.post(f"/alerts/dead-letters/{letter.id}/replay"), 409
    )
    assert "no dead letter" in _error(client.post("/alerts/dead-letters/999999/replay"), 404)
    assert len(_queued(settings)) == 1
    assert [(e.actor, e.target) for e in _audit(client, "notification.replay")] == [
        (ACTOR, f"notification:{log_id}")
    ]


# --- action policies ---------------------------------------------------------------------------


def test_policies_apply_list_delete(client: TestClient) -> None:
    applied = client.put("/actions/policies", content=POLICIES, headers=YAML)
    assert applied.status_code == 200, applied.text
    assert applied.json()["created"] == ["rollback-on-drift", "retrain-on-drift"]
    manual_auto = {"name": "rollback-on-drift", "match": '{alertname="dataset-drift"}'}
    changed = {**manual_auto, "action": "rollback", "mode": "auto"}
    updated = client.put("/actions/policies", json={"policies": [changed]})
    assert updated.json() == {"created": [], "updated": ["rollback-on-drift"], "unchanged": []}
    again = client.put("/actions/policies", json={"policies": [changed]})
    assert again.json()["unchanged"] == ["rollback-on-drift"]

    listed = client.get("/actions/policies").json()["items"]
    assert [p["name"] for p in listed] == ["retrain-on-drift", "rollback-on-drift"]
    retrain = listed[0]
    assert retrain["params"] == {"queue": "gpu"}
    assert retrain["guards"] == {
        "cooldown": "2h",
        "max_actions": 2,
        "window": "1d",
        "max_consecutive": 3,
    }
    assert listed[1]["mode"] == "auto" and listed[1]["match"] == ['alertname="dataset-drift"']

    bad_cases = [
        ({"policies": [{**changed, "action": "explode"}]}, "field 'action': unknown action"),
        ({"policies": [{**changed, "match": "model=~"}]}, "field 'match'"),
        ({"policies": [{**changed, "guards": {"cooldown": "soon"}}]}, "'guards.cooldown'"),
        ({"policies": [changed, changed]}, "policy #2 'rollback-on-drift', field 'name'"),
        ({"policies": [{**changed, "name": "p" * 300}]}, "at most 255 characters"),
    ]
    for body, expected in bad_cases:
        assert expected in _error(client.put("/actions/policies", json=body), 422), body
    message = _error(client.put("/actions/policies", content="policies:\n  - [", headers=YAML), 422)
    assert "line 2, column 6" in message  # just after the unclosed "["
    assert len(client.get("/actions/policies").json()["items"]) == 2  # nothing written

    deleted = client.delete("/actions/policies/retrain-on-drift")
    assert deleted.status_code == 200 and deleted.json()["action"] == "retrain"
    assert "retrain-on-drift" in _error(client.delete("/actions/policies/retrain-on-drift"), 404)

    applies = _audit(client, "policy.apply")
    assert [e.actor for e in applies] == [ACTOR, ACTOR, ACTOR]
    assert applies[-1].details["created"] == ["rollback-on-drift", "retrain-on-drift"]
    assert applies[0].details["unchanged"] == ["rollback-on-drift"]
    assert [(e.actor, e.target) for e in _audit(client, "policy.delete")] == [
        (ACTOR, "policy:retrain-on-drift")
    ]


# --- action decisions --------------------------------------------------------------------------


def _firing(model: str) -> Any:
    from keelwatch.alerting.lifecycle import alert_fingerprint
    from keelwatch.entities.alerts import Alert, AlertState, Severity

    now = datetime.now(UTC)
    labels = {"alertname": "dataset-drift", "severity": "critical", "model": model}
    return Alert(
        fingerprint=alert_fingerprint(labels),
        rule_name="dataset-drift",
        labels=labels,
        annotations={},
        severity=Severity.CRITICAL,
        state=AlertState.FIRING,
        value=1.0,
        episode=1,
        active_since=now,
        last_evaluated_at=now,
        fired_at=now,
    )


def test_approve_and_reject_executions_awaiting_approval(
    client: TestClient, settings: Settings
) -> None:
    from keelwatch.actions.dispatch import dispatch_for_alerts

    manual = {
        "name": "manual-rollback",
        "match": '{alertname="dataset-drift"}',
        "action": "rollback",
        "mode": "manual",
    }
    assert client.put("/actions/policies", json={"policies": [manual]}).status_code == 200
    services = _services(client)
    alerts = [_firing("credit-risk"), _firing("fraud")]
    assert dispatch_for_alerts(services.db, services.sender, alerts, utcnow()) == 0
    assert _queued(settings) == []

    waiting = client.get("/actions", params={"status": "awaiting_approval"}).json()["items"]
    by_model = {e["model"]: e for e in waiting}
    assert sorted(by_model) == ["credit-risk", "fraud"]
    assert {e["decided_by"] for e in waiting} == {"policy:manual-rollback"}
    assert client.get("/actions", params={"policy": "manual-rollback"}).json()["count"] == 2
    assert client.get("/actions", params={"policy": "other"}).json()["count"] == 0
    assert client.get("/actions", params={"model": "fraud"}).json()["count"] == 1
    assert "status" in _error(client.get("/actions", params={"status": "sleeping"}), 422)
    approved, rejected = by_model["credit-risk"]["id"], by_model["fraud"]["id"]
    assert client.get(f"/actions/{approved}").json()["policy"] == "manual-rollback"
    assert "no action execution" in _error(client.get("/actions/999999"), 404)

    decision = client.post(f"/actions/{approved}/approve", json={"reason": "go"})
    assert decision.status_code == 200, decision.text
    assert decision.json()["enqueued"] is True
    execution = decision.json()["execution"]
    assert (execution["status"], execution["decided_by"]) == ("pending", ACTOR)
    assert _queued(settings) == [("keelwatch.actions.execute", [], {"execution_id": approved})]

    decision = client.post(f"/actions/{rejected}/reject", json={"reason": "no"})
    assert decision.status_code == 200, decision.text
    assert decision.json()["enqueued"] is False
    assert decision.json()["execution"]["status"] == "rejected"
    assert decision.json()["execution"]["finished_at"] is not None

    # Decided once: either way again is a conflict; nothing more is enqueued.
    message = _error(client.post(f"/actions/{approved}/approve", json={"reason": "again"}), 409)
    assert message == f"action execution {approved} is pending, not awaiting approval"
    assert "rejected" in _error(
        client.post(f"/actions/{rejected}/approve", json={"reason": "changed my mind"}), 409
    )
    assert "reason" in _error(client.post(f"/actions/{rejected}/reject", json={"reason": ""}), 422)
    assert "reason" in _error(client.post(f"/actions/{rejected}/reject", json={"reason": " "}), 422)
    assert "no action execution" in _error(
        client.post("/actions/999999/approve", json={"reason": "x"}), 404
    )
    assert len(_queued(settings)) == 1
    assert [(e.actor, e.reason) for e in _audit(client, "action.approve")] == [(ACTOR, "go")]
    rejects = _audit(client, "action.reject")
    assert [(e.actor, e.reason, e.target) for e in rejects] == [(ACTOR, "no", "model:fraud")]
    assert rejects[0].details["execution_id"] == rejected


# --- notifiers ---------------------------------------------------------------------------------

SECRET = "s3cret-webhook-key-0123456789"


def test_notifiers_add_list_test_delete_never_return_the_secret(client: TestClient) -> None:
    bodies: list[str] = []

    def call(method: str, url: str, **kwargs: Any) -> Any:
        response = client.request(method, url, **kwargs)
        bodies.append(response.text)
        return response

    with http_receiver() as receiver:
        hook = {
            "name": "ops-hook",
            "type": "webhook",
            "config": {"url": receiver.url, "secret": SECRET},
            "route": {"group_by": ["model"], "group_wait_s": 5},
        }
        added = call("POST", "/notifiers", json=hook)
        assert added.status_code == 201, added.text
        assert added.json()["config"]["secret"] == "**********"
        assert added.json()["route"]["group_by"] == ["model"]
        assert added.json()["created_by"] == ACTOR
        assert "exists" in _error(call("POST", "/notifiers", json=hook), 409)

        listed = call("GET", "/notifiers").json()["items"]
        assert [(n["name"], n["type"]) for n in listed] == [("ops-hook", "webhook")]

        tested = call("POST", "/notifiers/ops-hook/test")
        assert tested.status_code == 200, tested.text
        assert tested.json()["delivered"] is True and tested.json()["error"] is None
        (request,) = receiver.requests
        assert "x-keelwatch-signature" in request.headers
        assert request.json()["alerts"][0]["labels"]["alertname"] == "KeelwatchTestNotification"

    down = {**hook, "name": "down-hook"}
    down["config"] = {"url": f"http://127.0.0.1:{free_port()}/hook", "secret": SECRET}
    assert call("POST", "/notifiers", json=down).status_code == 201
    failed = call("POST", "/notifiers/down-hook/test").json()
    assert failed["delivered"] is False and failed["error"]
    assert "no notifier" in _error(call("POST", "/notifiers/nope/test"), 404)

    unknown = {**hook, "name": "pigeon", "type": "carrier-pigeon"}
    message = _error(call("POST", "/notifiers", json=unknown), 422)
    assert "unknown notifier type 'carrier-pigeon'" in message
    short = {**hook, "name": "short", "config": {"url": receiver.url, "secret": "tiny-secret"}}
    message = _error(call("POST", "/notifiers", json=short), 422)
    assert "secret" in message and "tiny-secret" not in message
    no_route = {**hook, "name": "bad-route", "route": {"group_wait_s": -1}}
    assert "group_wait_s" in _error(call("POST", "/notifiers", json=no_route), 422)

    deleted = call("DELETE", "/notifiers/ops-hook")
    assert deleted.status_code == 200 and deleted.json()["config"]["secret"] == "**********"
    assert "no notifier" in _error(call("DELETE", "/notifiers/ops-hook"), 404)
    assert [n["name"] for n in call("GET", "/notifiers").json()["items"]] == ["down-hook"]
    bodies.append(client.get("/openapi.json").text)

    assert all(SECRET not in body for body in bodies)
    assert [e.actor for e in _audit(client, "notifier.add")] == [ACTOR, ACTOR]
    tests = _audit(client, "notifier.test")
    assert [(e.actor, e.details["delivered"]) for e in tests] == [(ACTOR, False), (ACTOR, True)]
    assert [(e.actor, e.target) for e in _audit(client, "notifier.delete")] == [
        (ACTOR, "notifier:ops-hook")
    ]
    with _services(client).db.session() as session:
        assert all(SECRET not in json.dumps(e.details) for e in list_audit(session, limit=1000))


# --- the OpenAPI document ----------------------------------------------------------------------


def test_every_alerting_route_is_documented(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    ours = {
        path: operations
        for path, operations in paths.items()
        if path.startswith(("/alerts", "/actions", "/notifiers"))
        and not path.startswith("/alerts/inbound")
    }
    assert len(ours) == 18
    for path, operations in ours.items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            assert operation.get("summary") and operation.get("description"), where
            errors = [code for code in operation["responses"] if code.startswith("4")]
            assert errors, where
    put_rules = paths["/alerts/rules"]["put"]["requestBody"]["content"]
    assert set(put_rules) == {"application/yaml", "application/json"}
