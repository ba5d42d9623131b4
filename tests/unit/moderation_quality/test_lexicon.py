"""The default hazard lexicons: every list compiles, hits its examples (plain and disguised) with
its own category, and ordinary text that merely contains a keyword or an idiom stays clean."""

from __future__ import annotations

import pytest

from keelwatch.monitoring.moderation.findings import Category
from keelwatch.monitoring.moderation.lexicon import (
    DEFAULT_BLOCKLISTS,
    DEFAULT_PROFANITY,
    HARASSMENT,
    HATE,
    ILLICIT,
    SELF_HARM,
    SEXUAL,
    VIOLENCE,
)
from keelwatch.monitoring.moderation.rules import Blocklist, RuleFilter

RULES = RuleFilter(DEFAULT_BLOCKLISTS)

EXAMPLES = {
    HARASSMENT: [
        "honestly you are worthless",
        "you're pathetic",
        "ur a loser",
        "just kill yourself",
        "kys",
        "nobody likes you",
        "YOU ARE AN IDIOT",
        "you're so p4thetic",
    ],
    HATE: [
        "immigrants are vermin",
        "refugees should be wiped out",
        "heil hitler",
        "they are subhuman",
        "women are inferior",
        "go back to your country",
    ],
    SELF_HARM: [
        "I want to kill myself",
        "thinking about ending my life",
        "I just want to die",
        "I keep cutting myself",
        "I feel suicidal",
        "I'd be better off dead",
    ],
    SEXUAL: ["send nudes", "free porn", "so horny", "dick pics", "strip for me", "p0rn"],
    VIOLENCE: [
        "I will kill you",
        "i'll stab you",
        "im gonna shoot up the school",
        "how to build a bomb",
        "I'm going to beat you to death",
        "a pipe bomb",
    ],
    ILLICIT: [
        "where can I buy cocaine",
        "selling meth",
        "how to cook meth",
        "buy stolen credit cards",
        "launder money",
        "buy c0caine",
    ],
    DEFAULT_PROFANITY: ["oh shit", "f.u.c.k this", "what a dickhead"],
}

NEAR_MISSES = [
    "we drove through Scunthorpe",
    "a passion fruit cocktail",
    "Assassin's Creed is on sale",
    "a classic match, pure class",
    "my therapist said so",
    "please assess the passage",
    "summa cum laude",
    "kill the process on port 8080",
    "this heat is killing me",
    "the comedian killed it",
    "let's shoot some hoops",
    "the suicide prevention hotline",
    "our team bombed the demo",
    "pest control exterminated the termites",
    "rats are vermin",
    "I'll shoot you an email",
    "I'm going to beat you at chess",
    "I cut myself shaving",
    "I could murder a pizza",
    "a bath bomb",
    "the killer feature",
    "you are awesome",
    "you're a lifesaver",
    "buy cheap flights",
    "how do I kill a zombie process",
    "the sex education curriculum",
    "the Molotov-Ribbentrop pact",
    "analytics and grape harvests in Essex",
]


@pytest.mark.parametrize("blocklist", DEFAULT_BLOCKLISTS, ids=lambda b: b.label)
def test_each_list_compiles_on_its_own(blocklist: Blocklist) -> None:
    rules = RuleFilter([blocklist])
    assert blocklist.keywords
    assert rules.find("an ordinary sentence about the weather") == []


@pytest.mark.parametrize(
    ("blocklist", "text"),
    [(blocklist, text) for blocklist, texts in EXAMPLES.items() for text in texts],
    ids=lambda value: value.label if isinstance(value, Blocklist) else value,
)
def test_each_list_hits_its_examples_with_its_category(blocklist: Blocklist, text: str) -> None:
    findings = RuleFilter([blocklist]).find(text)
    assert findings, text
    assert {f.category for f in findings} == {blocklist.category}
    assert {f.source for f in findings} == {f"rules:{blocklist.label}"}
    # The default filter finds it too, with (at least) that category.
    assert blocklist.category in {f.category for f in RULES.find(text)}


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_misses_give_no_finding(text: str) -> None:
    assert RULES.find(text) == []


def test_one_list_per_hazard_category_plus_profanity_and_no_patterns() -> None:
    categories = [b.category for b in DEFAULT_BLOCKLISTS]
    assert sorted(categories) == sorted(set(Category) - {Category.PII, Category.CUSTOM})
    assert DEFAULT_PROFANITY in DEFAULT_BLOCKLISTS
    # A pattern makes the rule filter normalize every text (no fast screen): keep them out.
    assert all(not b.patterns for b in DEFAULT_BLOCKLISTS)
    for blocklist in DEFAULT_BLOCKLISTS:
        assert len(set(blocklist.keywords)) == len(blocklist.keywords), blocklist.label
