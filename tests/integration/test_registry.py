"""The registry façade against a real MLflow store and both SQL backends.

Every test runs on SQLite and PostgreSQL (the ``database`` fixture) with a fresh SQLite-backed
MLflow store; the model versions are real scikit-learn models logged through MLflow.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.linear_model import LogisticRegression
from sqlalchemy import text

from keelwatch.errors import ConflictError, InvalidInputError, NotFoundError
from keelwatch.registry import ApprovalState, ModelRegistry, model_target
from keelwatch.settings import RegistrySettings
from keelwatch.storage.aliases import alias_history
from keelwatch.storage.audit import list_audit
from keelwatch.storage.db import Database

pytestmark = pytest.mark.integration

MODEL = "credit"
FEATURES = ["income", "debt"]


def training_frame(rows: int = 40) -> pd.DataFrame:
    """A tiny, deterministic, separable data set with a target column."""
    income = [float(i) for i in range(rows)]
    debt = [float((i * 7) % 11) for i in range(rows)]
    label = [int(i >= rows // 2) for i in range(rows)]
    return pd.DataFrame({"income": income, "debt": debt, "default": label})


def fitted_model(frame: pd.DataFrame) -> LogisticRegression:
    return LogisticRegression(max_iter=200).fit(frame[FEATURES], frame["default"])


def make_registry(
    database: Database, mlflow_uri: str, tmp_path: Path, **policy: Any
) -> ModelRegistry:
    return ModelRegistry(
        database,
        tracking_uri=mlflow_uri,
        registry_uri=mlflow_uri,
        artifact_root=(tmp_path / "mlartifacts").as_uri(),
        policy=RegistrySettings(**policy),
    )


@pytest.fixture
def registry(database: Database, mlflow_uri: str, tmp_path: Path) -> ModelRegistry:
    return make_registry(database, mlflow_uri, tmp_path)


@pytest.fixture
def two_versions(registry: ModelRegistry) -> Iterator[tuple[str, str]]:
    """v1 logged from a local model + training data, v2 registered from v1's run."""
    frame = training_frame()
    v1 = registry.register_sklearn_model(
        MODEL, fitted_model(frame), frame, target="default", actor="ann", reason="first model"
    )
    v2 = registry.register_version(MODEL, run_id=str(v1.run_id), actor="bob", reason="retrain")
    yield v1.version, v2.version


class Snapshot:
    """Everything a registry change could write: audit log, alias history, MLflow state."""

    def __init__(self, registry: ModelRegistry) -> None:
        with registry.db.session() as session:
            self.audit = list_audit(session, limit=1000)
            self.history = {
                alias: alias_history(session, MODEL, alias) for alias in ("champion", "challenger")
            }
        client = MlflowClient(tracking_uri=registry.tracking_uri)
        models = client.search_registered_models()
        self.aliases = {model.name: dict(model.aliases) for model in models}
        self.versions = {
            (version.name, version.version): dict(version.tags)
            for model in models
            for version in client.search_model_versions(f"name = '{model.name}'")
        }

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Snapshot) and vars(self) == vars(other)

    def __repr__(self) -> str:
        return f"Snapshot({vars(self)!r})"


def audit_actions(registry: ModelRegistry) -> list[str]:
    with registry.db.session() as session:
        return [entry.action for entry in reversed(list_audit(session, target=model_target(MODEL)))]


# ---------------------------------------------------------------------------- registering


def test_register_sklearn_model_logs_a_pending_version_with_signature(
    registry: ModelRegistry, mlflow_uri: str
) -> None:
    frame = training_frame()
    model = fitted_model(frame)
    info = registry.register_sklearn_model(
        MODEL, model, frame, target="default", actor="ann", reason="first model"
    )

    assert (info.name, info.version, info.approval) == (MODEL, "1", ApprovalState.PENDING)
    assert info.tags["keelwatch.registered_by"] == "ann"
    resolved = registry.resolve(f"{MODEL}/1")
    assert resolved.model_uri == f"models:/{MODEL}/1"
    assert registry.input_columns(resolved) == FEATURES  # the target is not an input

    client = MlflowClient(tracking_uri=mlflow_uri)
    run = client.get_run(str(info.run_id))
    assert run.info.status == "FINISHED"
    assert run.data.params["training_rows"] == str(len(frame))
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == f"keelwatch/{MODEL}"
    assert experiment.artifact_location.startswith(registry.artifact_root)

    # The registered artifacts are a loadable model that predicts what the original does.
    import mlflow.pyfunc

    loaded = mlflow.pyfunc.load_model(info.source)
    assert list(loaded.predict(frame[FEATURES])) == list(model.predict(frame[FEATURES]))

    with registry.db.session() as session:
        (entry,) = list_audit(session, target=model_target(MODEL))
    assert (entry.action, entry.actor, entry.reason) == ("model.register", "ann", "first model")
    assert entry.details["version"] == "1"


