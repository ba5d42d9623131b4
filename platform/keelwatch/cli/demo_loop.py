"""The demo's closed loop: a drift alert that notifies, rolls back and retrains by itself.

:func:`arm_loop` applies what an operator would write once: a rule (dataset drift on the
champion is critical), two policies (roll the champion back; retrain a challenger), the model's
trainer, and a webhook notifier pointing at :class:`WebhookReceiver`, a local HTTP server that
checks every request's HMAC signature the way ``docs/alerting.md`` tells receivers to. After
the drift check, :func:`wait_for_loop` waits until the policies have finished and the signed
notification has arrived; nothing in between is done by hand.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    import pandas as pd

    from keelwatch.entities.actions import ActionExecution
    from keelwatch.wiring import Services

#: The demo's rule: the champion's feature set drifted (one alert per model and version).
RULES_YAML = """\
rules:
  - name: dataset-drift
    signal: drift.dataset.drifted
    matchers: '{alias="champion"}'
    comparison: ">="
    threshold: 1
    for: 0s
    severity: critical
    annotations:
      summary: "{{ $labels.model }} v{{ $labels.version }}: the input features drifted"
"""

#: The demo's policies: roll the champion back at once, and retrain a challenger. The guards
#: are loose so that ``make demo`` can run again right away on the same data dir; production
#: policies use hours of cooldown and a cap of two or three automatic actions in a row
#: (``docs/alerting.md``).
POLICIES_YAML = """\
policies:
  - name: rollback-on-drift
    match: '{alertname="dataset-drift", severity="critical"}'
    action: rollback
    mode: auto
    guards: {cooldown: 10s, max_consecutive: 50}
  - name: retrain-on-drift
    match: '{alertname="dataset-drift"}'
    action: retrain
    mode: auto
    params: {queue: cpu, dataset: "__DATASET__", target: default}
    guards: {cooldown: 10s, max_consecutive: 50}
"""

#: Where the trainer lives, as ``keelwatch models set-trainer`` records it.
TRAINER_SPEC = "keelwatch.cli.demo_loop:retrain_credit_risk"
NOTIFIER_NAME = "demo-webhook"


def retrain_credit_risk(frame: pd.DataFrame) -> Any:
    """The demo model's trainer: a fresh gradient-boosting classifier on the training window
    (feature columns plus the ``default`` target), as a retrain policy calls it."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    features = [c for c in frame.columns if c != "default"]
    model = HistGradientBoostingClassifier(max_iter=60)
    model.fit(frame[features], frame["default"])
    return model


@dataclass
class ReceivedNotification:
    """One request the receiver accepted: its verified body and the signature's timestamp."""

    body: dict[str, Any]
    signed_at: int
    idempotency_key: str


