"""Action policies (parsing, errors with the position of the mistake) and guards (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from keelwatch.actions.guards import Verdict, decide
from keelwatch.actions.policies import (
    PolicyError,
    load_policies_yaml,
    parse_policy,
    policy_matches,
    policy_to_dict,
)
from keelwatch.entities.actions import (
    ActionExecution,
    ActionKind,
    ExecutionStatus,
    Guards,
    Policy,
    PolicyMode,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

POLICIES = """
policies:
  - name: rollback-on-drift
    match: '{alertname="dataset-drift", severity="critical"}'
    action: rollback
    guards: {cooldown: 10m, max_actions: 2, window: 1h, max_consecutive: 2}
  - name: retrain
    match: ['model=~"credit.*"']
    action: retrain
    mode: manual
    params: {queue: gpu, dataset: /data/train.parquet}
"""


def test_policies_parse_and_round_trip() -> None:
    rollback, retrain = load_policies_yaml(POLICIES)
    assert rollback.action is ActionKind.ROLLBACK and rollback.mode is PolicyMode.AUTO
    assert rollback.guards == Guards(
        cooldown=timedelta(minutes=10),
        max_actions=2,
        window=timedelta(hours=1),
        max_consecutive=2,
    )
    assert retrain.params == {"queue": "gpu", "dataset": "/data/train.parquet"}
    assert retrain.mode is PolicyMode.MANUAL
    for policy in (rollback, retrain):
        assert parse_policy(policy_to_dict(policy)) == policy
    labels = {"alertname": "dataset-drift", "severity": "critical", "model": "credit"}
    assert policy_matches(rollback, labels)
    assert not policy_matches(rollback, {**labels, "severity": "warning"})
    assert policy_matches(retrain, {"model": "credit-v2"})
    assert not policy_matches(retrain, {"model": "fraud"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[{name: a, action: explode}]", "policy #1 'a', field 'action': unknown action 'explode'"),
        ("[{name: a, action: rollback, match: 'model=~(\"'}]", "field 'match': column"),
        ("[{name: a, action: rollback, mode: yolo}]", "field 'mode': unknown mode 'yolo'"),
        (
            "[{name: a, action: rollback}, {name: b, action: notify, guards: {cooldown: 5}}]",
            "policy #2 'b', field 'guards.cooldown': a duration needs a unit",
        ),
        ("[{name: a, action: rollback, guards: {max_actions: 0}}]", "guards.max_actions"),
        ("[{name: a, action: rollback, guards: {ttl: 1m}}]", "unknown guard 'ttl'"),
        ("[{name: a, action: retrain, params: {queue: tpu}}]", "queue must be one of cpu, gpu"),
        ("[{name: a, action: rollback, params: {queue: cpu}}]", "unknown parameter 'queue'"),
        ("[{name: a, action: rollback, when: now}]", "field 'when': unknown field"),
        ("[{name: a, action: rollback}, {name: a, action: notify}]", "#2 'a', field 'name'"),
        ("[{action: rollback}]", "policy #1, field 'name'"),
        ("policies: [{name: a\n  action: x", "line 2, column"),
        ("policies: 3", "expected a list of policies"),
    ],
)
def test_bad_policies_are_rejected_with_where_and_why(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policies_yaml(text)
    assert message in str(caught.value)


def execution(
    number: int,
    *,
    minutes_ago: float,
    model: str = "credit",
    policy: str = "p",
    action: ActionKind = ActionKind.ROLLBACK,
    status: ExecutionStatus = ExecutionStatus.SUCCEEDED,
    decided_by: str = "policy:p",
) -> ActionExecution:
    return ActionExecution(
        id=number,
        policy=policy,
        action=action,
        model=model,
        alert_fingerprint=f"fp{number}",
        episode=1,
        status=status,
        reason="",
        created_at=NOW - timedelta(minutes=minutes_ago),
        decided_by=decided_by,
    )


def policy(mode: PolicyMode = PolicyMode.AUTO, **guards: object) -> Policy:
    base = {"cooldown": timedelta(minutes=10), "max_actions": None, "max_consecutive": None}
    return Policy(
        name="p",
        action=ActionKind.ROLLBACK,
        mode=mode,
        guards=Guards(**{**base, **guards}),  # type: ignore[arg-type]
    )


def test_guards_allow_with_no_history_and_modes() -> None:
    assert decide(policy(), "credit", [], NOW).verdict is Verdict.ALLOW
    manual = decide(policy(PolicyMode.MANUAL), "credit", [], NOW)
    assert manual.verdict is Verdict.WAIT_FOR_APPROVAL and "manual" in manual.reason
    dry = decide(policy(PolicyMode.DRY_RUN), "credit", [], NOW)
    assert dry.verdict is Verdict.SKIP and dry.reason == "dry run: would rollback model 'credit'"


def test_cooldown_counts_same_kind_on_same_model_only() -> None:
    recent = execution(1, minutes_ago=5)
    decision = decide(policy(), "credit", [recent], NOW)
    assert decision.verdict is Verdict.SKIP and decision.reason.startswith("cooldown:")
    # Another model, another action, a skipped or rejected one, or an old one: no cooldown.
    for other in (
        execution(2, minutes_ago=5, model="fraud"),
        execution(3, minutes_ago=5, action=ActionKind.RETRAIN),
        execution(4, minutes_ago=5, status=ExecutionStatus.SKIPPED),
        execution(5, minutes_ago=5, status=ExecutionStatus.REJECTED),
        execution(6, minutes_ago=10),
    ):
        assert decide(policy(), "credit", [other], NOW).verdict is Verdict.ALLOW, other


def test_max_actions_per_window() -> None:
    history = [
        execution(1, minutes_ago=50, model="a"),
        execution(2, minutes_ago=30, model="b"),
        execution(3, minutes_ago=70, model="c"),  # outside the hour
    ]
    guarded = policy(max_actions=2, window=timedelta(hours=1))
    decision = decide(guarded, "credit", history, NOW)
    assert decision.verdict is Verdict.SKIP
    assert decision.reason == "max_actions: policy 'p' acted 2 times in the last 1h (limit 2)"
    assert decide(guarded, "credit", history[:1], NOW).verdict is Verdict.ALLOW


def test_max_consecutive_waits_for_a_person_and_approval_resets() -> None:
    guarded = policy(max_consecutive=2)
    two_auto = [execution(1, minutes_ago=60), execution(2, minutes_ago=30)]
    decision = decide(guarded, "credit", two_auto, NOW)
    assert decision.verdict is Verdict.WAIT_FOR_APPROVAL
    assert decision.reason.startswith("max_consecutive: 2 automatic actions in a row")
    approved = execution(3, minutes_ago=20, decided_by="alice")
    assert decide(guarded, "credit", [*two_auto, approved], NOW).verdict is Verdict.ALLOW
    after = [*two_auto, approved, execution(4, minutes_ago=15)]
    assert decide(guarded, "credit", after, NOW).verdict is Verdict.ALLOW
    assert decide(guarded, "fraud", two_auto, NOW).verdict is Verdict.ALLOW
