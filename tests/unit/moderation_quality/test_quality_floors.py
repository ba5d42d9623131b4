"""Moderation quality on the labelled set (tests/data/moderation_eval.jsonl), so that a regression
in the lexicons, the rule filter, the PII detectors or the pipeline fails CI.

Floors are the figures measured when the set was built (docs/moderation.md, "Quality
(measured)") minus a margin of about 0.05: precision and recall per category for rules + PII,
the whole pipeline of default settings never below rules + PII in recall, no near-miss flagged by
the rules, and PII recall per planted item at least scrubadub's (the reference peer)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
import scrubadub  # type: ignore[import-untyped]

from keelwatch.monitoring.moderation.findings import Category
from keelwatch.monitoring.moderation.lexicon import DEFAULT_BLOCKLISTS
from keelwatch.monitoring.moderation.pii import PiiDetector
from keelwatch.monitoring.moderation.pipeline import ModerationResult, Moderator
from keelwatch.monitoring.moderation.rules import RuleFilter
from keelwatch.monitoring.service.moderators import build_moderator
from keelwatch.settings import ModerationSettings

EVAL_SET = Path(__file__).resolve().parents[2] / "data" / "moderation_eval.jsonl"
RECORDS = [json.loads(line) for line in EVAL_SET.read_text(encoding="utf-8").splitlines()]
TEXTS = [str(r["text"]) for r in RECORDS]
CATEGORIES = [c.value for c in Category if c is not Category.CUSTOM]

# Rules + PII, measured: precision 1.000 on every hazard, 0.920 profanity (four ambiguous words:
# "Moby Dick", a rooster, a donkey, a willow), 0.932 PII; recall below.
PRECISION_FLOOR = dict.fromkeys(CATEGORIES, 0.95) | {"profanity": 0.87, "pii": 0.88}
RECALL_FLOOR = {
    "harassment": 0.78,  # measured 0.839
    "hate": 0.78,  # 0.833
    "self-harm": 0.70,  # 0.750
    "sexual": 0.90,  # 0.960
    "violence": 0.74,  # 0.792
    "illicit": 0.70,  # 0.750
    "profanity": 0.90,  # 0.958
    "pii": 0.93,  # 0.965
}
# Whole pipeline: a category a classifier scores loses precision (alt-profanity-check flags
# insults, threats and slurs as "profanity": 0.60 measured); the others keep the rules' floor.
CLASSIFIED_PRECISION_FLOOR = 0.55
# Clean texts with numbers that the PII detectors read as PII (reported to the owner of pii.py;
# leave them here until fixed, then delete the entry).
KNOWN_PII_NEAR_MISSES = {
    "please upgrade to version 1.2.3.4 of the client",  # ipv4, score 0.5 by design
}
# Luhn/mod-97 failures once read as phones; none left.
KNOWN_PII_DECOY_PREFIXES: tuple[str, ...] = ()
# scrubadub's filth types that are one of our PII kinds.
SCRUBADUB_KINDS = {
    "email": "email",
    "phone": "phone",
    "credit_card": "credit_card",
    "social_security_number": "us_ssn",
    "credential": "secret",
}


def flagged(results: Sequence[ModerationResult], category: str) -> list[bool]:
    return [category in {c.value for c in r.categories} for r in results]


def precision_recall(flags: Sequence[bool], category: str) -> tuple[float, float]:
    truth = [category in r["categories"] for r in RECORDS]
    tp = sum(f and t for f, t in zip(flags, truth, strict=True))
    return tp / max(sum(flags), 1), tp / max(sum(truth), 1)


@pytest.fixture(scope="module")
def rules_pii() -> list[ModerationResult]:
    return Moderator([RuleFilter(DEFAULT_BLOCKLISTS), PiiDetector()]).moderate_many(TEXTS)


@pytest.fixture(scope="module")
def pipeline() -> list[ModerationResult]:
    return build_moderator(ModerationSettings()).moderate_many(TEXTS)


@pytest.mark.parametrize("category", CATEGORIES)
def test_rules_and_pii_meet_their_floors(rules_pii: list[ModerationResult], category: str) -> None:
    precision, recall = precision_recall(flagged(rules_pii, category), category)
    assert precision >= PRECISION_FLOOR[category], f"{category} precision {precision:.3f}"
    assert recall >= RECALL_FLOOR[category], f"{category} recall {recall:.3f}"


@pytest.mark.parametrize("category", CATEGORIES)
def test_the_default_pipeline_never_loses_recall_and_keeps_precision(
    rules_pii: list[ModerationResult], pipeline: list[ModerationResult], category: str
) -> None:
    assert not any(r.error for r in pipeline)
    _, base_recall = precision_recall(flagged(rules_pii, category), category)
    precision, recall = precision_recall(flagged(pipeline, category), category)
    assert recall >= base_recall, f"{category} recall {recall:.3f} < rules {base_recall:.3f}"
    classified = {
        f.category.value for r in pipeline for f in r.findings if f.source.startswith("classifier:")
    }
    floor = CLASSIFIED_PRECISION_FLOOR if category in classified else PRECISION_FLOOR[category]
    assert precision >= floor, f"{category} precision {precision:.3f}"


def test_no_near_miss_is_flagged_by_the_rules() -> None:
    rules = RuleFilter(DEFAULT_BLOCKLISTS)
    flagged_texts = [
        (str(r["text"]), [str(r["text"])[f.start : f.end] for f in rules.find(str(r["text"]))])
        for r in RECORDS
        if r["note"] == "near-miss"
    ]
    assert [(text, hits) for text, hits in flagged_texts if hits] == []


def test_pii_near_misses_stay_clean_but_for_the_known_gaps() -> None:
    detector = PiiDetector()
    unexpected = [
        text
        for r in RECORDS
        if r["note"] in {"near-miss", "clean"}
        and (text := str(r["text"])) not in KNOWN_PII_NEAR_MISSES
        and not text.startswith(KNOWN_PII_DECOY_PREFIXES)
        and detector.find(text)
    ]
    assert unexpected == []


def test_pii_recall_per_item_is_at_least_scrubadubs(rules_pii: list[ModerationResult]) -> None:
    scrubber = scrubadub.Scrubber()
    ours = theirs = items = 0
    for record, result in zip(RECORDS, rules_pii, strict=True):
        text = str(record["text"])
        planted = record.get("pii_values", [])
        if not planted:
            continue
        filth = list(scrubber.iter_filth(text))
        for kind, value in planted:
            start = text.index(value)
            end = start + len(value)
            items += 1
            ours += any(f.kind == kind and f.start < end and start < f.end for f in result.findings)
            theirs += any(
                SCRUBADUB_KINDS.get(f.type) == kind and f.beg < end and start < f.end for f in filth
            )
    assert items >= 40
    assert ours >= theirs, f"Keelwatch found {ours}/{items} planted PII, scrubadub {theirs}"
    assert ours / items >= 0.93
