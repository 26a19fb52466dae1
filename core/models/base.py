"""Shared bases, limits and enums of the domain entities."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.text import UNENCODABLE, find_unencodable

__all__ = [
    "DraftStatus",
    "Executor",
    "MAX_CONTENT_BYTES",
    "MAX_CONTEXT_BYTES",
    "MAX_PROMPT_CHARS",
    "Role",
    "RunStatus",
    "TaskStatus",
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
