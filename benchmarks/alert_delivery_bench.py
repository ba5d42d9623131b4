"""1,000 alerts through grouping to a webhook receiver: exactly the expected deliveries, none
lost, none duplicated; deliveries/s.

The alerts come from the engine: a ``for: 0s`` rule on ``drift.column.statistic``, and 1,000
signals (50 models x 20 columns) written and evaluated in one transaction, committed, then
``after_commit_dispatch`` (what a drift check's task does): it plans the notifications, logs
one row per notification and enqueues one ``keelwatch.alerting.deliver`` task each. Two Celery
worker processes started with the compose file's command for the monitoring role
(``keelwatch worker --role monitoring --concurrency 2``, so four pool processes) deliver them
over Redis to a threaded HTTP server on loopback, which checks every request's HMAC signature
and records its idempotency key and group. Then every signal drops below the threshold: the
alerts resolve and each group gets its resolved notice.

Two variants, each on its own notifier and its own models:

* ``group_by [model]``: 50 groups, so 50 firing and then 50 resolved notifications;
* ``group_by ['...']`` (every label: each alert its own group): 1,000 and 1,000.

Exit code 1 when any count is off: a notification lost (logged but never received, or an alert
missing from every notification), duplicated (an idempotency key received twice), badly
signed, or dead-lettered. ``end-to-end`` runs from the start of the evaluation transaction to
the last request received; ``dispatch`` is the evaluation, commit, planning and enqueueing.

Usage: ``python benchmarks/alert_delivery_bench.py [--quick] [--models N] [--columns N]
[--db sqlite|postgresql]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT / "workers"), str(ROOT / "benchmarks")]

from alert_rollback_bench import bench_settings, workers  # noqa: E402

if TYPE_CHECKING:
    from keelwatch.entities.signals import Signal
    from keelwatch.storage.db import Database

SECRET = "bench-signing-secret-0123456789"
SIGNAL = "drift.column.statistic"
RULE_YAML = f"""\
rules:
  - name: column-drift
    signal: {SIGNAL}
    comparison: ">"
    threshold: 0.2
    for: 0s
    severity: warning
    annotations:
      summary: "{{{{ $labels.model }}}}: column {{{{ $labels.column }}}} drifted"
