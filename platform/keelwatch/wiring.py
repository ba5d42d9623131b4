"""Wiring shared by the entry points (CLI, API, workers): settings → database, registry, sender.

Entry points build one :class:`Services` from :class:`~keelwatch.settings.Settings`; the heavy
parts (MLflow client, Celery app) are created on first use so that ``keelwatch --help`` and the
standalone drift CLI start fast.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

# Producers whose signal names live outside the catalogue's own module register them at import;
# every entry point builds Services, so the rules its API or CLI validates may watch them.
import keelwatch.monitoring.ops  # noqa: F401 - registers the ops.* signal names
from keelwatch.monitoring.service import (  # noqa: F401 - fairness.* names
    bias_audits as _bias_audits,
)
from keelwatch.monitoring.service import (  # noqa: F401 - evaluation.* names
    evaluations as _evaluations,
)
from keelwatch.monitoring.service import (  # noqa: F401 - moderation.* names
    moderation as _moderation,
)
from keelwatch.monitoring.service import realized as _realized  # noqa: F401 - realized.* names
from keelwatch.settings import Settings
from keelwatch.storage.db import Database

if TYPE_CHECKING:
    from keelwatch.contract import TaskSender
    from keelwatch.registry import ModelRegistry
    from keelwatch.secrets_at_rest import NotifierSecrets


class Services:
    """Lazily built collaborators for one process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.ensure_data_dir()

    @cached_property
    def db(self) -> Database:
        """Keelwatch's own SQL store."""
        return Database(
            self.settings.database.url,
            echo=self.settings.database.echo,
            pool_size=self.settings.database.pool_size,
        )

    @cached_property
    def registry(self) -> ModelRegistry:
        """Façade over MLflow's Model Registry."""
        from keelwatch.registry import ModelRegistry

        return ModelRegistry(
            self.db,
            tracking_uri=self.settings.mlflow.tracking_uri,
            registry_uri=self.settings.mlflow.registry_uri,
            artifact_root=self.settings.mlflow.artifact_root,
            policy=self.settings.registry,
            request_timeout_s=self.settings.mlflow.request_timeout_s,
            request_max_retries=self.settings.mlflow.request_max_retries,
        )

    @cached_property
    def notifier_secrets(self) -> NotifierSecrets:
        """Encrypts and decrypts notifier secrets at rest (pass it to the notifier store)."""
        from keelwatch.secrets_at_rest import notifier_secrets

        return notifier_secrets(self.settings)

    @cached_property
    def sender(self) -> TaskSender:
        """A Celery client app (no task modules imported) to enqueue work by name."""
        from keelwatch.celery_config import create_client

        return create_client(self.settings)

    def close(self) -> None:
        """Release pooled connections."""
        if "db" in self.__dict__:
            self.db.dispose()
