"""Keelwatch: model registry, worker fleet, drift, bias audits, moderation, alerts and actions.

Subpackages: ``registry`` (MLflow façade), ``storage`` (SQLAlchemy models and repositories),
``monitoring`` (drift, fairness, moderation), ``api`` (FastAPI), plus ``settings``, ``jobs``
(the contract with workers), ``metrics`` and ``cli``.
"""

__version__ = "0.1.0"
