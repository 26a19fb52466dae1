"""Canonical JSON and hashing: the basis of ``content_sha256`` and the audit chain."""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["canonical_json", "content_sha256", "sha256_hex"]


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def content_sha256(*, prompt: str, content: str, scope: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``{prompt, content, scope}``."""
    return sha256_hex(canonical_json({"prompt": prompt, "content": content, "scope": scope}))
