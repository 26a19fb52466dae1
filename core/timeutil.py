"""RFC 3339 UTC timestamps with microseconds, e.g. 2026-11-24T15:04:05.123456Z."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["format_ts", "now", "now_ts", "parse_ts", "ts_after"]


def now() -> datetime:
    return datetime.now(UTC)


def format_ts(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_ts() -> str:
    return format_ts(now())


def parse_ts(value: str) -> datetime:
    """Parse an RFC 3339 timestamp (``Z`` or offset); naive values are taken as UTC."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def ts_after(seconds: float) -> str:
    return format_ts(now() + timedelta(seconds=seconds))
