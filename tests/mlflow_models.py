"""Registering test models straight through MLflow, with an explicit client only.

``mlflow.<flavor>.log_model`` needs the process-global tracking URI and an active run, and
setting the global URI in a test could hide product code that resolves through it (MLflow's SQL
registry does for logged models). These helpers save a model to a folder, log the folder as a
run's artifacts and register that, never touching MLflow's global state. They deliberately do
not write through Keelwatch's registry: the tests that call them must not depend on how it
writes (callers find their experiment with ``keelwatch.registry.registration.ensure_experiment``,
a plain lookup-or-create).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def register_saved_model(
    client: Any,
    experiment: str,
    name: str,
    save: Callable[[Path], None],
    *,
    model_tags: dict[str, str] | None = None,
) -> str:
    """Save a model with ``save(folder)``, log it as artifact ``model`` of a new finished run in
    ``experiment`` (an id), register it as a new version of ``name`` (created, with
    ``model_tags``, if missing) and return the version number."""
    run = client.create_run(experiment, run_name=f"{name}-test")
    run_id = str(run.info.run_id)
    with tempfile.TemporaryDirectory(prefix="keelwatch-test-model-") as folder:
        local = Path(folder) / "model"
        save(local)
        client.log_artifacts(run_id, str(local), "model")
    client.set_terminated(run_id, status="FINISHED")
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(name, tags=model_tags)
    source = f"{run.info.artifact_uri.rstrip('/')}/model"
    return str(client.create_model_version(name, source=source, run_id=run_id).version)


def register_sklearn_estimator(
    client: Any, experiment: str, name: str, model: Any, signature: Any
) -> str:
    """``register_saved_model`` for a fitted scikit-learn ``model``, saved with explicit
    requirements (inferring them runs the model in a subprocess: seconds per test)."""
    import mlflow.sklearn
    import sklearn

    def save(folder: Path) -> None:
        mlflow.sklearn.save_model(
            model,
            str(folder),
            signature=signature,
            pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
        )

    return register_saved_model(client, experiment, name, save)


def register_code_model(
    client: Any,
    experiment: str,
    name: str,
    code: Path,
    signature: Any,
    *,
    model_tags: dict[str, str] | None = None,
) -> str:
    """``register_saved_model`` for a models-from-code pyfunc whose definition is ``code``."""
    import mlflow.pyfunc

    def save(folder: Path) -> None:
        mlflow.pyfunc.save_model(
            str(folder),
            python_model=str(code),
            signature=signature,
            pip_requirements=["mlflow", "pandas"],
        )

    return register_saved_model(client, experiment, name, save, model_tags=model_tags)
