"""Domain entities of SPEC section 5, with the exact JSON field names.

Pure pydantic: no storage, no HTTP. Input models (``…In``/``…Patch``) forbid unknown fields.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Generic, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.text import UNENCODABLE, find_unencodable

__all__ = [
    "MAX_CONTENT_BYTES",
    "MAX_CONTEXT_BYTES",
    "MAX_PROMPT_CHARS",
    "Approved",
    "ApproveIn",
    "ApproveResult",
    "AuditEntry",
    "AuditHead",
    "Config",
    "ConfigPatch",
    "Draft",
    "DraftIn",
    "DraftPatch",
    "DraftDiff",
    "DraftRevision",
    "DraftStatus",
    "DraftView",
    "FieldChange",
    "EVENT_TYPES",
    "Event",
    "EventType",
    "Executor",
    "Generation",
    "GenerateIn",
    "LogLine",
    "LogPage",
    "Page",
    "Plan",
    "PlanIn",
    "ProviderConfig",
    "ProviderConfigIn",
    "ProviderEntry",
    "ProviderEntryIn",
    "ProviderEntryView",
    "ProviderConfigView",
    "ProviderHealth",
    "ModelList",
    "RejectIn",
    "Role",
    "Run",
    "RunCreateIn",
    "RunStatus",
    "Scope",
    "StatusReport",
    "Task",
    "TaskStatus",
    "TokenInfo",
]

MAX_PROMPT_CHARS = 32_000
MAX_CONTENT_BYTES = 256 * 1024
MAX_CONTEXT_BYTES = 256 * 1024

_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
Name = Annotated[str, Field(pattern=_NAME_PATTERN, description="1-64 letters, digits, '_.-'")]
Glob = Annotated[str, Field(min_length=1, max_length=512)]
ShortText = Annotated[str, Field(max_length=2000)]


class _Out(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _In(BaseModel):
    # Strict: "yes" is not a boolean and 2.0 is not an integer; callers get a 422 instead of
    # a silently coerced value. Enum fields opt out (JSON carries them as strings).
    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator("*", mode="after")
    @classmethod
    def _encodable_text(cls, value: Any) -> Any:
        # JSON can carry a lone surrogate ("\udfff") that no encoder accepts: refuse it
        # here, naming where it sits, before it reaches a hash, the store or an answer.
        where = find_unencodable(value)
        if where is not None:
            path = ".".join(str(part) for part in where)
            raise ValueError(f"{path + ' ' if path else ''}{UNENCODABLE}")
        return value


class Role(StrEnum):
    ACTIONS = "actions"
    AGENT = "agent"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _ROLE_RANK[self]

    def includes(self, other: Role) -> bool:
        return self.rank >= other.rank


_ROLE_RANK = {Role.ACTIONS: 0, Role.AGENT: 1, Role.OPERATOR: 2, Role.ADMIN: 3}


class TaskStatus(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    BLOCKED = "blocked"


class DraftStatus(StrEnum):
    DRAFT = "draft"
    APPROVED = "approved"
    REJECTED = "rejected"
    ERROR = "error"


Executor = Literal["provider", "agent"]


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    ERROR = "error"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (RunStatus.DONE, RunStatus.ERROR, RunStatus.CANCELLED)


# --- plan -------------------------------------------------------------------------------


class Task(_In):
    id: Name
    title: Annotated[str, Field(max_length=500)] = ""
    description: Annotated[str, Field(max_length=20_000)] = ""
    scope: Annotated[list[Glob], Field(max_length=200)] = []
    depends: Annotated[list[Name], Field(max_length=200)] = []
    agent: Name | None = None
    status: Annotated[TaskStatus, Field(strict=False)] = TaskStatus.PENDING


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


class DraftView(Draft):
    """A draft as read: with the scope and the hash an approval would record now."""

    effective_scope: Scope
    content_sha256: str


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


EVENT_TYPES: tuple[str, ...] = tuple(t.value for t in EventType)


class Event(_Out):
    """One committed change: ids, statuses, revisions and hashes; never content or secrets."""

    seq: int
    ts: str
    type: str
    subject: str
    data: dict[str, Any] = {}


class ApproveResult(_Out):
    approved: Approved
    run: Run | None = None


class LogLine(_Out):
    seq: int
    ts: str
    level: Literal["debug", "info", "warning", "error"]
    msg: str


class LogPage(_Out):
    items: list[LogLine]
    next_after: int | None = None


# --- config and provider -------------------------------------------------------------------


class Config(_Out):
    default_auto_run: bool = False
    operator_can_generate: bool = False
    prevent_self_approval: bool = False
    max_concurrent_runs: Annotated[int, Field(ge=1, le=256)] = 4
    run_timeout_s: Annotated[int, Field(ge=1, le=86_400)] = 300
    max_attempts: Annotated[int, Field(ge=1, le=20)] = 2
    default_executor: Executor = "provider"
    event_ttl_days: Annotated[int, Field(ge=1, le=36_500)] = 7
    draft_ttl_days: Annotated[int, Field(ge=1, le=36_500)] = 7
    run_ttl_days: Annotated[int, Field(ge=1, le=36_500)] = 30


class ConfigPatch(_In):
    """Body of ``PUT /ops/config``: any subset; omitted fields keep their values."""

    default_auto_run: bool | None = None
    operator_can_generate: bool | None = None
    prevent_self_approval: bool | None = None
    max_concurrent_runs: Annotated[int, Field(ge=1, le=256)] | None = None
    run_timeout_s: Annotated[int, Field(ge=1, le=86_400)] | None = None
    max_attempts: Annotated[int, Field(ge=1, le=20)] | None = None
    default_executor: Executor | None = None
    event_ttl_days: Annotated[int, Field(ge=1, le=36_500)] | None = None
    draft_ttl_days: Annotated[int, Field(ge=1, le=36_500)] | None = None
    run_ttl_days: Annotated[int, Field(ge=1, le=36_500)] | None = None


_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"


class ProviderEntry(_Out):
    """One stored provider; ``api_key`` never leaves core."""

    type: Literal["openai_compat"] = "openai_compat"
    base_url: str
    model: str
    api_key: str | None = None
    api_key_env: str | None = None
    timeout_s: float = 60.0
    max_retries: int = 2
    temperature: float | None = None
    # As stored: the key encrypted with the secret key (``api_key`` is never stored), and,
    # in memory only, why a stored key could not be decrypted.
    api_key_encrypted: str | None = None
    api_key_error: str | None = None


class ProviderEntryIn(_In):
    """One provider in ``PUT /ops/provider``: fields merge over the stored entry (an omitted
    field keeps its stored value, ``null`` clears an optional one); a new provider needs
    ``base_url`` and ``model``."""

    type: Literal["openai_compat"] = "openai_compat"
    base_url: Annotated[str, Field(min_length=1, max_length=2000)] | None = None
    model: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    api_key: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    api_key_env: Annotated[str, Field(pattern=_ENV_NAME)] | None = None
    timeout_s: Annotated[float, Field(gt=0, le=3600)] = 60.0
    max_retries: Annotated[int, Field(ge=0, le=10)] = 2
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        parts = urlsplit(value)
        if "@" in parts.netloc:  # it would be shown back: keys belong in api_key(_env)
            raise ValueError("base_url must not carry credentials; use api_key or api_key_env")
        if parts.query or parts.fragment or not parts.hostname:
            raise ValueError("base_url must be scheme://host[:port][/path], no query or fragment")
        return value


class ProviderConfig(_Out):
    active: str | None = None
    providers: dict[str, ProviderEntry] = {}

    def active_entry(self) -> tuple[str, ProviderEntry] | None:
        if self.active and self.active in self.providers:
            return self.active, self.providers[self.active]
        return None


class ProviderConfigIn(_In):
    active: Name | None = None
    providers: dict[Name, ProviderEntryIn] = {}


class ProviderEntryView(_Out):
    type: str
    base_url: str
    model: str
    api_key_env: str | None = None
    api_key_set: bool
    timeout_s: float
    max_retries: int
    temperature: float | None = None


class ProviderConfigView(_Out):
    active: str | None = None
    providers: dict[str, ProviderEntryView] = {}


class ProviderHealth(_Out):
    provider: str | None
    ok: bool
    latency_ms: int | None = None
    error: str | None = None


class ModelList(_Out):
    items: list[str]


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
