"""The labelled moderation set itself: well-formed, big enough per category and PII kind, planted
numbers that pass their checksums (and decoys that fail them), and reproducible from its
generator."""

from __future__ import annotations

import importlib.util
import json
import re
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from keelwatch.monitoring.moderation.findings import Category
from keelwatch.monitoring.moderation.pii import PII_KINDS

DATA = Path(__file__).resolve().parents[2] / "data"
EVAL_SET = DATA / "moderation_eval.jsonl"
NOTES = {"plain", "obfuscation", "implicit", "near-miss", "ambiguous", "clean"}
HAZARDS = [c.value for c in Category if c is not Category.CUSTOM]


def load() -> list[dict[str, Any]]:
    lines = EVAL_SET.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_moderation_eval", DATA / "make_moderation_eval.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        value = int(char) * (2 if i % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    compact = iban.replace(" ", "").upper()
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


RECORDS = load()


def test_every_line_is_a_well_formed_record() -> None:
    assert len(RECORDS) >= 300
    texts = set()
    for record in RECORDS:
        text = record["text"]
        assert isinstance(text, str) and 0 < len(text) <= 280
        assert text not in texts, f"duplicate text: {text[:40]!r}"
        texts.add(text)
        categories, kinds = record["categories"], record["pii"]
        assert isinstance(categories, list) and isinstance(kinds, list)
        assert set(categories) <= set(HAZARDS), categories
        assert categories == sorted(set(categories), key=HAZARDS.index)
        assert set(kinds) <= set(PII_KINDS), kinds
        assert ("pii" in categories) == bool(kinds)
        assert record["note"] in NOTES
        if record["note"] in {"near-miss", "ambiguous", "clean"}:
            assert categories == [], text
        planted = record.get("pii_values", [])
        assert isinstance(planted, list)
        assert sorted({kind for kind, _ in planted}) == sorted(kinds)
        for _, value in planted:
            assert value in text


def test_every_category_every_pii_kind_and_the_near_misses_are_covered() -> None:
    per_category = Counter(c for r in RECORDS for c in r["categories"])
    for category in HAZARDS:
        assert per_category[category] >= 15, category
    per_kind = Counter(k for r in RECORDS for k in r["pii"])
    for kind in PII_KINDS:
        assert per_kind[kind] >= 5, kind
    notes = Counter(r["note"] for r in RECORDS)
    assert notes["near-miss"] >= 40
    assert notes["obfuscation"] >= 40
    assert notes["clean"] + notes["near-miss"] + notes["ambiguous"] >= 80
    for category in HAZARDS:
        disguised = [
            r for r in RECORDS if category in r["categories"] and r["note"] == "obfuscation"
        ]
        assert len(disguised) >= 3, category


def test_obfuscations_include_each_disguise_the_rules_claim_to_undo() -> None:
    disguised = [str(r["text"]) for r in RECORDS if r["note"] == "obfuscation"]
    assert any(re.search(r"[a-z][0-9][a-z]", t) for t in disguised)  # leetspeak
    assert any(re.search(r"([a-z])\1{3}", t) for t in disguised)  # repeated letters
    assert any(re.search(r"\b\w (\w ){2,}\w\b", t) for t in disguised)  # spaced letters
    assert any(re.search(r"\b\w\.(\w\.){2,}\w\b", t) for t in disguised)  # punctuated
    assert any(any("\u0400" <= c <= "\u04ff" for c in t) for t in disguised)  # Cyrillic
    assert any(any("\uff01" <= c <= "\uff5e" for c in t) for t in disguised)  # fullwidth


def test_planted_numbers_pass_their_checksums_and_decoys_fail_them() -> None:
    cards = ibans = decoys = 0
    for record in RECORDS:
        for kind, value in record.get("pii_values", []):
            if kind == "credit_card":
                digits = re.sub(r"[ -]", "", value)
                assert digits.isdigit() and 13 <= len(digits) <= 19 and luhn_ok(digits), value
                cards += 1
            elif kind == "iban":
                assert iban_ok(value), value
                ibans += 1
        for kind, value in record.get("decoys", []):
            digits = re.sub(r"[ -]", "", value)
            if kind == "credit_card" and len(digits) >= 13:
                assert not luhn_ok(digits), value
            elif kind == "iban":
                assert not iban_ok(value), value
            decoys += 1
    assert cards >= 5 and ibans >= 5 and decoys >= 4


def test_the_file_is_what_its_generator_writes() -> None:
    records = generator().build()
    assert records == RECORDS, "tests/data/moderation_eval.jsonl is stale: run its generator"


@pytest.mark.parametrize("text", ["Scunthorpe", "cocktail", "Assassin's Creed", "therapist"])
def test_the_issues_named_near_misses_are_in_the_set(text: str) -> None:
    assert any(text in str(r["text"]) and r["note"] == "near-miss" for r in RECORDS)
