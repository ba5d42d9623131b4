"""Data drift: reference profiles, two-sample statistics and the engine that combines them.

Where things go:

* ``ks.py`` — the Kolmogorov-Smirnov test against a pre-sorted reference (scipy-exact);
* ``statistics.py`` — every other statistic (PSI, KL, JS, Wasserstein, chi², z) and BH-FDR;
* ``sketch.py`` — the mergeable quantile sketch and its error bound;
* ``columns.py`` — column kinds, type inference, value extraction, input errors;
* ``profiles.py`` — :class:`ReferenceProfile`: build, merge, save, load;
* ``engine.py`` — :func:`compute_drift`: test choice, FDR, effect-size floors, statuses;
* ``report.py`` — the result dataclasses.

All of it is pure (arrays and data frames in, dataclasses out). Tasks that read windows from
the prediction log, MLflow artifacts or Prometheus gauges live with the workers and the API.
See ``docs/drift.md`` for the user guide.
"""

from keelwatch.monitoring.drift.columns import DriftInputError, MixedTypeColumnError
from keelwatch.monitoring.drift.engine import STATTESTS, DriftConfig, compute_drift
from keelwatch.monitoring.drift.ks import KsResult, SortedSample, ks_two_sample
from keelwatch.monitoring.drift.profiles import (
    ColumnProfile,
    ReferenceProfile,
    build_profile,
    load_profile,
    merge_profiles,
    save_profile,
)
from keelwatch.monitoring.drift.report import ColumnDrift, DriftReport
from keelwatch.monitoring.drift.sketch import QuantileSketch, ks_statistic_from_sketches

__all__ = [
    "STATTESTS",
    "ColumnDrift",
    "ColumnProfile",
    "DriftConfig",
    "DriftInputError",
    "DriftReport",
    "KsResult",
    "MixedTypeColumnError",
    "QuantileSketch",
    "ReferenceProfile",
    "SortedSample",
    "build_profile",
    "compute_drift",
    "ks_statistic_from_sketches",
    "ks_two_sample",
    "load_profile",
    "merge_profiles",
    "save_profile",
]
