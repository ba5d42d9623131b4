"""A small in-process cache of registry reads, for the API's ``GET /models...`` routes.

Every uncached ``GET /models`` costs MLflow round trips (76 requests/s at 16 connections before
this cache). Reads are kept for a short TTL (``registry.read_cache_ttl_s``, 5 s by default),
which bounds how long a change made outside this process (the MLflow UI, another API replica, a
worker's rollback) stays unseen (twice the TTL at most, while one reader refreshes an expired
entry and the others still get it); every registry write made through this process drops the
written model's entries and the model list at once (see ``registry._client.GuardedClient``),
so a promotion through the API shows on the next ``GET``.

Only the API's read routes use it (:class:`CachedReads`); the façade's own reads, the ones a
change or a job submission depends on, always go to MLflow.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from keelwatch.registry.refs import parse_model_ref, validate_model_name, validate_version

if TYPE_CHECKING:
    from keelwatch.entities.registry import ModelVersionInfo, RegisteredModelInfo, ResolvedModel
    from keelwatch.registry.facade import ModelRegistry

T = TypeVar("T")

#: Key of one cached read: (model name, or None for reads spanning every model; what; args...).
CacheKey = tuple[Hashable, ...]
_MODELS: CacheKey = (None, "models")


@dataclass(frozen=True)
class _Entry:
    value: Any
    expires_at: float


class _Load:
    """One load of a key in progress; concurrent readers of that key wait for it."""

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.done = threading.Event()
        self.value: Any = None
        self.failed = False


class ReadCache:
    """A bounded, thread-safe TTL cache keyed by ``(model name | None, kind, *args)``.

    - One load per key at a time: readers that miss while a load of their key runs wait for
      it instead of sending MLflow the same calls (16 at once when a popular entry expires).
    - An expired entry is refreshed by the first reader that finds it; until that refresh
      ends, other readers get the expired value (never older than twice the TTL). An entry
      invalidated by a write is gone: nobody gets it after the write.
    - A load that overlaps an invalidation is returned to its caller but neither kept nor
      handed to other readers: it may have read the state before the write.

    Loads run outside the lock (they are MLflow calls).
    """

    def __init__(
        self,
        ttl_s: float,
        max_entries: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[CacheKey, _Entry] = OrderedDict()
        self._loads: dict[CacheKey, _Load] = {}
        self._generation = 0  # bumped by every invalidation
        self.hits = 0
        self.stale_hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        """False when the TTL is 0: every read loads."""
        return self.ttl_s > 0

    def get_or_load(self, key: CacheKey, load: Callable[[], T]) -> T:
        """The cached value of ``key``, or ``load()`` (kept for the TTL). Errors are not kept."""
        if not self.enabled:
            return load()
        with self._lock:
            started = self._clock()
            entry = self._entries.get(key)
            if entry is not None and entry.expires_at > started:
                self._entries.move_to_end(key)
                self.hits += 1
                value: T = entry.value
                return value
            running = self._loads.get(key)
            if running is not None and running.generation != self._generation:
                running = None  # started before a write: its result must not be shared
            if (
                running is not None
                and entry is not None
                and started < entry.expires_at + self.ttl_s
            ):
                self.stale_hits += 1  # being refreshed: the expired value meanwhile
                stale: T = entry.value
                return stale
            self.misses += 1
            if running is None:
                mine = _Load(self._generation)
                self._loads[key] = mine
        if running is not None:
            running.done.wait()
            if not running.failed:
                shared: T = running.value
                return shared
            return load()  # the load we waited for failed: try once ourselves
        return self._lead(key, mine, load, started)

    def _lead(self, key: CacheKey, mine: _Load, load: Callable[[], T], started: float) -> T:
        try:
            value = load()
        except BaseException:
            with self._lock:
                if self._loads.get(key) is mine:
                    del self._loads[key]
            mine.failed = True
            mine.done.set()
            raise
        with self._lock:
            if self._loads.get(key) is mine:
                del self._loads[key]
            if mine.generation == self._generation:
                # The TTL counts from before the load: never serve a read older than ttl_s.
                self._entries[key] = _Entry(value, started + self.ttl_s)
                self._entries.move_to_end(key)
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
        mine.value = value
        mine.done.set()
        return value

    def peek(self, key: CacheKey) -> tuple[bool, Any]:
        """``(True, value)`` when ``key`` holds a fresh entry, else ``(False, None)``; never
        loads, so an async caller can answer a hit without a thread."""
        if not self.enabled:
            return False, None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.expires_at <= self._clock():
                return False, None
            self._entries.move_to_end(key)
            self.hits += 1
            return True, entry.value

    def invalidate_model(self, name: str | None) -> None:
        """Drop ``name``'s entries and every cross-model read (all entries when None)."""
        with self._lock:
            self._generation += 1
            if name is None:
                self._entries.clear()
                return
            for key in [k for k in self._entries if k[0] is None or k[0] == name]:
                del self._entries[key]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


class CachedReads:
    """The façade's read methods the API serves, through a :class:`ReadCache`.

    Cached values are the façade's frozen entities; lists are copied on the way out so a
    caller cannot change what the next request gets.
    """

    def __init__(self, registry: ModelRegistry, cache: ReadCache) -> None:
        self.registry = registry
        self.cache = cache

    def list_models(self) -> list[RegisteredModelInfo]:
        """:meth:`ModelRegistry.list_models`, cached."""
        return list(self.cache.get_or_load(_MODELS, self.registry.list_models))

    def cached_models(self) -> list[RegisteredModelInfo] | None:
        """The model list when the cache holds it fresh (no MLflow call, no blocking), else
        None: the API's ``GET /models`` answers a hit on the event loop, without a thread."""
        found, models = self.cache.peek(_MODELS)
        return list(models) if found else None

    def get_model(self, name: str) -> RegisteredModelInfo:
        """:meth:`ModelRegistry.get_model`, cached per model."""
        name = validate_model_name(name)
        return self.cache.get_or_load((name, "model"), lambda: self.registry.get_model(name))

    def list_versions(self, name: str) -> list[ModelVersionInfo]:
        """:meth:`ModelRegistry.list_versions`, cached per model."""
        name = validate_model_name(name)
        loaded = self.cache.get_or_load(
            (name, "versions"), lambda: self.registry.list_versions(name)
        )
        return list(loaded)

    def get_version(self, name: str, version: str | int) -> ModelVersionInfo:
        """:meth:`ModelRegistry.get_version`, cached per version."""
        name = validate_model_name(name)
        version = validate_version(version)
        return self.cache.get_or_load(
            (name, "version", version), lambda: self.registry.get_version(name, version)
        )

    def resolve(self, ref: str) -> ResolvedModel:
        """:meth:`ModelRegistry.resolve`, cached per parsed reference (so ``m``, ``m@champion``
        and ``models:/m@champion`` share one entry)."""
        parsed = parse_model_ref(ref, default_alias=self.registry.policy.champion_alias)
        key = (parsed.name, "resolve", parsed.alias, str(parsed.version))
        return self.cache.get_or_load(key, lambda: self.registry.resolve(ref))
