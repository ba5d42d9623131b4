"""Action policies from YAML text or dicts, validated with the position of every mistake.

A policy file::

    policies:
      - name: rollback-on-drift
        match: '{alertname="dataset-drift", severity="critical"}'
        action: rollback            # rollback | retrain | promote | notify
        mode: auto                  # auto | manual (waits for approval) | dry_run
        params: {queue: cpu}        # retrain: queue (cpu|gpu), dataset (a path) or window
                                    # (7d) and min_rows (100), target
        guards: {cooldown: 30m, max_actions: 5, window: 1d, max_consecutive: 3}

``match`` uses Alertmanager's matcher syntax (``keelwatch.alerting.matchers``) and is applied
to the alert's labels (``alertname`` and ``severity`` among them). Alerts without a ``model``
label never trigger an action: there would be nothing to act on.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import yaml

from keelwatch.alerting.matchers import MatcherSyntaxError, matches_all, parse_matchers
from keelwatch.alerting.rules import format_duration, parse_duration
from keelwatch.entities.actions import ActionKind, Guards, Policy, PolicyMode
from keelwatch.entities.alerts import Matcher
from keelwatch.errors import InvalidInputError

__all__ = [
    "PolicyError",
    "load_policies_yaml",
    "parse_policies",
    "parse_policy",
    "policy_matches",
    "policy_to_dict",
]

_FIELDS = frozenset({"name", "match", "action", "mode", "params", "guards"})
_GUARD_FIELDS = frozenset({"cooldown", "max_actions", "window", "max_consecutive"})
_PARAMS = {
    ActionKind.RETRAIN: frozenset({"queue", "dataset", "target", "window", "min_rows"}),
    ActionKind.ROLLBACK: frozenset(),
    ActionKind.PROMOTE: frozenset({"from_alias"}),
    ActionKind.NOTIFY: frozenset(),
}
_QUEUES = ("cpu", "gpu")


class PolicyError(InvalidInputError):
    """A policy that cannot be accepted: which one (by position and name), which field, why."""

    def __init__(
        self, reason: str, *, index: int | None = None, name: str = "", field: str = ""
    ) -> None:
        where = "policy"
        if index is not None:
            where += f" #{index + 1}"
        if name:
            where += f" {name!r}"
        if field:
            where += f", field {field!r}"
        super().__init__(f"{where}: {reason}")
        self.reason = reason
        self.field = field


class _Where:
    def __init__(self, index: int | None) -> None:
        self.index = index
        self.name = ""

    def fail(self, reason: str, field: str = "") -> PolicyError:
        return PolicyError(reason, index=self.index, name=self.name, field=field)


def _type(value: object) -> str:
    return type(value).__name__


def _matchers(where: _Where, value: object) -> tuple[Matcher, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        texts: list[object] = [value]
    elif isinstance(value, list):
        texts = list(value)
    else:
        raise where.fail(
            f"expected a matcher string or a list of them, got {_type(value)}", "match"
        )
    found: list[Matcher] = []
    for text in texts:
        if not isinstance(text, str):
            raise where.fail(f"matchers are strings, got {_type(text)}", "match")
        try:
            found.extend(parse_matchers(text))
        except MatcherSyntaxError as exc:
            raise where.fail(f"{exc} in {text!r}", "match") from None
    return tuple(found)


def _duration(
    where: _Where, data: Mapping[str, object], field: str, default: timedelta
) -> timedelta:
    if field not in data:
        return default
    try:
        return parse_duration(data[field])
    except InvalidInputError as exc:
        raise where.fail(str(exc), f"guards.{field}") from None


def _count(
    where: _Where, data: Mapping[str, object], field: str, default: int | None
) -> int | None:
    if field not in data:
        return default
    value = data[field]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise where.fail(f"expected a whole number >= 1 or null, got {value!r}", f"guards.{field}")
    return value


def _guards(where: _Where, value: object) -> Guards:
    if value is None:
        return Guards()
    if not isinstance(value, Mapping):
        raise where.fail(f"expected a mapping, got {_type(value)}", "guards")
    unknown = sorted(set(map(str, value)) - _GUARD_FIELDS)
    if unknown:
        raise where.fail(
            f"unknown guard {unknown[0]!r} (known: {', '.join(sorted(_GUARD_FIELDS))})", "guards"
        )
    default = Guards()
    return Guards(
        cooldown=_duration(where, value, "cooldown", default.cooldown),
        max_actions=_count(where, value, "max_actions", default.max_actions),
        window=_duration(where, value, "window", default.window),
        max_consecutive=_count(where, value, "max_consecutive", default.max_consecutive),
    )


def _params(where: _Where, action: ActionKind, value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise where.fail(f"expected a mapping, got {_type(value)}", "params")
    params: dict[str, str] = {}
    allowed = _PARAMS[action]
    for key, item in value.items():
        if key not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise where.fail(
                f"unknown parameter {key!r} for {action.value} (known: {known})", "params"
            )
        if isinstance(item, int) and not isinstance(item, bool):
            item = str(item)  # min_rows: 100 in YAML; params are kept as text
        if not isinstance(item, str) or not item.strip():
            raise where.fail(f"parameter {key!r} must be a non-empty string", "params")
        params[str(key)] = item.strip()
    if params.get("queue", "cpu") not in _QUEUES:
        raise where.fail(f"queue must be one of {', '.join(_QUEUES)}", "params")
    if "window" in params:
        try:
            if parse_duration(params["window"]) <= timedelta(0):
                raise InvalidInputError("must be longer than 0s")
        except InvalidInputError as exc:
            raise where.fail(f"window: {exc}", "params") from None
    rows = params.get("min_rows", "1")
    if not (rows.isdigit() and int(rows) >= 1):
        raise where.fail("min_rows must be a whole number >= 1", "params")
    return params


def parse_policy(data: object, *, index: int | None = None) -> Policy:
    """One policy from a mapping; :class:`PolicyError` names the policy, the field and why."""
    where = _Where(index)
    if not isinstance(data, Mapping):
        raise where.fail(f"expected a mapping, got {_type(data)}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise where.fail("a policy needs a non-empty string name", "name")
    where.name = name.strip()
    unknown = sorted(set(map(str, data)) - _FIELDS)
    if unknown:
        raise where.fail(f"unknown field (known: {', '.join(sorted(_FIELDS))})", unknown[0])
    actions = ", ".join(kind.value for kind in ActionKind)
    try:
        action = ActionKind(str(data.get("action")))
    except ValueError:
        raise where.fail(
            f"unknown action {data.get('action')!r} (known: {actions})", "action"
        ) from None
    modes = ", ".join(mode.value for mode in PolicyMode)
    try:
        mode = PolicyMode(str(data.get("mode", PolicyMode.AUTO.value)))
    except ValueError:
        raise where.fail(f"unknown mode {data.get('mode')!r} (known: {modes})", "mode") from None
    return Policy(
        name=where.name,
        action=action,
        matchers=_matchers(where, data.get("match")),
        mode=mode,
        guards=_guards(where, data.get("guards")),
        params=_params(where, action, data.get("params")),
    )


def parse_policies(data: object) -> list[Policy]:
    """Policies from ``{"policies": [...]}`` or a bare list; names must be unique."""
    items = data.get("policies") if isinstance(data, Mapping) else data
    if not isinstance(items, list):
        raise PolicyError("expected a list of policies (or a mapping with a 'policies' list)")
    policies = [parse_policy(item, index=i) for i, item in enumerate(items)]
    seen: set[str] = set()
    for i, policy in enumerate(policies):
        if policy.name in seen:
            raise PolicyError("duplicate name", index=i, name=policy.name, field="name")
        seen.add(policy.name)
    return policies


def load_policies_yaml(text: str) -> list[Policy]:
    """Policies from YAML text (safe loader: no Python objects, never ``eval``)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise PolicyError(f"{where}{problem}") from None
    return parse_policies(data)


def policy_matches(policy: Policy, labels: Mapping[str, str]) -> bool:
    """Whether an alert with ``labels`` triggers ``policy``."""
    return matches_all(policy.matchers, labels)


def policy_to_dict(policy: Policy) -> dict[str, object]:
    """The policy as the mapping :func:`parse_policy` reads (stored as the definition)."""
    guards = policy.guards
    return {
        "name": policy.name,
        "match": [str(m) for m in policy.matchers],
        "action": policy.action.value,
        "mode": policy.mode.value,
        "params": dict(policy.params),
        "guards": {
            "cooldown": format_duration(guards.cooldown),
            "max_actions": guards.max_actions,
            "window": format_duration(guards.window),
            "max_consecutive": guards.max_consecutive,
        },
    }
