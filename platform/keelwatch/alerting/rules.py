"""Alerting rules from YAML and from dicts (the API), validated with the position of mistakes.

A rule file is a list of rules, or a mapping with a ``rules:`` list::

    rules:
      - name: column-drift
        signal: drift.column.p_value
        matchers: '{model="credit-risk", column=~"f[0-9]+"}'
        comparison: "<"
        threshold: 0.05
        for: 5m
        severity: warning
        labels: {team: ml}
        annotations:
          summary: "{{ $labels.column }} drifted (p={{ $value }})"
        runbook_url: https://runbooks.example/drift

YAML is read with PyYAML's safe loader and matchers with a hand-written tokenizer: nothing is
ever evaluated. A mistake raises :class:`RuleError`, which names the rule, the field and, for
YAML, the line and column (1-based).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import yaml

from keelwatch.alerting.matchers import MatcherSyntaxError, parse_matchers
from keelwatch.alerting.templates import TemplateError, check_template
from keelwatch.entities.alerts import Comparison, Matcher, Rule, Severity
from keelwatch.entities.signals import LABEL_NAME_PATTERN, SIGNAL_NAME_PATTERN
from keelwatch.errors import InvalidInputError

__all__ = [
    "RESERVED_LABELS",
    "RuleError",
    "format_duration",
    "load_rules_yaml",
    "parse_duration",
    "rule_from_dict",
    "rule_to_dict",
    "rules_from_dicts",
]

#: Labels the engine sets on every alert; a rule's ``labels`` may not override them.
RESERVED_LABELS = frozenset({"alertname", "severity"})
_FIELDS = (
    "name",
    "signal",
    "matchers",
    "comparison",
    "threshold",
    "for",
    "severity",
    "labels",
    "annotations",
    "runbook_url",
)
_REQUIRED = ("name", "signal", "comparison", "threshold")
_RULE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$")
_DURATION_UNITS: tuple[tuple[str, float], ...] = (
    ("y", 365 * 86400.0),
    ("w", 7 * 86400.0),
    ("d", 86400.0),
    ("h", 3600.0),
    ("m", 60.0),
    ("s", 1.0),
    ("ms", 0.001),
)
_DURATION_PART = re.compile(r"([0-9]+)(ms|y|w|d|h|m|s)")

Path = tuple[str | int, ...]
#: Maps a path inside the input (``(0, "threshold")``) to a (line, column), both 1-based.
Locator = Callable[[Path], tuple[int, int] | None]


class RuleError(InvalidInputError):
    """A rule that cannot be accepted: which rule, which field, where, and why."""

    def __init__(
        self,
        reason: str,
        *,
        rule: str | None = None,
        field: str | None = None,
        line: int | None = None,
        column: int | None = None,
        source: str | None = None,
    ) -> None:
        where = ""
        if line is not None:
            where = f"{source or '<rules>'}:{line}:{column or 1}: "
        what = f"rule {rule!r}" if rule else "rule"
        if field:
            what += f", field {field!r}"
        super().__init__(f"{where}{what}: {reason}")
        self.reason = reason
        self.rule = rule
        self.field = field
        self.line = line
        self.column = column


def parse_duration(value: object) -> timedelta:
    """Prometheus durations: ``0``, ``30s``, ``5m``, ``1h30m``, ``1d``, ``250ms``.

    Units in decreasing order, each at most once (``y w d h m s ms``); a bare number is only
    accepted for zero. Raises :class:`InvalidInputError` saying what is wrong.
    """
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidInputError(f"a duration is a string such as '5m', got {type(value).__name__}")
    if isinstance(value, int) or value.strip().isdigit():
        if int(value) == 0:
            return timedelta(0)
        raise InvalidInputError("a duration needs a unit, e.g. '30s', '5m' or '1h'")
    text = value.strip()
    seconds = 0.0
    pos = 0
    last_rank = -1
    units = [unit for unit, _ in _DURATION_UNITS]
    while pos < len(text):
        part = _DURATION_PART.match(text, pos)
        if part is None:
            raise InvalidInputError(
                f"invalid duration at character {pos + 1}: use units y, w, d, h, m, s, ms "
                "as in '1h30m'"
            )
        rank = units.index(part.group(2))
        if rank <= last_rank:
            raise InvalidInputError(
                f"invalid duration at character {pos + 1}: units must appear once each, "
                "largest first"
            )
        last_rank = rank
        seconds += int(part.group(1)) * _DURATION_UNITS[rank][1]
        pos = part.end()
    if not text:
        raise InvalidInputError("a duration cannot be empty; use '0s' for none")
    return timedelta(seconds=seconds)


def format_duration(duration: timedelta) -> str:
    """The shortest Prometheus spelling of a duration: ``0s``, ``90s`` → ``1m30s``."""
    millis = round(duration.total_seconds() * 1000)
    if millis == 0:
        return "0s"
    out = []
    for unit, size in _DURATION_UNITS:
        count, millis = divmod(millis, round(size * 1000))
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)


@dataclass(frozen=True)
class _Context:
    index: int
    rule: str | None
    locate: Locator | None
    source: str | None

    def error(self, reason: str, field: str | None = None, *, column_shift: int = 0) -> RuleError:
        path: Path = (self.index,) if field is None else (self.index, field)
        position = self.locate(path) if self.locate is not None else None
        line, column = position if position is not None else (None, None)
        if column is not None:
            column += column_shift
        return RuleError(
            reason, rule=self.rule, field=field, line=line, column=column, source=self.source
        )


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _string(ctx: _Context, data: Mapping[str, object], field: str) -> str:
    value = data.get(field)
    if not isinstance(value, str) or not value.strip():
        raise ctx.error(f"must be a non-empty string, got {_type_name(value)}", field)
    return value.strip()


def _string_map(ctx: _Context, data: Mapping[str, object], field: str) -> dict[str, str]:
    value = data.get(field, {})
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ctx.error(f"must be a mapping of names to strings, got {_type_name(value)}", field)
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not LABEL_NAME_PATTERN.match(key):
            raise ctx.error(f"invalid name {str(key)[:64]!r}: use [A-Za-z_][A-Za-z0-9_]*", field)
        if not isinstance(item, str):
            raise ctx.error(f"{key!r} must be a string, got {_type_name(item)}", field)
        out[key] = item
    return out


def _matchers(ctx: _Context, data: Mapping[str, object]) -> tuple[Matcher, ...]:
    value = data.get("matchers")
    if value is None:
        return ()
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise ctx.error(
            f"must be a matcher string or a list of them, got {_type_name(value)}", "matchers"
        )
    matchers: list[Matcher] = []
    for text in texts:
        try:
            matchers.extend(parse_matchers(text))
        except MatcherSyntaxError as err:
            shift = err.column - 1 if isinstance(value, str) else 0
            raise ctx.error(
                f"matcher column {err.column}: {err.reason}", "matchers", column_shift=shift
            ) from err
    return tuple(matchers)


def _threshold(ctx: _Context, data: Mapping[str, object]) -> float:
    value = data.get("threshold")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ctx.error(f"must be a number, got {_type_name(value)}", "threshold")
    if not math.isfinite(value):
        raise ctx.error("must be a finite number", "threshold")
    return float(value)


_E = TypeVar("_E", Comparison, Severity)


def _choice(
    ctx: _Context, data: Mapping[str, object], field: str, kind: type[_E], default: _E | None
) -> _E:
    value = data.get(field)
    if value is None and default is not None:
        return default
    choices = ", ".join(repr(member.value) for member in kind)
    if not isinstance(value, str) or value not in {member.value for member in kind}:
        shown = "another string" if isinstance(value, str) else _type_name(value)
        raise ctx.error(f"must be one of {choices}, got {shown}", field)
    return kind(value)


def rule_from_dict(
    data: object,
    *,
    known_signals: Collection[str] | None = None,
    index: int = 0,
    locate: Locator | None = None,
    source: str | None = None,
) -> Rule:
    """Validate one rule given as a mapping (from YAML or an API body) and build it.

    ``known_signals``, when given, is the catalogue of signal names; a rule on any other name is
    rejected. ``locate``/``source`` add the line and column of the mistake (YAML input).
    """
    ctx = _Context(index, None, locate, source)
    if not isinstance(data, Mapping):
        raise ctx.error(f"a rule is a mapping of fields, got {_type_name(data)}")
    name_value = data.get("name")
    if not isinstance(name_value, str) or not _RULE_NAME.match(name_value):
        raise ctx.error(
            "needs a name of letters, digits, '_', '.', ':' or '-' (at most 128)", "name"
        )
    ctx = _Context(index, name_value, locate, source)
    unknown = [str(key) for key in data if key not in _FIELDS]
    if unknown:
        raise ctx.error(f"unknown field {unknown[0][:64]!r}; fields are {', '.join(_FIELDS)}")
    for field in _REQUIRED:
        if field not in data:
            raise ctx.error(f"missing required field {field!r}")
    signal = _string(ctx, data, "signal")
    if not SIGNAL_NAME_PATTERN.match(signal):
        raise ctx.error(
            "not a signal name (dotted lower-case, e.g. drift.column.p_value)", "signal"
        )
    if known_signals is not None and signal not in known_signals:
        raise ctx.error("unknown signal; see docs/alerting.md for the signal catalogue", "signal")
    try:
        hold_for = parse_duration(data.get("for", "0s"))
    except InvalidInputError as err:
        raise ctx.error(str(err), "for") from err
    labels = _string_map(ctx, data, "labels")
    reserved = sorted(RESERVED_LABELS & labels.keys())
    if reserved:
        raise ctx.error(f"{reserved[0]!r} is set by the rule itself", "labels")
    annotations = _string_map(ctx, data, "annotations")
    for key, template in annotations.items():
        try:
            check_template(template)
        except TemplateError as err:
            raise ctx.error(f"annotation {key!r} {err}", "annotations") from err
    runbook = data.get("runbook_url")
    if runbook is not None and (not isinstance(runbook, str) or not runbook.strip()):
        raise ctx.error(f"must be a URL string, got {_type_name(runbook)}", "runbook_url")
    return Rule(
        name=name_value,
        signal=signal,
        comparison=_choice(ctx, data, "comparison", Comparison, None),
        threshold=_threshold(ctx, data),
        matchers=_matchers(ctx, data),
        hold_for=hold_for,
        severity=_choice(ctx, data, "severity", Severity, Severity.WARNING),
        labels=labels,
        annotations=annotations,
        runbook_url=runbook.strip() if isinstance(runbook, str) else None,
    )


def rules_from_dicts(
    items: Iterable[object],
    *,
    known_signals: Collection[str] | None = None,
    locate: Locator | None = None,
    source: str | None = None,
) -> list[Rule]:
    """Validate many rules; rule names must be unique."""
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        rule = rule_from_dict(
            item, known_signals=known_signals, index=index, locate=locate, source=source
        )
        if rule.name in seen:
            raise _Context(index, rule.name, locate, source).error("duplicate rule name", "name")
        seen.add(rule.name)
        rules.append(rule)
    return rules


def _index_marks(node: yaml.Node, path: Path, marks: dict[Path, tuple[int, int]]) -> None:
    marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                _index_marks(value_node, (*path, str(key_node.value)), marks)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_marks(item, (*path, index), marks)


def _quote_width(node: yaml.Node | None) -> int:
    return 1 if isinstance(node, yaml.ScalarNode) and node.style in ("'", '"') else 0


def load_rules_yaml(
    text: str, *, source: str = "<rules>", known_signals: Collection[str] | None = None
) -> list[Rule]:
    """Parse a rule file (see the module docstring); errors carry ``source:line:column``."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
        raise RuleError(
            f"not valid YAML: {err.problem}", line=line, column=column, source=source
        ) from err
    except yaml.YAMLError as err:
        raise RuleError("not valid YAML", source=source) from err
    marks: dict[Path, tuple[int, int]] = {}
    items = data
    prefix: Path = ()
    if root is not None:
        _index_marks(root, (), marks)
    if isinstance(data, Mapping):
        if set(data) != {"rules"}:
            raise RuleError(
                "a rule file is a list of rules or a mapping with one key 'rules'",
                line=1,
                column=1,
                source=source,
            )
        items = data["rules"]
        prefix = ("rules",)
    if not isinstance(items, list):
        line, column = marks.get(prefix, (1, 1))
        raise RuleError(
            f"expected a list of rules, got {_type_name(items)}",
            line=line,
            column=column,
            source=source,
        )
    quoted = _quoted_paths(root, prefix)

    def locate(path: Path) -> tuple[int, int] | None:
        full = (*prefix, *path)
        mark = marks.get(full) or marks.get(full[:-1])
        if mark is None:
            return None
        return (mark[0], mark[1] + quoted.get(full, 0))

    return rules_from_dicts(items, known_signals=known_signals, locate=locate, source=source)