def test_models_with_types_outside_skops_allow_list_register_and_load(
    registry: ModelRegistry,
) -> None:
    # HistGradientBoosting's TreePredictor is not on skops' default allow-list: saving it with
    # MLflow's defaults fails. The registry trusts the types of the object it was handed.
    import mlflow.pyfunc
    from sklearn.ensemble import HistGradientBoostingClassifier

    frame = training_frame()
    model = HistGradientBoostingClassifier(max_iter=5).fit(frame[FEATURES], frame["default"])
    info = registry.register_sklearn_model(MODEL, model, frame, "default", actor="ann")
    loaded = mlflow.pyfunc.load_model(info.source)
    assert list(loaded.predict(frame[FEATURES])) == list(model.predict(frame[FEATURES]))


def test_register_from_run_model_uri_and_folder(registry: ModelRegistry, tmp_path: Path) -> None:
    frame = training_frame()
    v1 = registry.register_sklearn_model(MODEL, fitted_model(frame), frame, "default", actor="a")
    by_run = registry.register_version(MODEL, run_id=str(v1.run_id), actor="a")
    by_runs_uri = registry.register_version(MODEL, model_uri=f"runs:/{v1.run_id}/model", actor="a")
    by_version_uri = registry.register_version("copy", model_uri=f"models:/{MODEL}/1", actor="a")

    import mlflow.sklearn

    folder = tmp_path / "saved-model"
    # Explicit requirements: inferring them runs a subprocess for seconds.
    mlflow.sklearn.save_model(fitted_model(frame), str(folder), pip_requirements=["scikit-learn"])
    by_folder = registry.register_version(MODEL, model_uri=str(folder), actor="a")

    assert [by_run.version, by_runs_uri.version, by_folder.version] == ["2", "3", "4"]
    assert by_run.source == v1.source and by_run.run_id == v1.run_id
    assert by_version_uri.source == v1.source and by_version_uri.version == "1"
    assert by_folder.source == folder.as_uri()
    assert registry.resolve(f"{MODEL}/latest").version == "4"
    assert registry.input_columns(registry.resolve(f"{MODEL}/4")) is None  # saved unsigned
    assert [v.version for v in registry.list_versions(MODEL)] == ["1", "2", "3", "4"]
    assert [(m.name, m.latest_version) for m in registry.list_models()] == [
        ("copy", "1"),
        (MODEL, "4"),
    ]


# ---------------------------------------------------------------------------- approvals, promotion


def test_champion_needs_approval_then_promotion_moves_the_alias(
    registry: ModelRegistry, two_versions: tuple[str, str]
) -> None:
    v1, v2 = two_versions
    before = Snapshot(registry)
    with pytest.raises(ConflictError, match="is pending, not approved"):
        registry.promote(MODEL, v1, actor="ann", reason="ship it")
    assert Snapshot(registry) == before

    approved = registry.approve(MODEL, v1, actor="carol", reason="offline metrics ok")
    assert (approved.approval, approved.approval_actor) == (ApprovalState.APPROVED, "carol")
    assert approved.approval_reason == "offline metrics ok"

    champion = registry.promote(MODEL, v1, actor="ann", reason="first champion")
    assert champion.aliases == ("champion",)
    assert registry.resolve(MODEL).version == v1
    assert registry.resolve(f"models:/{MODEL}@champion").model_uri == f"models:/{MODEL}/{v1}"

    # A pending version may be challenger; only the champion needs approval.
    challenger = registry.promote(MODEL, v2, alias="challenger", actor="ann", reason="shadow")
    assert challenger.aliases == ("challenger",)
    assert registry.get_model(MODEL).aliases == {"champion": v1, "challenger": v2}
    by_version = {info.version: info.aliases for info in registry.list_versions(MODEL)}
    assert by_version == {v1: ("champion",), v2: ("challenger",)}

    # Promoting what the alias already points at is a no-op, not a new history entry.
    registry.promote(MODEL, v1, actor="ann", reason="test")
    assert audit_actions(registry) == [
        "model.register",
        "model.register",
        "model.approve",
        "model.promote",
        "model.promote",
    ]


