"""Opaque keyset cursors: newest first, stable under concurrent inserts."""

from __future__ import annotations

import base64
import binascii

from core.errors import InputValidationError

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "MAX_SEQ", "check_limit", "decode_cursor", "encode_cursor"]

DEFAULT_LIMIT = 50
MAX_SEQ = 2**63 - 1  # the largest sequence number a store column can hold
MAX_LIMIT = 200


def encode_cursor(kind: str, seq: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{seq}".encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str | None) -> int | None:
    """The sequence number behind ``cursor``; an invalid or foreign cursor is a 422."""
    if cursor is None or cursor == "":
        return None
    if len(cursor) > 64:
        raise InputValidationError("invalid cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        prefix, _, number = raw.partition(":")
        seq = int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InputValidationError("invalid cursor") from None
    if prefix != kind:
        raise InputValidationError("invalid cursor: it belongs to another list")
    if not 0 <= seq <= MAX_SEQ:
        raise InputValidationError("invalid cursor")
    return seq


def check_limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise InputValidationError(f"limit must be between 1 and {MAX_LIMIT}")
    return limit
