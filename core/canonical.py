"""Canonical JSON and hashing: the basis of ``content_sha256`` and the audit chain.

``content_sha256`` has versions (SPEC section 13); every check uses the item's own:

- ``1``: SHA-256 of the canonical JSON of ``{prompt, content, scope}`` (items approved or
  imported before ``context`` was covered);
- ``2``: SHA-256 of the canonical JSON of ``{prompt, content, context, scope}``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any, Protocol

from core.errors import HashMismatchError

__all__ = [
    "HASH_VERSION",
    "HASH_VERSIONS",
    "Hashable",
    "canonical_json",
    "content_sha256",
    "item_sha256",
    "json_encoder",
    "sha256_hex",
    "verify_item",
]

HASH_VERSION = 2
HASH_VERSIONS = (1, 2)


def json_encoder(
    *, separators: tuple[str, str] = (", ", ": "), sort_keys: bool = False
) -> Callable[[Any], str]:
    """``json.JSONEncoder(ensure_ascii=False, ...).encode`` for data without cycles (decoded
    JSON, model dumps), with the same output: the C encoder built once, where the standard
    ``encode`` builds it (and a float formatter) again on every call."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # an interpreter without the C accelerator
        return json.JSONEncoder(
            ensure_ascii=False, separators=separators, sort_keys=sort_keys
        ).encode
    default = json.JSONEncoder().default
    item_sep, key_sep = separators
    encoder = make(
        None, default, json.encoder.encode_basestring, None, key_sep, item_sep, sort_keys,
        False, True,
    )  # fmt: skip

    def encode(value: Any) -> str:
        return "".join(encoder(value, 0))

    return encode


# One encoder (``json.dumps`` with options builds a new one per call); the same output.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(value: Any) -> str:
    return _CANONICAL.encode(value)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def content_sha256(
    *,
    prompt: str,
    content: str,
    context: dict[str, Any],
    scope: dict[str, Any],
    version: int = HASH_VERSION,
) -> str:
    """``content_sha256`` of this text under formula ``version`` (1 leaves out context)."""
    body: dict[str, Any] = {"prompt": prompt, "content": content, "scope": scope}
    if version == 2:
        body["context"] = context
    elif version != 1:
        raise ValueError(f"unknown hash_version {version!r}")
    return sha256_hex(canonical_json(body))


class _Scope(Protocol):
    def model_dump(self, *, mode: str) -> dict[str, Any]: ...


class Hashable(Protocol):
    """What a hash is taken of: an approved item (or a draft seen as one)."""

    @property
    def id(self) -> str: ...
    @property
    def prompt(self) -> str: ...
    @property
    def content(self) -> str: ...
    @property
    def context(self) -> dict[str, Any]: ...
    @property
    def scope(self) -> _Scope: ...
    @property
    def content_sha256(self) -> str: ...
    @property
    def hash_version(self) -> int: ...


def item_sha256(item: Hashable) -> str:
    """The hash ``item`` has now, under its own ``hash_version``."""
    return content_sha256(
        prompt=item.prompt,
        content=item.content,
        context=item.context,
        scope=item.scope.model_dump(mode="json"),
        version=item.hash_version,
    )


def verify_item(item: Hashable) -> None:
    """Raise ``HashMismatchError`` naming the item when its text no longer has its hash."""
    try:
        actual = item_sha256(item)
    except ValueError:
        actual = None
    if actual != item.content_sha256:
        raise HashMismatchError(
            f"approved item {item.id} fails its content_sha256 check (hash_version "
            f"{item.hash_version}): its stored text was changed after approval, so it is "
            "not shown",
            detail={"id": item.id},
        )