def test_rejected_versions_get_no_alias_even_without_required_approval(
    database: Database, mlflow_uri: str, tmp_path: Path
) -> None:
    registry = make_registry(database, mlflow_uri, tmp_path, require_approval=False)
    frame = training_frame()
    v1 = registry.register_sklearn_model(MODEL, fitted_model(frame), frame, "default", actor="a")
    assert registry.promote(MODEL, v1.version, actor="a", reason="test").aliases == (
        "champion",
    )  # pending ok

    registry.reject(MODEL, v1.version, actor="b", reason="leaks the label")
    v2 = registry.register_version(MODEL, run_id=str(v1.run_id), actor="a")
    registry.reject(MODEL, v2.version, actor="b", reason="same leak")
    before = Snapshot(registry)
    with pytest.raises(ConflictError, match="was rejected"):
        registry.set_alias(MODEL, "challenger", v2.version, actor="a", reason="test")
    assert Snapshot(registry) == before


def test_rejection_is_final_until_an_audited_reopen(
    registry: ModelRegistry, two_versions: tuple[str, str]
) -> None:
    v1, _ = two_versions
    registry.reject(MODEL, v1, actor="carol", reason="leaks the label")
    before = Snapshot(registry)
    with pytest.raises(ConflictError, match="was rejected; re-open it first"):
        registry.approve(MODEL, v1, actor="carol", reason="changed my mind")
    assert Snapshot(registry) == before
    assert registry.get_version(MODEL, v1).approval == ApprovalState.REJECTED

    reopened = registry.reopen(MODEL, v1, actor="dave", reason="label leak fixed upstream")
    assert (reopened.approval, reopened.approval_actor) == (ApprovalState.PENDING, "dave")
    with pytest.raises(ConflictError, match="is pending; only a rejected version"):
        registry.reopen(MODEL, v1, actor="dave", reason="again")
    approved = registry.approve(MODEL, v1, actor="carol", reason="reviewed again")
    assert approved.approval == ApprovalState.APPROVED

    with registry.db.session() as session:
        (entry,) = list_audit(session, action="model.reopen")
    assert (entry.actor, entry.reason) == ("dave", "label leak fixed upstream")
    assert entry.details == {"version": v1, "previous_state": "rejected"}


# ---------------------------------------------------------------------------- rollback


def test_rollback_returns_to_the_last_known_good_champion(
    registry: ModelRegistry, two_versions: tuple[str, str]
) -> None:
    v1, v2 = two_versions
    v3 = registry.register_version(MODEL, model_uri=f"models:/{MODEL}/1", actor="bob").version
    for version in (v1, v2, v3):
        registry.approve(MODEL, version, actor="carol", reason="looks fine")
        registry.promote(MODEL, version, actor="ann", reason=f"ship v{version}")
    registry.reject(MODEL, v2, actor="carol", reason="bias audit failed")

    restored = registry.rollback(MODEL, actor="pager", reason="v3 error rate")
    assert restored.version == v1  # v2 was champion before v3, but it is rejected
    assert registry.resolve(MODEL).version == v1
    rolled_back = registry.get_version(MODEL, v3)
    assert rolled_back.rolled_back and rolled_back.tags["keelwatch.rolled_back.actor"] == "pager"
    assert rolled_back.tags["keelwatch.rolled_back.reason"] == "v3 error rate"

    # Nothing good is left behind v1: v3 was rolled back from, v2 is rejected.
    before = Snapshot(registry)
    with pytest.raises(ConflictError, match="no previous 'champion'"):
        registry.rollback(MODEL, actor="pager", reason="again")
    assert Snapshot(registry) == before

    with registry.db.session() as session:
        (entry,) = list_audit(session, action="model.rollback")
    assert (entry.actor, entry.reason) == ("pager", "v3 error rate")
    assert entry.details == {"alias": "champion", "from_version": v3, "to_version": v1}


def test_rollback_skips_versions_rolled_back_from(
    registry: ModelRegistry, two_versions: tuple[str, str]
) -> None:
    v1, v2 = two_versions
    for version in (v1, v2):
        registry.approve(MODEL, version, actor="carol", reason="ok")
    registry.promote(MODEL, v1, actor="ann", reason="test")
    registry.promote(MODEL, v2, actor="ann", reason="test")
    assert registry.rollback(MODEL, actor="ann", reason="v2 bad").version == v1
    registry.promote(MODEL, v2, actor="ann", reason="fixed upstream, try again")
    # v1 is still good; v2 is current; rolling back again lands on v1, never "back" to v2.
    assert registry.rollback(MODEL, actor="ann", reason="still bad").version == v1
    with pytest.raises(ConflictError, match="no previous"):
        registry.rollback(MODEL, actor="ann", reason="nothing left")


# ---------------------------------------------------------------------------- alias history