class WebhookReceiver:
    """A local HTTP receiver for the webhook notifier: verifies each request's
    ``X-Keelwatch-Signature`` (HMAC-SHA256 over timestamp and body, rejecting replays) and
    keeps what it accepted; a request with a bad signature gets 401 and is counted."""

    def __init__(self) -> None:
        self.secret = secrets.token_urlsafe(24)
        self.received: list[ReceivedNotification] = []
        self.rejected = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Where the notifier posts."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/keelwatch"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                from keelwatch.alerting.notifiers.webhook import (
                    IDEMPOTENCY_HEADER,
                    SignatureError,
                    verify_signature,
                )

                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    signed_at = verify_signature(
                        receiver.secret, self.headers.get("X-Keelwatch-Signature", ""), body
                    )
                except SignatureError:
                    with receiver._lock:
                        receiver.rejected += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                with receiver._lock:
                    receiver.received.append(
                        ReceivedNotification(
                            json.loads(body), signed_at, self.headers.get(IDEMPOTENCY_HEADER, "")
                        )
                    )
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the demo prints what arrived itself."""

        return Handler

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread.is_alive():  # shutdown() would wait forever for a loop never started
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def snapshot(self) -> list[ReceivedNotification]:
        """What arrived so far."""
        with self._lock:
            return list(self.received)


@dataclass
class LoopResult:
    """What the loop did by itself, for the summary and the e2e test."""

    alert_fingerprints: list[str] = field(default_factory=list)
    notifications: list[ReceivedNotification] = field(default_factory=list)
    rejected_notifications: int = 0
    executions: list[ActionExecution] = field(default_factory=list)
    champion_after: str = ""
    challenger: str = ""


def arm_loop(services: Services, receiver: WebhookReceiver, training_path: str, actor: str) -> None:
    """Apply the rule, the policies, the trainer and the webhook notifier (all audited)."""
    from keelwatch.actions.executor import TAG_TRAINER
    from keelwatch.actions.service import apply_policies
    from keelwatch.alerting.service import apply_rules
    from keelwatch.alerting.signals import known_signal_names
    from keelwatch.cli.demo import MODEL_NAME
    from keelwatch.entities.time import utcnow
    from keelwatch.errors import NotFoundError
    from keelwatch.storage.audit import record_audit
    from keelwatch.storage.notifications import add_notifier, delete_notifier

    now = utcnow()
    policies = POLICIES_YAML.replace("__DATASET__", training_path)
    with services.db.session() as session:
        apply_rules(session, RULES_YAML, actor, known_signal_names(), now=now, source="demo")
        apply_policies(session, policies, actor, now=now, reason="demo")
        try:  # the demo may run again on the same data dir: a fresh secret each run
            delete_notifier(session, NOTIFIER_NAME)
        except NotFoundError:
            pass  # the first run
        else:
            record_audit(
                session,
                actor=actor,
                action="notifier.delete",
                target=f"notifier:{NOTIFIER_NAME}",
                reason="demo: replaced by this run's receiver",
                at=now,
            )
        add_notifier(
            session,
            name=NOTIFIER_NAME,
            type="webhook",
            config={"url": receiver.url, "secret": receiver.secret},
            # group_wait 0: the demo has no beat process; the drift check itself dispatches.
            route={"group_by": ["alertname", "model"], "group_wait_s": 0.0},
            created_by=actor,
            secrets=services.notifier_secrets,
        )
        record_audit(
            session,
            actor=actor,
            action="notifier.add",
            target=f"notifier:{NOTIFIER_NAME}",
            details={"type": "webhook", "target": receiver.url},
            at=now,
        )
        services.registry.client.set_registered_model_tag(MODEL_NAME, TAG_TRAINER, TRAINER_SPEC)
        record_audit(
            session,
            actor=actor,
            action="model.set_trainer",
            target=f"model:{MODEL_NAME}",
            reason="demo: retrain policy",
            details={"trainer": TRAINER_SPEC},
            at=now,
        )


def wait_for_loop(
    services: Services,
    receiver: WebhookReceiver,
    model: str,
    console: Console,
    timeout_s: float,
) -> LoopResult:
    """Wait until every action the drift alert started has finished and its signed
    notification has arrived; returns what happened."""
    from keelwatch.entities.actions import ExecutionStatus
    from keelwatch.entities.alerts import AlertState
    from keelwatch.storage.actions import list_executions
    from keelwatch.storage.alerts import list_alerts

    unfinished = {ExecutionStatus.PENDING, ExecutionStatus.RUNNING}
    deadline = time.monotonic() + timeout_s
    result = LoopResult()
    with console.status("alert → notification, rollback and retrain on the fleet"):
        while True:
            with services.db.session() as session:
                firing = list_alerts(session, states={AlertState.FIRING}, limit=100)
                executions = list_executions(session, model=model, limit=100)
            mine = [a for a in firing if a.labels.get("model") == model]
            done = bool(executions) and all(e.status not in unfinished for e in executions)
            if mine and done and receiver.snapshot():
                break
            if time.monotonic() > deadline:
                states = {e.policy: e.status.value for e in executions}
                raise TimeoutError(
                    f"the alert loop did not finish in {timeout_s:.0f} s: alerts firing "
                    f"{len(mine)}, executions {states}, notifications {len(receiver.snapshot())}"
                )
            time.sleep(0.3)
    result.alert_fingerprints = [a.fingerprint for a in mine]
    result.notifications = receiver.snapshot()
    result.rejected_notifications = receiver.rejected
    result.executions = sorted(executions, key=lambda e: e.id)
    registry = services.registry
    result.champion_after = registry.resolve(f"{model}@champion").version
    try:
        result.challenger = registry.resolve(f"{model}@challenger").version
    except Exception:  # noqa: BLE001 - no challenger: the retrain failed, shown below
        result.challenger = ""
    return result


def print_loop(result: LoopResult, console: Console) -> None:
    """What arrived at the receiver and what the policies did."""
    for note in result.notifications:
        body = note.body
        alerts = body.get("alerts", [])
        console.print(
            f"   webhook receiver: signature verified (signed at {note.signed_at}), "
            f"{body.get('status', '?')} {body.get('groupKey', body.get('group_key', ''))}: "
            f"{len(alerts)} alert(s)"
        )
        for alert in alerts:
            summary = (alert.get("annotations") or {}).get("summary", "")
            console.print(f"      [{alert.get('status', '?')}] {summary}")
    if result.rejected_notifications:
        console.print(f"   [red]{result.rejected_notifications} request(s) failed verification")
    table = Table(title="actions the alert started (no person involved)")
    for column in ("id", "policy", "action", "status", "outcome"):
        table.add_column(column)
    for execution in result.executions:
        outcome = ", ".join(f"{k}={v}" for k, v in execution.result.items()) or execution.reason
        table.add_row(
            str(execution.id),
            execution.policy,
            execution.action.value,
            execution.status.value,
            outcome,
        )
    console.print(table)
    console.print(
        f"   champion is now v{result.champion_after}; challenger: "
        f"{'v' + result.challenger if result.challenger else '(none)'} "
        "(a retrained version never becomes champion by itself)"
    )
