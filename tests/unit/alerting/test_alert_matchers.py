"""Label matchers as Alertmanager defines them, and the matcher parser's errors."""

from __future__ import annotations

import pytest

from keelwatch.alerting.matchers import (
    MatcherSyntaxError,
    matcher_matches,
    matches_all,
    parse_matchers,
)
from keelwatch.entities.alerts import Matcher, MatchOp


def test_parses_braced_list_with_all_four_operators() -> None:
    parsed = parse_matchers(
        '{model="credit-risk", column=~"f[0-9]+", team!="ops", env!~"dev|test"}'
    )
    assert parsed == (
        Matcher("model", MatchOp.EQUAL, "credit-risk"),
        Matcher("column", MatchOp.REGEX, "f[0-9]+"),
        Matcher("team", MatchOp.NOT_EQUAL, "ops"),
        Matcher("env", MatchOp.NOT_REGEX, "dev|test"),
    )


def test_parses_bare_list_spaces_trailing_comma_and_escapes() -> None:
    assert parse_matchers('model = "x" ,') == (Matcher("model", MatchOp.EQUAL, "x"),)
    assert parse_matchers(r'a="say \"hi\"\n"') == (Matcher("a", MatchOp.EQUAL, 'say "hi"\n'),)
    assert parse_matchers("") == ()
    assert parse_matchers("{}") == ()


def test_str_round_trips() -> None:
    original = parse_matchers(r'{a="q\"uote", b=~"x.*"}')
    assert parse_matchers(", ".join(str(m) for m in original)) == original


@pytest.mark.parametrize(
    ("text", "column", "reason"),
    [
        ('model="x", ="y"', 12, "expected a label name"),
        ('model=="x"', 7, "expected a quoted value"),
        ('model<"x"', 6, "expected one of"),
        ('model="x', 7, "unterminated"),
        ('{model="x"', 11, "expected ',' or '}'"),
        ('model="x" team="y"', 11, "unexpected"),
        ('column=~"f[0-9"', 9, "invalid regular expression"),
        ('a="\\q"', 4, "unknown escape"),
    ],
)
def test_errors_name_the_column(text: str, column: int, reason: str) -> None:
    with pytest.raises(MatcherSyntaxError) as caught:
        parse_matchers(text)
    assert caught.value.column == column
    assert reason in str(caught.value)
    assert str(caught.value).startswith(f"column {column}:")


def test_offset_shifts_the_column() -> None:
    with pytest.raises(MatcherSyntaxError) as caught:
        parse_matchers('a=="x"', offset=10)
    assert caught.value.column == 13


# Alertmanager's documented semantics (docs/configuration.md "<matcher>"): regexes are fully
# anchored, and a missing label has the empty value.
@pytest.mark.parametrize(
    ("matcher", "labels", "expected"),
    [
        ('column=~"f1"', {"column": "f10"}, False),  # anchored: no partial match
        ('column=~"f1.*"', {"column": "f10"}, True),
        ('column=~"f[0-9]+"', {"column": "xf1"}, False),  # anchored at the start too
        ('column!~"f[0-9]+"', {"column": "age"}, True),
        ('column!~"f[0-9]+"', {"column": "f3"}, False),
        ('env=~"dev|test"', {"env": "test"}, True),  # alternation sits inside the anchors
        ('env=~"dev|test"', {"env": "testing"}, False),
        ('team=""', {}, True),  # missing label equals ""
        ('team=""', {"team": "ml"}, False),
        ('team!=""', {}, False),  # requires the label
        ('team!="ops"', {}, True),
        ('team=~".*"', {}, True),
        ('team=~".+"', {}, False),
        ('model="credit-risk"', {"model": "credit-risk"}, True),
        ('model="credit-risk"', {"model": "Credit-Risk"}, False),  # case-sensitive
    ],
)
def test_matcher_semantics(matcher: str, labels: dict[str, str], expected: bool) -> None:
    (parsed,) = parse_matchers(matcher)
    assert matcher_matches(parsed, labels) is expected


def test_matches_all_needs_every_matcher_and_empty_matches_everything() -> None:
    matchers = parse_matchers('{model="m", column=~"f.*"}')
    assert matches_all(matchers, {"model": "m", "column": "f1"})
    assert not matches_all(matchers, {"model": "m", "column": "age"})
    assert matches_all((), {"anything": "at all"})
