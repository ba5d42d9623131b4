"""Batch inference profiles the rows it scores, in the same pass, so monitoring never re-reads
scored data.

When the scored model version has a reference profile, each chunk writes the profile of its
input rows and of the model's outputs on them (the reference's prediction columns), built
``like=`` the reference (same column kinds and bin edges, at most
:data:`~keelwatch.monitoring.service.checks.PARTITION_SAMPLE_VALUES` sorted values per column),
next to its output part as ``_profile-part-<index>.npz``; when the job finishes (once: the step that
completes its last chunk), the parts are merged into one capped ``_input-profile.npz`` (at most
:data:`JOB_PROFILE_SAMPLE_VALUES` sorted values per numeric column)
and deleted, so a job's profile costs a fixed few hundred kilobytes per column instead of
growing with its row count. The leading underscore keeps both out of Parquet dataset readers.
The names are fixed per chunk and written atomically, so a retried chunk replaces its part and
the output stays idempotent. A ``job:<id>`` monitor window reads the merged profile (merging the
parts itself, and leaving them, for jobs finished before parts were merged and deleted).

Profiling never fails a batch job: an error is logged and the job has no input profile.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keelwatch.errors import KeelwatchError, NotFoundError
from keelwatch.monitoring.service.checks import PARTITION_SAMPLE_VALUES
from keelwatch.monitoring.service.profiles import load_reference_profile
from keelwatch.monitoring.service.windows import JOB_PROFILE_PART_PREFIX, job_profile_paths
from keelwatch.storage.profiles import find_reference_profile

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from keelwatch.monitoring.drift.profiles import ReferenceProfile
    from keelwatch.settings import Settings
    from keelwatch.storage.db import Database

logger = logging.getLogger(__name__)

#: Sorted values kept per numeric column in a finished batch job's merged input profile: about
#: 320 KB per column (values and their sample priorities), whatever the job's size.
JOB_PROFILE_SAMPLE_VALUES = 20_000

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
        """Merge the chunk profiles into the job's capped input profile and delete them."""
        try:
            if any(output_dir.glob(f"{JOB_PROFILE_PART_PREFIX}*")):
                merge_job_profile(output_dir, delete_parts=True)
        except Exception:
            logger.exception("could not merge the input profile of %s", output_dir)


def merged_job_profile(output_dir: Path) -> ReferenceProfile:
    """The input profile of a batch job: its merged file, or its chunk parts merged now.

    Jobs finished before merging moved to the job's last step still have only parts; they are
    merged here (and the merged file written) but left in place.
    """
    from keelwatch.monitoring.drift.profiles import load_profile

    merged_path, parts = job_profile_paths(output_dir)
    if merged_path.exists():
        return load_profile(merged_path)
    if not parts:
        raise NotFoundError(
            f"batch job output {output_dir} has no input profile: the model version had no "
            "reference profile when the job ran"
        )
    try:
        return merge_job_profile(output_dir, delete_parts=False)
    except (OSError, KeelwatchError):
        # The job's last step merged and deleted the parts while they were being read.
        if merged_path.exists():
            return load_profile(merged_path)
        raise


def merge_job_profile(output_dir: Path, *, delete_parts: bool) -> ReferenceProfile:
    """Merge a batch job's chunk profiles into one capped ``_input-profile.npz``.

    At most :data:`JOB_PROFILE_SAMPLE_VALUES` sorted values per numeric column are kept (a
    uniform sample beyond that; counts, histograms, moments and category counts stay exact).
    The merged file is written atomically before any part is deleted, so a crash in between
    leaves a readable profile and stray parts, never neither.
    """
    from keelwatch.monitoring.drift.profiles import load_profile, merge_profiles, save_profile

    merged_path, parts = job_profile_paths(output_dir)
    if not parts:
        raise NotFoundError(f"batch job output {output_dir} has no chunk profiles")
    merged: ReferenceProfile | None = None
    for index, path in enumerate(parts):
        profile = load_profile(path)
        merged = (
            profile
            if merged is None
            else merge_profiles(
                merged, profile, max_sorted_values=JOB_PROFILE_SAMPLE_VALUES, seed=index
            )
        )
    assert merged is not None
    if len(parts) == 1:
        # One chunk: nothing was merged, so cap it by merging with an empty profile of itself.
        merged = _capped(merged)
    temporary = merged_path.with_name(f".{merged_path.name}.{uuid.uuid4().hex}.tmp.npz")
    try:
        save_profile(merged, temporary)
        temporary.replace(merged_path)
    finally:
        temporary.unlink(missing_ok=True)
    if delete_parts:
        for path in parts:
            path.unlink(missing_ok=True)
    return merged


def _capped(profile: ReferenceProfile) -> ReferenceProfile:
    """``profile`` with at most :data:`JOB_PROFILE_SAMPLE_VALUES` sorted values per column."""
    from keelwatch.monitoring.drift.profiles import merge_profiles

    if all(
        c.numeric is None or c.numeric.support.values.size <= JOB_PROFILE_SAMPLE_VALUES
        for c in profile.columns.values()
    ):
        return profile
    empty = _empty_like(profile)
    return merge_profiles(profile, empty, max_sorted_values=JOB_PROFILE_SAMPLE_VALUES)


def _empty_like(profile: ReferenceProfile) -> ReferenceProfile:
    import numpy as np

    from keelwatch.monitoring.drift.profiles import ReferenceProfile as ProfileType
    from keelwatch.monitoring.drift.profiles import build_profile

    frame = {
        name: np.empty(0, dtype=object if column.kind == "categorical" else np.float64)
        for name, column in profile.columns.items()
    }
    empty = build_profile(frame, like=profile)
    return ProfileType(empty.columns, 0, {})
