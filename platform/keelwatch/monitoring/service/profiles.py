"""Reference profiles attached to model versions.

A version's profile is computed once from its training data, saved with
:func:`keelwatch.monitoring.drift.profiles.save_profile`, logged as an MLflow artifact of the
version's run (``keelwatch/reference-profile.npz``, so the MLflow UI shows it next to the
model) and recorded in ``reference_profiles`` with who attached it, from what and when.
Attaching again refreshes it (same row, new artifact, audited as a refresh).

The profile also carries the version's own predictions on that data (prediction drift) and
the target column (target drift once labels arrive), each marked with its role.

MLflow is always reached through an explicit ``MlflowClient`` on the settings' URIs, never the
process-global tracking URI.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keelwatch.entities.monitors import ReferenceProfileInfo
from keelwatch.errors import InvalidInputError
from keelwatch.storage import profiles as profile_store
from keelwatch.storage.audit import record_audit

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.orm import Session

    from keelwatch.monitoring.drift.profiles import ReferenceProfile
    from keelwatch.monitoring.drift.report import ColumnRole
    from keelwatch.registry import ModelRegistry
    from keelwatch.settings import MlflowSettings, Settings

PROFILE_ARTIFACT_DIR = "keelwatch"
PROFILE_ARTIFACT_NAME = "reference-profile.npz"
#: Model-version tag pointing at the profile artifact (visible on the MLflow version page).
TAG_REFERENCE_PROFILE = "keelwatch.reference_profile"


def read_frame(source: str | Path) -> pd.DataFrame:
    """A Parquet or CSV file (path or ``file://`` URI) as a data frame."""
    import pandas as pd

    from keelwatch.inference.dataset import InputFormat, input_format, local_path

    path = local_path(str(source))
    if not path.is_file():
        raise InvalidInputError(f"data file not found: {path}")
    fmt = input_format(path)
    try:
        if fmt is InputFormat.PARQUET:
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"cannot read {fmt.value} file {path}: {exc}") from exc


def attach_reference_profile(
    session: Session,
    registry: ModelRegistry,
    mlflow_settings: MlflowSettings,
    name: str,
    version: str | int,
    data: pd.DataFrame | str | Path,
    actor: str,
    *,
    reason: str = "",
    target: str | None = None,
    predictions: bool = True,
) -> ReferenceProfileInfo:
    """Profile ``data`` (a frame, or a Parquet/CSV file) and attach it to ``name`` v``version``.

    The profile holds the model's input columns as features (all columns when the version has
    no signature; a missing input column is an error), ``target`` as the ground-truth column
    (target drift, once labels are recorded), and, with ``predictions``, the version's own
    outputs on ``data`` (prediction drift), named as the prediction log names them. Raises
    NotFoundError for an unknown model or version and InvalidInputError for unusable data or a
    model that cannot score it.

    The MLflow artifact and version tag are written first (MLflow has no transaction to join);
    the profile row and its audit entry go into the caller's ``session``, which the caller
    commits.
    """
    import pandas as pd

    from keelwatch.monitoring.drift.profiles import build_profile, save_profile
    from keelwatch.registry import ResolvedModel

    if not actor.strip():
        raise InvalidInputError("actor must not be empty")
    info = registry.get_version(name, version)
    source = str(data) if not isinstance(data, pd.DataFrame) else f"data frame ({len(data)} rows)"
    frame = data if isinstance(data, pd.DataFrame) else read_frame(data)
    labels = None
    if target is not None:
        if target not in frame.columns:
            raise InvalidInputError(f"target column {target!r} is not in the data")
        labels = frame[target]
        frame = frame.drop(columns=[target])
    expected = registry.input_columns(ResolvedModel(info.name, info.version, info.model_uri))
    if expected is not None:
        missing = [column for column in expected if column not in frame.columns]
        if missing:
            raise InvalidInputError(
                f"data for {info.model_uri} lacks the model's input columns {missing}"
            )
        frame = frame[list(expected)]
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise InvalidInputError("cannot profile empty data (no rows or no columns)")
    roles: dict[str, ColumnRole] = {}
    columns: dict[str, Any] = {str(c): frame[c] for c in frame.columns}
    if predictions:
        for output, values in _reference_predictions(
            registry, mlflow_settings, info.name, info.version, frame
        ):
            if output in columns or output == target:
                raise InvalidInputError(
                    f"model output {output!r} has the name of an input or target column"
                )
            columns[output], roles[output] = values, "prediction"
    if labels is not None and target is not None:
        columns[target], roles[target] = labels, "target"
    profile = build_profile(
        pd.DataFrame(columns),
        roles=roles,
        metadata={"model": info.name, "version": info.version, "source": source},
    )
    client = _client(mlflow_settings)
    run_id = info.run_id or _profile_run(mlflow_settings, info.name, info.version, client)
    with tempfile.TemporaryDirectory(prefix="keelwatch-profile-") as folder:
        path = save_profile(profile, Path(folder) / PROFILE_ARTIFACT_NAME)
        client.log_artifact(run_id, str(path), artifact_path=PROFILE_ARTIFACT_DIR)
    artifact_uri = (
        f"{client.get_run(run_id).info.artifact_uri}/{PROFILE_ARTIFACT_DIR}/{PROFILE_ARTIFACT_NAME}"
    )
    client.set_model_version_tag(info.name, info.version, TAG_REFERENCE_PROFILE, artifact_uri)
    stored, created = profile_store.upsert_reference_profile(
        session,
        model_name=info.name,
        model_version=info.version,
        artifact_uri=artifact_uri,
        rows=profile.rows,
        columns=list(profile.columns),
        source=source,
        actor=actor,
    )
    record_audit(
        session,
        actor=actor,
        action="profile.attach" if created else "profile.refresh",
        target=info.model_uri,
        reason=reason or f"reference profile from {source}",
        details={
            "artifact_uri": artifact_uri,
            "rows": profile.rows,
            "columns": list(profile.columns),
            "source": source,
        },
    )
    return stored