def test_alias_history_and_version_at(
    registry: ModelRegistry, two_versions: tuple[str, str]
) -> None:
    v1, v2 = two_versions
    for version in (v1, v2):
        registry.approve(MODEL, version, actor="carol", reason="ok")
    before_any = datetime.now(UTC) - timedelta(seconds=1)
    registry.promote(MODEL, v1, actor="ann", reason="first")
    registry.promote(MODEL, v2, actor="ann", reason="second")
    registry.rollback(MODEL, actor="bob", reason="regression")
    assert registry.clear_alias(MODEL, "champion", actor="bob", reason="maintenance") == v1

    history = registry.alias_history(MODEL)
    assert [(c.version, c.previous_version, c.actor) for c in history] == [
        (v1, None, "ann"),
        (v2, v1, "ann"),
        (v1, v2, "bob"),
        (None, v1, "bob"),
    ]
    assert [c.reason for c in history] == ["first", "second", "regression", "maintenance"]
    assert registry.version_at(MODEL, "champion", before_any) is None
    for change, expected in zip(history, [v1, v2, v1, None], strict=True):
        assert registry.version_at(MODEL, "champion", change.at) == expected
    # Naive datetimes are read as UTC.
    naive = history[1].at.astimezone(UTC).replace(tzinfo=None)
    assert registry.version_at(MODEL, "champion", naive) == v2
    assert registry.alias_history(MODEL, "challenger") == []
    with pytest.raises(NotFoundError, match="'ghost' is not registered"):
        registry.alias_history("ghost")


# ---------------------------------------------------------------------------- MLflow visibility


def test_plain_mlflow_client_sees_what_keelwatch_wrote(
    registry: ModelRegistry, two_versions: tuple[str, str], mlflow_uri: str
) -> None:
    v1, v2 = two_versions
    registry.approve(MODEL, v1, actor="carol", reason="ok")
    registry.reject(MODEL, v2, actor="carol", reason="worse AUC")
    registry.promote(MODEL, v1, actor="ann", reason="test")
    registry.set_alias(MODEL, "shadow", v1, actor="ann", reason="test")

    plain = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
    assert str(plain.get_model_version_by_alias(MODEL, "champion").version) == v1
    assert dict(plain.get_registered_model(MODEL).aliases) == {"champion": 1, "shadow": 1}
    tags_v1 = plain.get_model_version(MODEL, v1).tags
    assert tags_v1["keelwatch.approval"] == "approved"
    assert tags_v1["keelwatch.approval.actor"] == "carol"
    tags_v2 = plain.get_model_version(MODEL, v2).tags
    assert (tags_v2["keelwatch.approval"], tags_v2["keelwatch.approval.reason"]) == (
        "rejected",
        "worse AUC",
    )
    # And the other way round: a version registered outside Keelwatch reads as pending.
    plain.create_model_version(MODEL, source=registry.get_version(MODEL, v1).source)
    assert registry.get_version(MODEL, "3").approval == ApprovalState.PENDING


# ---------------------------------------------------------------------------- bad input