def _quoted_paths(root: yaml.Node | None, prefix: Path) -> dict[Path, int]:
    """Width of the opening quote of each rule's ``matchers`` scalar, to point inside it."""
    out: dict[Path, int] = {}
    node = root
    for key in prefix:
        if not isinstance(node, yaml.MappingNode):
            return out
        node = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
    if not isinstance(node, yaml.SequenceNode):
        return out
    for index, item in enumerate(node.value):
        if isinstance(item, yaml.MappingNode):
            for key_node, value_node in item.value:
                if getattr(key_node, "value", None) == "matchers":
                    out[(*prefix, index, "matchers")] = _quote_width(value_node)
    return out


def rule_to_dict(rule: Rule) -> dict[str, object]:
    """The inverse of :func:`rule_from_dict` (for the API and ``rules list``)."""
    out: dict[str, object] = {
        "name": rule.name,
        "signal": rule.signal,
        "matchers": "{" + ", ".join(str(m) for m in rule.matchers) + "}",
        "comparison": rule.comparison.value,
        "threshold": rule.threshold,
        "for": format_duration(rule.hold_for),
        "severity": rule.severity.value,
        "labels": dict(rule.labels),
        "annotations": dict(rule.annotations),
    }
    if rule.runbook_url is not None:
        out["runbook_url"] = rule.runbook_url
    return out
