"""The registry read cache (keelwatch.registry.cache.ReadCache), on a fake clock; the lock key."""

from __future__ import annotations

import threading
import time
from functools import partial

import pytest

from keelwatch.registry.cache import ReadCache
from keelwatch.storage.locks import model_lock_key


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Loader:
    """Returns ``<label>#<n>`` with n counting this loader's calls."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        return f"{self.label}#{self.calls}"


def test_entries_live_for_the_ttl_then_reload() -> None:
    clock = FakeClock()
    cache = ReadCache(5.0, 10, clock=clock)
    load = Loader("models")
    assert cache.get_or_load((None, "models"), load) == "models#1"
    clock.now += 4.9
    assert cache.get_or_load((None, "models"), load) == "models#1"
    clock.now += 0.1  # exactly ttl_s after the load started: expired
    assert cache.get_or_load((None, "models"), load) == "models#2"
    assert (cache.hits, cache.misses) == (1, 2)


def test_keys_never_share_entries_and_invalidation_is_per_model() -> None:
    cache = ReadCache(60.0, 10, clock=FakeClock())
    a, b, listing = Loader("a"), Loader("b"), Loader("list")
    assert cache.get_or_load(("a", "model"), a) == "a#1"
    assert cache.get_or_load(("b", "model"), b) == "b#1"
    assert cache.get_or_load(("a", "version", "1"), Loader("a1")) == "a1#1"
    assert cache.get_or_load((None, "models"), listing) == "list#1"

    cache.invalidate_model("a")  # a's entries and the cross-model list go; b's stays
    assert cache.get_or_load(("a", "model"), a) == "a#2"
    assert cache.get_or_load(("b", "model"), b) == "b#1"
    assert cache.get_or_load((None, "models"), listing) == "list#2"

    cache.invalidate_model(None)  # unknown model written: everything goes
    assert len(cache) == 0
    assert cache.get_or_load(("b", "model"), b) == "b#2"


def test_bounded_least_recently_used_goes_first() -> None:
    cache = ReadCache(60.0, 2, clock=FakeClock())
    loaders = {name: Loader(name) for name in "xyz"}
    cache.get_or_load(("x", "model"), loaders["x"])
    cache.get_or_load(("y", "model"), loaders["y"])
    cache.get_or_load(("x", "model"), loaders["x"])  # x is now the most recent
    cache.get_or_load(("z", "model"), loaders["z"])  # evicts y
    assert len(cache) == 2
    assert cache.get_or_load(("x", "model"), loaders["x"]) == "x#1"
    assert cache.get_or_load(("y", "model"), loaders["y"]) == "y#2"


def test_a_load_that_overlaps_an_invalidation_is_not_kept() -> None:
    # The load read MLflow before a write that finished (and invalidated) while it ran: its
    # caller gets it, but the next reader must not.
    cache = ReadCache(60.0, 10, clock=FakeClock())
    calls = 0

    def stale_then_fresh() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            cache.invalidate_model("m")  # the write lands during the first load
            return "before-write"
        return "after-write"

    assert cache.get_or_load(("m", "model"), stale_then_fresh) == "before-write"
    assert cache.get_or_load(("m", "model"), stale_then_fresh) == "after-write"
    assert cache.get_or_load(("m", "model"), stale_then_fresh) == "after-write"
    assert calls == 2


def test_zero_ttl_disables_and_errors_are_not_cached() -> None:
    off = ReadCache(0.0, 10, clock=FakeClock())
    load = Loader("m")
    assert [off.get_or_load(("m", "model"), load) for _ in range(3)] == ["m#1", "m#2", "m#3"]
    assert len(off) == 0

    cache = ReadCache(60.0, 10, clock=FakeClock())

    def failing() -> str:
        raise LookupError("registry down")

    with pytest.raises(LookupError):
        cache.get_or_load(("m", "model"), failing)
    assert cache.get_or_load(("m", "model"), load) == "m#4"


def test_concurrent_readers_get_whole_values() -> None:
    cache = ReadCache(60.0, 4, clock=FakeClock())
    seen: list[str] = []
    lock = threading.Lock()

    def reader(index: int) -> None:
        for round_ in range(200):
            name = f"m{(index + round_) % 6}"
            value = cache.get_or_load((name, "model"), partial(str.format, "{}-value", name))
            if round_ % 50 == 0:
                cache.invalidate_model(name)
            with lock:
                seen.append(value if value == f"{name}-value" else f"WRONG {name}: {value}")

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 1600
    assert not [value for value in seen if value.startswith("WRONG")]
    assert len(cache) <= 4


def test_model_lock_key_is_stable_signed_64_bit_and_distinct() -> None:
    # Fixed values: every process and release must agree, or two of them would not exclude
    # each other. (sha256 of b"keelwatch.registry.model:" + name, first 8 bytes, signed.)
    assert model_lock_key("credit") == model_lock_key("credit")
    keys = {model_lock_key(name) for name in ("credit", "churn", "Credit", "credit ")}
    assert len(keys) == 4
    assert all(-(2**63) <= key < 2**63 for key in keys)
    assert model_lock_key("credit") == KNOWN_CREDIT_KEY


KNOWN_CREDIT_KEY = 7588279337434983600


class BlockingLoader:
    """A load that waits for ``release`` (so a test can act while it is in flight)."""

    def __init__(self, value: str) -> None:
        self.value = value
        self.started = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        self.started.set()
        assert self.release.wait(10)
        return self.value


def test_concurrent_misses_share_one_load() -> None:
    cache = ReadCache(60.0, 10, clock=FakeClock())
    slow = BlockingLoader("models")
    results: list[str] = []

    def reader() -> None:
        results.append(cache.get_or_load((None, "models"), slow))

    leader = threading.Thread(target=reader)
    leader.start()
    assert slow.started.wait(10)
    followers = [threading.Thread(target=reader) for _ in range(7)]
    for thread in followers:
        thread.start()
    while cache.misses < 8:  # every follower has found the load in flight
        time.sleep(0.001)
    slow.release.set()
    for thread in (leader, *followers):
        thread.join()
    assert results == ["models"] * 8
    assert slow.calls == 1


def test_expired_entry_is_served_while_one_reader_refreshes_it() -> None:
    clock = FakeClock()
    cache = ReadCache(5.0, 10, clock=clock)
    assert cache.get_or_load(("m", "model"), lambda: "old") == "old"
    clock.now += 6.0  # expired, but younger than twice the TTL
    refresh = BlockingLoader("new")
    refresher = threading.Thread(target=cache.get_or_load, args=(("m", "model"), refresh))
    refresher.start()
    assert refresh.started.wait(10)
    assert cache.get_or_load(("m", "model"), Loader("unused")) == "old"  # no second load
    assert cache.stale_hits == 1
    refresh.release.set()
    refresher.join()
    assert cache.get_or_load(("m", "model"), Loader("unused")) == "new"


def test_nothing_read_before_a_write_is_served_after_it() -> None:
    clock = FakeClock()
    cache = ReadCache(5.0, 10, clock=clock)
    assert cache.get_or_load(("m", "model"), lambda: "before") == "before"
    clock.now += 6.0
    refresh = BlockingLoader("read-before-write")
    refresher = threading.Thread(target=cache.get_or_load, args=(("m", "model"), refresh))
    refresher.start()
    assert refresh.started.wait(10)
    cache.invalidate_model("m")  # a promotion committed while the refresh was running
    # Neither the expired entry nor the running refresh may answer: a fresh load does.
    assert cache.get_or_load(("m", "model"), lambda: "after-write") == "after-write"
    refresh.release.set()
    refresher.join()
    assert cache.get_or_load(("m", "model"), Loader("unused")) == "after-write"
