"""Plain values passed between layers: storage converts ORM rows into these, and nothing above
``storage/`` ever sees an ORM object.

What belongs here: frozen dataclasses, enums and named tuples, one module per area
(``jobs``, ``predictions``, ``audit``, ``monitors``, ``registry``, ``signals``) and the clock
(``time``).
What does not: behaviour that needs I/O, SQLAlchemy, MLflow, Pydantic or settings. Entities
import nothing of Keelwatch but ``keelwatch.errors`` and each other, so every layer, the pure
``monitoring`` packages included, may import them.
"""

from keelwatch.entities.alerts import (
    Acknowledgement,
    Alert,
    AlertState,
    AlertTransition,
    Comparison,
    GroupState,
    InhibitRule,
    Matcher,
    MatchOp,
    NotificationIntent,
    Route,
    Rule,
    Severity,
    Silence,
)
from keelwatch.entities.audit import AliasChange, AuditEntry
from keelwatch.entities.jobs import ChunkStatus, Job, JobChunk, JobStatus
from keelwatch.entities.predictions import (
    LabelledPrediction,
    LabelRecord,
    LabelValue,
    LabelWriteResult,
    PredictionLabel,
    PredictionRecord,
)
from keelwatch.entities.signals import Signal, labels_fingerprint
from keelwatch.entities.time import utcnow

__all__ = [
    "Acknowledgement",
    "Alert",
    "AlertState",
    "AlertTransition",
    "AliasChange",
    "AuditEntry",
    "ChunkStatus",
    "Comparison",
    "GroupState",
    "InhibitRule",
    "Job",
    "JobChunk",
    "JobStatus",
    "LabelRecord",
    "LabelValue",
    "LabelWriteResult",
    "LabelledPrediction",
    "MatchOp",
    "Matcher",
    "NotificationIntent",
    "PredictionLabel",
    "PredictionRecord",
    "Route",
    "Rule",
    "Severity",
    "Signal",
    "Silence",
    "labels_fingerprint",
    "utcnow",
]
