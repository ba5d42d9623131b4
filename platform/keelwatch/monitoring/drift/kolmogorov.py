"""Survival function of the two-sided one-sample Kolmogorov-Smirnov statistic ``D_n``.

``kolmogorov_sf(n, x)`` equals ``scipy.stats.kstwo.sf(x, n)``: it is SciPy's own algorithm
(``scipy/stats/_ksstats.py``, Simard & L'Ecuyer 2011: Ruben-Gambino closed forms, the
Durbin matrix method in the Marsaglia-Tsang-Wang form, the Pomeranz recursion, the Pelz-Good
expansion and ``2 · smirnov``), adapted to the survival side only. It lives here so that a KS
p-value needs ``scipy.special`` (~80 ms to import) and not ``scipy.stats`` (~0.4 s): the
standalone ``keelwatch drift check`` pays import time on every call.

Adapted from SciPy 1.17 (BSD-3-Clause), Copyright (c) 2001-2002 Enthought, Inc. and 2003
SciPy Developers; the licence text is in ``LICENSES/SciPy-BSD-3-Clause.txt``.
Differences from the original: scalars only, survival side only, and the slow
``2 · smirnov(n, x)`` branch for ``n > 140`` is delegated to a caller-supplied function (the
windowed sum in :mod:`keelwatch.monitoring.drift.ks`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

_E128 = 128
_EP128 = float(np.ldexp(1.0, _E128))
_EM128 = float(np.ldexp(1.0, -_E128))

_SQRT2PI = math.sqrt(2 * math.pi)
_LOG_2PI = math.log(2 * math.pi)
_MIN_LOG = -708
_SQRT3 = math.sqrt(3)
_PI_SQUARED = math.pi**2
_PI_FOUR = math.pi**4
_PI_SIX = math.pi**6

# Stirling series coefficients B_{2j}/(2j)/(2j-1), j = 8, ..., 1 (SciPy's _loggamma.pxd).
_STIRLING_COEFFS = [
    -2.955065359477124183e-2,
    6.4102564102564102564e-3,
    -1.9175269175269175269e-3,
    8.4175084175084175084e-4,
    -5.952380952380952381e-4,
    7.9365079365079365079e-4,
    -2.7777777777777777778e-3,
    8.3333333333333333333e-2,
]


def _clip(p: float) -> float:
    return min(max(float(p), 0.0), 1.0)


def _log_nfactorial_div_n_pow_n(n: int) -> float:
    # log(n! / n**n) by Stirling, with n*log(n) removed up front to avoid cancellation.
    rn = 1.0 / n
    return float(np.log(n) / 2 - n + _LOG_2PI / 2 + rn * np.polyval(_STIRLING_COEFFS, rn / n))


def _cdf_durbin_mtw(n: int, d: float) -> float:
    """``P(D_n <= d)`` by Durbin's matrix method (Marsaglia, Tsang & Wang form)."""
    if d >= 1.0:
        return 1.0
    nd = n * d
    if nd <= 0.5:
        return 0.0
    k = math.ceil(nd)
    h = k - nd
    m = 2 * k - 1
    big_h = np.zeros([m, m])
    intm = np.arange(1, m + 1)
    v = 1.0 - h**intm
    w = np.empty(m)
    fac = 1.0
    for j in intm:
        w[j - 1] = fac
        fac /= j  # may underflow; harmless
        v[j - 1] *= fac
    tt = max(2 * h - 1.0, 0) ** m - 2 * h**m
    v[-1] = (1.0 + tt) * fac
    for i in range(1, m):
        big_h[i - 1 :, i] = w[: m - i + 1]
    big_h[:, 0] = v
    big_h[-1, :] = np.flip(v, axis=0)

    h_power = np.eye(m)
    nn = n
    expnt = 0
    h_expnt = 0
    while nn > 0:
        if nn % 2:
            h_power = np.matmul(h_power, big_h)
            expnt += h_expnt
        big_h = np.matmul(big_h, big_h)
        h_expnt *= 2
        if np.abs(big_h[k - 1, k - 1]) > _EP128:
            big_h /= _EP128
            h_expnt += _E128
        nn = nn // 2

    p = h_power[k - 1, k - 1]
    for i in range(1, n + 1):  # multiply by n!/n^n, rescaling to stay in range
        p = i * p / n
        if np.abs(p) < _EM128:
            p *= _EP128
            expnt -= _E128
    if expnt != 0:
        p = np.ldexp(p, expnt)
    return _clip(p)


