"""Domain entities of SPEC section 5, with the exact JSON field names.

Pure pydantic: no storage, no HTTP. Input models (``…In``/``…Patch``) forbid unknown fields.

One module per area: ``base`` (bases, limits, enums),
``content``, ``approvals``, ``runs``, ``settings``, ``access``."""

from core.models.access import AuditEntry, AuditHead, Page, StatusReport, TokenInfo
from core.models.approvals import (
    ApprovalList,
    ApprovalRecord,
    ApprovalStatus,
    BatchApproveIn,
    BatchItemIn,
)
from core.models.base import (
    MAX_CONTENT_BYTES,
    MAX_CONTEXT_BYTES,
    MAX_PROMPT_CHARS,
    DraftStatus,
    Executor,
    Role,
    RunStatus,
    TaskStatus,
)
from core.models.content import (
    APPROVED_COMPUTED,
    ApprovalCount,
    Approved,
    ApproveIn,
    Draft,
    DraftDiff,
    DraftIn,
    DraftPatch,
    DraftRevision,
    DraftView,
    FieldChange,
    GenerateIn,
    Generation,
    Plan,
    PlanIn,
    RejectIn,
    Scope,
    Task,
)
from core.models.runs import (
    EVENT_TYPES,
    ApproveResult,
    Event,
    EventType,
    LogLine,
    LogPage,
    Run,
    RunCreateIn,
)
from core.models.settings import (
    Config,
    ConfigPatch,
    ModelList,
    ProviderConfig,
    ProviderConfigIn,
    ProviderConfigView,
    ProviderEntry,
    ProviderEntryIn,
    ProviderEntryView,
    ProviderHealth,
)

# Pages the services build on every list read. pydantic keeps a parametrized generic only
# while something refers to it: without these references ``Page[DraftView]`` would be
# built again (a new class, its schema and validator: milliseconds) on many calls.
_PAGES = (Page[Approved], Page[AuditEntry], Page[DraftRevision], Page[DraftView], Page[Run])

__all__ = [
    "MAX_CONTENT_BYTES",
    "MAX_CONTEXT_BYTES",
    "MAX_PROMPT_CHARS",
    "APPROVED_COMPUTED",
    "ApprovalCount",
    "ApprovalList",
    "ApprovalRecord",
    "ApprovalStatus",
    "Approved",
    "ApproveIn",
    "BatchApproveIn",
    "BatchItemIn",
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
