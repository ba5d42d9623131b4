"""The champion/challenger gate on the platform: policies, gate-check jobs, applying verdicts.

A model's gate policy (:mod:`keelwatch.monitoring.evaluation.gate_policy`) is stored per model
(``gate_policies``, audited). A gate check pins the champion version (the registry's champion
alias), the challenger (given, else the ``challenger`` alias, else the newest version that is not
the champion) and the dataset version in a job of kind ``gate_check``; the worker
(:mod:`keelwatch.monitoring.service.gate_runner`) evaluates both on the same frame, decides,
and calls :func:`apply_gate_decision`.

Approval: the gate does not approve versions. When the registry requires approval before
champion and the challenger is not approved, a ``promote`` verdict is recorded but the alias
does not move, and the reasons say why; approving the version and running the gate (or the
``promote`` action) again completes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from keelwatch.contract import (
    EVALUATION_GATE_CHECK,
    JOB_GATE_CHECK,
    QUEUE_CPU,
    QUEUE_GPU,
    BrokerUnavailableError,
    EvaluationPayload,
)
from keelwatch.entities import Job, JobStatus
from keelwatch.entities.gate import GateDecisionRecord, GatePolicyRecord
from keelwatch.entities.registry import ApprovalState
from keelwatch.errors import ConflictError, InvalidInputError, NotFoundError
from keelwatch.monitoring.evaluation.gate_policy import GatePolicy, parse_gate_policy
from keelwatch.monitoring.service.evaluations import parse_dataset_ref, queue_for_model
from keelwatch.storage import evaluations as eval_store
from keelwatch.storage import gate as store
from keelwatch.storage.audit import record_audit
from keelwatch.storage.jobs import create_job, finish_job

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from keelwatch.contract import TaskSender
    from keelwatch.registry import ModelRegistry
    from keelwatch.storage.db import Database

#: Version tags the gate writes on both versions of a decision.
TAG_OUTCOME = "keelwatch.gate.outcome"
TAG_DECISION_ID = "keelwatch.gate.decision_id"
TAG_REASONS = "keelwatch.gate.reasons"
#: MLflow's limit on a model version tag's value.
MAX_TAG_VALUE = 5000


def policy_target(model: str) -> str:
    """Audit-log target of a model's gate."""
    return f"gate:{model}"[:255]


def _actor(actor: str) -> str:
    if not actor or not actor.strip():
        raise InvalidInputError("actor must not be empty")
    return actor.strip()


# --------------------------------------------------------------------------- policies


def set_policy(
    session: Session,
    model: str,
    policy_data: Mapping[str, Any],
    *,
    actor: str,
    reason: str = "",
) -> GatePolicyRecord:
    """Check and store the model's gate policy (replacing any), audited ``gate.policy.set``."""
    actor = _actor(actor)
    if not model or not model.strip():
        raise InvalidInputError("model must not be empty")
    policy = parse_gate_policy(policy_data)
    if policy.dataset is not None and eval_store.find_dataset(session, policy.dataset) is None:
        raise InvalidInputError(f"policy dataset {policy.dataset!r} is not registered")
    record, previous = store.upsert_policy(session, model, policy.as_dict(), actor=actor)
    record_audit(
        session,
        actor=actor,
        action="gate.policy.set",
        target=policy_target(model),
        reason=reason or f"gate policy for {model}",
        details={"policy": record.policy, "previous": previous},
    )
    return record


def get_policy(session: Session, model: str) -> GatePolicyRecord:
    """The model's gate policy; NotFoundError when it has none."""
    return store.get_policy(session, model)


def find_policy(session: Session, model: str) -> GatePolicyRecord | None:
    """The model's gate policy, or None."""
    return store.find_policy(session, model)


def list_policies(session: Session) -> list[GatePolicyRecord]:
    """Every model's gate policy."""
    return store.list_policies(session)


def delete_policy(session: Session, model: str, *, actor: str, reason: str = "") -> None:
    """Remove the model's gate policy (audited); NotFoundError when it has none."""
    actor = _actor(actor)
    previous = store.get_policy(session, model)
    store.delete_policy(session, model)
    record_audit(
        session,
        actor=actor,
        action="gate.policy.delete",
        target=policy_target(model),
        reason=reason or f"remove the gate policy of {model}",
        details={"previous": previous.policy},
    )


# --------------------------------------------------------------------------- checks


def _challenger_version(
    registry: ModelRegistry, model: str, champion: str, challenger: str | None
) -> str:
    if challenger is not None:
        return registry.get_version(model, challenger.strip().lstrip("v")).version
    try:
        return registry.resolve(f"{model}@{registry.policy.challenger_alias}").version
    except NotFoundError:
        pass
    others = [v.version for v in registry.list_versions(model) if v.version != champion]
    if not others:
        raise InvalidInputError(f"model {model!r} has no version other than the champion")
    return max(others, key=int)


