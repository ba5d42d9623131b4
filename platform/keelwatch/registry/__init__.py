"""Façade over MLflow's Model Registry: versions, approvals, aliases, rollback, alias history.

Where new code goes: lifecycle rules in ``facade.py`` (:class:`ModelRegistry`); where a new
version's artifacts come from in ``registration.py``; MLflow conversion, error translation and
the MLflow/DB undo log in ``_mlflow.py``; reference parsing (pure) in ``refs.py``; values
returned to callers in ``entities.py``; HTTP/JSON shapes in ``schemas.py``. Importing this
package does not import MLflow.
"""

from keelwatch.entities.registry import (
    ApprovalState,
    ModelVersionInfo,
    RegisteredModelInfo,
    ResolvedModel,
)
from keelwatch.registry.facade import ModelRegistry
from keelwatch.registry.lifecycle import model_target
from keelwatch.registry.refs import ModelRef, parse_model_ref

__all__ = [
    "ApprovalState",
    "ModelRef",
    "ModelRegistry",
    "ModelVersionInfo",
    "RegisteredModelInfo",
    "ResolvedModel",
    "model_target",
    "parse_model_ref",
]
