"""Approval policies (SPEC section 19): recorded approvals and the batch approve body."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from core.ids import IdKind, is_valid_id
from core.models.base import _In, _Out
from core.models.content import Sha256

__all__ = ["ApprovalList", "ApprovalRecord", "ApprovalStatus", "BatchApproveIn", "BatchItemIn"]

ApprovalStatus = Literal["active", "void", "lapsed", "used"]

MAX_BATCH = 100


class ApprovalRecord(_Out):
    """One recorded approval of a draft: who approved which revision and hash, and when it
    lapses (``expires_at``) unless a quorum uses it first."""

    actor: str
    created_at: str
    note: str | None = None
    content_sha256: str
    draft_revision: int
    status: ApprovalStatus
    expires_at: str


class ApprovalList(_Out):
    """``GET /ops/drafts/{id}/approvals``: newest first; ``have`` counts the active, unlapsed
    approvals of the current hash, ``expires_at`` is the earliest lapse among them."""

    items: list[ApprovalRecord]
    have: int
    need: int
    expires_at: str | None = None


class BatchItemIn(_In):
    draft_id: Annotated[str, Field(max_length=64, description="Draft id: 'd_' and a ULID.")]
    expected_sha256: Sha256
    auto_run: bool | None = None

    @field_validator("draft_id")
    @classmethod
    def _draft_id(cls, value: str) -> str:
        if not is_valid_id(IdKind.DRAFT, value):
            raise ValueError("malformed draft id: expected 'd_' followed by a ULID")
        return value


class BatchApproveIn(_In):
    """Body of ``POST /ops/approvals``: each item is approved on its own."""

    items: Annotated[list[BatchItemIn], Field(min_length=1, max_length=MAX_BATCH)]
    note: Annotated[str, Field(max_length=2000)] | None = None
