"""The plan, drafts, revisions, diffs and approved items."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field

from core.models.base import (
    MAX_PROMPT_CHARS,
    DraftStatus,
    Executor,
    Glob,
    Name,
    ShortText,
    TaskStatus,
    _In,
    _Out,
)

__all__ = [
    "APPROVED_COMPUTED",
    "ApprovalCount",
    "ApproveIn",
    "Approved",
    "Draft",
    "DraftDiff",
    "DraftIn",
    "DraftPatch",
    "DraftRevision",
    "DraftView",
    "FieldChange",
    "GenerateIn",
    "Generation",
    "Plan",
    "PlanIn",
    "RejectIn",
    "Scope",
    "Task",
]

# --- plan -------------------------------------------------------------------------------


class Task(_In):
    id: Name
    title: Annotated[str, Field(max_length=500)] = ""
    description: Annotated[str, Field(max_length=20_000)] = ""
    scope: Annotated[list[Glob], Field(max_length=200)] = []
    depends: Annotated[list[Name], Field(max_length=200)] = []
    agent: Name | None = None
    status: Annotated[TaskStatus, Field(strict=False)] = TaskStatus.PENDING
    # Approvals this task's drafts need (SPEC section 19); None: the config's.
    approvals_required: Annotated[int, Field(ge=1, le=6)] | None = None


class PlanIn(_In):
    """Body of ``PUT /ops/plan``: the whole plan; the revision is the server's."""

    title: Annotated[str, Field(max_length=500)] = ""
    objective: Annotated[str, Field(max_length=20_000)] = ""
    workspace: Annotated[str, Field(max_length=1000)] = ""
    constraints: Annotated[list[ShortText], Field(max_length=200)] = []
    tasks: Annotated[list[Task], Field(max_length=1000)] = []


class Plan(_Out):
    id: str
    title: str = ""
    objective: str = ""
    workspace: str = ""
    constraints: list[str] = []
    tasks: list[Task] = []
    revision: int = 0
    updated_at: str | None = None

    def task(self, task_id: str) -> Task | None:
        return next((t for t in self.tasks if t.id == task_id), None)


# --- drafts and approvals --------------------------------------------------------------


class Scope(_In):
    files: Annotated[list[Glob], Field(max_length=200)] = []
    agents: Annotated[list[Name], Field(max_length=100)] = []

    @property
    def empty(self) -> bool:
        return not self.files and not self.agents


class Generation(_Out):
    provider: str
    model: str
    usage: dict[str, Any] | None = None
    latency_ms: int | None = None


class Draft(_Out):
    id: str
    prompt: str
    content: str
    context: dict[str, Any] = {}
    task_id: str | None = None
    scope: Scope = Scope()
    status: DraftStatus
    revision: int
    created_at: str
    updated_at: str
    created_by: str
    generation: Generation | None = None
    error: str | None = None
    rejected_reason: str | None = None


class ApprovalCount(_Out):
    """Approvals of a draft's current hash that count (``have``) and its quorum (``need``)."""

    have: int
    need: int


class DraftView(Draft):
    """A draft as read: with the scope and the hash an approval would record now, and how
    many approvals it has of how many it needs."""

    effective_scope: Scope
    content_sha256: str
    approvals: ApprovalCount = ApprovalCount(have=0, need=1)


class DraftRevision(_Out):
    """One immutable revision of a draft: its text as written, by whom and when."""

    draft_id: str
    revision: int
    prompt: str
    content: str
    context: dict[str, Any] = {}
    task_id: str | None = None
    scope: Scope = Scope()
    created_by: str
    created_at: str


class FieldChange(_Out):
    before: Any = None
    after: Any = None


class DraftDiff(_Out):
    """What changed between two revisions; ``content_diff`` is a unified diff of content."""

    model_config = ConfigDict(extra="ignore", serialize_by_alias=True, populate_by_name=True)

    from_: int = Field(alias="from")
    to: int
    changes: dict[str, FieldChange]
    content_diff: str


Prompt = Annotated[str, Field(min_length=1, max_length=MAX_PROMPT_CHARS)]


class DraftIn(_In):
    """Body of ``POST /ops/drafts``."""

    prompt: Prompt
    content: str = ""
    context: dict[str, Any] = {}
    task_id: Name | None = None
    scope: Scope = Scope()


class DraftPatch(_In):
    """Body of ``PUT /ops/drafts/{id}``: any subset of the editable fields."""

    prompt: Prompt | None = None
    content: str | None = None
    context: dict[str, Any] | None = None
    task_id: Name | None = None
    scope: Scope | None = None


class GenerateIn(_In):
    """Body of ``POST /ops/generate``."""

    prompt: Prompt
    context: dict[str, Any] = {}
    task_id: Name | None = None
    scope: Scope = Scope()


Sha256 = Annotated[
    str,
    Field(
        pattern=r"^[0-9a-fA-F]{64}$",
        description="content_sha256 as read from the draft (64 hex digits).",
    ),
]


class ApproveIn(_In):
    """Optional body of ``POST /ops/drafts/{id}/approve``."""

    auto_run: bool | None = None
    expected_revision: Annotated[int, Field(ge=0)] | None = None
    expected_sha256: Sha256 | None = None
    note: Annotated[str, Field(max_length=2000)] | None = None
    executor: Executor | None = None
    agent: Name | None = None


class RejectIn(_In):
    reason: Annotated[str, Field(min_length=1, max_length=2000)]


# Fields of ``Approved`` computed on every read, never stored or exported.
APPROVED_COMPUTED: set[str] = {"expired"}


class Approved(_Out):
    id: str
    draft_id: str
    draft_revision: int
    task_id: str | None = None
    prompt: str
    content: str
    context: dict[str, Any] = {}
    scope: Scope
    content_sha256: str
    hash_version: int = 2
    approved_at: str
    approved_by: str
    note: str | None = None
    # Computed on every read, never stored: approved_ttl_days passed and no run ever started.
    expired: bool = False