def create_gate_check(
    session: Session,
    registry: ModelRegistry,
    *,
    model: str,
    challenger: str | None = None,
    dataset: str | None = None,
    actor: str,
    trigger: str = "manual",
    reason: str = "",
) -> Job:
    """Pin champion, challenger and dataset version in a ``gate_check`` job, audited
    ``gate.check``. ``dataset``: ``name``, ``name:N`` or ``name@N``; default the policy's.
    Nothing is sent: the caller commits, then calls :func:`enqueue_gate_check`."""
    actor = _actor(actor)
    policy = parse_gate_policy(store.get_policy(session, model).policy)
    try:
        champion = registry.resolve(f"{model}@{registry.policy.champion_alias}")
    except NotFoundError as exc:
        raise ConflictError(
            f"model {model!r} has no {registry.policy.champion_alias} to compare against"
        ) from exc
    challenger_version = _challenger_version(registry, model, champion.version, challenger)
    if challenger_version == champion.version:
        raise InvalidInputError(
            f"v{challenger_version} is already the champion of {model}; nothing to compare"
        )
    contender = registry.resolve(f"{model}/{challenger_version}")
    if dataset is not None:
        name, version = parse_dataset_ref(dataset.replace("@", ":"))
    elif policy.dataset is not None:
        name, version = policy.dataset, policy.dataset_version
    else:
        raise InvalidInputError(
            f"the gate policy of {model} names no dataset; pass one with the check"
        )
    pinned = eval_store.get_dataset(session, name, version)
    queues = {
        queue_for_model(registry, model, champion.version),
        queue_for_model(registry, model, challenger_version),
    }
    queue = QUEUE_GPU if QUEUE_GPU in queues else QUEUE_CPU
    params: dict[str, Any] = {
        "model_name": model,
        "champion": {"version": champion.version, "model_uri": champion.model_uri},
        "challenger": {"version": challenger_version, "model_uri": contender.model_uri},
        "dataset": {
            "name": pinned.name,
            "version": pinned.version,
            "content_hash": pinned.content_hash,
        },
        "policy": policy.as_dict(),
        "trigger": trigger,
        "queue": queue,
    }
    job = create_job(session, kind=JOB_GATE_CHECK, params=params, submitted_by=actor)
    record_audit(
        session,
        actor=actor,
        action="gate.check",
        target=policy_target(model),
        reason=reason
        or f"gate v{challenger_version} against champion v{champion.version} on {pinned.name}",
        details={
            "job_id": job.id,
            "champion_version": champion.version,
            "challenger_version": challenger_version,
            "dataset": f"{pinned.name}:{pinned.version}",
            "trigger": trigger,
        },
    )
    return job


def enqueue_gate_check(db: Database, sender: TaskSender, job: Job) -> None:
    """Send a committed gate-check job; if the broker refuses, fail the job and raise
    BrokerUnavailableError."""
    try:
        sender.send_task(
            EVALUATION_GATE_CHECK,
            kwargs=EvaluationPayload(job_id=job.id).model_dump(),
            queue=str(job.params.get("queue") or QUEUE_CPU),
            ignore_result=True,
        )
    except Exception as exc:
        message = (
            f"could not enqueue the gate check: the broker is unreachable "
            f"({type(exc).__name__}); run it again once the broker is back"
        )
        with db.session() as session:
            finish_job(session, job.id, status=JobStatus.FAILED, error=message)
        raise BrokerUnavailableError(f"job {job.id}: {message}") from exc


def submit_gate_check(
    db: Database,
    sender: TaskSender,
    registry: ModelRegistry,
    *,
    model: str,
    challenger: str | None = None,
    dataset: str | None = None,
    actor: str,
    trigger: str = "manual",
    reason: str = "",
) -> Job:
    """Create the gate check in one transaction, commit, and only then enqueue it."""
    with db.session() as session:
        job = create_gate_check(
            session,
            registry,
            model=model,
            challenger=challenger,
            dataset=dataset,
            actor=actor,
            trigger=trigger,
            reason=reason,
        )
    enqueue_gate_check(db, sender, job)
    return job


# --------------------------------------------------------------------------- verdicts


