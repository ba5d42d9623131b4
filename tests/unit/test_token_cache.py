"""The token cache and the rate limiter on a clock the test moves (no sleeping, no timing)."""

from __future__ import annotations

import gc
from datetime import UTC, datetime

import pytest

from keelwatch.auth.cache import TokenCache, forget_token
from keelwatch.auth.ratelimit import RateLimiter
from keelwatch.entities.auth import Principal, PrincipalKind, Role

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def principal(token_id: int) -> Principal:
    return Principal(
        identity=f"token:t{token_id}",
        kind=PrincipalKind.TOKEN,
        roles=frozenset({Role.VIEWER}),
        token_id=token_id,
    )


# --------------------------------------------------------------------------- TokenCache


def test_an_entry_is_served_until_its_ttl_then_dropped() -> None:
    clock = Clock()
    cache = TokenCache(30, clock=clock)
    cache.put("d1", principal(1), expires_at=T0, last_used_at=None)
    clock.now += 29.9
    entry = cache.get("d1")
    assert entry is not None and entry.principal.token_id == 1 and entry.expires_at == T0
    clock.now += 0.1  # exactly 30 s after the check
    assert cache.get("d1") is None
    assert len(cache) == 0  # the stale entry went, it is not kept around
    assert cache.get("never-put") is None


def test_ttl_zero_caches_nothing() -> None:
    cache = TokenCache(0, clock=Clock())
    cache.put("d1", principal(1), expires_at=None, last_used_at=None)
    assert cache.get("d1") is None and len(cache) == 0


def test_forget_drops_every_entry_of_a_token_in_every_cache_of_the_process() -> None:
    clock = Clock()
    first, second = TokenCache(30, clock=clock), TokenCache(30, clock=clock)
    first.put("a", principal(7), expires_at=None, last_used_at=None)
    first.put("b", principal(8), expires_at=None, last_used_at=None)
    second.put("c", principal(7), expires_at=None, last_used_at=None)
    forget_token(7)
    assert first.get("a") is None and second.get("c") is None
    assert first.get("b") is not None


def test_a_revocation_during_the_database_read_voids_the_entry() -> None:
    cache = TokenCache(30, clock=Clock())
    seen = cache.generation  # taken before the row is read
    cache.forget(7)  # revoked through this process while the row was being read
    cache.put("a", principal(7), expires_at=None, last_used_at=None, generation=seen)
    assert cache.get("a") is None
    cache.put("a", principal(7), expires_at=None, last_used_at=None, generation=cache.generation)
    assert cache.get("a") is not None


def test_the_oldest_entries_go_first_past_the_cap() -> None:
    cache = TokenCache(30, max_entries=3, clock=Clock())
    for index in range(3):
        cache.put(f"d{index}", principal(index), expires_at=None, last_used_at=None)
    cache.put("d0", principal(0), expires_at=None, last_used_at=None)  # refreshed: youngest
    cache.put("d3", principal(3), expires_at=None, last_used_at=None)
    assert len(cache) == 3
    assert cache.get("d1") is None  # the oldest
    assert all(cache.get(key) is not None for key in ("d0", "d2", "d3"))


def test_caches_that_are_gone_are_not_kept_for_revocation() -> None:
    from keelwatch.auth import cache as module

    cache = TokenCache(30)
    assert cache in module._caches
    del cache
    gc.collect()
    before = len(module._caches)
    TokenCache(30)  # made and dropped at once
    gc.collect()
    assert len(module._caches) == before


# --------------------------------------------------------------------------- RateLimiter


def test_a_burst_then_the_rate_then_a_refill() -> None:
    clock = Clock()
    limiter = RateLimiter(2.0, 3, clock=clock)  # 2 per second, bursts of 3
    assert [limiter.take("t").allowed for _ in range(4)] == [True, True, True, False]
    refused = limiter.take("t")
    # 0 left: one request comes back after 1 / 2 s.
    assert not refused.allowed and refused.retry_after_s == pytest.approx(0.5)
    assert refused.retry_after_header == "1"  # whole seconds, rounded up
    assert limiter.take("other").allowed  # its own bucket
    clock.now += 0.5
    assert limiter.take("t").allowed
    assert not limiter.take("t").allowed
    clock.now += 10  # refills to the burst, never beyond
    assert [limiter.take("t").allowed for _ in range(4)] == [True, True, True, False]


def test_retry_after_counts_the_part_of_a_request_already_refilled() -> None:
    clock = Clock()
    limiter = RateLimiter(0.25, 1, clock=clock)  # one request per 4 s
    assert limiter.take("t").allowed
    clock.now += 1.0  # a quarter of a request back
    refused = limiter.take("t")
    assert refused.retry_after_s == pytest.approx(3.0)
    assert refused.retry_after_header == "3"


def test_rate_zero_is_no_limit() -> None:
    limiter = RateLimiter(0, 1, clock=Clock())
    assert not limiter.enabled
    assert all(limiter.take("t").allowed for _ in range(1000))
    assert len(limiter) == 0


def test_idle_full_buckets_are_forgotten_first_past_the_cap() -> None:
    clock = Clock()
    limiter = RateLimiter(1.0, 2, max_buckets=2, clock=clock)
    limiter.take("quiet")
    clock.now += 5  # "quiet" is full again: forgetting it changes nothing
    limiter.take("busy")
    limiter.take("new")
    assert len(limiter) == 2
    # "busy" kept its spent request: one left of two.
    assert limiter.take("busy").allowed and not limiter.take("busy").allowed


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="burst >= 1"):
        RateLimiter(1.0, 0)
    with pytest.raises(ValueError, match="rate_per_s must be >= 0"):
        RateLimiter(-1.0, 5)