"""
#: group_interval: a resolved notice goes out at the group's next look after its firing one.
GROUP_INTERVAL_S = 1.0
TIMEOUT_S = 600.0


# --------------------------------------------------------------------------- the receiver


@dataclass(frozen=True)
class Received:
    """One request the receiver got."""

    at: float
    key: str
    group_key: str
    status: str
    fingerprints: tuple[str, ...]
    signed: bool


@dataclass
class Receiver:
    """What arrived at the webhook receiver."""

    url: str
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot(self) -> list[Received]:
        """The requests so far."""
        with self.lock:
            return list(self.requests)


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    """A threaded HTTP server on a free loopback port that verifies and records requests."""
    from keelwatch.alerting.notifiers import verify_signature
    from keelwatch.alerting.notifiers.webhook import IDEMPOTENCY_HEADER, SIGNATURE_HEADER
    from keelwatch.errors import InvalidInputError

    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                verify_signature(SECRET, self.headers.get(SIGNATURE_HEADER, ""), body)
                signed = True
            except InvalidInputError:
                signed = False
            payload = json.loads(body)
            received = Received(
                at=time.time(),
                key=self.headers.get(IDEMPOTENCY_HEADER, ""),
                group_key=str(payload.get("groupKey", "")),
                status=str(payload.get("status", "")),
                fingerprints=tuple(a["fingerprint"] for a in payload.get("alerts", [])),
                signed=signed,
            )
            with receiver.lock:
                receiver.requests.append(received)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the table is the output."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}/hook")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --------------------------------------------------------------------------- one variant


@dataclass(frozen=True)
class Phase:
    """One phase of one variant (firing or resolved): counts and times."""

    variant: str
    state: str
    alerts: int
    expected: int
    logged: int
    received: int
    lost: int
    duplicated: int
    bad_signatures: int
    dead_letters: int
    dispatch_s: float
    end_to_end_s: float

    @property
    def ok(self) -> bool:
        """Exactly the expected deliveries, each once, each signed, none dead."""
        return (
            self.logged == self.received == self.expected
            and not self.lost
            and not self.duplicated
            and not self.bad_signatures
            and not self.dead_letters
        )


def series_signals(models: list[str], columns: int, value: float, now: Any) -> list[Signal]:
    """One ``drift.column.statistic`` per model and column."""
    from keelwatch.entities.signals import Signal

    return [
        Signal(
            SIGNAL,
            value,
            {
                "model": model,
                "version": "1",
                "monitor": f"{model}-daily",
                "column": f"f{column:02d}",
                "role": "feature",
                "statistic": "psi",
            },
            now,
            "bench",
        )
        for model in models
        for column in range(columns)
    ]


def run_phase(
    db: Database,
    sender: Any,
    receiver: Receiver,
    notifier: str,
    signals: list[Signal],
    *,
    variant: str,
    state: str,
    expected: int,
) -> Phase:
    """Write and evaluate ``signals``, commit, dispatch; wait for the deliveries; count."""
    from keelwatch.alerting.service import after_commit_dispatch, evaluate
    from keelwatch.entities.notifications import DeliveryStatus
    from keelwatch.entities.time import utcnow
    from keelwatch.storage import notifications as store
    from keelwatch.storage.signals import write_signals

    before = {r.key for r in receiver.snapshot()}
    started = time.time()
    now = utcnow()
    with db.session() as session:
        write_signals(session, signals)
        evaluate(session, signals, now)
    after_commit_dispatch(db, sender, now)
    dispatched = time.time()

    def rows() -> list[Any]:
        with db.session() as session:
            return [
                r
                for r in store.list_notifications(session, limit=100_000)
                if r.notifier == notifier and r.state.value == state
            ]

    finished_states = (DeliveryStatus.SENT, DeliveryStatus.DEAD)
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        logged = rows()
        unfinished = [r for r in logged if r.status not in finished_states]
        if len(logged) >= expected and not unfinished:
            break
        time.sleep(0.2)
    time.sleep(1.0)  # a redelivered task would arrive now as a duplicate
    logged = rows()
    got = [r for r in receiver.snapshot() if r.key not in before and r.status == state]
    counts = Counter(r.key for r in got)
    with db.session() as session:
        dead = [d for d in store.list_dead_letters(session) if d.notifier == notifier]
    # Every alert of the phase is in exactly one notification of this state.
    fingerprints = Counter(fp for r in got for fp in r.fingerprints)
    missing_alerts = len(signals) - len(fingerprints)
    last = max((r.at for r in got), default=float("nan"))
    return Phase(
        variant=variant,
        state=state,
        alerts=len(fingerprints),
        expected=expected,
        logged=len(logged),
        received=len(got),
        lost=len({r.idempotency_key for r in logged} - set(counts)) + max(missing_alerts, 0),
        duplicated=sum(n - 1 for n in counts.values()),
        bad_signatures=sum(not r.signed for r in got),
        dead_letters=len(dead),
        dispatch_s=dispatched - started,
        end_to_end_s=last - started,
    )


def run_variant(
    db: Database,
    sender: Any,
    *,
    variant: str,
    group_by: list[str],
    models: list[str],
    columns: int,
) -> list[Phase]:
    """Fire ``len(models) * columns`` alerts, wait, resolve them, wait; one notifier."""
    from keelwatch.entities.time import utcnow
    from keelwatch.storage.audit import record_audit
    from keelwatch.storage.notifications import add_notifier

    notifier = f"bench-{variant}"
    groups = len(models) if group_by == ["model"] else len(models) * columns
    with webhook_receiver() as receiver:
        with db.session() as session:
            add_notifier(
                session,
                name=notifier,
                type="webhook",
                config={"url": receiver.url, "secret": SECRET},
                route={
                    "group_by": group_by,
                    "group_wait_s": 0.0,
                    "group_interval_s": GROUP_INTERVAL_S,
                },
                created_by="bench",
            )
            record_audit(
                session,
                actor="bench",
                action="notifier.add",
                target=f"notifier:{notifier}",
                details={"type": "webhook", "target": receiver.url},
                at=utcnow(),
            )
        firing = run_phase(
            db,
            sender,
            receiver,
            notifier,
            series_signals(models, columns, 0.5, utcnow()),
            variant=variant,
            state="firing",
            expected=groups,
        )
        time.sleep(max(0.0, GROUP_INTERVAL_S - firing.end_to_end_s))
        resolved = run_phase(
            db,
            sender,
            receiver,
            notifier,
            series_signals(models, columns, 0.0, utcnow() + timedelta(microseconds=1)),
            variant=variant,
            state="resolved",
            expected=groups,
        )
    with db.session() as session:
        from keelwatch.storage.notifications import delete_notifier

        delete_notifier(session, notifier)  # the next variant's dispatch plans for its own only
    return [firing, resolved]


# --------------------------------------------------------------------------- main


def main() -> int:
    """Set up, run both variants, print the table; exit 1 when a count is wrong."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 models x 20 columns = 200")
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--columns", type=int, default=20)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    if args.quick:
        args.models = 10
    os.environ.setdefault("DO_NOT_TRACK", "1")
    folder = Path(tempfile.mkdtemp(prefix="kw-delivery-bench-"))
    try:
        with bench_settings(folder, args.db) as settings:
            return run(settings, folder, args.models, args.columns, args.db)
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def run(settings: Any, folder: Path, models: int, columns: int, db_kind: str) -> int:
    """Both variants on one installation and one pair of workers."""
    from keelwatch.alerting.service import apply_rules
    from keelwatch.alerting.signals import known_signal_names
    from keelwatch.entities.time import utcnow
    from keelwatch.wiring import Services

    services = Services(settings)
    with services.db.session() as session:
        apply_rules(session, RULE_YAML, "bench", known_signal_names(), now=utcnow())
    alerts = models * columns
    print(
        f"alerts={alerts:,} ({models} models x {columns} columns), db={db_kind}, broker=Redis, "
        "workers: 2 x monitoring --concurrency 2 (4 pool processes), webhook on loopback"
    )
    phases: list[Phase] = []
    with workers(settings, (("monitoring", 2), ("monitoring", 2)), folder):
        for variant, group_by in (("grouped", ["model"]), ("ungrouped", ["..."])):
            names = [f"{variant}-m{i:03d}" for i in range(models)]
            phases.extend(
                run_variant(
                    services.db,
                    services.sender,
                    variant=variant,
                    group_by=group_by,
                    models=names,
                    columns=columns,
                )
            )
    services.close()
    header = (
        f"{'variant':<10}{'state':<9}{'alerts':>7}{'expected':>9}{'logged':>7}{'received':>9}"
        f"{'lost':>5}{'dup':>5}{'badsig':>7}{'dead':>5}{'dispatch s':>11}{'e2e s':>8}"
        f"{'deliv/s':>9}"
    )
    print(header)
    for p in phases:
        rate = p.received / p.end_to_end_s if p.end_to_end_s > 0 else float("nan")
        print(
            f"{p.variant:<10}{p.state:<9}{p.alerts:>7,}{p.expected:>9,}{p.logged:>7,}"
            f"{p.received:>9,}{p.lost:>5}{p.duplicated:>5}{p.bad_signatures:>7}"
            f"{p.dead_letters:>5}{p.dispatch_s:>11.3f}{p.end_to_end_s:>8.3f}{rate:>9.1f}"
        )
    print("group_by [model] for 'grouped', ['...'] (each alert its own group) for 'ungrouped'")
    wrong = [f"{p.variant}/{p.state}" for p in phases if not p.ok]
    if wrong:
        print(f"FAIL: counts wrong in {', '.join(wrong)}")
        return 1
    print("PASS: every notification delivered exactly once, signed; 0 lost, 0 duplicated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
