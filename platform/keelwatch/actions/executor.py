"""Run one action execution against the registry; record the outcome in the audit log and as
MLflow tags on the versions involved (``keelwatch.action.<id>``), so the MLflow UI shows why a
champion changed.

Exactly once, also across a worker SIGKILLed mid-action: the execution is claimed with a
conditional UPDATE (pending → running) that records the delivery (the Celery task id); the
same message redelivered after the crash finds it running under its own id and resumes, while
any other message for it does nothing. Each action records its target before acting, and on
resume checks whether the act already happened (a rollback tags the version it left with this
execution's id in its reason; a retrain's registration reason names the execution), so it
never acts twice.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from keelwatch.actions.training import (
    TAG_TRAINING_DATA,
    TrainingData,
    load_training_data,
    log_training_data,
)
from keelwatch.actions.training_window import window_spec
from keelwatch.entities.actions import ActionExecution, ActionKind, ExecutionStatus
from keelwatch.entities.registry import (
    TAG_REGISTERED_REASON,
    TAG_ROLLED_BACK_REASON,
    ModelVersionInfo,
)
from keelwatch.entities.time import utcnow
from keelwatch.errors import InvalidInputError, KeelwatchError, NotFoundError
from keelwatch.registry import ModelRegistry
from keelwatch.storage import actions as store
from keelwatch.storage.audit import record_audit
from keelwatch.storage.db import Database
from keelwatch.storage.profiles import find_reference_profile

logger = logging.getLogger(__name__)

#: Registered-model tag naming the model's trainer, ``package.module:function``.
TAG_TRAINER = "keelwatch.trainer"
#: Version tag prefix: ``keelwatch.action.<execution id>`` says why a champion changed.
TAG_EXECUTION_PREFIX = "keelwatch.action."


class ActionFailedError(KeelwatchError):
    """An action that cannot succeed (no known-good version, a trainer that raised, ...)."""


def _why(execution: ActionExecution) -> str:
    return (
        f"alert {execution.alert_fingerprint} episode {execution.episode} "
        f"(execution {execution.id}, policy {execution.policy})"
    )


def _tag_versions(
    registry: ModelRegistry, execution: ActionExecution, versions: list[str], what: str
) -> None:
    text = f"{what} by policy {execution.policy} for alert {execution.alert_fingerprint}"
    for version in versions:
        registry.client.set_model_version_tag(
            execution.model, version, f"{TAG_EXECUTION_PREFIX}{execution.id}", text
        )


def _rollback(db: Database, registry: ModelRegistry, execution: ActionExecution) -> dict[str, Any]:
    model = execution.model
    champion = registry.policy.champion_alias
    current = registry.resolve(f"{model}@{champion}").version
    planned = execution.result.get("from_version")
    if planned is not None and current != planned:
        # Resumed after a crash: did *this* execution already move the champion away?
        left = registry.get_version(model, str(planned))
        if f"execution {execution.id}," in left.tags.get(TAG_ROLLED_BACK_REASON, ""):
            _tag_versions(registry, execution, [str(planned), current], "rollback")
            return {"from_version": planned, "to_version": current, "resumed": True}
    with db.session() as session:
        store.record_result(session, execution.id, {"from_version": current})
    restored = registry.rollback(
        model, actor=f"policy:{execution.policy}", reason=f"rollback for {_why(execution)}"
    )
    _tag_versions(registry, execution, [current, restored.version], "rollback")
    return {"from_version": current, "to_version": restored.version}


def _promote(registry: ModelRegistry, execution: ActionExecution) -> dict[str, Any]:
    model = execution.model
    source = execution.params.get("from_alias", "challenger")
    version = registry.resolve(f"{model}@{source}").version
    gate = _gate_approval(registry, model, version)
    info = registry.promote(
        model,
        version,
        actor=f"policy:{execution.policy}",
        reason=f"promote {source} for {_why(execution)}; {gate}",
    )
    _tag_versions(registry, execution, [info.version], "promote")
    return {"version": info.version, "from_alias": source}


def _gate_approval(registry: ModelRegistry, model: str, version: str) -> str:
    """Why the gate allows promoting ``version``; ActionFailedError when the model has a gate
    policy and the latest gate decision for that version is not ``promote``."""
    from keelwatch.storage import gate as gate_store

    with registry.db.session() as session:
        if gate_store.find_policy(session, model) is None:
            return "the model has no gate policy"
        decision = gate_store.latest_decision(session, model, version)
    if decision is None or decision.outcome != "promote":
        raise ActionFailedError(
            f"gate has not approved v{version}: {decision.outcome if decision else 'none'}"
        )
    return f"gate decision {decision.id} promoted v{version}"


def load_trainer(spec: str) -> Callable[..., Any]:
    """Import ``package.module:function``; InvalidInputError if it is not a callable there."""
    module_name, _, function = spec.partition(":")
    if not module_name or not function:
        raise InvalidInputError(f"trainer {spec!r} is not 'package.module:function'")
    try:
        found = getattr(importlib.import_module(module_name), function)
    except (ImportError, AttributeError) as exc:
        raise InvalidInputError(f"trainer {spec!r} cannot be imported: {exc}") from None
    if not callable(found):
        raise InvalidInputError(f"trainer {spec!r} is not callable")
    return found  # type: ignore[no-any-return]


def _retrain_marker(execution_id: int) -> str:
    # In the registration reason, stored with the version when MLflow creates it: a resumed
    # retrain finds the version this execution registered before the crash by it.
    return f"(execution {execution_id},"


def registered_by_execution(
    registry: ModelRegistry, model: str, execution_id: int
) -> ModelVersionInfo | None:
    """The version a retrain execution registered, if it got that far (found by the
    execution id in the version's registration reason, written atomically with it)."""
    marker = _retrain_marker(execution_id)
    for info in registry.list_versions(model):
        if marker in info.tags.get(TAG_REGISTERED_REASON, ""):
            return info
    return None


def _retrain(db: Database, registry: ModelRegistry, execution: ActionExecution) -> dict[str, Any]:
    """Train on the window (or dataset), register the result, log its training data, attach
    its reference profile and point ``challenger`` at it; never the champion.

    Each step is safe to repeat on resume: the registration is found again by the execution
    id in its reason (so at most one version per execution), and the data tag, the profile
    and the alias are only written when missing or different.
    """
    from keelwatch.monitoring.service.profiles import attach_reference_profile
    from keelwatch.settings import MlflowSettings

    model = execution.model
    spec_text = (registry.client.get_registered_model(model).tags or {}).get(TAG_TRAINER)
    if not spec_text:
        raise ActionFailedError(
            f"model {model!r} has no trainer (keelwatch models set-trainer {model} MODULE:FUNC)"
        )
    spec = window_spec(execution.params)
    actor = f"policy:{execution.policy}"
    data: TrainingData | None = None

    def training_data() -> TrainingData:
        nonlocal data
        if data is None:
            with db.session() as session:
                data = load_training_data(session, registry, model, spec, utcnow())
        return data

    info = registered_by_execution(registry, model, execution.id)
    resumed = info is not None
    if info is None:
        trainer = load_trainer(spec_text)
        window = training_data()
        rows = len(window.frame)
        if rows < spec.min_rows:
            raise ActionFailedError(
                f"the training data has {rows} rows, fewer than min_rows {spec.min_rows} "
                f"({_describe(window.summary)}); the model was not retrained"
            )
        try:
            fitted = trainer(window.frame)
        except Exception as exc:  # noqa: BLE001 - the user's trainer: any error fails the action
            raise ActionFailedError(
                f"trainer {spec_text} raised {type(exc).__name__}: {exc}"
            ) from None
        info = registry.register_sklearn_model(
            model,
            fitted,
            window.frame,
            window.target,
            actor=actor,
            reason=f"retrain for {_why(execution)}",
            params={"keelwatch.execution": execution.id, **window.summary},
        )
        with db.session() as session:
            store.record_result(session, execution.id, {"version": info.version, **window.summary})
    version = info.version
    if TAG_TRAINING_DATA not in info.tags:
        log_training_data(registry, model, version, training_data().frame)
    with db.session() as session:
        if find_reference_profile(session, model, version) is None:
            window = training_data()
            mlflow_settings = MlflowSettings(
                tracking_uri=registry.tracking_uri,
                registry_uri=registry.registry_uri,
                artifact_root=registry.artifact_root,
            )
            attach_reference_profile(
                session,
                registry,
                mlflow_settings,
                model,
                version,
                window.frame,
                actor,
                reason=f"training data of the retrain for {_why(execution)}",
                target=window.target,
            )
    challenger = registry.policy.challenger_alias
    registry.set_alias(
        model, challenger, version, actor=actor, reason=f"retrained for {_why(execution)}"
    )
    _tag_versions(registry, execution, [version], "retrain")
    summary = data.summary if data is not None else dict(execution.result)
    result: dict[str, Any] = {
        **summary,
        "version": version,
        "alias": challenger,
        "trainer": spec_text,
    }
    if resumed:
        result["resumed"] = True
    return result


def _describe(summary: Mapping[str, Any]) -> str:
    if "dataset" in summary:
        return f"dataset {summary['dataset']}"
    return (
        f"{summary.get('reference_rows', 0)} reference rows, "
        f"{summary.get('logged_rows', 0)} labelled rows of the last {summary.get('window')}; "
        f"reference: {summary.get('reference')}"
    )


def _act(db: Database, registry: ModelRegistry, execution: ActionExecution) -> dict[str, Any]:
    if execution.action is ActionKind.ROLLBACK:
        return _rollback(db, registry, execution)
    if execution.action is ActionKind.PROMOTE:
        return _promote(registry, execution)
    if execution.action is ActionKind.RETRAIN:
        return _retrain(db, registry, execution)
    return {"notified": True}  # notify: the notification is the whole action


def _finish(
    db: Database,
    execution: ActionExecution,
    status: ExecutionStatus,
    reason: str,
    result: Mapping[str, Any],
) -> None:
    now = utcnow()
    with db.session() as session:
        if store.finish_execution(
            session, execution.id, status, reason=reason, result=result, now=now
        ):
            record_audit(
                session,
                actor=f"policy:{execution.policy}",
                action=f"action.{status.value}",
                target=f"model:{execution.model}",
                reason=f"alert {execution.alert_fingerprint}: {reason}",
                details={
                    "execution_id": execution.id,
                    "action": execution.action.value,
                    "alert": execution.alert_fingerprint,
                    "episode": execution.episode,
                    **dict(result),
                },
                at=now,
            )


def execute_action(
    db: Database, registry: ModelRegistry, execution_id: int, *, delivery_id: str | None = None
) -> ActionExecution:
    """Claim and run one execution; returns it as it ended. A finished one is returned as is.

    ``delivery_id`` identifies the message (the Celery task id, which a broker redelivery and
    a retry keep): the claim records it, and a running execution is resumed only by the
    delivery that claimed it, so a duplicate message (a second enqueue, the sweeper's) never
    runs an action a second time beside the first.

    Errors a retry cannot fix (Keelwatch errors: no known-good version, a trainer that
    raised, a missing alias) fail the execution with their message; anything else is raised
    for the task's retry, which resumes the running execution.
    """
    with db.session() as session:
        store.claim_execution(session, execution_id, utcnow(), claimed_by=delivery_id)
        execution = store.get_execution(session, execution_id)
    if execution is None:
        raise NotFoundError(f"action execution {execution_id} does not exist")
    if execution.status is not ExecutionStatus.RUNNING:
        return execution  # finished, rejected, skipped or awaiting: nothing to do
    if execution.claimed_by != delivery_id:
        logger.info(
            "action execution %s is running under another delivery; this one does nothing",
            execution_id,
        )
        return execution
    try:
        result = _act(db, registry, execution)
    except KeelwatchError as exc:
        logger.warning("action execution %s failed: %s", execution_id, exc)
        with db.session() as session:
            current = store.get_execution(session, execution_id)
        planned = dict(current.result) if current is not None else {}
        _finish(db, execution, ExecutionStatus.FAILED, str(exc), planned)
    else:
        _finish(db, execution, ExecutionStatus.SUCCEEDED, f"{execution.action.value} done", result)
    with db.session() as session:
        final = store.get_execution(session, execution_id)
    assert final is not None  # it existed above, and executions are never deleted
    return final


def fail_execution(db: Database, execution_id: int, message: str) -> None:
    """Mark a running execution failed (the task gave up on transient errors)."""
    with db.session() as session:
        execution = store.get_execution(session, execution_id)
    if execution is not None:
        _finish(db, execution, ExecutionStatus.FAILED, message, dict(execution.result))