def _pomeranz_bounds(i: int, n: int, ll: int, ceilf: int, roundf: int) -> tuple[int, int]:
    if i == 0:
        j1, j2 = -ll - ceilf - 1, ll + ceilf - 1
    else:
        ip1div2, ip1mod2 = divmod(i + 1, 2)
        if ip1mod2 == 0:  # i is odd
            if ip1div2 == n + 1:
                j1, j2 = n - ll - ceilf - 1, n + ll + ceilf - 1
            else:
                j1, j2 = ip1div2 - 1 - ll - roundf - 1, ip1div2 + ll - 1 + ceilf - 1
        else:
            j1, j2 = ip1div2 - 1 - ll - 1, ip1div2 + ll + roundf - 1
    return max(j1 + 2, 0), min(j2, n)


def _cdf_pomeranz(n: int, x: float) -> float:
    """``P(D_n <= x)`` by the Pomeranz (1974) recursion, two rows at a time, rescaled."""
    t = n * x
    ll = math.floor(t)
    f = 1.0 * (t - ll)
    g = min(f, 1.0 - f)
    ceilf = 1 if f > 0 else 0
    roundf = 1 if f > 0.5 else 0
    npwrs = 2 * (ll + 1)
    gpower = np.empty(npwrs)
    twogpower = np.empty(npwrs)
    onem2gpower = np.empty(npwrs)
    gpower[0] = twogpower[0] = onem2gpower[0] = 1.0
    expnt = 0
    g_over_n, two_g_over_n, one_minus_two_g_over_n = g / n, 2 * g / n, (1 - 2 * g) / n
    for m in range(1, npwrs):
        gpower[m] = gpower[m - 1] * g_over_n / m
        twogpower[m] = twogpower[m - 1] * two_g_over_n / m
        onem2gpower[m] = onem2gpower[m - 1] * one_minus_two_g_over_n / m

    v0 = np.zeros([npwrs])
    v1 = np.zeros([npwrs])
    v1[0] = 1
    v0s, v1s = 0, 0
    j1, j2 = _pomeranz_bounds(0, n, ll, ceilf, roundf)
    for i in range(1, 2 * n + 2):
        k1 = j1
        v0, v1 = v1, v0
        v0s, v1s = v1s, v0s
        v1.fill(0.0)
        j1, j2 = _pomeranz_bounds(i, n, ll, ceilf, roundf)
        # The first and last rows convolve with g-powers, the others alternate.
        edge_row = i == 1 or i == 2 * n + 1
        pwrs = gpower if edge_row else (twogpower if i % 2 else onem2gpower)
        ln2 = j2 - k1 + 1
        if ln2 > 0:
            conv = np.convolve(v0[k1 - v0s : k1 - v0s + ln2], pwrs[:ln2])
            conv_start = j1 - k1
            conv_len = j2 - j1 + 1
            v1[:conv_len] = conv[conv_start : conv_start + conv_len]
            if 0 < np.max(v1) < _EM128:
                v1 *= _EP128
                expnt -= _E128
            v1s = v0s + j1 - k1

    ans = v1[n - v1s]
    for m in range(1, n + 1):  # multiply by n!
        if np.abs(ans) > _EP128:
            ans *= _EM128
            expnt += _E128
        ans *= m
    if expnt != 0:
        ans = np.ldexp(ans, expnt)
    return _clip(ans)


