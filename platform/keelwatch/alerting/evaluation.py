"""Evaluate rules against a batch of signals: which alerts start, fire, resolve.

``evaluate(rules, signals, now, alerts)`` is pure: it takes the rules (or a prebuilt
:class:`RuleIndex`), the signals, the clock and the current alerts by fingerprint, and returns
the new alerts and the transitions (the history to keep). The engine calls it when a result
arrives (the signals of that result) and on a beat tick (``resolve_missing=True`` with the
latest signal of every live series, so alerts whose series went quiet resolve, and pending ones
whose ``for`` elapsed fire).

Only the latest signal of each series (name + labels) counts. Rules are indexed by signal name
and by one equality matcher, so a batch costs about (signals x rules that could match it), not
signals x rules.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from keelwatch.alerting.lifecycle import (
    alert_fingerprint,
    alert_labels,
    carry,
    condition_holds,
    hold,
    release,
)
from keelwatch.alerting.matchers import matches_all
from keelwatch.entities.alerts import Alert, AlertTransition, MatchOp, Rule
from keelwatch.entities.signals import Signal

__all__ = ["Evaluation", "RuleIndex", "evaluate", "latest_per_series"]

_IDENTITY_CACHE_SIZE = 1_000_000


class RuleIndex:
    """Rules grouped by signal name, then by their first ``=`` matcher's (label, value)."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules: dict[str, Rule] = {}
        self._by_equality: dict[str, dict[str, dict[str, list[Rule]]]] = defaultdict(
            lambda: defaultdict(lambda: defaultdict(list))
        )
        self._unindexed: dict[str, list[Rule]] = defaultdict(list)
        # (rule name, signal name, series fingerprint) -> (alert labels, alert fingerprint):
        # the same series meets the same rules at every evaluation.
        self._identities: dict[tuple[str, str, str], tuple[dict[str, str], str]] = {}
        for rule in rules:
            self.rules[rule.name] = rule
            equality = next((m for m in rule.matchers if m.op is MatchOp.EQUAL), None)
            if equality is None:
                self._unindexed[rule.signal].append(rule)
            else:
                self._by_equality[rule.signal][equality.name][equality.value].append(rule)

    def candidates(self, signal: Signal) -> list[Rule]:
        """Rules that may match ``signal`` (the name and the indexed matcher agree)."""
        found = list(self._unindexed.get(signal.name, ()))
        for label, by_value in self._by_equality.get(signal.name, {}).items():
            found.extend(by_value.get(signal.labels.get(label, ""), ()))
        return found

    def identity(self, rule: Rule, signal: Signal) -> tuple[dict[str, str], str]:
        """The labels and fingerprint of the alert ``rule`` raises for ``signal``'s series."""
        key = (rule.name, signal.name, signal.fingerprint)
        found = self._identities.get(key)
        if found is None:
            if len(self._identities) >= _IDENTITY_CACHE_SIZE:
                self._identities.clear()
            labels = alert_labels(rule, signal.labels)
            found = self._identities[key] = (labels, alert_fingerprint(labels))
        return found

    def matching(self, signal: Signal) -> list[Rule]:
        """Rules whose selector (name and every matcher) matches ``signal``."""
        return [r for r in self.candidates(signal) if matches_all(r.matchers, signal.labels)]


@dataclass(frozen=True)
class Evaluation:
    """The outcome: every alert by fingerprint (changed or not) and the transitions, in order."""

    alerts: dict[str, Alert]
    transitions: list[AlertTransition] = field(default_factory=list)

    @property
    def changed(self) -> list[Alert]:
        """The alerts that changed state in this evaluation, in transition order."""
        seen = dict.fromkeys(t.fingerprint for t in self.transitions)
        return [self.alerts[fp] for fp in seen]


def latest_per_series(signals: Iterable[Signal]) -> list[Signal]:
    """The newest signal of each series (name + labels); ties keep the later one given."""
    latest: dict[tuple[str, str], Signal] = {}
    for signal in signals:
        key = (signal.name, signal.fingerprint)
        kept = latest.get(key)
        if kept is None or signal.observed_at >= kept.observed_at:
            latest[key] = signal
    return list(latest.values())


def evaluate(
    rules: RuleIndex | Sequence[Rule],
    signals: Iterable[Signal],
    now: datetime,
    alerts: Mapping[str, Alert],
    *,
    resolve_missing: bool = False,
) -> Evaluation:
    """Apply every rule to the latest signal of each series and advance the alerts.

    An alert whose series has a signal here follows its condition (hold or release). One whose
    series has no signal here keeps its state (a pending one still fires once ``for`` elapsed),
    unless ``resolve_missing``: then it is released, as is any alert of a rule no longer given.
    """
    index = rules if isinstance(rules, RuleIndex) else RuleIndex(rules)
    out = dict(alerts)
    transitions: list[AlertTransition] = []
    seen: set[str] = set()

    def record(alert: Alert, transition: AlertTransition | None) -> None:
        out[alert.fingerprint] = alert
        if transition is not None:
            transitions.append(transition)

    # A series below its threshold matters only if its rule has an active alert to release;
    # skipping the others spares most identity work on a quiet fleet.
    releasable = {a.rule_name for a in alerts.values() if a.state.active}
    for signal in latest_per_series(signals):
        for rule in index.matching(signal):
            holds = condition_holds(rule, signal.value)
            if not holds and rule.name not in releasable:
                continue
            labels, fingerprint = index.identity(rule, signal)
            seen.add(fingerprint)
            current = out.get(fingerprint)
            if holds:
                record(*hold(rule, labels, signal.value, now, current, fingerprint))
            elif current is not None:
                record(*release(current, now))
    for fingerprint, alert in alerts.items():
        if fingerprint in seen or not alert.state.active:
            continue
        owner = index.rules.get(alert.rule_name)
        if owner is None or resolve_missing:
            record(*release(alert, now))
        else:
            record(*carry(owner, alert, now))
    return Evaluation(out, transitions)
