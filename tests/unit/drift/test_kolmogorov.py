"""The vendored Kolmogorov distribution equals ``scipy.stats.kstwo.sf`` branch by branch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from keelwatch.monitoring.drift.kolmogorov import kolmogorov_sf


@pytest.mark.parametrize("n", [1, 2, 5, 17, 60, 140, 141, 400, 20_000, 100_000, 100_001])
def test_matches_kstwo_sf_in_every_branch(n: int) -> None:
    # n*x^2 from 0.01 to 500 crosses every cut of Simard & L'Ecuyer's algorithm: Ruben-Gambino
    # near 1/n and 1, Durbin below 0.754693, Pomeranz below 4, Pelz-Good and 2*smirnov above.
    nx2 = np.geomspace(0.01, 500.0, 80)
    grid = np.concatenate((np.sqrt(nx2 / n), [0.5 / n, 0.75 / n, 1.0 / n, 0.5, 0.75, 1 - 1e-9]))
    checked = 0
    for x in grid:
        x = float(x)
        if not 0 < x < 1:
            continue
        expected = float(stats.kstwo.sf(x, n))
        got = kolmogorov_sf(n, x)
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-300), (n, x)
        checked += 1
    assert checked >= 10


def test_support_ends_and_invalid_sizes() -> None:
    assert kolmogorov_sf(10, 0.0) == 1.0 == float(stats.kstwo.sf(0.0, 10))
    assert kolmogorov_sf(10, 1.0) == 0.0 == float(stats.kstwo.sf(1.0, 10))
    assert kolmogorov_sf(10, 0.01) == 1.0  # below the support's lower end 0.5 / n
    assert np.isnan(kolmogorov_sf(0, 0.3))
    assert np.isnan(kolmogorov_sf(10, float("nan")))


def test_asymptotic_pvalue_does_not_import_scipy_stats() -> None:
    # The standalone CLI pays every import on every call; scipy.stats alone costs ~0.4 s.
    code = (
        "import sys, numpy as np\n"
        "from keelwatch.monitoring.drift.ks import ks_two_sample\n"
        "rng = np.random.default_rng(0)\n"
        "a, b = np.sort(rng.normal(size=20_000)), np.sort(rng.normal(0.01, size=30_000))\n"
        "res = ks_two_sample(a, b, 'auto')\n"
        "assert res.method == 'asymp' and 0 < res.pvalue < 1, res\n"
        "print('scipy.stats' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
