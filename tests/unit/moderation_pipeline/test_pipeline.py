"""The moderation pipeline on bad input (it never raises and never lets an unmoderated text
through), the policy's thresholds and overrides, what a reviewer sees, and the moderators built
from settings."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.moderation.findings import Category, Finding
from keelwatch.monitoring.moderation.pii import PiiDetector
from keelwatch.monitoring.moderation.pipeline import (
    ClassifierFilter,
    ModerationResult,
    Moderator,
    review_view,
)
from keelwatch.monitoring.moderation.policy import (
    DEFAULT_THRESHOLDS,
    CategoryThresholds,
    Decision,
    ModerationPolicy,
    most_severe,
)
from keelwatch.monitoring.moderation.rules import DEFAULT_PROFANITY, Blocklist, RuleFilter
from keelwatch.monitoring.service.moderators import (
    build_moderator,
    default_blocklists,
    default_moderator,
    parse_model_uri,
)
from keelwatch.settings import ModerationSettings


class FailingFilter:
    """A filter that raises on texts containing "boom" (as a buggy plug-in would)."""

    def find_many(self, texts: Sequence[str]) -> list[list[Finding]]:
        if any("boom" in text for text in texts):
            raise RuntimeError("filter bug")
        return [[] for _ in texts]


@pytest.fixture(scope="module")
def moderator() -> Moderator:
    return Moderator([RuleFilter([DEFAULT_PROFANITY]), PiiDetector()], max_chars=1_000)


def assert_fail_closed(result: ModerationResult, reason: str) -> None:
    assert result.decision is Decision.REVIEW
    assert result.redacted == "" and result.released is None
    assert reason in result.error


def test_bad_inputs_go_to_review_with_a_reason_and_never_raise(moderator: Moderator) -> None:
    bad: list[object] = [
        b"\xff\xfe not utf-8",
        bytearray(b"ok \xc3"),
        "x" * 1_001,
        "nul \x00 inside",
        "lone \udc80 surrogate",
        None,
        42,
        ["a", "list"],
    ]
    results = moderator.moderate_many([*bad, "fine text", b"utf-8 bytes \xc3\xa9", ""])
    assert_fail_closed(results[0], "invalid UTF-8 at byte 0")
    assert_fail_closed(results[1], "invalid UTF-8 at byte 3")
    assert_fail_closed(results[2], "1001 characters exceeds the 1000-character limit")
    assert_fail_closed(results[3], "binary data (NUL characters)")
    assert_fail_closed(results[4], "lone surrogate) at character 5")
    assert_fail_closed(results[5], "not text: NoneType")
    assert_fail_closed(results[6], "not text: int")
    assert_fail_closed(results[7], "not text: list")
    for result in results[:8]:
        assert "surrogate \udc80" not in result.error and "not utf-8" not in result.error
    assert results[8] == ModerationResult(Decision.ALLOW, (), "fine text")
    assert results[9].decision is Decision.ALLOW and results[9].redacted == "utf-8 bytes \u00e9"
    assert results[10] == ModerationResult(Decision.ALLOW, (), "")
    assert moderator.moderate(b"\xff").decision is Decision.REVIEW


def test_a_raising_filter_sends_only_its_texts_to_review() -> None:
    moderator = Moderator([FailingFilter(), PiiDetector()])
    results = moderator.moderate_many(["mail a@b.co", "boom a@b.co", "hello"])
    assert results[0].decision is Decision.REDACT and results[0].redacted == "mail [EMAIL]"
    assert_fail_closed(results[1], "filter FailingFilter failed (RuntimeError)")
    assert results[2].decision is Decision.ALLOW
    assert_fail_closed(moderator.moderate("boom"), "FailingFilter")


def test_a_classifier_returning_the_wrong_number_of_scores_fails_closed() -> None:
    def short(texts: Sequence[str]) -> dict[Category, list[float]]:
        return {Category.VIOLENCE: [0.99]}

    moderator = Moderator([ClassifierFilter(short, name="short")])
    results = moderator.moderate_many(["one", "two"])
    # Batch fails, then text by text each gets one score: the batch is not let through.
    assert [r.decision for r in results] == [Decision.BLOCK, Decision.BLOCK]
    assert results[0].redacted == "[VIOLENCE]"


def test_a_classifier_redacts_through_rule_spans_or_sends_to_review() -> None:
    """A whole-text classifier finding cannot say what to redact: with a rule span of its
    category only the span is redacted; without one a person reviews; a blocked text is kept
    redacted whole."""

    def profane(texts: Sequence[str]) -> dict[Category, list[float]]:
        return {Category.PROFANITY: [0.9] * len(texts)}

    def threatening(texts: Sequence[str]) -> dict[Category, list[float]]:
        return {Category.VIOLENCE: [0.95 if "hurt" in t else 0.0 for t in texts]}

    moderator = Moderator(
        [
            RuleFilter([DEFAULT_PROFANITY]),
            PiiDetector(),
            ClassifierFilter(profane, name="p"),
            ClassifierFilter(threatening, name="v"),
        ]
    )
    spanned, unspanned, blocked = moderator.moderate_many(
        ["well shit, mail a@b.co", "you utter muppet", "i will hurt you"]
    )
    assert spanned.decision is Decision.REDACT
    assert spanned.redacted == "well [PROFANITY], mail [EMAIL]"
    assert unspanned.decision is Decision.REVIEW and unspanned.released is None
    assert unspanned.redacted == "you utter muppet"  # nothing to point at: a person decides
    assert blocked.decision is Decision.BLOCK and blocked.redacted == "[VIOLENCE]"


def test_a_long_text_within_the_cap_is_moderated(moderator: Moderator) -> None:
    text = ("all fine here " * 80)[:999] + "x"
    assert len(text) == 1_000
    assert moderator.moderate(text).decision is Decision.ALLOW
    assert moderator.moderate(text + " shit").decision is Decision.REVIEW  # over the cap


def test_policy_thresholds_decide_and_overrides_replace_a_category() -> None:
    policy = ModerationPolicy()
    hazard = Finding(Category.VIOLENCE, 0, 4, 0.7, "classifier:x")
    assert policy.decide_finding(hazard) is Decision.REVIEW
    assert policy.decide([hazard, Finding(Category.VIOLENCE, 0, 4, 0.95, "x")]) is Decision.BLOCK
    assert policy.decide([]) is Decision.ALLOW
    assert policy.decide([Finding(Category.PII, 0, 1, 0.9, "pii", "email")]) is Decision.REDACT
    assert policy.decide([Finding(Category.SELF_HARM, 0, 1, 1.0, "x")]) is Decision.REVIEW
    stricter = ModerationPolicy.from_overrides({"Violence": {"review": 0.6, "block": 0.65}})
    assert stricter.decide_finding(hazard) is Decision.BLOCK
    assert stricter.thresholds[Category.HATE] == DEFAULT_THRESHOLDS[Category.HATE]
    never = ModerationPolicy.from_overrides({"profanity": {}})
    assert never.decide([Finding(Category.PROFANITY, 0, 1, 1.0, "x")]) is Decision.ALLOW
    assert CategoryThresholds(redact=0.5).decide(0.5) is Decision.REDACT
    assert most_severe([Decision.REDACT, Decision.REVIEW]) is Decision.REVIEW
    for bad, message in [
        ({"gore": {"block": 0.5}}, "unknown category 'gore'"),
        ({"violence": {"ban": 0.5}}, "unknown threshold key"),
        ({"violence": {"block": 1.5}}, "must be a number in"),
        ({"violence": {"review": 0.9, "block": 0.5}}, "below a less severe"),
    ]:
        with pytest.raises(InvalidInputError, match=message):
            ModerationPolicy.from_overrides(bad)


def test_review_view_redacts_pii_and_moves_the_other_spans() -> None:
    text = "mail a@b.co you shit, call +44 20 7946 0958 now"
    findings = [
        *RuleFilter([DEFAULT_PROFANITY]).find(text),
        *PiiDetector().find(text),
        Finding(Category.PROFANITY, 0, len(text), 0.9, "classifier:x", "classifier"),
    ]
    shown, moved = review_view(text, findings)
    assert shown == "mail [EMAIL] you shit, call [PHONE] now"
    assert [(f.category, shown[f.start : f.end]) for f in moved] == [(Category.PROFANITY, "shit")]
    # A finding overlapping PII highlights nothing that is left in clear: it is dropped.
    overlapping = Finding(Category.CUSTOM, 3, 8, 1.0, "rules:x")
    assert review_view(text, [*findings, overlapping])[1] == moved


def test_build_moderator_follows_the_settings() -> None:
    rules_only = build_moderator(
        ModerationSettings(
            classifier="none", thresholds={"profanity": {"block": 0.5}}, max_text_chars=50
        )
    )
    assert len(rules_only.filters) == 2 and rules_only.max_chars == 50
    assert rules_only.moderate("well shit").decision is Decision.BLOCK
    assert rules_only.moderate("well shit").redacted == "well [PROFANITY]"
    embedded = build_moderator(ModerationSettings())
    assert [type(f).__name__ for f in embedded.filters][-1] == "ClassifierFilter"
    assert default_moderator() is default_moderator()
    assert default_blocklists()  # the lexicon's lists (or the profanity list before it lands)
    with pytest.raises(InvalidInputError, match="needs a model loader"):
        build_moderator(ModerationSettings(classifier="models:/toxicity/3"))
    for bad in ("detoxify", "models:/toxicity", "models:/toxicity/latest"):
        with pytest.raises(InvalidInputError, match="profanity-check, none or models:/"):
            build_moderator(ModerationSettings(classifier=bad))
    assert parse_model_uri("models:/a/b/c/12") == ("a/b/c", "12")
    with pytest.raises(InvalidInputError, match="blocklists must be"):
        RuleFilter(Blocklist(Category.CUSTOM, ("x",)))  # type: ignore[arg-type]
