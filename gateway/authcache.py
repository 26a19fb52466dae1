"""A short-lived cache of successful token lookups, so that a hot client does not cost a
store read (and a worker-thread hop) per request.

Only successes are cached, keyed by the token's SHA-256, for at most ``ttl_s`` seconds, and
only while the store is unchanged: given a ``stamp`` (``Services.changes``, see
``core.storage.changes``), any commit by any process (a ``token revoke`` among them) drops the
whole cache, so a revoked token fails on the very next request (on PostgreSQL, as soon as the
commit's notification has reached this process: milliseconds; while the listener is not
connected nothing is cached). Failures always go to the store (and are audited and
rate limited by the caller).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from core.auth import Principal, hash_token

__all__ = ["AUTH_CACHE_TTL_S", "AuthCache"]

AUTH_CACHE_TTL_S = 2.0
MAX_ENTRIES = 1024


class AuthCache:
    """Token hash -> principal, each entry valid for ``ttl_s`` seconds; used on one loop."""

    def __init__(
        self,
        ttl_s: float = AUTH_CACHE_TTL_S,
        *,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
        stamp: Callable[[], object] | None = None,
    ) -> None:
        self.ttl_s = ttl_s
        self._max = max_entries
        self._clock = clock
        self._stamp = stamp
        self._seen: object = None
        self._entries: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    def _fresh(self) -> object:
        """Forget everything if the store changed since the entries were made; returns the
        current stamp."""
        if self._stamp is None:
            return None
        current = self._stamp()
        if current != self._seen:
            self._entries.clear()
            self._seen = current
        return current

    def mark(self) -> object:
        """The store's stamp now: take it before a store lookup and hand it to ``put``."""
        return self._fresh()

    def get(self, token: str) -> Principal | None:
        """The cached principal for ``token``, or None if absent or expired."""
        if self.ttl_s <= 0:
            return None
        self._fresh()
        key = hash_token(token)
        entry = self._entries.get(key)
        if entry is None:
            return None
        principal, expires = entry
        if self._clock() >= expires:
            del self._entries[key]
            return None
        return principal

    def put(self, token: str, principal: Principal, *, mark: object = None) -> None:
        """Remember a successful authentication looked up after ``mark`` was taken; if the
        store changed since then, the lookup may predate a revocation: not cached."""
        if self.ttl_s <= 0:
            return
        if self._fresh() != mark:
            return
        key = hash_token(token)
        self._entries[key] = (principal, self._clock() + self.ttl_s)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
