"""Audit entries, tokens, the status report and pages."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from core.models.base import Role, _Out

__all__ = ["AuditEntry", "AuditHead", "Page", "StatusReport", "TokenInfo"]

# --- audit, tokens, status, pages -------------------------------------------------------


class AuditEntry(_Out):
    seq: int
    ts: str
    actor: str
    action: str
    target: str | None = None
    outcome: Literal["ok", "denied", "error"]
    detail: dict[str, Any] = {}
    prev_hash: str
    hash: str


class AuditHead(_Out):
    """The newest audit entry: record it elsewhere, verify against it later."""

    seq: int
    hash: str


class TokenInfo(_Out):
    name: str
    role: Role
    created_at: str
    last_used_at: str | None = None
    revoked_at: str | None = None
    # OAuth grants (SPEC section 17) are listed with the tokens: the client they were issued
    # to and the user (``role:name``) who allowed it; None for registry tokens.
    client: str | None = None
    user: str | None = None


class StatusReport(_Out):
    version: str
    drafts: dict[str, int]
    approved: int
    runs: dict[str, int]
    worker_alive: bool
    provider_configured: bool
    plan_revision: int


T = TypeVar("T")


class Page(_Out, Generic[T]):
    items: list[T]
    next_cursor: str | None = None
