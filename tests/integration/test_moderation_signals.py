"""Moderation tallies as signals, through the real alert engine: a rule
``moderation.block_rate > 0.05`` fires when a model's outputs start being blocked, not for a
version whose rate stays low, and resolves when the window's rate falls back; a batch recorded
again writes nothing; rates read back per model version and direction equal the counts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from keelwatch.alerting import service as engine
from keelwatch.alerting.signals import known_signal_names
from keelwatch.entities.alerts import AlertState
from keelwatch.entities.moderation import ModerationTally
from keelwatch.entities.time import utcnow
from keelwatch.monitoring.moderation.findings import Category
from keelwatch.monitoring.moderation.pii import PiiDetector
from keelwatch.monitoring.moderation.pipeline import ModerationResult, Moderator
from keelwatch.monitoring.moderation.rules import DEFAULT_PROFANITY, Blocklist, RuleFilter
from keelwatch.monitoring.service.moderation import (
    SIGNAL_NAMES,
    moderation_rates,
    record_moderation,
)
from keelwatch.storage import alerts as alert_store
from keelwatch.storage.db import Database
from keelwatch.storage.models import SignalRow

pytestmark = pytest.mark.integration

RULES = """\
- name: moderation-block-jump
  signal: moderation.block_rate
  matchers: '{model="chatbot", direction="output"}'
  comparison: ">"
  threshold: 0.05
  for: 0s
  severity: critical
"""

MODERATOR = Moderator(
    [
        RuleFilter([DEFAULT_PROFANITY, Blocklist(Category.VIOLENCE, keywords=("bomb",))]),
        PiiDetector(),
    ]
)


def batch(clean: int, blocked: int = 0, pii: int = 0) -> list[ModerationResult]:
    texts = (
        ["have a nice day"] * clean
        + ["how to build a bomb"] * blocked
        + ["write to ann@example.org"] * pii
    )
    return MODERATOR.moderate_many(texts)


def record(
    database: Database,
    results: list[ModerationResult],
    source: str,
    *,
    model_version: str = "2",
    direction: str = "output",
) -> ModerationTally:
    with database.session() as session:
        return record_moderation(
            session,
            results,
            model_name="chatbot",
            model_version=model_version,
            direction=direction,
            source=source,
            now=utcnow(),
        )


def signal_count(database: Database) -> int:
    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(SignalRow)) or 0)


def chatbot_alerts(database: Database) -> list[tuple[str, AlertState]]:
    with database.session() as session:
        alerts = alert_store.list_alerts(session)
    return sorted(
        (dict(a.labels)["version"], a.state)
        for a in alerts
        if a.rule_name == "moderation-block-jump"
    )


def test_a_jump_in_the_block_rate_fires_the_rule_and_a_fall_resolves_it(
    database: Database,
) -> None:
    assert known_signal_names() >= SIGNAL_NAMES
    with database.session() as session:
        engine.apply_rules(session, RULES, "ann", known_signal_names(), now=utcnow())

    quiet = record(database, batch(95, blocked=1, pii=4), "job:a:0")
    assert quiet.detail["recorded"] == "inserted" and quiet.detail["signals"] == 12
    assert chatbot_alerts(database) == []  # 1 % blocked

    jump = record(database, batch(80, blocked=20), "job:a:1")
    assert jump.decisions == {"allow": 80, "redact": 0, "review": 0, "block": 20}
    assert jump.detail["alert_transitions"] == 1
    assert chatbot_alerts(database) == [("2", AlertState.FIRING)]  # 21 of 200 in the hour

    # Another version and the inputs have their own series: quiet, no alert.
    record(database, batch(99, blocked=1), "job:b:0", model_version="3")
    record(database, batch(50, blocked=50), "job:a:1", direction="input")
    assert chatbot_alerts(database) == [("2", AlertState.FIRING)]

    # The same batch again (a redelivered chunk): nothing written, nothing evaluated.
    written = signal_count(database)
    again = record(database, batch(80, blocked=20), "job:a:1")
    assert again.detail == {"recorded": "unchanged", "signals": 0, "alert_transitions": 0}
    assert signal_count(database) == written

    # Enough clean output to bring the hour's rate under 5 %: the alert resolves.
    record(database, batch(400), "job:a:2")
    assert chatbot_alerts(database) == [("2", AlertState.RESOLVED)]

    now = utcnow()
    with database.session() as session:
        rates = {
            (r.model_version, r.direction): r
            for r in moderation_rates(
                session, since=now - timedelta(hours=1), until=now + timedelta(seconds=1)
            )
        }
        pii_rate = signal_store_latest(session, "pii")
    assert sorted(rates) == [("2", "input"), ("2", "output"), ("3", "output")]
    output = rates[("2", "output")]
    assert (output.batches, output.texts) == (3, 600)
    assert output.decisions == {"allow": 575, "redact": 4, "review": 0, "block": 21}
    assert output.rates["block"] == pytest.approx(21 / 600)
    assert output.category_rates == {
        "pii": pytest.approx(4 / 600),
        "violence": pytest.approx(21 / 600),
    }
    assert output.categories == {"pii": {"redact": 4}, "violence": {"block": 21}}
    assert pii_rate == pytest.approx(4 / 600)


def signal_store_latest(session: Session, category: str) -> float:
    from keelwatch.storage.signals import latest

    point = latest(
        session,
        "moderation.category_rate",
        labels={
            "model": "chatbot",
            "version": "2",
            "direction": "output",
            "window": "1h",
            "category": category,
        },
    )
    assert point is not None
    return point.value


def test_a_batch_recorded_again_with_other_counts_replaces_its_tally(database: Database) -> None:
    first = record(database, batch(10, blocked=10), "api:x")
    assert first.detail["recorded"] == "inserted"
    # The same source with other counts (the moderator's configuration changed between runs):
    # the tally is replaced, not added to, and the rates follow.
    second = record(database, batch(20), "api:x")
    assert second.detail["recorded"] == "replaced" and second.detail["signals"] == 12
    now = utcnow()
    with database.session() as session:
        [rates] = moderation_rates(
            session, since=now - timedelta(hours=1), until=now + timedelta(seconds=1)
        )
    assert (rates.batches, rates.texts, rates.decisions["block"]) == (1, 20, 0)