def test_bad_input_is_a_clear_error_and_writes_nothing(
    registry: ModelRegistry, two_versions: tuple[str, str]
) -> None:
    v1, _ = two_versions
    registry.approve(MODEL, v1, actor="carol", reason="ok")
    before = Snapshot(registry)

    cases: list[tuple[type[Exception], str, Any]] = [
        (NotFoundError, "'ghost' is not registered", lambda: registry.resolve("ghost@champion")),
        (NotFoundError, "has no alias 'champion'", lambda: registry.resolve(MODEL)),
        (NotFoundError, "has no alias 'prod'", lambda: registry.resolve(f"{MODEL}@prod")),
        (NotFoundError, "has no version 9", lambda: registry.resolve(f"{MODEL}/9")),
        (NotFoundError, "has no version 9", lambda: registry.get_version(MODEL, 9)),
        (NotFoundError, "'ghost' is not registered", lambda: registry.list_versions("ghost")),
        (
            NotFoundError,
            "has no version 9",
            lambda: registry.promote(MODEL, 9, actor="a", reason="test"),
        ),
        (
            NotFoundError,
            "'ghost' is not registered",
            lambda: registry.approve("ghost", 1, actor="a", reason="r"),
        ),
        (
            InvalidInputError,
            "reason must not be empty",
            lambda: registry.approve(MODEL, 1, actor="a", reason=" "),
        ),
        (
            InvalidInputError,
            "actor must not be empty",
            lambda: registry.promote(MODEL, 1, actor="", reason="test"),
        ),
        # Every governance change says why, promotion and aliases included.
        (
            InvalidInputError,
            "reason must not be empty",
            lambda: registry.promote(MODEL, 1, actor="a", reason=""),
        ),
        (
            InvalidInputError,
            "reason must not be empty",
            lambda: registry.set_alias(MODEL, "challenger", 1, actor="a", reason=" "),
        ),
        (
            InvalidInputError,
            "reason must not be empty",
            lambda: registry.clear_alias(MODEL, "champion", actor="a", reason=""),
        ),
        (
            ConflictError,
            "only a rejected version is re-opened",
            lambda: registry.reopen(MODEL, 1, actor="a", reason="r"),
        ),
        (
            InvalidInputError,
            "invalid alias",
            lambda: registry.set_alias(MODEL, "latest", 1, actor="a", reason="test"),
        ),
        (
            ConflictError,
            "has no 'champion' to roll back",
            lambda: registry.rollback(MODEL, actor="a", reason="r"),
        ),
        (
            NotFoundError,
            "has no alias 'champion'",
            lambda: registry.clear_alias(MODEL, "champion", actor="a", reason="test"),
        ),
        (
            InvalidInputError,
            "exactly one of run_id and model_uri",
            lambda: registry.register_version(MODEL, actor="a"),
        ),
        (
            NotFoundError,
            "run 'no-such-run' not found",
            lambda: registry.register_version(MODEL, run_id="no-such-run", actor="a"),
        ),
        (
            InvalidInputError,
            "no MLflow model at",
            lambda: registry.register_version(MODEL, model_uri="/nonexistent/dir", actor="a"),
        ),
        (
            InvalidInputError,
            "target column 'nope'",
            lambda: registry.register_sklearn_model(
                MODEL, fitted_model(training_frame()), training_frame(), "nope", actor="a"
            ),
        ),
        (
            InvalidInputError,
            "training data is empty",
            lambda: registry.register_sklearn_model(
                MODEL, fitted_model(training_frame()), training_frame().iloc[0:0], actor="a"
            ),
        ),
    ]
    for error, message, call in cases:
        with pytest.raises(error, match=message):
            call()
    assert Snapshot(registry) == before

    # Rollback with a champion but no earlier one: a conflict, nothing written.
    registry.promote(MODEL, v1, actor="ann", reason="test")
    before = Snapshot(registry)
    with pytest.raises(ConflictError, match="no previous 'champion'"):
        registry.rollback(MODEL, actor="ann", reason="r")
    assert Snapshot(registry) == before


def test_run_without_the_named_model_is_not_found(
    registry: ModelRegistry, two_versions: tuple[str, str]
) -> None:
    run_id = registry.get_version(MODEL, two_versions[0]).run_id
    with pytest.raises(NotFoundError, match="has no model at artifact path 'other'"):
        registry.register_version(MODEL, run_id=str(run_id), artifact_path="other", actor="a")


# ---------------------------------------------------------------------------- consistency


def _break_audit_log(database: Database) -> None:
    # A real failure of the audit insert: the table is gone (throw-away test database).
    with database.engine.begin() as conn:
        conn.execute(text("DROP TABLE audit_log"))


def test_failed_audit_write_undoes_the_mlflow_changes(
    registry: ModelRegistry, two_versions: tuple[str, str], database: Database, mlflow_uri: str
) -> None:
    v1, v2 = two_versions
    for version in (v1, v2):
        registry.approve(MODEL, version, actor="carol", reason="ok")
    registry.promote(MODEL, v1, actor="ann", reason="test")
    registry.promote(MODEL, v2, actor="ann", reason="test")
    plain = MlflowClient(tracking_uri=mlflow_uri)
    tags_before = dict(plain.get_model_version(MODEL, v2).tags)
    _break_audit_log(database)

    with pytest.raises(Exception, match="audit_log"):
        registry.rollback(MODEL, actor="ann", reason="would be lost")
    # The alias move and the rolled-back tags were undone; no history row was committed.
    assert str(plain.get_model_version_by_alias(MODEL, "champion").version) == v2
    assert dict(plain.get_model_version(MODEL, v2).tags) == tags_before
    assert [c.version for c in registry.alias_history(MODEL)] == [v1, v2]

    with pytest.raises(Exception, match="audit_log"):
        registry.reject(MODEL, v1, actor="carol", reason="would be lost")
    assert plain.get_model_version(MODEL, v1).tags["keelwatch.approval"] == "approved"

    with pytest.raises(Exception, match="audit_log"):
        registry.register_version("fresh", model_uri=f"models:/{MODEL}/1", actor="a")
    assert [m.name for m in plain.search_registered_models()] == [MODEL]  # model removed too
