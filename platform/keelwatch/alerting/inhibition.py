"""Inhibition: a firing alert mutes related, less important ones.

Alertmanager's rule: an alert matching an inhibit rule's ``target`` matchers is muted while an
alert matching its ``source`` matchers is *firing* and both have the same values for every
label in ``equal`` (a label missing on both sides counts as equal). An alert never inhibits
itself, and an alert that matches both sides is not muted by sources that also match both, so
two critical-and-warning look-alikes cannot mute each other. The default rule: a firing
``critical`` alert mutes ``warning`` alerts of the same ``model``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from keelwatch.alerting.matchers import matches_all
from keelwatch.entities.alerts import Alert, AlertState, InhibitRule

__all__ = ["DEFAULT_INHIBIT_RULES", "inhibited_by"]

DEFAULT_INHIBIT_RULES: tuple[InhibitRule, ...] = (InhibitRule(),)


def inhibited_by(
    alerts: Iterable[Alert], rules: Sequence[InhibitRule] = DEFAULT_INHIBIT_RULES
) -> dict[str, str]:
    """Map each inhibited alert's fingerprint to the fingerprint of a firing alert muting it."""
    alerts = list(alerts)
    muted: dict[str, str] = {}
    for rule in rules:
        sources = [
            a for a in alerts if a.state is AlertState.FIRING and matches_all(rule.source, a.labels)
        ]
        if not sources:
            continue
        for target in alerts:
            if target.fingerprint in muted or not matches_all(rule.target, target.labels):
                continue
            both_sides = matches_all(rule.source, target.labels)
            for source in sources:
                if source.fingerprint == target.fingerprint:
                    continue
                if both_sides and matches_all(rule.target, source.labels):
                    continue
                if all(source.labels.get(n, "") == target.labels.get(n, "") for n in rule.equal):
                    muted[target.fingerprint] = source.fingerprint
                    break
    return muted
