"""Read a retrain's training data: a dataset file, or the champion's reference data plus the
recent labelled prediction-log rows (assembled by the pure ``training_window``).

Where the champion's reference rows come from, first found wins:

1. the version tag ``keelwatch.training_data``: the artifact URI of the window a Keelwatch
   retrain trained the version on (logged with the version's run, so any artifact store
   works, and a retrained challenger that becomes champion carries its own reference rows);
2. the file its reference profile was attached from (``keelwatch monitors profile attach``
   records the path), while it still exists;
3. none: the profile holds summaries, not rows, so a profile attached from an in-memory frame
   (or no profile at all) leaves only the labelled log rows, and the result says why.

MLflow is reached through the registry's own client and URIs, never the process-global
tracking URI.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keelwatch.actions.training_window import WindowSpec, assemble_window
from keelwatch.entities.registry import ResolvedModel
from keelwatch.errors import InvalidInputError, KeelwatchError, NotFoundError
from keelwatch.storage.profiles import find_reference_profile
from keelwatch.storage.training_windows import labelled_rows_since

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.orm import Session

    from keelwatch.registry import ModelRegistry

__all__ = [
    "TAG_TRAINING_DATA",
    "TRAINING_DATA_ARTIFACT",
    "TrainingData",
    "load_training_data",
    "log_training_data",
    "registered_target",
]

#: Model-version tag: the artifact URI of the rows a retrain trained the version on.
TAG_TRAINING_DATA = "keelwatch.training_data"
TRAINING_DATA_DIR = "keelwatch"
TRAINING_DATA_ARTIFACT = "training-data.parquet"


@dataclass(frozen=True)
class TrainingData:
    """The frame a trainer gets (feature columns and ``target``) and where it came from."""

    frame: pd.DataFrame
    target: str | None
    summary: dict[str, Any] = field(default_factory=dict)


def registered_target(registry: ModelRegistry, name: str, version: str) -> str | None:
    """The target column the registry recorded for a version (the ``target`` parameter of
    the run that logged it), or None."""
    info = registry.get_version(name, version)
    if not info.run_id:
        return None
    params = registry.client.get_run(info.run_id).data.params or {}
    return params.get("target") or None


def _read_artifact(registry: ModelRegistry, uri: str) -> pd.DataFrame:
    import mlflow.artifacts
    import pandas as pd

    with tempfile.TemporaryDirectory(prefix="keelwatch-training-") as folder:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=uri, dst_path=folder, tracking_uri=registry.tracking_uri
        )
        return pd.read_parquet(local)


def _reference_rows(
    session: Session, registry: ModelRegistry, name: str, version: str
) -> tuple[pd.DataFrame | None, str]:
    """The champion's reference rows and where they came from (or why there are none)."""
    from keelwatch.monitoring.service.profiles import read_frame

    tags = registry.get_version(name, version).tags
    uri = tags.get(TAG_TRAINING_DATA)
    if uri:
        return _read_artifact(registry, uri), uri
    profile = find_reference_profile(session, name, version)
    if profile is None:
        return None, f"none: version {version} has no reference profile"
    source = profile.source
    if not source or source.startswith("data frame"):
        return None, (
            f"none: the reference profile of version {version} was attached from an in-memory "
            "data frame, and a profile keeps summaries, not rows"
        )
    try:
        return read_frame(source), source
    except InvalidInputError as exc:
        return None, f"none: the reference data of version {version} is unreadable ({exc})"


def load_training_data(
    session: Session, registry: ModelRegistry, name: str, spec: WindowSpec, now: datetime
) -> TrainingData:
    """The training frame of a retrain of model ``name``: ``spec.dataset`` when given, else
    the champion's reference rows plus the labelled log rows of ``[now - window, now)``.

    The target is ``spec.target``, else the column the registry recorded for the champion.
    Raises a KeelwatchError naming what is missing (no champion, no target, unreadable data).
    """
    from keelwatch.monitoring.service.profiles import read_frame

    champion_alias = registry.policy.champion_alias
    if spec.dataset:
        frame = read_frame(spec.dataset)
        target = spec.target
        if target is not None and target not in frame.columns:
            raise InvalidInputError(
                f"retrain dataset {spec.dataset} has no target column {target!r}"
            )
        if target is None:  # the champion's, when the file has it; else no target (all inputs)
            try:
                champion: str | None = registry.resolve(f"{name}@{champion_alias}").version
            except NotFoundError:
                champion = None
            known = registered_target(registry, name, champion) if champion else None
            target = known if known in frame.columns else None
        return TrainingData(frame, target, {"dataset": spec.dataset, "training_rows": len(frame)})
    try:
        champion = registry.resolve(f"{name}@{champion_alias}").version
    except NotFoundError:
        raise InvalidInputError(
            f"model {name!r} has no {champion_alias!r}: a retrain window starts from the "
            "champion's reference data (or give params.dataset)"
        ) from None
    target = spec.target or registered_target(registry, name, champion)
    if target is None:
        raise InvalidInputError(
            f"model {name!r} version {champion} records no target column: set params.target"
        )
    resolved = ResolvedModel(name, champion, f"models:/{name}/{champion}")
    features = registry.input_columns(resolved)
    reference, reference_source = _reference_rows(session, registry, name, champion)
    logged = labelled_rows_since(session, model_name=name, since=now - spec.window, until=now)
    try:
        window = assemble_window(reference, logged, target=target, features=features)
    except KeelwatchError as exc:
        raise InvalidInputError(f"training window of model {name!r}: {exc}") from None
    summary = {
        "window": spec.window_text,
        "champion": champion,
        "reference": reference_source,
        "reference_rows": window.reference_rows,
        "logged_rows": window.logged_rows,
        "training_rows": len(window.frame),
    }
    return TrainingData(window.frame, target, summary)


def log_training_data(registry: ModelRegistry, name: str, version: str, frame: pd.DataFrame) -> str:
    """Log ``frame`` as a Parquet artifact of the version's run and point the version's
    ``keelwatch.training_data`` tag at it; returns the artifact URI."""
    info = registry.get_version(name, version)
    if not info.run_id:
        raise InvalidInputError(f"model {name!r} version {version} has no run to log data to")
    client = registry.client
    with tempfile.TemporaryDirectory(prefix="keelwatch-training-") as folder:
        path = Path(folder) / TRAINING_DATA_ARTIFACT
        frame.to_parquet(path, index=False)
        client.log_artifact(info.run_id, str(path), artifact_path=TRAINING_DATA_DIR)
    root = client.get_run(info.run_id).info.artifact_uri.rstrip("/")
    uri = f"{root}/{TRAINING_DATA_DIR}/{TRAINING_DATA_ARTIFACT}"
    client.set_model_version_tag(name, version, TAG_TRAINING_DATA, uri)
    return uri