def record_decision(
    session: Session,
    job: Job,
    *,
    outcome: str,
    reasons: Sequence[str],
    comparisons: Sequence[dict[str, Any]],
) -> GateDecisionRecord:
    """The job's decision row, written once (a redelivery finds and returns it), audited
    ``gate.decided`` with the submitter as actor and the reason lines."""
    existing = store.decision_for_job(session, job.id)
    if existing is not None:
        return existing
    params = job.params
    model = str(params["model_name"])
    decision = store.insert_decision(
        session,
        job_id=job.id,
        model_name=model,
        champion_version=str(params["champion"]["version"]),
        challenger_version=str(params["challenger"]["version"]),
        dataset_name=str(params["dataset"]["name"]),
        dataset_version=int(params["dataset"]["version"]),
        outcome=outcome,
        promoted=False,
        reasons=reasons,
        comparisons=comparisons,
        decided_by=job.submitted_by,
    )
    record_audit(
        session,
        actor=job.submitted_by,
        action="gate.decided",
        target=policy_target(model),
        reason="\n".join(reasons)[:4000],
        details={
            "job_id": job.id,
            "decision_id": decision.id,
            "outcome": outcome,
            "champion_version": decision.champion_version,
            "challenger_version": decision.challenger_version,
            "dataset": f"{decision.dataset_name}:{decision.dataset_version}",
        },
    )
    return decision


def apply_gate_decision(
    db: Database, registry: ModelRegistry, decision: GateDecisionRecord
) -> GateDecisionRecord:
    """Tag both versions and, on ``promote``, move the champion alias to the challenger (when
    the registry's approval rule allows), then mark the decision and finish its job.

    Idempotent: tags are overwritten with the same values, promoting the version the champion
    already points at changes nothing, and the job finishes once.
    """
    model = decision.model_name
    reasons = list(decision.reasons)
    promoted = False
    if decision.outcome == "promote":
        info = registry.get_version(model, decision.challenger_version)
        if registry.policy.require_approval and info.approval != ApprovalState.APPROVED:
            reasons.append(
                f"not promoted: v{info.version} is {info.approval.value}, and the registry "
                "requires approval before champion; approve it, then run the gate again"
            )
        else:
            try:
                registry.promote(
                    model,
                    decision.challenger_version,
                    actor=decision.decided_by,
                    reason=(
                        f"gate decision {decision.id} (job {decision.job_id}): "
                        f"{decision.reasons[0]}"
                    )[:1000],
                )
                promoted = True
            except ConflictError as exc:
                reasons.append(f"not promoted: {exc}")
    if promoted:
        _retire_challenger_alias(registry, model, decision)
    text = "\n".join(reasons)
    if len(text) > MAX_TAG_VALUE:
        text = text[: MAX_TAG_VALUE - 3] + "..."
    tags = {
        TAG_OUTCOME: decision.outcome,
        TAG_DECISION_ID: str(decision.id),
        TAG_REASONS: text,
    }
    for version in (decision.champion_version, decision.challenger_version):
        for key, value in tags.items():
            registry.client.set_model_version_tag(model, version, key, value)
    with db.session() as session:
        store.mark_applied(session, decision.id, promoted=promoted, reasons=reasons)
        finish_job(
            session,
            decision.job_id,
            status=JobStatus.SUCCEEDED,
            result={
                "decision_id": decision.id,
                "outcome": decision.outcome,
                "promoted": promoted,
                "champion_version": decision.champion_version,
                "challenger_version": decision.challenger_version,
            },
        )
        return store.get_decision(session, decision.id)


def fail_gate_check(db: Database, job_id: str, message: str) -> None:
    """Fail the job (no-op when already finished)."""
    with db.session() as session:
        finish_job(session, job_id, status=JobStatus.FAILED, error=message)


def latest_decision(
    session: Session, model: str, challenger_version: str | None = None
) -> GateDecisionRecord | None:
    """The newest decision for the model (for that challenger version when given)."""
    return store.latest_decision(session, model, challenger_version)


def list_decisions(
    session: Session, *, model: str | None = None, limit: int = 50, before_id: int | None = None
) -> list[GateDecisionRecord]:
    """Decisions, newest first (``before_id``: the page after that decision)."""
    return store.list_decisions(session, model_name=model, limit=limit, before_id=before_id)


def stored_policy(record: GatePolicyRecord) -> GatePolicy:
    """The record's policy, parsed."""
    return parse_gate_policy(record.policy)


def _retire_challenger_alias(
    registry: ModelRegistry, model: str, decision: GateDecisionRecord
) -> None:
    """Clear the ``challenger`` alias when it points at the version just promoted: that version
    is the champion now, and a stale challenger alias would make the next gate check compare
    the champion with itself."""
    alias = registry.policy.challenger_alias
    try:
        current = registry.resolve(f"{model}@{alias}").version
    except NotFoundError:
        return
    if current == decision.challenger_version:
        registry.clear_alias(
            model,
            alias,
            actor=decision.decided_by,
            reason=f"gate decision {decision.id}: v{current} is the champion now",
        )
