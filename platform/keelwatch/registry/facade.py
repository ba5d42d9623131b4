"""The registry façade: Keelwatch's lifecycle rules on top of MLflow's Model Registry.

MLflow is the system of record for models, versions, aliases and tags; Keelwatch adds approval
state (version tags), alias history and the audit log (its own tables), and the rules that tie
them: approval before champion, rollback to the last known-good champion.

Consistency between the two stores: every mutating method first validates with reads only (so
bad input writes nothing), then performs its MLflow writes and its audit/history inserts inside
one database transaction that commits last; a failure anywhere undoes the MLflow writes already
made (see :class:`keelwatch.registry._mlflow.Change`). The only window left is a crash of the
process between an MLflow write and the commit, which leaves an MLflow change without its audit
entry (never an audit entry for a change that did not happen).

Serialisation: changes of one model (promote, set/clear alias, rollback, approvals) hold that
model's lock in Keelwatch's database (:func:`keelwatch.storage.locks.lock_model`) from before
their validating reads until their commit, so concurrent changes, from threads, API replicas
or workers, run one after the other and alias history always agrees with MLflow's alias.

Every MLflow call goes through :class:`~keelwatch.registry._client.GuardedClient`: bounded by
timeouts, an unreachable store raises :class:`~keelwatch.errors.RegistryUnavailableError` (503),
and registry writes invalidate the API's read cache (:attr:`ModelRegistry.cached`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from keelwatch.entities import AliasChange
from keelwatch.entities.registry import (
    TAG_APPROVAL,
    TAG_APPROVAL_ACTOR,
    TAG_APPROVAL_AT,
    TAG_APPROVAL_REASON,
    TAG_REGISTERED_BY,
    TAG_REGISTERED_REASON,
    TAG_ROLLED_BACK,
    TAG_ROLLED_BACK_ACTOR,
    TAG_ROLLED_BACK_AT,
    TAG_ROLLED_BACK_REASON,
    ApprovalState,
    ModelVersionInfo,
    RegisteredModelInfo,
    ResolvedModel,
)
from keelwatch.entities.time import utcnow
from keelwatch.errors import ConflictError, InvalidInputError, NotFoundError
from keelwatch.registry import registration
from keelwatch.registry._client import guarded_client, with_sql_timeouts
from keelwatch.registry._mlflow import (
    Change,
    alias_target,
    aliases_by_version,
    move_alias,
    registry_change,
    set_version_tags,
    to_model_info,
    to_version_info,
    translated_mlflow_errors,
)
from keelwatch.registry.cache import CachedReads, ReadCache
from keelwatch.registry.governance import check_separation_of_duties
from keelwatch.registry.lifecycle import (
    APPROVAL_VERBS,
    check_approval_change,
    check_may_hold_alias,
    model_target,
    record_alias_move,
)
from keelwatch.registry.refs import (
    LATEST,
    MODELS_URI_SCHEME,
    parse_model_ref,
    validate_alias,
    validate_model_name,
    validate_version,
)
from keelwatch.settings import RegistrySettings
from keelwatch.storage import aliases as alias_store
from keelwatch.storage.audit import record_audit
from keelwatch.storage.db import Database
from keelwatch.storage.locks import lock_model

if TYPE_CHECKING:
    import pandas as pd

EXPERIMENT_PREFIX = "keelwatch/"
_SEARCH_PAGE = 1000


def _required(value: str, what: str) -> str:
    stripped = (value or "").strip()
    if not stripped:
        raise InvalidInputError(f"{what} must not be empty")
    return stripped


class ModelRegistry:
    """Versions, approvals, aliases, rollback and alias history over one MLflow registry."""

    def __init__(
        self,
        db: Database,
        *,
        tracking_uri: str,
        registry_uri: str,
        artifact_root: str,
        policy: RegistrySettings,
        request_timeout_s: int = 10,
        request_max_retries: int = 1,
    ) -> None:
        self.db = db
        self.tracking_uri = with_sql_timeouts(tracking_uri, request_timeout_s)
        self.registry_uri = with_sql_timeouts(registry_uri or tracking_uri, request_timeout_s)
        self.artifact_root = artifact_root.rstrip("/")
        self.policy = policy
        self.request_timeout_s = request_timeout_s
        self.request_max_retries = request_max_retries
        # Versions are immutable, so their input columns can be cached for the process.
        self._input_spec: dict[tuple[str, str], dict[str, str] | None] = {}
        self.read_cache = ReadCache(policy.read_cache_ttl_s, policy.read_cache_entries)

    @cached_property
    def client(self) -> Any:
        """An ``MlflowClient`` on our URIs (never the process-global tracking URI), behind
        :class:`~keelwatch.registry._client.GuardedClient` (timeouts, 503s, invalidation)."""
        from mlflow.tracking import MlflowClient

        return guarded_client(
            partial(MlflowClient, tracking_uri=self.tracking_uri, registry_uri=self.registry_uri),
            store_uris=(self.tracking_uri, self.registry_uri),
            timeout_s=self.request_timeout_s,
            max_retries=self.request_max_retries,
            on_write=self.read_cache.invalidate_model,
        )

    @cached_property
    def cached(self) -> CachedReads:
        """The read methods the API serves, through the short-TTL :attr:`read_cache`."""
        return CachedReads(self, self.read_cache)

    # ------------------------------------------------------------------ reading

    def list_models(self) -> list[RegisteredModelInfo]:
        """Every registered model, by name."""
        models: list[Any] = []
        token = None
        while True:
            page = self.client.search_registered_models(
                max_results=_SEARCH_PAGE, order_by=["name ASC"], page_token=token
            )
            models.extend(page)
            token = page.token
            if not token:
                break
        return [to_model_info(model, self._latest_of(model)) for model in models]

    def get_model(self, name: str) -> RegisteredModelInfo:
        """One registered model; NotFoundError if it is not registered."""
        model = self._registered_model(validate_model_name(name))
        return to_model_info(model, self._latest_of(model))

    def list_versions(self, name: str) -> list[ModelVersionInfo]:
        """Every version of model ``name``, oldest first."""
        model = self._registered_model(validate_model_name(name))
        by_version = aliases_by_version(model)
        versions = self._search_versions(model.name)
        return [
            to_version_info(version, by_version.get(str(version.version), ()))
            for version in versions
        ]

    def get_version(self, name: str, version: str | int) -> ModelVersionInfo:
        """One version; NotFoundError naming the unknown model or version."""
        return to_version_info(
            self._model_version(validate_model_name(name), validate_version(version))
        )

    def resolve(self, ref: str) -> ResolvedModel:
        """Resolve ``name@alias``, ``name/3``, ``name/latest``, ``name`` (the champion) or the
        ``models:/`` forms to one pinned version."""
        parsed = parse_model_ref(ref, default_alias=self.policy.champion_alias)
        if parsed.alias is not None:
            model = self._registered_model(parsed.name)
            version = alias_target(model, parsed.alias)
            if version is None:
                known = ", ".join(sorted(model.aliases or {})) or "none"
                raise NotFoundError(
                    f"model {parsed.name!r} has no alias {parsed.alias!r} (aliases: {known})"
                )
        elif parsed.version == LATEST:
            latest = self._latest_of(self._registered_model(parsed.name))
            if latest is None:
                raise NotFoundError(f"model {parsed.name!r} has no versions")
            version = latest
        else:
            version = str(self._model_version(parsed.name, str(parsed.version)).version)
        return ResolvedModel(
            name=parsed.name,
            version=version,
            model_uri=f"{MODELS_URI_SCHEME}{parsed.name}/{version}",
        )

    def input_columns(self, resolved: ResolvedModel) -> list[str] | None:
        """Input column names from the version's MLflow signature (None without a signature)."""
        spec = self.input_spec(resolved)
        return list(spec) if spec is not None else None

    def input_spec(self, resolved: ResolvedModel) -> dict[str, str] | None:
        """Input column → MLflow type name from the version's signature (None without one)."""
        key = (resolved.name, resolved.version)
        if key not in self._input_spec:
            with translated_mlflow_errors(
                not_found=f"model {resolved.name!r} has no version {resolved.version}"
            ):
                location = self.client.get_model_version_download_uri(
                    resolved.name, resolved.version
                )
            self._input_spec[key] = registration.signature_input_spec(
                location, tracking_uri=self.tracking_uri, model_uri=resolved.model_uri
            )
        cached = self._input_spec[key]
        return dict(cached) if cached is not None else None

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasChange]:
        """Every change of ``alias`` (default: champion) on model ``name``, oldest first."""
        name = validate_model_name(name)
        alias = validate_alias(alias or self.policy.champion_alias)
        with self.db.session() as session:
            history = alias_store.alias_history(session, name, alias)
        if not history:
            self._registered_model(name)  # unknown model → NotFoundError; else just no history
        return history

    def version_at(self, name: str, alias: str, at: datetime) -> str | None:
        """The version ``alias`` pointed to at time ``at`` (naive times are taken as UTC);
        None if it was unset then. Changes made outside Keelwatch count from when the alias
        watcher recorded them."""
        name = validate_model_name(name)
        alias = validate_alias(alias)
        when = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
        with self.db.session() as session:
            version = alias_store.alias_version_at(session, name, alias, when)
            known = version is not None or bool(alias_store.alias_history(session, name, alias))
        if not known:
            self._registered_model(name)
        return version

    # ------------------------------------------------------------------ registering

    def register_version(
        self,
        name: str,
        *,
        run_id: str | None = None,
        artifact_path: str = "model",
        model_uri: str | None = None,
        actor: str,
        reason: str = "",
        description: str | None = None,
    ) -> ModelVersionInfo:
        """Register a new (pending) version from an MLflow run or a model URI.

        Give either ``run_id`` (with the model's ``artifact_path`` in that run) or
        ``model_uri``: ``runs:/RUN/PATH``, ``models:/m-<logged model id>``, ``models:/NAME/3``
        (re-register an existing version's artifacts), or an artifact location / local folder
        that holds an ``MLmodel`` file.
        """
        name = validate_model_name(name)
        actor = _required(actor, "actor")
        if (run_id is None) == (model_uri is None):
            raise InvalidInputError("give exactly one of run_id and model_uri")
        if run_id is not None:
            source = registration.source_from_run(
                self.client, run_id.strip(), artifact_path, tracking_uri=self.tracking_uri
            )
        else:
            source = registration.source_from_uri(
                self.client, str(model_uri), tracking_uri=self.tracking_uri, resolve=self.resolve
            )
        return self._create_version(
            name, source, actor=actor, reason=reason, description=description
        )

    def register_sklearn_model(
        self,
        name: str,
        model: Any,
        training_frame: pd.DataFrame,
        target: str | None = None,
        *,
        actor: str,
        reason: str = "",
        description: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> ModelVersionInfo:
        """Log a fitted scikit-learn ``model`` and register it as a new (pending) version.

        The model is logged with ``mlflow.sklearn`` in a new run of experiment
        ``keelwatch/<name>`` (artifacts under ``artifact_root``), with a signature inferred from
        ``training_frame`` minus the ``target`` column and the model's predictions, the first
        rows as input example, and ``params`` as run parameters.
        """
        name = validate_model_name(name)
        actor = _required(actor, "actor")
        features, target = registration.split_training_frame(training_frame, target)
        signature = registration.infer_model_signature(model, features)
        experiment_id = registration.ensure_experiment(
            self.client,
            f"{EXPERIMENT_PREFIX}{name}",
            f"{self.artifact_root}/{quote(name, safe='')}",
        )
        run_params = {
            "training_rows": str(len(features)),
            "feature_columns": ",".join(map(str, features.columns))[:500],
            "target": target or "",
            "estimator": type(model).__name__,
            **{key: str(value) for key, value in (params or {}).items()},
        }
        source = registration.log_sklearn_model(
            self.client,
            experiment_id=experiment_id,
            model=model,
            features=features,
            signature=signature,
            run_name=f"register-{name}",
            run_tags={"mlflow.user": actor, "keelwatch.actor": actor},
            params=run_params,
        )
        return self._create_version(
            name, source, actor=actor, reason=reason, description=description
        )

    # ------------------------------------------------------------------ approvals

    def approve(
        self, name: str, version: str | int, *, actor: str, reason: str
    ) -> ModelVersionInfo:
        """Mark a version approved (required before it can become champion).

        With ``policy.separation_of_duties`` on, the actor who registered the version may not
        approve it (:class:`~keelwatch.registry.governance.SeparationOfDutiesError`, 403).
        """
        return self._set_approval(name, version, ApprovalState.APPROVED, actor, reason)

    def reject(self, name: str, version: str | int, *, actor: str, reason: str) -> ModelVersionInfo:
        """Mark a version rejected: final, it can no longer be approved or get any alias until
        it is explicitly re-opened (:meth:`reopen`)."""
        return self._set_approval(name, version, ApprovalState.REJECTED, actor, reason)

    def reopen(self, name: str, version: str | int, *, actor: str, reason: str) -> ModelVersionInfo:
        """Return a rejected version to pending (audited ``model.reopen``), so it can be
        reviewed again. ConflictError for a version that is not rejected."""
        return self._set_approval(name, version, ApprovalState.PENDING, actor, reason)

    # ------------------------------------------------------------------ aliases

    def promote(
        self,
        name: str,
        version: str | int,
        alias: str | None = None,
        *,
        actor: str,
        reason: str,
    ) -> ModelVersionInfo:
        """Point ``alias`` (default: champion) at ``version``; ``reason`` is required (audit).

        ConflictError for a rejected version, and for an unapproved one when the alias is the
        champion and ``policy.require_approval`` is on. Promoting the version the alias already
        points at changes nothing.
        """
        alias = alias or self.policy.champion_alias
        return self._point_alias(name, alias, version, actor, reason, action="model.promote")

    def set_alias(
        self, name: str, alias: str, version: str | int, *, actor: str, reason: str
    ) -> ModelVersionInfo:
        """Point any alias at ``version``, under the same rules as :meth:`promote`."""
        return self._point_alias(name, alias, version, actor, reason, action="model.alias.set")

    def clear_alias(self, name: str, alias: str, *, actor: str, reason: str) -> str:
        """Remove ``alias`` from model ``name``; returns the version it pointed to."""
        name = validate_model_name(name)
        alias = validate_alias(alias)
        actor = _required(actor, "actor")
        reason = _required(reason, "reason")
        with self._locked_change(name) as change:
            previous = alias_target(self._registered_model(name), alias)
            if previous is None:
                raise NotFoundError(f"model {name!r} has no alias {alias!r}")
            at = utcnow()
            move_alias(self.client, change, name, alias, None, previous)
            record_alias_move(
                change,
                name=name,
                alias=alias,
                version=None,
                previous=previous,
                actor=actor,
                reason=reason,
                action="model.alias.clear",
                details={"alias": alias, "previous_version": previous},
                at=at,
            )
        return previous

    def rollback(self, name: str, *, actor: str, reason: str) -> ModelVersionInfo:
        """Move the champion back to the last known-good one and return it.

        Known good: a version the champion alias pointed to before (newest first, from the
        alias history), still registered, approved (not rejected, when approval is not
        required), and never rolled back from. The current champion gets the
        ``keelwatch.rolled_back`` tag so a later rollback never returns to it.
        """
        name = validate_model_name(name)
        actor = _required(actor, "actor")
        reason = _required(reason, "reason")
        champion = self.policy.champion_alias
        with self._locked_change(name) as change:
            current = alias_target(self._registered_model(name), champion)
            if current is None:
                raise ConflictError(f"model {name!r} has no {champion!r} to roll back from")
            target = self._last_known_good(change, name, current)
            if target is None:
                raise ConflictError(
                    f"model {name!r} has no previous {champion!r} to roll back to "
                    "(none that is still registered, approved and not rolled back itself)"
                )
            at = utcnow()
            rolled_back_tags = {
                TAG_ROLLED_BACK: "true",
                TAG_ROLLED_BACK_ACTOR: actor,
                TAG_ROLLED_BACK_REASON: reason,
                TAG_ROLLED_BACK_AT: at.isoformat(),
            }
            set_version_tags(self.client, change, name, current, rolled_back_tags)
            move_alias(self.client, change, name, champion, target.version, current)
            record_alias_move(
                change,
                name=name,
                alias=champion,
                version=target.version,
                previous=current,
                actor=actor,
                reason=reason,
                action="model.rollback",
                details={"alias": champion, "from_version": current, "to_version": target.version},
                at=at,
            )
        return self.get_version(name, target.version)

    # ------------------------------------------------------------------ internals

    @contextmanager
    def _locked_change(self, name: str) -> Iterator[Change]:
        """A :func:`registry_change` holding model ``name``'s lock from its first statement:
        the reads a change validates against must be made inside, after the lock."""
        with registry_change(self.db) as change:
            lock_model(change.session, name)
            yield change

    def _registered_model(self, name: str) -> Any:
        with translated_mlflow_errors(not_found=f"model {name!r} is not registered"):
            return self.client.get_registered_model(name)

    def _model_version(self, name: str, version: str) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            with translated_mlflow_errors(not_found=f"model {name!r} has no version {version}"):
                return self.client.get_model_version(name, version)
        except (NotFoundError, MlflowException):
            self._registered_model(name)  # say "not registered" when the model itself is unknown
            raise

    def _search_versions(self, name: str) -> list[Any]:
        versions: list[Any] = []
        token = None
        while True:
            page = self.client.search_model_versions(
                f"name = '{name}'", max_results=_SEARCH_PAGE, page_token=token
            )
            versions.extend(page)
            token = page.token
            if not token:
                break
        return sorted(versions, key=lambda version: int(version.version))

    def _latest_of(self, model: Any) -> str | None:
        numbers = [int(version.version) for version in model.latest_versions or ()]
        if not numbers:  # some stores leave latest_versions empty in searches
            numbers = [int(version.version) for version in self._search_versions(model.name)]
        return str(max(numbers)) if numbers else None

    def _create_version(
        self,
        name: str,
        source: registration.ModelSource,
        *,
        actor: str,
        reason: str,
        description: str | None,
    ) -> ModelVersionInfo:
        tags = {TAG_APPROVAL: ApprovalState.PENDING.value, TAG_REGISTERED_BY: actor}
        if reason:
            tags[TAG_REGISTERED_REASON] = reason
        with registry_change(self.db) as change:
            if registration.create_registered_model_if_missing(self.client, name):
                change.on_undo(
                    f"delete model {name}", lambda: self.client.delete_registered_model(name)
                )
            with translated_mlflow_errors():
                created = self.client.create_model_version(
                    name,
                    source=source.source,
                    run_id=source.run_id,
                    tags=tags,
                    description=description,
                    model_id=source.model_id,
                )
            version = str(created.version)
            change.on_undo(
                f"delete {name} version {version}",
                lambda: self.client.delete_model_version(name, version),
            )
            record_audit(
                change.session,
                actor=actor,
                action="model.register",
                target=model_target(name),
                reason=reason,
                details={"version": version, "source": source.source, "run_id": source.run_id},
            )
        return to_version_info(created, ())

    def _set_approval(
        self, name: str, version: str | int, state: ApprovalState, actor: str, reason: str
    ) -> ModelVersionInfo:
        name = validate_model_name(name)
        version = validate_version(version)
        actor = _required(actor, "actor")
        reason = _required(reason, "reason")
        with self._locked_change(name) as change:
            info = to_version_info(self._model_version(name, version))
            check_approval_change(info, state)
            if state == ApprovalState.APPROVED and self.policy.separation_of_duties:
                check_separation_of_duties(info, actor)
            if info.approval == state:
                return info
            at = utcnow()
            tags = {
                TAG_APPROVAL: state.value,
                TAG_APPROVAL_ACTOR: actor,
                TAG_APPROVAL_REASON: reason,
                TAG_APPROVAL_AT: at.isoformat(),
            }
            set_version_tags(self.client, change, name, version, tags, previous=info.tags)
            verb = APPROVAL_VERBS[state]
            record_audit(
                change.session,
                actor=actor,
                action=f"model.{verb}",
                target=model_target(name),
                reason=reason,
                details={"version": version, "previous_state": info.approval.value},
                at=at,
            )
        return self.get_version(name, version)

    def _point_alias(
        self, name: str, alias: str, version: str | int, actor: str, reason: str, *, action: str
    ) -> ModelVersionInfo:
        name = validate_model_name(name)
        alias = validate_alias(alias)
        version = validate_version(version)
        actor = _required(actor, "actor")
        reason = _required(reason, "reason")
        with self._locked_change(name) as change:
            info = to_version_info(self._model_version(name, version))
            check_may_hold_alias(info, alias, self.policy)
            previous = alias_target(self._registered_model(name), alias)
            if previous == version:
                return info
            at = utcnow()
            move_alias(self.client, change, name, alias, version, previous)
            record_alias_move(
                change,
                name=name,
                alias=alias,
                version=version,
                previous=previous,
                actor=actor,
                reason=reason,
                action=action,
                details={"version": version, "alias": alias, "previous_version": previous},
                at=at,
            )
        return self.get_version(name, version)

    def _last_known_good(self, change: Change, name: str, current: str) -> ModelVersionInfo | None:
        # Read in the change's own transaction: it holds the model's lock (and on SQLite the
        # database's write lock), and a second connection could wait on the pool meanwhile.
        history = alias_store.alias_history(change.session, name, self.policy.champion_alias)
        # A version only ever put there outside Keelwatch (an external row) was never vetted.
        vetted = {entry.version for entry in history if not entry.external}
        unvetted = {entry.version for entry in history if entry.external} - vetted
        candidates: list[str] = []
        for entry in reversed(history):  # newest first; previous_version covers changes
            for version in (entry.version, entry.previous_version):  # made outside Keelwatch
                if version is None or version == current or version in unvetted:
                    continue
                if version not in candidates:
                    candidates.append(version)
        for version in candidates:
            try:
                info = self.get_version(name, version)
            except NotFoundError:  # deleted since
                continue
            if info.rolled_back or info.approval == ApprovalState.REJECTED:
                continue
            if self.policy.require_approval and info.approval != ApprovalState.APPROVED:
                continue
            return info
        return None
