"""Batch inference profiles the rows it scores, in the same pass, so monitoring never re-reads
scored data.

When the scored model version has a reference profile, each chunk writes the profile of its
input rows and of the model's outputs on them (the reference's prediction columns), built
``like=`` the reference (same column kinds and bin edges, at most
:data:`~keelwatch.monitors.checks.PARTITION_SAMPLE_VALUES` sorted values per column), next to
its output part as ``_profile-part-<index>.npz``; when the job finishes, the parts are merged
into ``_input-profile.npz``. The leading underscore keeps both out of Parquet dataset readers.
The names are fixed per chunk and written atomically, so a retried chunk replaces its part and
the output stays idempotent. A ``job:<id>`` monitor window reads the merged profile (merging the
parts itself if the job's last step did not).

Profiling never fails a batch job: an error is logged and the job has no input profile.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keelwatch.monitors.checks import PARTITION_SAMPLE_VALUES, merged_job_profile
from keelwatch.monitors.profiles import load_reference_profile
from keelwatch.monitors.windows import JOB_PROFILE_PART_PREFIX
from keelwatch.storage.profiles import find_reference_profile

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from keelwatch.monitoring.drift.profiles import ReferenceProfile
    from keelwatch.settings import Settings
    from keelwatch.storage.db import Database

logger = logging.getLogger(__name__)

_cache: dict[str, ReferenceProfile] = {}
_cache_lock = threading.Lock()
_CACHE_SIZE = 4


class JobInputProfiler:
    """The hook batch inference calls per chunk and once when the job finishes."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db

    def _reference(self, model_name: str, model_version: str) -> ReferenceProfile | None:
        with self.db.session() as session:
            info = find_reference_profile(session, model_name, model_version)
        if info is None:
            return None
        key = f"{info.artifact_uri}|{info.updated_at.isoformat()}"
        with _cache_lock:
            cached = _cache.get(key)
        if cached is None:
            cached = load_reference_profile(self.settings, info)
            with _cache_lock:
                while len(_cache) >= _CACHE_SIZE:
                    _cache.pop(next(iter(_cache)))
                _cache[key] = cached
        return cached

    def profile_chunk(
        self,
        *,
        model_name: str,
        model_version: str,
        table: pa.Table,
        output_dir: Path,
        chunk_index: int,
        predictions: Mapping[str, np.ndarray[Any, Any]] | None = None,
    ) -> Path | None:
        """Write the chunk's profile; None when there is no reference (or on error).

        Inputs are profiled as the reference's features; ``predictions`` (the chunk's model
        outputs) as its prediction columns, so ``job:<id>`` windows report prediction drift.
        """
        from keelwatch.monitoring.drift.profiles import build_profile, save_profile

        try:
            reference = self._reference(model_name, model_version)
            if reference is None:
                return None
            outputs = predictions or {}
            columns = [
                c
                for c, column in reference.columns.items()
                if column.role == "feature" and c in table.column_names
            ]
            frame = table.select(columns).to_pandas()
            for name, column in reference.columns.items():
                if column.role == "prediction" and name in outputs:
                    frame[name] = outputs[name]
            profile = build_profile(
                frame,
                like=reference,
                max_sorted_values=PARTITION_SAMPLE_VALUES,
                seed=chunk_index + 1,
            )
            path = output_dir / f"{JOB_PROFILE_PART_PREFIX}{chunk_index:05d}.npz"
            temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp.npz")
            try:
                save_profile(profile, temporary)
                temporary.replace(path)
            finally:
                temporary.unlink(missing_ok=True)
            return path
        except Exception:
            logger.exception(
                "could not profile the input of chunk %s in %s", chunk_index, output_dir
            )
            return None

    def finish(self, output_dir: Path) -> None:
        """Merge the chunk profiles into the job's input profile (when there are any)."""
        try:
            if any(output_dir.glob(f"{JOB_PROFILE_PART_PREFIX}*")):
                merged_job_profile(output_dir)
        except Exception:
            logger.exception("could not merge the input profile of %s", output_dir)
