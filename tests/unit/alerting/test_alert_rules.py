"""Rules from YAML and dicts: what is accepted, and errors that name rule, field and position."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from keelwatch.alerting.rules import (
    RuleError,
    format_duration,
    load_rules_yaml,
    parse_duration,
    rule_from_dict,
    rule_to_dict,
)
from keelwatch.alerting.templates import render_template
from keelwatch.entities.alerts import Comparison, Matcher, MatchOp, Severity
from keelwatch.errors import InvalidInputError

GOOD = """\
rules:
  - name: column-drift
    signal: drift.column.p_value
    matchers: '{model="credit-risk", column=~"f[0-9]+"}'
    comparison: "<"
    threshold: 0.05
    for: 5m
    severity: critical
    labels: {team: ml}
    annotations:
      summary: "{{ $labels.column }} drifted (p={{ $value }})"
    runbook_url: https://runbooks.example/drift
  - name: queue-deep
    signal: ops.queue.depth
    matchers: ['queue="gpu"']
    comparison: ">="
    threshold: 100
"""


def test_loads_a_rule_file() -> None:
    first, second = load_rules_yaml(GOOD)
    assert first.name == "column-drift"
    assert first.signal == "drift.column.p_value"
    assert first.matchers == (
        Matcher("model", MatchOp.EQUAL, "credit-risk"),
        Matcher("column", MatchOp.REGEX, "f[0-9]+"),
    )
    assert (first.comparison, first.threshold) == (Comparison.LT, 0.05)
    assert first.hold_for == timedelta(minutes=5)
    assert first.severity is Severity.CRITICAL
    assert first.labels == {"team": "ml"}
    assert first.runbook_url == "https://runbooks.example/drift"
    assert second.matchers == (Matcher("queue", MatchOp.EQUAL, "gpu"),)
    assert (second.hold_for, second.severity) == (timedelta(0), Severity.WARNING)


def test_a_bare_list_is_a_rule_file_too_and_dicts_round_trip() -> None:
    rules = load_rules_yaml(GOOD.split("\n", 1)[1].replace("\n  ", "\n").lstrip())
    assert [r.name for r in rules] == ["column-drift", "queue-deep"]
    for rule in rules:
        assert rule_from_dict(rule_to_dict(rule)) == rule


def _error(text: str, **kwargs: Any) -> RuleError:
    with pytest.raises(RuleError) as caught:
        load_rules_yaml(text, source="rules.yaml", **kwargs)
    return caught.value


def test_bad_matcher_points_inside_the_string() -> None:
    text = GOOD.replace('column=~"f[0-9]+"', 'column=~"f[0-9"')
    err = _error(text)
    # Line 4: `    matchers: '{model=...`: the string starts at column 16 (after the quote) and the
    # regex's opening quote is its 31st character, so the mistake is at column 16 + 30 = 46.
    assert (err.rule, err.field, err.line, err.column) == ("column-drift", "matchers", 4, 46)
    assert str(err).startswith("rules.yaml:4:46: rule 'column-drift', field 'matchers':")
    assert "matcher column 31" in str(err)
    assert "invalid regular expression" in str(err)


@pytest.mark.parametrize(
    ("old", "new", "field", "line", "reason"),
    [
        ("threshold: 0.05", "threshold: 'low'", "threshold", 6, "must be a number, got str"),
        ('comparison: "<"', 'comparison: "=<"', "comparison", 5, "must be one of"),
        ("for: 5m", "for: 5 minutes", "for", 7, "invalid duration"),
        ("for: 5m", "for: 5", "for", 7, "needs a unit"),
        ("severity: critical", "severity: urgent", "severity", 8, "must be one of"),
        ("labels: {team: ml}", "labels: {team: 3}", "labels", 9, "'team' must be a string"),
        ("labels: {team: ml}", "labels: {severity: low}", "labels", 9, "set by the rule"),
        ("{{ $labels.column }}", "{{ .Labels.column }}", "annotations", 11, "unknown placeholder"),
        ("signal: drift.column.p_value", "signal: Drift P", "signal", 3, "not a signal name"),
        ("queue-deep", "column-drift", "name", 13, "duplicate rule name"),
    ],
)
def test_errors_name_rule_field_and_line(
    old: str, new: str, field: str, line: int, reason: str
) -> None:
    err = _error(GOOD.replace(old, new, 1) if old != "queue-deep" else GOOD.replace(old, new))
    assert (err.field, err.line) == (field, line)
    assert reason in str(err)
    assert str(err).startswith(f"rules.yaml:{line}:")


def test_errors_never_echo_the_offending_value() -> None:
    err = _error(GOOD.replace("threshold: 0.05", "threshold: 'secret-customer-42'"))
    assert "secret-customer-42" not in str(err)


def test_unknown_and_missing_fields() -> None:
    err = _error(GOOD.replace("    for: 5m\n", "    four: 5m\n"))
    assert err.rule == "column-drift" and "unknown field 'four'" in str(err)
    assert err.line == 2  # the rule's own position
    err = _error(GOOD.replace("    threshold: 100\n", ""))
    assert err.rule == "queue-deep" and "missing required field 'threshold'" in str(err)


def test_unknown_signal_rejected_against_the_catalogue() -> None:
    err = _error(GOOD, known_signals={"drift.column.p_value"})
    assert (err.rule, err.field, err.line, err.column) == ("queue-deep", "signal", 14, 13)
    assert "unknown signal" in str(err)
    assert len(load_rules_yaml(GOOD, known_signals={"drift.column.p_value", "ops.queue.depth"}))


def test_yaml_syntax_error_has_a_position() -> None:
    err = _error("rules:\n  - name: [unclosed\n")
    assert err.line is not None and "not valid YAML" in str(err)


@pytest.mark.parametrize("text", ["rules: 3", "rules: []\nextra: 1", "just a string"])
def test_wrong_top_level_shapes(text: str) -> None:
    assert _error(text).line is not None


def test_yaml_is_never_executed() -> None:
    # The safe loader refuses Python object tags instead of constructing them.
    err = _error("!!python/object/apply:os.system ['true']\n")
    assert "not valid YAML" in str(err)


def test_dict_input_from_the_api_names_rule_and_field() -> None:
    with pytest.raises(RuleError) as caught:
        rule_from_dict({"name": "r", "signal": "ops.error_rate", "comparison": ">"})
    assert "missing required field 'threshold'" in str(caught.value)
    with pytest.raises(RuleError) as caught:
        rule_from_dict(["not", "a", "mapping"])
    assert "a rule is a mapping of fields, got list" in str(caught.value)
    with pytest.raises(RuleError) as caught:
        rule_from_dict({"name": "bad name!", "signal": "x.y", "comparison": ">", "threshold": 1})
    assert caught.value.field == "name"
    with pytest.raises(RuleError) as caught:
        rule_from_dict({"name": "r", "signal": "x.y", "comparison": ">", "threshold": float("nan")})
    assert "finite" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0s", timedelta(0)),
        (0, timedelta(0)),
        ("0", timedelta(0)),
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d", timedelta(days=1)),
        ("1w2d", timedelta(days=9)),
        ("250ms", timedelta(milliseconds=250)),
        ("1m500ms", timedelta(seconds=60.5)),
    ],
)
def test_parse_duration(text: str | int, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "5", 7, "5x", "m5", "5m1h", "5m5m", "-5m", True, 1.5])
def test_parse_duration_rejects(text: object) -> None:
    with pytest.raises(InvalidInputError):
        parse_duration(text)


def test_format_duration_is_the_inverse() -> None:
    for text in ("0s", "30s", "5m", "1h30m", "1d", "250ms", "1w2d"):
        assert format_duration(parse_duration(text)) == text


def test_templates_render_labels_and_value() -> None:
    labels = {"column": "f1", "model": "m"}
    out = render_template("{{$labels.column}} of {{ $labels.model }}: {{ $value }}", labels, 0.0123)
    assert out == "f1 of m: 0.0123"
    assert render_template("{{ $labels.absent }}|", labels, 1.0) == "|"
