"""Silences in time, ends_when_resolved, and Alertmanager's inhibition rule."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from keelwatch.alerting.grouping import muted_alerts
from keelwatch.alerting.inhibition import inhibited_by
from keelwatch.alerting.lifecycle import alert_fingerprint
from keelwatch.alerting.matchers import parse_matchers
from keelwatch.alerting.silences import (
    SilenceState,
    end_resolved_silences,
    new_silence,
    silence_state,
    silenced_by,
)
from keelwatch.entities.alerts import Alert, AlertState, InhibitRule, Severity, Silence
from keelwatch.errors import InvalidInputError

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def alert(
    severity: str, model: str = "m", state: AlertState = AlertState.FIRING, **extra: str
) -> Alert:
    labels = {"alertname": f"{severity}-{model}", "severity": severity, "model": model, **extra}
    return Alert(
        fingerprint=alert_fingerprint(labels),
        rule_name=labels["alertname"],
        labels=labels,
        annotations={},
        severity=Severity(severity),
        state=state,
        value=1.0,
        episode=1,
        active_since=T0,
        last_evaluated_at=T0,
        fired_at=T0,
    )


def silence(matchers: str = 'model="m"', *, minutes: int = 60, **kw: bool) -> Silence:
    return new_silence(
        id="s1",
        matchers=parse_matchers(matchers),
        author="ana",
        comment="deploying",
        starts_at=T0,
        ends_at=T0 + timedelta(minutes=minutes),
        **kw,
    )


def test_silence_states_in_time() -> None:
    s = silence()
    assert silence_state(s, T0 - timedelta(seconds=1)) is SilenceState.PENDING
    assert silence_state(s, T0) is SilenceState.ACTIVE
    assert silence_state(s, T0 + timedelta(minutes=60)) is SilenceState.EXPIRED
    assert silenced_by({"model": "m"}, [s], T0) == ["s1"]
    assert silenced_by({"model": "other"}, [s], T0) == []
    assert silenced_by({"model": "m"}, [s], T0 + timedelta(hours=2)) == []


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"matchers": ()}, "at least one matcher"),
        ({"author": " "}, "author"),
        ({"comment": ""}, "comment"),
        ({"ends_at": T0}, "end after it starts"),
        ({"starts_at": T0.replace(tzinfo=None)}, "timezone-aware"),
    ],
)
def test_new_silence_rejects(changes: dict[str, object], reason: str) -> None:
    args: dict[str, object] = {
        "id": "s",
        "matchers": parse_matchers('a="b"'),
        "author": "ana",
        "comment": "why",
        "starts_at": T0,
        "ends_at": T0 + timedelta(hours=1),
        **changes,
    }
    with pytest.raises(InvalidInputError, match=reason):
        new_silence(**args)  # type: ignore[arg-type]


def test_ends_when_resolved_ends_once_all_matched_alerts_resolved() -> None:
    s = silence(ends_when_resolved=True)
    now = T0 + timedelta(minutes=5)
    firing, other = alert("warning"), alert("critical")
    assert end_resolved_silences([s], [firing, other], now) == []
    one_done = replace(firing, state=AlertState.RESOLVED, resolved_at=now)
    assert end_resolved_silences([s], [one_done, other], now) == []  # other still fires
    both = [one_done, replace(other, state=AlertState.RESOLVED, resolved_at=now)]
    (ended,) = end_resolved_silences([s], both, now)
    assert ended.ends_at == now and silence_state(ended, now) is SilenceState.EXPIRED
    assert end_resolved_silences([silence()], both, now) == []  # flag off: runs to its end


def test_ends_when_resolved_ignores_resolutions_before_the_silence() -> None:
    s = replace(silence(ends_when_resolved=True), starts_at=T0 + timedelta(minutes=1))
    old = replace(alert("warning"), state=AlertState.RESOLVED, resolved_at=T0)
    assert end_resolved_silences([s], [old], T0 + timedelta(minutes=2)) == []


def test_firing_critical_inhibits_warning_of_the_same_model_only() -> None:
    crit, warn, other = alert("critical"), alert("warning"), alert("warning", model="n")
    assert inhibited_by([crit, warn, other]) == {warn.fingerprint: crit.fingerprint}


def test_only_firing_sources_inhibit() -> None:
    pending = replace(alert("critical"), state=AlertState.PENDING)
    resolved = replace(alert("critical"), state=AlertState.RESOLVED)
    assert inhibited_by([pending, alert("warning")]) == {}
    assert inhibited_by([resolved, alert("warning")]) == {}


def test_equal_labels_missing_on_both_sides_count_as_equal() -> None:
    rule = InhibitRule(equal=("model", "region"))
    crit, warn = alert("critical"), alert("warning")
    assert inhibited_by([crit, warn], [rule]) == {warn.fingerprint: crit.fingerprint}
    eu = alert("warning", region="eu")
    assert inhibited_by([crit, eu], [rule]) == {}


def test_an_alert_matching_both_sides_does_not_inhibit_itself_or_its_twin() -> None:
    rule = InhibitRule(source=parse_matchers('team="ml"'), target=parse_matchers('team="ml"'))
    a, b = alert("warning", team="ml"), alert("critical", team="ml")
    assert inhibited_by([a, b], [rule]) == {}


def test_muted_alerts_names_the_reason() -> None:
    crit, warn, other = alert("critical"), alert("warning"), alert("warning", model="n")
    muted = muted_alerts([crit, warn, other], T0, silences=[silence('model="n"')])
    assert muted == {
        warn.fingerprint: f"inhibited:{crit.fingerprint}",
        other.fingerprint: "silence:s1",
    }
