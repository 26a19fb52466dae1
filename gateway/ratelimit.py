"""In-memory token buckets: requests per token, failed authentications per client address."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from core.config import Settings
from core.errors import RateLimitedError

__all__ = ["Limits", "RateLimiter"]

MAX_KEYS = 10_000


class RateLimiter:
    """A bucket of ``per_minute`` tokens per key, refilled continuously; thread-safe."""

    def __init__(
        self,
        per_minute: int,
        *,
        what: str,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.what = what
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        tokens, updated = self._buckets.get(key, (self.capacity, now))
        return min(self.capacity, tokens + (now - updated) * self.rate)

    def _store(self, key: str, tokens: float, now: float) -> None:
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)

    def _refuse(self, tokens: float) -> RateLimitedError:
        wait = max(1, math.ceil((1.0 - tokens) / self.rate))
        return RateLimitedError(f"too many {self.what}; retry in {wait} s", retry_after=wait)

    def check(self, key: str) -> None:
        """Raise ``RateLimitedError`` if ``key`` has no token left, without taking one."""
        with self._lock:
            tokens = self._level(key, self._clock())
        if tokens < 1.0:
            raise self._refuse(tokens)

    def hit(self, key: str) -> None:
        """Take one token for ``key``, or raise ``RateLimitedError`` if none is left."""
        with self._lock:
            now = self._clock()
            tokens = self._level(key, now)
            if tokens < 1.0:
                self._store(key, tokens, now)
                raise self._refuse(tokens)
            self._store(key, tokens - 1.0, now)

    def record(self, key: str) -> None:
        """Take one token for ``key`` if there is one (counting a failure)."""
        with self._lock:
            now = self._clock()
            self._store(key, max(0.0, self._level(key, now) - 1.0), now)


@dataclass(frozen=True)
class Limits:
    """The gateway's two limiters."""

    requests: RateLimiter
    auth_failures: RateLimiter

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            requests=RateLimiter(settings.rate_limit_per_minute, what="requests for this token"),
            auth_failures=RateLimiter(
                settings.auth_fail_limit_per_minute,
                what="failed authentications from this address",
            ),
        )
