"""Where a new version's artifacts come from: an MLflow run, a model URI, or a scikit-learn
model logged here from a local object and its training data.

These helpers only read MLflow or write *additive* tracking data (a run, a logged model and its
artifacts); creating the registered version, the step that matters, is left to the façade so it
happens together with the audit entry.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from keelwatch.entities.registry import ResolvedModel
from keelwatch.errors import InvalidInputError, NotFoundError
from keelwatch.registry._mlflow import ALREADY_EXISTS_CODES, NOT_FOUND_CODES, mlflow_error_code
from keelwatch.registry.refs import MODELS_URI_SCHEME

if TYPE_CHECKING:
    import pandas as pd

MLMODEL_FILE = "MLmodel"
RUNS_URI_SCHEME = "runs:/"
LOGGED_MODEL_ID_PREFIX = "m-"
# Rows of the training frame stored as the model's input example (shown in the MLflow UI).
INPUT_EXAMPLE_ROWS = 5
# Rows scored to infer the output part of the signature; a sample is enough.
SIGNATURE_SAMPLE_ROWS = 1000


@dataclass(frozen=True)
class ModelSource:
    """Where a version's artifacts live, as MLflow's ``create_model_version`` wants it."""

    source: str
    run_id: str | None
    model_id: str | None


def source_from_run(
    client: Any, run_id: str, artifact_path: str, *, tracking_uri: str
) -> ModelSource:
    """The model ``artifact_path`` of run ``run_id``: run artifacts or a logged model (MLflow 3)."""
    from mlflow.exceptions import MlflowException

    path = artifact_path.strip().strip("/")
    if not path:
        raise InvalidInputError("artifact path must not be empty")
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        if mlflow_error_code(exc) in NOT_FOUND_CODES or "not found" in exc.message.lower():
            raise NotFoundError(f"MLflow run {run_id!r} not found") from exc
        raise
    # MLflow 3 style: log_model(name=...) creates a LoggedModel recorded as a run output.
    outputs = run.outputs.model_outputs if run.outputs is not None else []
    for output in sorted(outputs, key=lambda output: output.step, reverse=True):
        logged = client.get_logged_model(output.model_id)
        if logged.name == path:
            return logged_model_source(logged)
    # MLflow 2 style: the model's files are in the run's own artifacts. (Not client.list_artifacts:
    # for runs it also consults logged models through the process-global tracking URI.)
    location = f"{run.info.artifact_uri.rstrip('/')}/{path}"
    if read_mlmodel(location, tracking_uri=tracking_uri) is not None:
        return ModelSource(location, run_id, None)
    raise NotFoundError(f"MLflow run {run_id!r} has no model at artifact path {path!r}")


def source_from_uri(
    client: Any, model_uri: str, *, tracking_uri: str, resolve: Callable[[str], ResolvedModel]
) -> ModelSource:
    """The source named by ``model_uri``: ``runs:/RUN/PATH``, ``models:/m-<logged model id>``,
    ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS`` (an existing version's artifacts, via
    ``resolve``), or an artifact location / local folder holding an ``MLmodel`` file."""
    uri = model_uri.strip()
    if not uri:
        raise InvalidInputError("model URI must not be empty")
    if uri.startswith(RUNS_URI_SCHEME):
        run_id, _, path = uri[len(RUNS_URI_SCHEME) :].partition("/")
        return source_from_run(client, run_id, path or "model", tracking_uri=tracking_uri)
    if uri.startswith(MODELS_URI_SCHEME):
        body = uri[len(MODELS_URI_SCHEME) :]
        if body.startswith(LOGGED_MODEL_ID_PREFIX) and "/" not in body and "@" not in body:
            return source_from_logged_model(client, body)
        resolved = resolve(uri)
        existing = client.get_model_version(resolved.name, resolved.version)
        location = client.get_model_version_download_uri(resolved.name, resolved.version)
        return ModelSource(location, existing.run_id or None, None)
    return source_from_location(uri, tracking_uri=tracking_uri)


def source_from_logged_model(client: Any, model_id: str) -> ModelSource:
    """A LoggedModel (``models:/m-...``) as the source."""
    from mlflow.exceptions import MlflowException

    try:
        logged = client.get_logged_model(model_id)
    except MlflowException as exc:
        raise NotFoundError(f"MLflow logged model {model_id!r} not found") from exc
    return logged_model_source(logged)


def logged_model_source(logged: Any) -> ModelSource:
    """A LoggedModel as source, by its artifact location rather than ``models:/m-...``.

    MLflow's SQL registry store resolves a ``models:/m-...`` source through a *default*
    ``MlflowClient()`` (the process-global tracking URI, a TODO in MLflow 3), which would look in
    the wrong store; the artifact location plus ``model_id`` records the same thing. Without a
    source run the store would use that default client for ``model_id`` too, so it is left out.
    """
    run_id = logged.source_run_id or None
    return ModelSource(logged.artifact_location, run_id, logged.model_id if run_id else None)


def source_from_location(location: str, *, tracking_uri: str) -> ModelSource:
    """An artifact location (``file://``, ``s3://``, a local path) holding an MLflow model."""
    uri = location.strip()
    if "://" not in uri:
        path = Path(uri).expanduser().resolve()
        if not (path / MLMODEL_FILE).is_file():
            raise InvalidInputError(f"no MLflow model at {location!r} (missing {MLMODEL_FILE})")
        return ModelSource(path.as_uri(), None, None)
    if read_mlmodel(uri, tracking_uri=tracking_uri) is None:
        raise InvalidInputError(f"no MLflow model at {location!r} (missing {MLMODEL_FILE})")
    return ModelSource(uri.rstrip("/"), None, None)


def read_mlmodel(artifact_uri: str, *, tracking_uri: str) -> Any | None:
    """Load the ``MLmodel`` file under ``artifact_uri`` (None when it is not there)."""
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    parsed = urlparse(artifact_uri)
    if parsed.scheme == "file":
        # Read local stores in place: no temporary copy and no download progress bar.
        local_file = Path(url2pathname(parsed.path)) / MLMODEL_FILE
        return Model.load(str(local_file)) if local_file.is_file() else None
    with tempfile.TemporaryDirectory(prefix="keelwatch-mlmodel-") as folder:
        try:
            local = download_artifacts(
                artifact_uri=f"{artifact_uri.rstrip('/')}/{MLMODEL_FILE}",
                dst_path=folder,
                tracking_uri=tracking_uri,
            )
        except (MlflowException, OSError):
            return None
        return Model.load(local)


def signature_input_columns(
    location: str, *, tracking_uri: str, model_uri: str
) -> list[str] | None:
    """Input column names from the signature of the MLflow model at ``location``."""
    spec = signature_input_spec(location, tracking_uri=tracking_uri, model_uri=model_uri)
    return list(spec) if spec is not None else None


def signature_input_spec(
    location: str, *, tracking_uri: str, model_uri: str
) -> dict[str, str] | None:
    """Input column → MLflow type name (``double``, ``long``, ``string`` ...; ``any`` for a
    column without a plain type) from the signature of the model at ``location``, in order.
    None without a column-based signature."""
    mlmodel = read_mlmodel(location, tracking_uri=tracking_uri)
    if mlmodel is None:
        raise NotFoundError(f"artifacts of {model_uri} not found at {location} (no MLmodel file)")
    signature = mlmodel.signature
    if signature is None or not signature.inputs.has_input_names():
        return None
    spec: dict[str, str] = {}
    for column in signature.inputs.inputs:
        kind = getattr(column, "type", None)
        spec[str(column.name)] = str(getattr(kind, "name", "any")) if kind is not None else "any"
    return spec


def create_registered_model_if_missing(client: Any, name: str) -> bool:
    """Create registered model ``name`` unless it exists; True when this call created it."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
        return False
    except MlflowException as exc:
        if mlflow_error_code(exc) not in NOT_FOUND_CODES:
            raise
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if mlflow_error_code(exc) in ALREADY_EXISTS_CODES:
            return False  # created concurrently by someone else: not ours to undo
        raise
    return True


def split_training_frame(
    training_frame: pd.DataFrame, target: str | None
) -> tuple[pd.DataFrame, str | None]:
    """Feature columns of ``training_frame`` (``target`` dropped), validated."""
    import pandas as pd

    if not isinstance(training_frame, pd.DataFrame):
        raise InvalidInputError("training data must be a pandas DataFrame")
    if training_frame.empty:
        raise InvalidInputError("training data is empty")
    if target is not None and target not in training_frame.columns:
        raise InvalidInputError(f"target column {target!r} is not in the training data")
    features = training_frame.drop(columns=[target]) if target is not None else training_frame
    if features.shape[1] == 0:
        raise InvalidInputError("training data has no feature columns")
    return features, target


def infer_model_signature(model: Any, features: pd.DataFrame) -> Any:
    """Signature from the features and the model's own predictions on a sample of them."""
    from mlflow.models import infer_signature

    if not callable(getattr(model, "predict", None)):
        raise InvalidInputError(f"{type(model).__name__} has no predict method")
    sample = features.head(SIGNATURE_SAMPLE_ROWS)
    try:
        predictions = model.predict(sample)
    except Exception as exc:  # the user's model: any failure means bad input
        raise InvalidInputError(f"model.predict failed on the training data: {exc}") from exc
    return infer_signature(sample, predictions)


def skops_types_to_trust(model: Any) -> list[str] | None:
    """Types in ``model`` that skops would refuse to load by default (None: there are none)."""
    import skops.io  # type: ignore[import-untyped]  # no stubs; comes with mlflow

    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    return sorted(untrusted) or None


def ensure_experiment(client: Any, name: str, artifact_location: str) -> str:
    """Id of experiment ``name``, created with ``artifact_location`` when missing."""
    from mlflow.exceptions import MlflowException

    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return str(existing.experiment_id)
    try:
        return str(client.create_experiment(name, artifact_location=artifact_location))
    except MlflowException:
        # Another process created it between our lookup and create.
        existing = client.get_experiment_by_name(name)
        if existing is None:
            raise
        return str(existing.experiment_id)


def log_sklearn_model(
    client: Any,
    *,
    experiment_id: str,
    model: Any,
    features: pd.DataFrame,
    signature: Any,
    run_name: str,
    run_tags: dict[str, str],
    params: dict[str, str],
) -> ModelSource:
    """Log ``model`` as a LoggedModel in a new finished run, through ``client`` only.

    ``mlflow.sklearn.log_model`` would read the process-global tracking URI and active run;
    doing its steps with an explicit client keeps concurrent registries (and tests) apart.
    The run and logged model are marked FAILED if saving or uploading fails.
    """
    import mlflow
    import mlflow.sklearn
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.models import Model

    run = client.create_run(experiment_id, run_name=run_name, tags=run_tags)
    run_id = run.info.run_id
    logged = None
    try:
        for key, value in params.items():
            client.log_param(run_id, key, value)
        logged = client.create_logged_model(
            experiment_id, name="model", source_run_id=run_id, params=params
        )
        metadata = Model(
            artifact_path=logged.artifact_location,
            model_uuid=logged.model_id,
            run_id=run_id,
            model_id=logged.model_id,
        )
        requirements = [
            f"mlflow=={mlflow.__version__}",
            *mlflow.sklearn.get_default_pip_requirements(include_skops=True),
        ]
        # skops (MLflow's default format) refuses to load types outside its allow-list, e.g.
        # HistGradientBoosting's TreePredictor. The object comes from the caller's own process,
        # so its types are trusted here; MLflow records the list in MLmodel and loaders use it.
        trusted_types = skops_types_to_trust(model)
        with tempfile.TemporaryDirectory(prefix="keelwatch-model-") as folder:
            local = str(Path(folder) / "model")
            # Explicit requirements: inferring them spawns a subprocess that takes seconds.
            mlflow.sklearn.save_model(
                model,
                local,
                mlflow_model=metadata,
                signature=signature,
                input_example=features.head(INPUT_EXAMPLE_ROWS),
                pip_requirements=requirements,
                skops_trusted_types=trusted_types,
            )
            client.log_model_artifacts(logged.model_id, local)
        client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
        client.set_terminated(run_id, status="FINISHED")
    except BaseException:
        if logged is not None:
            client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        client.set_terminated(run_id, status="FAILED")
        raise
    return logged_model_source(logged)
