"""The rule filter: obfuscated keywords match with spans of the original text, innocent words
that contain a keyword do not, patterns and phrases work, bad input is refused clearly."""

from __future__ import annotations

import pytest

from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.moderation.findings import MAX_TEXT_CHARS, Category, Finding
from keelwatch.monitoring.moderation.rules import (
    DEFAULT_PROFANITY,
    Blocklist,
    RuleFilter,
)

SEXUAL = Blocklist(Category.SEXUAL, keywords=("sex", "rape", "rapist"), name="sexual")
RULES = RuleFilter([DEFAULT_PROFANITY, SEXUAL])


def matched(text: str, rules: RuleFilter = RULES) -> list[str]:
    """The original text each finding covers."""
    return [text[f.start : f.end] for f in rules.find(text)]


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("well fuck this", "fuck"),
        ("WELL FUCK THIS", "FUCK"),
        ("oh sh1t again", "sh1t"),
        ("what a b1tch move", "b1tch"),
        ("kiss my a55 now", "a55"),
        ("kiss my @ss now", "@ss"),
        ("you a$$hole", "a$$hole"),
        ("cr4zy 5h1t", "5h1t"),
        ("fuuuuck that", "fuuuuck"),
        ("shiiiiit!", "shiiiiit"),
        ("what the f.u.c.k", "f.u.c.k"),
        ("what the f u c k", "f u c k"),
        ("what the f-u-c-k?", "f-u-c-k"),
        ("what the f_u_c_k", "f_u_c_k"),
        ("s h 1 t happens", "s h 1 t"),
        ("my \uff46\uff55\uff43\uff4b fullwidth", "\uff46\uff55\uff43\uff4b"),
        ("cyrillic \u0455h\u0456t here", "\u0455h\u0456t"),
        ("cyrillic \u0441unt here", "\u0441unt"),
        ("greek f\u03c5ck here", "f\u03c5ck"),
        ("upper \u0405H\u0406T here", "\u0405H\u0406T"),
        ("accented fúck", "fúck"),
        ("zero width fu\u200bck", "fu\u200bck"),
    ],
)
def test_obfuscated_keywords_match_with_their_original_span(text: str, word: str) -> None:
    assert matched(text) == [word]


@pytest.mark.parametrize(
    "text",
    [
        "Scunthorpe United won",
        "a cocktail party",
        "assassin's creed",
        "a classic film",
        "Essex is a county",
        "my therapist said",
        "a grape vine",
        "as far as I know",
        "Sussex and Middlesex",
        "pass the glass",
        "room 455 on floor 3",
        "shitake",  # not a word of the list
        "I s a w it",
        "documentation",
        "a son of a gun",
    ],
)
def test_words_containing_a_keyword_do_not_match(text: str) -> None:
    assert matched(text) == []


def test_repeats_need_at_least_the_keywords_runs() -> None:
    assert matched("asss") == ["asss"]
    assert matched("as") == []


def test_multi_word_keywords_match_as_one_span() -> None:
    text = "you son   of a bitch"
    assert sorted(matched(text)) == ["bitch", "son   of a bitch"]
    custom = RuleFilter([Blocklist(Category.VIOLENCE, keywords=("kill you",), name="threats")])
    assert matched("I will k1ll  you", custom) == ["k1ll  you"]
    assert matched("I will kill", custom) == []
    assert matched("skill you", custom) == []


def test_patterns_search_the_normalized_text_with_word_boundaries() -> None:
    rules = RuleFilter(
        [Blocklist(Category.ILLICIT, patterns=(r"\bbuy\s+(?:meth|coke)\b", r"\bx{2,}\b"))]
    )
    assert matched("Where to BUY  Meth?", rules) == ["BUY  Meth"]
    assert matched("buy methane", rules) == []
    fullwidth = "\uff42\uff55\uff59 \uff43\uff4f\uff4b\uff45"
    assert matched(fullwidth, rules) == [fullwidth]
    assert matched("xoxo xxx", rules) == ["xxx"]
    assert [f.source for f in rules.find("buy meth")] == ["rules:illicit"]


def test_findings_carry_category_score_source_and_are_sorted() -> None:
    findings = RULES.find("sex and shit")
    assert findings == [
        Finding(Category.SEXUAL, 0, 3, 1.0, "rules:sexual"),
        Finding(Category.PROFANITY, 8, 12, 1.0, "rules:profanity"),
    ]


def test_spans_after_combining_characters_and_emoji_point_into_the_original() -> None:
    text = "cafe\u0301 😀😀 👍🏽 fuck"
    (finding,) = RULES.find(text)
    assert text[finding.start : finding.end] == "fuck"
    text = "e\u0301\u0301 ﬁne ß f\u0301uck"
    assert matched(text) == ["f\u0301uck"]


def test_lone_surrogates_and_odd_code_points_do_not_crash() -> None:
    assert matched("\ud800fuck\udfff") == ["fuck"]
    assert matched("\U0010ffff \x00 \ufffe") == []


def test_empty_text_and_empty_filter_find_nothing() -> None:
    assert RULES.find("") == []
    assert RuleFilter([]).find("fuck") == []


def test_find_many_keeps_order() -> None:
    assert [len(found) for found in RULES.find_many(["fuck", "fine", "shit shit"])] == [1, 0, 2]


