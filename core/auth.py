"""Roles, the permission matrix of SPEC section 4, and token hashing.

The matrix is the one table both front doors use: the gateway asks ``required_role`` for each
route's action, and the route x role test walks it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum

from core.models import Config, Role

__all__ = [
    "MAX_TOKEN_LENGTH",
    "MIN_TOKEN_LENGTH",
    "Action",
    "PERMISSIONS",
    "Principal",
    "generate_token",
    "hash_token",
    "required_role",
    "tokens_equal",
    "well_formed_token",
]

MIN_TOKEN_LENGTH = 16
MAX_TOKEN_LENGTH = 512


class Action(StrEnum):
    READ = "read"
    APPROVE = "approve"
    REJECT = "reject"
    RUN_CREATE = "run.create"
    RUN_CANCEL = "run.cancel"
    AGENT_RUN = "agent.run"  # claim and report agent runs (SPEC section 14)
    DRAFT_WRITE = "draft.write"  # create, edit, generate
    PLAN_WRITE = "plan.write"
    CONFIG_WRITE = "config.write"
    PROVIDER_READ = "provider.read"
    PROVIDER_WRITE = "provider.write"
    PROVIDER_HEALTH = "provider.health"
    PROVIDER_MODELS = "provider.models"
    AUDIT_READ = "audit.read"
    TOKENS = "tokens"
    WEBHOOKS = "webhooks"  # create, list, delete webhooks; read their deliveries


PERMISSIONS: dict[Action, Role] = {
    Action.READ: Role.ACTIONS,
    Action.APPROVE: Role.OPERATOR,
    Action.REJECT: Role.OPERATOR,
    Action.RUN_CREATE: Role.OPERATOR,
    Action.RUN_CANCEL: Role.OPERATOR,
    Action.AGENT_RUN: Role.AGENT,
    Action.PROVIDER_HEALTH: Role.OPERATOR,
    Action.DRAFT_WRITE: Role.ADMIN,  # operator too when operator_can_generate
    Action.PLAN_WRITE: Role.ADMIN,
    Action.CONFIG_WRITE: Role.ADMIN,
    Action.PROVIDER_READ: Role.ADMIN,
    Action.PROVIDER_WRITE: Role.ADMIN,
    Action.PROVIDER_MODELS: Role.ADMIN,
    Action.AUDIT_READ: Role.ADMIN,
    Action.TOKENS: Role.ADMIN,
    Action.WEBHOOKS: Role.ADMIN,
}


def required_role(action: Action, config: Config | None = None) -> Role:
    """The lowest role allowed to perform ``action`` under ``config``."""
    if action is Action.DRAFT_WRITE and config is not None and config.operator_can_generate:
        return Role.OPERATOR
    return PERMISSIONS[action]


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: never holds the token itself."""

    role: Role
    name: str

    @property
    def actor(self) -> str:
        return f"{self.role.value}:{self.name}"

    def can(self, action: Action, config: Config | None = None) -> bool:
        return self.role.includes(required_role(action, config))


def _bytes(text: str) -> bytes:
    # Header values arrive as latin-1 text, which may hold any byte: compare and hash bytes,
    # never text (``hmac.compare_digest`` refuses non-ASCII str).
    return text.encode("utf-8", "surrogatepass")


def hash_token(token: str) -> str:
    return hashlib.sha256(_bytes(token)).hexdigest()


def tokens_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(_bytes(a), _bytes(b))


def well_formed_token(token: str) -> bool:
    """Printable ASCII without spaces and at most 512 characters: every token this product
    issues is; anything else cannot match and needs no store lookup."""
    return 0 < len(token) <= MAX_TOKEN_LENGTH and all("!" <= ch <= "~" for ch in token)


def generate_token(role: Role) -> str:
    """A new random token; the role prefix helps people tell tokens apart."""
    return f"ops_{role.value[:3]}_{secrets.token_urlsafe(32)}"
