"""Field readers for legacy files: each checks type and limit and raises ``BadFile``."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from core.canonical import json_encoder
from core.errors import InvalidIdError
from core.ids import IdKind, validate_id, validate_name
from core.models import MAX_CONTENT_BYTES, MAX_CONTEXT_BYTES, MAX_PROMPT_CHARS, Scope
from core.timeutil import format_ts, parse_ts
from core.transfer.files import BadFile, first_error

__all__ = [
    "LEGACY_ACTOR",
    "MAX_TEXT_CHARS",
    "actor",
    "content_fields",
    "integer",
    "item_id",
    "json_object",
    "known",
    "ref_id",
    "required_text",
    "scope",
    "task_id",
    "text",
    "timestamp",
]

MAX_TEXT_CHARS = 64 * 1024
# ``json.dumps`` with any option builds a new encoder per call: one for every size check.
_encode = json_encoder()
LEGACY_ACTOR = "legacy:unknown"
# What ``core.timeutil.format_ts`` writes: 2026-11-24T15:04:05.123456Z.
_CANONICAL_TS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")


def text(
    data: dict[str, Any], key: str, *, default: str | None = None, max_chars: int = MAX_TEXT_CHARS
) -> str | None:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise BadFile(f"{key} must be a string, got {type(value).__name__}")
    if len(value) > max_chars:
        raise BadFile(f"{key} is {len(value)} characters; the limit is {max_chars}")
    return value


def required_text(data: dict[str, Any], key: str, *, max_chars: int = MAX_TEXT_CHARS) -> str:
    value = text(data, key, max_chars=max_chars)
    if value is None:
        raise BadFile(f"{key} is missing")
    return value


def integer(data: dict[str, Any], key: str, *, default: int, minimum: int = 0) -> int:
    value = data.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value < 2**53:
        raise BadFile(f"{key} must be an integer of at least {minimum}")
    return value


def json_object(data: dict[str, Any], key: str, *, max_bytes: int) -> dict[str, Any] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadFile(f"{key} must be a JSON object, got {type(value).__name__}")
    size = len(_encode(value).encode("utf-8"))
    if size > max_bytes:
        raise BadFile(f"{key} is {size} bytes; the limit is {max_bytes}")
    return value


def timestamp(data: dict[str, Any], key: str) -> str | None:
    """Epoch seconds, epoch milliseconds or an ISO string, as RFC 3339 UTC."""
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, str) and _CANONICAL_TS.fullmatch(value):
        try:  # already in the form the store keeps (every export): only its range is checked
            datetime.fromisoformat(value[:-1])
            return value
        except ValueError:
            pass
    if isinstance(value, str) and value.strip().isdigit():
        if len(value.strip()) > 16:
            raise BadFile(f"{key} is not a timestamp (too many digits)")
        value = int(value.strip())
    try:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, int | float):
            if not math.isfinite(value):
                raise ValueError
            seconds = value / 1000 if abs(value) >= 1e11 else value
            return format_ts(datetime.fromtimestamp(seconds, UTC))
        if isinstance(value, str) and len(value) <= 64:
            return format_ts(parse_ts(value.strip()))
    except (ValueError, OverflowError, OSError):
        pass
    raise BadFile(f"{key} is not a timestamp (epoch seconds, epoch milliseconds or ISO 8601)")


def item_id(data: dict[str, Any], stem: str, kind: IdKind) -> str:
    value = data.get("id", stem)
    try:
        item_id = validate_id(kind, value)
    except InvalidIdError as exc:
        raise BadFile(f"id: {exc.message}") from None
    if item_id != stem:
        raise BadFile(f"the file name does not match its id {item_id}")
    return item_id


def ref_id(data: dict[str, Any], key: str, kind: IdKind) -> str:
    value = data.get(key)
    if value is None:
        raise BadFile(f"{key} is missing")
    try:
        return validate_id(kind, value)
    except InvalidIdError as exc:
        raise BadFile(f"{key}: {exc.message}") from None


def task_id(data: dict[str, Any]) -> str | None:
    value = data.get("task_id")
    if value is None or value == "":
        return None
    try:
        return validate_name(value, what="task_id")
    except InvalidIdError as exc:
        raise BadFile(exc.message) from None


def scope(value: Any) -> Scope:
    if value is None:
        return Scope()
    if isinstance(value, list):  # older orchestrators stored a bare list of globs
        value = {"files": value}
    if not isinstance(value, dict):
        raise BadFile(f"scope must be an object, got {type(value).__name__}")
    try:
        return Scope.model_validate(value)
    except ValidationError as exc:
        raise BadFile(f"scope.{first_error(exc)}") from None


def actor(data: dict[str, Any], key: str) -> str:
    return text(data, key, default=LEGACY_ACTOR, max_chars=200) or LEGACY_ACTOR


def known(model: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    """Keep only the fields ``model`` knows (older files may carry extra keys)."""
    return {k: v for k, v in data.items() if k in model.model_fields}


def content_fields(data: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    prompt = required_text(data, "prompt", max_chars=MAX_PROMPT_CHARS)
    content = text(data, "content", default="", max_chars=MAX_CONTENT_BYTES) or ""
    size = len(content.encode("utf-8"))
    if size > MAX_CONTENT_BYTES:
        raise BadFile(f"content is {size} bytes; the limit is {MAX_CONTENT_BYTES}")
    context = json_object(data, "context", max_bytes=MAX_CONTEXT_BYTES) or {}
    return prompt, content, context