def test_long_text_is_refused_with_its_length() -> None:
    with pytest.raises(InvalidInputError, match="text of 100001 characters exceeds the 100000"):
        RULES.find("a" * (MAX_TEXT_CHARS + 1))
    assert RULES.find("a " * (MAX_TEXT_CHARS // 2)) == []


def test_non_str_input_is_refused_naming_the_type() -> None:
    with pytest.raises(InvalidInputError, match="not bytes"):
        RULES.find(b"fuck")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="not one str"):
        RULES.find_many("fuck")


def test_bad_pattern_is_refused_naming_the_list_and_index() -> None:
    with pytest.raises(
        InvalidInputError, match=r"blocklist 'mine' pattern 1 is not a valid"
    ) as err:
        Blocklist(Category.CUSTOM, patterns=("ok", "(secret["), name="mine")
    assert "secret" not in str(err.value)


def test_keywords_without_letters_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="blocklist 'custom' keyword 0"):
        Blocklist(Category.CUSTOM, keywords=("!!!",))


def test_blocklist_accepts_lists_and_requires_a_category() -> None:
    blocklist = Blocklist(Category.CUSTOM, keywords=["widget"])  # type: ignore[arg-type]
    assert blocklist.keywords == ("widget",)
    assert matched("a Widget here", RuleFilter([blocklist])) == ["Widget"]
    with pytest.raises(InvalidInputError, match="category"):
        Blocklist("custom")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="sequence of Blocklist"):
        RuleFilter(DEFAULT_PROFANITY)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("total bu11shit", "bu11shit"),  # 1 read as l
        ("f\U0001f600u c k", "f\U0001f600u c k"),  # an emoji as a separator
        ("caf\u00e9 f u c k", "f u c k"),  # the same run after a non-ASCII word
        ("f u c k", "f u c k"),  # a run at the very start and end
        ("\u00e9 s h 1 t \u00e9", "s h 1 t"),
    ],
)
def test_the_fast_screen_never_hides_a_match(text: str, word: str) -> None:
    assert matched(text) == [word]
    assert matched(text) == [word]  # again, with the words the first call remembered


def test_words_remembered_as_clean_do_not_hide_longer_runs() -> None:
    rules = RuleFilter([DEFAULT_PROFANITY])
    assert matched("as it is", rules) == []
    assert matched("asss it is", rules) == ["asss"]


def test_non_ascii_keywords_are_matched_word_by_word() -> None:
    # "\u0431\u043b\u044f" keeps non-ASCII letters after normalization, so the ASCII screen
    # must step aside.
    rules = RuleFilter([Blocklist(Category.CUSTOM, keywords=("\u0431\u043b\u044f",))])
    assert matched("\u043d\u0443 \u0411\u041b\u042f\u042f\u042f!", rules) == [
        "\u0411\u041b\u042f\u042f\u042f"
    ]
    assert matched("plain ascii text", rules) == []


PHRASES = RuleFilter(
    [Blocklist(Category.HARASSMENT, keywords=("kill yourself", "molotov cocktail"), name="h")]
)


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("just k.i.l.l yourself", "k.i.l.l yourself"),
        ("you should k-i-l-l   yourself now", "k-i-l-l   yourself"),
        ("the m o l o t o v cocktail recipe", "m o l o t o v cocktail"),
        # A run that starts with a word of one letter: "a molotov", "i kill".
        ("make a m o l o t o v cocktail", "m o l o t o v cocktail"),
        ("i k.i.l.l yourself", "k.i.l.l yourself"),
    ],
)
def test_a_phrase_word_spelled_out_in_single_characters_matches(text: str, span: str) -> None:
    assert matched(text, PHRASES) == [span]
    # The batch screen lets the text through as well (a clean text beside it stays clean).
    [found, clean] = PHRASES.find_many([text, "kill the process yourself"])
    assert [text[f.start : f.end] for f in found] == [span] and clean == []


@pytest.mark.parametrize(
    "text",
    [
        "k i l l the process",
        "a cocktail, not m.o.l.o.t.o.v",
        "version 1.2.3 yourself",
        "a m o l o t o v",  # the word alone, without the rest of its phrase
    ],
)
def test_spelled_out_letters_alone_do_not_make_a_phrase(text: str) -> None:
    assert matched(text, PHRASES) == []
    assert PHRASES.find_many([text]) == [[]]


def test_the_batch_screen_reads_digits_as_leetspeak_but_skips_ids() -> None:
    texts = ["oh sh1t", "ref 82450164 and $19.99", "k1ll yourself b1tch", "a55 v2.0"]
    found = RULES.find_many(texts)
    assert [[t[f.start : f.end] for f in fs] for t, fs in zip(texts, found, strict=True)] == [
        ["sh1t"],
        [],
        ["b1tch"],
        ["a55"],
    ]


@pytest.mark.parametrize(
    ("text", "rules", "spans"),
    [
        ("total bu11shit, order 1234", RULES, ["bu11shit"]),  # only the "l" reading matches
        ("oh sh1t in room 101", RULES, ["sh1t"]),  # only the "i" reading matches
        ("a11 the 1deas at 10:15", RULES, []),  # "all", "ideas": nothing to find either way
        ("just ki11 yourself", PHRASES, ["ki11 yourself"]),  # a phrase's first word, "l"
        ("just k1ll yourse1f", PHRASES, []),  # the two words need different readings
        ("s.h.1.t and 2011", RULES, ["s.h.1.t"]),  # a spaced-out run with a "1"
        ("b u 1 1 s h i t", RULES, ["b u 1 1 s h i t", "s h i t"]),  # read as "l"; "shit" too
    ],
)
def test_a_one_is_read_as_i_and_as_l(text: str, rules: RuleFilter, spans: list[str]) -> None:
    assert matched(text, rules) == spans
    [found] = rules.find_many([text])
    assert [text[f.start : f.end] for f in found] == spans