def _reference_predictions(
    registry: ModelRegistry,
    mlflow_settings: MlflowSettings,
    name: str,
    version: str,
    frame: pd.DataFrame,
) -> list[tuple[str, Any]]:
    """The version's outputs on ``frame``, as the batch fleet names them in the prediction log."""
    from urllib.parse import urlparse

    import mlflow.artifacts
    import mlflow.pyfunc

    from keelwatch.inference.execution import prediction_columns

    location = registry.client.get_model_version_download_uri(name, version)
    try:
        with tempfile.TemporaryDirectory(prefix="keelwatch-model-") as folder:
            if urlparse(location).scheme not in ("", "file"):
                # Download with the settings' tracking URI: load_model would resolve remote
                # artifact URIs through MLflow's process-global one.
                location = mlflow.artifacts.download_artifacts(
                    artifact_uri=location,
                    dst_path=folder,
                    tracking_uri=mlflow_settings.tracking_uri,
                )
            raw = mlflow.pyfunc.load_model(location).predict(frame)
    except Exception as exc:  # a flavor that cannot load here, or rejects the data
        raise InvalidInputError(
            f"cannot score the reference data with {name} v{version} "
            f"({type(exc).__name__}: {exc}); attach without predictions to skip prediction drift"
        ) from exc
    return list(prediction_columns(raw, frame.shape[0]).items())


def load_reference_profile(settings: Settings, info: ReferenceProfileInfo) -> ReferenceProfile:
    """The stored profile, downloaded once per refresh into ``data_dir/cache/profiles``."""
    import mlflow.artifacts

    from keelwatch.monitoring.drift.profiles import load_profile

    stamp = hashlib.sha256(
        f"{info.artifact_uri}|{info.updated_at.isoformat()}".encode()
    ).hexdigest()[:16]
    folder = settings.data_dir / "cache" / "profiles" / stamp
    local = folder / PROFILE_ARTIFACT_NAME
    if not local.exists():
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as staging:
            downloaded = mlflow.artifacts.download_artifacts(
                artifact_uri=info.artifact_uri,
                dst_path=staging,
                tracking_uri=settings.mlflow.tracking_uri,
            )
            Path(downloaded).replace(local)
    return load_profile(local)


def _client(mlflow_settings: MlflowSettings) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(
        tracking_uri=mlflow_settings.tracking_uri, registry_uri=mlflow_settings.registry_uri
    )


def _profile_run(mlflow_settings: MlflowSettings, name: str, version: str, client: Any) -> str:
    """A run to hold the profile of a version registered without one."""
    from urllib.parse import quote

    from keelwatch.registry.facade import EXPERIMENT_PREFIX
    from keelwatch.registry.registration import ensure_experiment

    artifact_root = mlflow_settings.artifact_root.rstrip("/")
    experiment_id = ensure_experiment(
        client, f"{EXPERIMENT_PREFIX}{name}", f"{artifact_root}/{quote(name, safe='')}"
    )
    run = client.create_run(experiment_id, run_name=f"reference-profile-{name}-v{version}")
    client.set_terminated(run.info.run_id, status="FINISHED")
    return str(run.info.run_id)
