"""When to try a failed delivery again, when to give up on an event, when to disable.

The delays follow the Standard Webhooks example schedule (5 s, 5 min, 30 min, 2 h, 5 h,
10 h, 10 h) with random jitter, capped so that an event is tried for 24 h from its first
attempt; a webhook that has failed for 3 days without one success is disabled. Tests pass
a scaled policy instead of waiting.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["STANDARD_DELAYS_S", "RetryPolicy"]

STANDARD_DELAYS_S: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
DAY_S = 86_400.0


@dataclass(frozen=True)
class RetryPolicy:
    delays_s: tuple[float, ...] = STANDARD_DELAYS_S
    window_s: float = DAY_S  # how long one event is retried, from its first attempt
    disable_after_s: float = 3 * DAY_S  # failing this long without a success disables
    jitter: float = 0.2  # each delay is scaled by a random factor in [1 - j, 1 + j]

    def delay(self, failed_attempts: int, rng: random.Random | None = None) -> float:
        """The pause after the ``failed_attempts``-th failed attempt (1-based)."""
        index = min(max(failed_attempts, 1), len(self.delays_s)) - 1
        base = self.delays_s[index]
        factor = (rng or random).uniform(1 - self.jitter, 1 + self.jitter)
        return base * factor

    def next_attempt(
        self,
        *,
        failed_attempts: int,
        first_attempt: datetime,
        now: datetime,
        rng: random.Random | None = None,
    ) -> datetime | None:
        """When to try again, or None when the event's retry window is over."""
        end = first_attempt + timedelta(seconds=self.window_s)
        if now >= end:
            return None
        return min(now + timedelta(seconds=self.delay(failed_attempts, rng)), end)

    def disable(self, *, failing_since: datetime, now: datetime) -> bool:
        """Whether a webhook failing since ``failing_since`` should now be disabled."""
        return (now - failing_since).total_seconds() >= self.disable_after_s