def _cdf_pelz_good(n: int, x: float) -> float:
    """Pelz-Good (1976) asymptotic ``P(D_n <= x)``, not clipped (as in SciPy)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    z = np.sqrt(n) * x
    zsquared, zthree, zfour, zsix = z**2, z**3, z**4, z**6
    qlog = -_PI_SQUARED / 8 / zsquared
    if qlog < _MIN_LOG:
        return 0.0
    q = np.exp(qlog)
    k1a = -zsquared
    k1b = _PI_SQUARED / 4
    k2a = 6 * zsix + 2 * zfour
    k2b = (2 * zfour - 5 * zsquared) * _PI_SQUARED / 4
    k2c = _PI_FOUR * (1 - 2 * zsquared) / 16
    k3d = _PI_SIX * (5 - 30 * zsquared) / 64
    k3c = _PI_FOUR * (-60 * zsquared + 212 * zfour) / 16
    k3b = _PI_SQUARED * (135 * zfour - 96 * zsix) / 4
    k3a = -30 * zsix - 90 * z**8

    k0to3 = np.zeros(4)
    # Horner scheme over odd integers for sum c_i q^(i^2).
    maxk = int(np.ceil(16 * z / np.pi))
    for k in range(maxk, 0, -1):
        m = 2 * k - 1
        msquared, mfour, msix = m**2, m**4, m**6
        qpower = np.power(q, 8 * k)
        coeffs = np.array(
            [
                1.0,
                k1a + k1b * msquared,
                k2a + k2b * msquared + k2c * mfour,
                k3a + k3b * msquared + k3c * mfour + k3d * msix,
            ]
        )
        k0to3 *= qpower
        k0to3 += coeffs
    k0to3 *= q
    k0to3 *= _SQRT2PI
    k0to3 /= np.array([z, 6 * zfour, 72 * z**7, 6480 * z**10])

    q = np.exp(-_PI_SQUARED / 2 / zsquared)
    ks = np.arange(maxk, 0, -1)
    ksquared = ks**2
    sqrt3z = _SQRT3 * z
    kspi = np.pi * ks
    qpwers = q**ksquared
    k2extra = np.sum(ksquared * qpwers)
    k2extra *= _PI_SQUARED * _SQRT2PI / (-36 * zthree)
    k0to3[2] += k2extra
    k3extra = np.sum((sqrt3z + kspi) * (sqrt3z - kspi) * ksquared * qpwers)
    k3extra *= _PI_SQUARED * _SQRT2PI / (216 * zsix)
    k0to3[3] += k3extra
    powers_of_n = np.power(n * 1.0, np.arange(len(k0to3)) / 2.0)
    k0to3 /= powers_of_n
    return float(sum(k0to3))


def _smirnov(n: int, x: float) -> float:
    from scipy.special import smirnov

    return float(smirnov(n, x))


def kolmogorov_sf(
    n: int, x: float, two_smirnov_large_n: Callable[[int, float], float] | None = None
) -> float:
    """``P(D_n >= x)``, equal to ``scipy.stats.kstwo.sf(x, n)``; NaN for ``n < 1``.

    ``two_smirnov_large_n(n, x)`` computes ``2 · smirnov(n, x)`` for the branch
    ``n > 140, 2.2 <= n·x² < 370``; by default ``scipy.special.smirnov`` is used.
    """
    if math.isnan(x) or n < 1 or int(n) != n:
        return math.nan
    n = int(n)
    if x >= 1.0:
        return 0.0
    if x <= 0.0:
        return 1.0
    t = n * x
    if t <= 1.0:  # Ruben-Gambino: 1/2n <= x <= 1/n
        if t <= 0.5:
            return 1.0
        if n <= 140:
            prob = float(np.prod(np.arange(1, n + 1) * (1.0 / n) * (2 * t - 1)))
        else:
            prob = math.exp(_log_nfactorial_div_n_pow_n(n) + n * math.log(2 * t - 1))
        return _clip(1.0 - prob)
    if t >= n - 1:  # Ruben-Gambino
        return _clip(2 * (1.0 - x) ** n)
    if x >= 0.5:  # exact: 2 * smirnov
        return _clip(2 * _smirnov(n, x))
    nxsquared = t * x
    if n <= 140:
        if nxsquared <= 0.754693:
            return _clip(1.0 - _cdf_durbin_mtw(n, x))
        if nxsquared <= 4:
            return _clip(1.0 - _cdf_pomeranz(n, x))
        return _clip(2 * _smirnov(n, x))
    if nxsquared >= 370.0:
        return 0.0
    if nxsquared >= 2.2:
        two_smirnov = two_smirnov_large_n or (lambda k, y: 2 * _smirnov(k, y))
        return _clip(two_smirnov(n, x))
    if nxsquared >= 18.0:  # unreachable after the 2.2 cut; kept to mirror SciPy
        cdfprob = 1.0
    elif n <= 100000 and n * x**1.5 <= 1.4:
        cdfprob = _cdf_durbin_mtw(n, x)
    else:
        cdfprob = _cdf_pelz_good(n, x)
    return _clip(1.0 - cdfprob)
