"""The API's cached token checks: a token checked against the database once is trusted for a
short while (``auth.token_cache_ttl_s``, 30 s by default) without another read.

Entries are keyed by the token's HMAC-SHA256 under the server secret (what the database
stores), never by the token itself, so a memory dump of the cache holds nothing a client could
present. Each entry keeps what a request needs: the principal (identity, role, token id),
``expires_at`` (checked on every hit, so an expired token is refused even while cached) and the
last ``last_used_at`` this process knows of (so the once-a-minute write needs no read).

Revocation: :func:`~keelwatch.auth.tokens.revoke_tokens` calls :func:`forget_token` for every
cache of this process, at once and again after its transaction commits, so a token revoked
through this process is refused on the next request. Another process (the CLI, another API
replica) cannot reach this memory: its revocation takes effect here when the entry expires,
within the TTL. Failed checks are not cached: an unknown or wrong token goes to the database
every time, so there is nothing to invalidate when a token is created.

Thread safety: hits are read on the event loop, entries written from the thread pool after a
database check; one lock guards the dictionary (uncontended, so a hit costs well under a
microsecond of locking).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from keelwatch.entities.auth import Principal

#: Entries one process keeps at most; past it the oldest go first (a deployment has far fewer
#: live tokens, so this only bounds memory against an unexpected flood).
MAX_ENTRIES = 10_000

_caches: weakref.WeakSet[TokenCache] = weakref.WeakSet()
_caches_lock = threading.Lock()


@dataclass(slots=True)
class CachedToken:
    """One verified token: who it is, when it stops working, when its use was last recorded."""

    principal: Principal
    expires_at: datetime | None
    #: ``time.monotonic()`` when the database said this token was good.
    checked_at: float
    #: The newest ``last_used_at`` this process knows (read from the row, or written by it).
    last_used_at: datetime | None


class TokenCache:
    """HMAC digest → :class:`CachedToken`, each entry good for ``ttl_s`` seconds.

    ``ttl_s = 0`` turns caching off (every :meth:`get` misses). ``clock`` is injectable for
    tests; it must be monotonic.
    """

    def __init__(
        self,
        ttl_s: float,
        *,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, CachedToken] = {}
        self._lock = threading.Lock()
        #: Bumped by every :meth:`forget` and :meth:`clear`; see :meth:`put`.
        self.generation = 0
        with _caches_lock:
            _caches.add(self)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: str) -> CachedToken | None:
        """The fresh entry for ``digest``, or None (absent, or older than the TTL: dropped)."""
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if self._clock() - entry.checked_at >= self.ttl_s:
            with self._lock:
                if self._entries.get(digest) is entry:
                    del self._entries[digest]
            return None
        return entry

    def put(
        self,
        digest: str,
        principal: Principal,
        *,
        expires_at: datetime | None,
        last_used_at: datetime | None,
        generation: int | None = None,
    ) -> CachedToken:
        """Remember a token the database just accepted (nothing is kept when the TTL is 0).

        ``generation``: :attr:`generation` as it was before the database was read. When a
        revocation came through this process in between, the row read may predate it, so the
        entry is not kept (the next request reads the row again).
        """
        entry = CachedToken(principal, expires_at, self._clock(), last_used_at)
        if self.ttl_s <= 0:
            return entry
        with self._lock:
            if generation is not None and generation != self.generation:
                return entry
            self._entries.pop(digest, None)  # re-inserted last: the eviction order is age
            while len(self._entries) >= self.max_entries:
                del self._entries[next(iter(self._entries))]
            self._entries[digest] = entry
        return entry

    def forget(self, token_id: int) -> int:
        """Drop every entry of token ``token_id``; how many there were."""
        with self._lock:
            self.generation += 1
            doomed = [
                key for key, entry in self._entries.items() if entry.principal.token_id == token_id
            ]
            for key in doomed:
                del self._entries[key]
        return len(doomed)

    def clear(self) -> None:
        """Drop every entry (the next request of each token reads its row again)."""
        with self._lock:
            self.generation += 1
            self._entries.clear()


def forget_token(token_id: int) -> None:
    """Drop token ``token_id`` from every cache of this process (called on revocation)."""
    with _caches_lock:
        caches = list(_caches)
    for cache in caches:
        cache.forget(token_id)
