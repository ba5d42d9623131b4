"""Per-caller rate limits: one token bucket per key (a token, an OIDC subject, or a client
address when authentication is off). Pure: no I/O, no frameworks; the clock is injected.

A bucket holds up to ``burst`` requests and refills at ``rate_per_s``; a request takes one,
and a request that finds less than one is refused with how long until one is there. The
buckets live in one process's memory: with N API replicas behind a load balancer a caller may
make up to N times the rate in all (docs/security.md says so).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

#: Buckets kept at most; past it, the buckets that have refilled completely (their callers
#: went quiet, so forgetting them changes nothing) are dropped, then the oldest.
MAX_BUCKETS = 10_000


@dataclass(frozen=True, slots=True)
class RateDecision:
    """Whether a request may go on; when not, how many seconds until it may."""

    allowed: bool
    retry_after_s: float = 0.0

    @property
    def retry_after_header(self) -> str:
        """``Retry-After`` in whole seconds (HTTP's unit), rounded up, at least 1."""
        return str(max(1, math.ceil(self.retry_after_s)))


_ALLOWED = RateDecision(True)


class RateLimiter:
    """Token buckets keyed by caller. ``rate_per_s = 0`` allows everything."""

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        *,
        max_buckets: int = MAX_BUCKETS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_s < 0 or burst < 1:
            raise ValueError("rate_per_s must be >= 0 and burst >= 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_buckets = max_buckets
        self._clock = clock
        # key -> (requests left, when that was computed)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """False when the rate is 0 (no limit)."""
        return self.rate_per_s > 0

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str) -> RateDecision:
        """Spend one request from ``key``'s bucket, or say how long until one is there."""
        if not self.enabled:
            return _ALLOWED
        now = self._clock()
        with self._lock:
            left, at = self._buckets.get(key, (float(self.burst), now))
            left = min(float(self.burst), left + (now - at) * self.rate_per_s)
            if left >= 1.0:
                if key not in self._buckets and len(self._buckets) >= self.max_buckets:
                    self._prune(now)
                self._buckets[key] = (left - 1.0, now)
                return _ALLOWED
            self._buckets[key] = (left, now)
            return RateDecision(False, (1.0 - left) / self.rate_per_s)

    def _prune(self, now: float) -> None:
        full_after_s = self.burst / self.rate_per_s
        for key in [k for k, (_, at) in self._buckets.items() if now - at >= full_after_s]:
            del self._buckets[key]
        while len(self._buckets) >= self.max_buckets:
            del self._buckets[next(iter(self._buckets))]
