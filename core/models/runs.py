"""Runs, their log lines and the event log entries."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field

from core.models.base import Executor, Name, RunStatus, _In, _Out
from core.models.content import ApprovalCount, Approved

__all__ = [
    "ApproveResult",
    "EVENT_TYPES",
    "Event",
    "EventType",
    "LogLine",
    "LogPage",
    "Run",
    "RunCreateIn",
]

# --- runs -------------------------------------------------------------------------------


class RunCreateIn(_In):
    approved_id: Annotated[str, Field(max_length=64)]
    executor: Executor | None = None
    agent: Name | None = None


class Run(_Out):
    id: str
    approved_id: str
    content_sha256: str
    status: RunStatus
    executor: Executor = "provider"
    agent: str | None = None
    attempt: int = 1
    created_at: str
    created_by: str
    started_at: str | None = None
    finished_at: str | None = None
    output: str | None = None
    error: str | None = None
    usage: dict[str, Any] | None = None
    cancel_requested: bool = False


class EventType(StrEnum):
    """The kinds of change the event log records (SPEC section 15)."""

    PLAN_UPDATED = "plan.updated"
    DRAFT_CREATED = "draft.created"
    DRAFT_UPDATED = "draft.updated"
    DRAFT_APPROVED = "draft.approved"
    DRAFT_REJECTED = "draft.rejected"
    RUN_CREATED = "run.created"
    RUN_STARTED = "run.started"
    RUN_LOG = "run.log"
    RUN_FINISHED = "run.finished"
    CONFIG_UPDATED = "config.updated"
    DRAFT_APPROVAL_ADDED = "draft.approval_added"
    DRAFT_APPROVALS_LAPSED = "draft.approvals_lapsed"
    APPROVED_EXPIRED = "approved.expired"


EVENT_TYPES: tuple[str, ...] = tuple(t.value for t in EventType)


class Event(_Out):
    """One committed change: ids, statuses, revisions and hashes; never content or secrets."""

    seq: int
    ts: str
    type: str
    subject: str
    data: dict[str, Any] = {}


class ApproveResult(_Out):
    """An approve answer: ``approved`` is null until the quorum is met."""

    approved: Approved | None = None
    run: Run | None = None
    approvals: ApprovalCount


class LogLine(_Out):
    seq: int
    ts: str
    level: Literal["debug", "info", "warning", "error"]
    msg: str


class LogPage(_Out):
    items: list[LogLine]
    next_after: int | None = None
