"""A short-lived cache of successful token lookups, so that a hot client does not cost a
store read (and a worker-thread hop) per request.

Only successes are cached, keyed by the token's SHA-256, for at most ``ttl_s`` seconds, and
only while the token registry is unchanged. Two stamps tell:

- ``stamp`` (``Services.changes``, see ``core.storage.changes``) changes with any commit by
  any process and costs nothing to read (a file's stat, a count of notifications);
- ``registry`` (``AccessService.registry_stamp``: one small read of the tokens table) changes
  only when a token is added, revoked or removed.

While ``stamp`` is unchanged the registry is too; when it changed, the registry stamp is read
again, and only a changed registry (a ``token revoke`` among them) drops the cache. So a
stream of approvals keeps the cache warm, and a revoked token still fails on the very next
request (on PostgreSQL, as soon as the commit's notification has reached this process:
milliseconds; while the listener is not connected the registry is read on every request).
Without ``registry`` any change of ``stamp`` drops the whole cache. Failures always go to
the store (and are audited and rate limited by the caller).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from core.auth import Principal, hash_token

__all__ = ["AUTH_CACHE_TTL_S", "AuthCache"]

AUTH_CACHE_TTL_S = 2.0
MAX_ENTRIES = 1024

_UNKNOWN = object()


class AuthCache:
    """Token hash -> principal, each entry valid for ``ttl_s`` seconds; used on one loop."""

    def __init__(
        self,
        ttl_s: float = AUTH_CACHE_TTL_S,
        *,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
        stamp: Callable[[], object] | None = None,
        registry: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.ttl_s = ttl_s
        self._max = max_entries
        self._clock = clock
        self._stamp = stamp
        self._registry = registry
        self._seen: object = _UNKNOWN  # the store stamp the registry was last read under
        self._registry_seen: object = _UNKNOWN
        self._entries: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    async def _fresh(self) -> object:
        """Forget everything if the token registry (without ``registry``: the store) changed
        since the entries were made; returns the registry's current stamp."""
        if self._stamp is None:
            return None
        current = self._stamp()
        if current == self._seen:
            return self._registry_seen
        if self._registry is None:
            self._entries.clear()
            self._seen = self._registry_seen = current
            return current
        try:
            registry = await self._registry()
        except Exception:  # the store is unreachable: trust nothing, cache nothing
            self._entries.clear()
            self._seen = self._registry_seen = _UNKNOWN
            return object()
        if registry != self._registry_seen:
            self._entries.clear()
            self._registry_seen = registry
        # Taken before the read: a commit during it is looked at on the next call.
        self._seen = current
        return registry

    async def mark(self) -> object:
        """The registry's stamp now: take it before a store lookup and hand it to ``put``."""
        return await self._fresh()

    async def get(self, token: str) -> Principal | None:
        """The cached principal for ``token``, or None if absent or expired."""
        if self.ttl_s <= 0:
            return None
        await self._fresh()
        key = hash_token(token)
        entry = self._entries.get(key)
        if entry is None:
            return None
        principal, expires = entry
        if self._clock() >= expires:
            del self._entries[key]
            return None
        return principal

    async def put(self, token: str, principal: Principal, *, mark: object = None) -> None:
        """Remember a successful authentication looked up after ``mark`` was taken; if the
        registry changed since then, the lookup may predate a revocation: not cached."""
        if self.ttl_s <= 0:
            return
        if await self._fresh() != mark:
            return
        key = hash_token(token)
        self._entries[key] = (principal, self._clock() + self.ttl_s)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
