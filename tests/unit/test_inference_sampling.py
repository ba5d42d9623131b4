"""Deterministic prediction-log sampling."""

from __future__ import annotations

import numpy as np
import pytest

from keelwatch.inference.planning import plan_chunks
from keelwatch.inference.sampling import prediction_request_id, sampled_rows


def test_same_job_and_rows_give_the_same_sample() -> None:
    first = sampled_rows("job-a", 0, 50_000, 0.02)
    assert np.array_equal(first, sampled_rows("job-a", 0, 50_000, 0.02))


def test_sample_does_not_depend_on_chunking() -> None:
    whole = sampled_rows("job-b", 0, 30_000, 0.05)
    for chunk_rows in (1, 997, 10_000):
        pieces = [sampled_rows("job-b", a, b, 0.05) for a, b in plan_chunks(30_000, chunk_rows)]
        assert np.array_equal(np.concatenate(pieces), whole)


def test_different_jobs_pick_different_rows() -> None:
    a = set(sampled_rows("job-a", 0, 20_000, 0.05).tolist())
    b = set(sampled_rows("job-b", 0, 20_000, 0.05).tolist())
    assert a != b
    # Independent 5% samples overlap on about 5% of each other.
    assert len(a & b) < 0.2 * len(a)


@pytest.mark.parametrize("rate", [0.001, 0.01, 0.1, 0.5])
def test_sample_size_follows_the_rate(rate: float) -> None:
    rows = 200_000
    picked = sampled_rows("job-rate", 0, rows, rate)
    expected = rows * rate
    spread = 5 * np.sqrt(rows * rate * (1 - rate))
    assert abs(len(picked) - expected) < spread
    assert np.all(np.diff(picked) > 0)
    assert picked.min() >= 0 and picked.max() < rows


def test_edges() -> None:
    assert sampled_rows("j", 0, 100, 0.0).size == 0
    assert sampled_rows("j", 5, 5, 0.5).size == 0
    assert sampled_rows("j", 10, 15, 1.0).tolist() == [10, 11, 12, 13, 14]


def test_request_ids_name_job_and_row() -> None:
    assert prediction_request_id("abc", 42) == "abc:42"
