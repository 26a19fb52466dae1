"""The records of OAuth grants as the services hand them out (token pairs, codes, active
access, grant listings), the fixed lifetimes, and the in-transaction steps that mint a token
pair and audit a reuse (see ``core.services.oauth``)."""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

from core import audit
from core.auth import Principal, hash_token
from core.models import Role
from core.ports import UnitOfWork
from core.timeutil import now_ts

__all__ = [
    "ACCESS_TTL_S",
    "CODE_TTL_S",
    "GRANT_PREFIX",
    "MAX_OAUTH_ROLE",
    "REFRESH_TTL_S",
    "USE_AUDIT_EVERY_S",
    "CodeRecord",
    "GrantInfo",
    "OAuthAccess",
    "TokenPair",
    "access_of",
    "audit_reuse",
    "grant_detail",
    "issue_tokens",
    "new_secret",
]

log = logging.getLogger(__name__)

ACCESS_TTL_S = 3600
REFRESH_TTL_S = 30 * 24 * 3600
CODE_TTL_S = 60
GRANT_PREFIX = "oauth-"
# OAuth tokens read (and, once the role exists, claim agent runs): never operator or admin.
MAX_OAUTH_ROLE: Role = getattr(Role, "AGENT", Role.ACTIONS)
USE_AUDIT_EVERY_S = 60.0


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    scopes: list[str]
    grant: str


@dataclass(frozen=True)
class CodeRecord:
    client_id: str
    scopes: list[str]
    code_challenge: str
    redirect_uri: str
    redirect_uri_explicit: bool
    resource: str | None
    expires_at: float
    user: str


@dataclass(frozen=True)
class OAuthAccess:
    """An active OAuth token: the principal it acts as and who it belongs to."""

    principal: Principal
    kind: str
    client_id: str
    client_name: str | None
    user: str
    user_token: str
    scopes: list[str]
    resource: str | None
    expires_at: int


@dataclass(frozen=True)
class GrantInfo:
    name: str
    role: Role
    client_id: str
    client_name: str | None
    user: str
    scopes: list[str]
    created_at: str
    last_used_at: str | None
    revoked_at: str | None


def new_secret(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def grant_detail(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "client_id": row["client_id"],
        "client": row.get("client_name") or row["client_id"],
        "user": row["user_actor"],
    }


def access_of(row: dict[str, Any]) -> OAuthAccess:
    return OAuthAccess(
        principal=Principal(role=Role(row["role"]), name=row["grant_name"]),
        kind=row["kind"],
        client_id=row["client_id"],
        client_name=row["client_name"],
        user=row["user_actor"],
        user_token=row["user_token"],
        scopes=list(row["scopes"]),
        resource=row["resource"],
        expires_at=int(row["expires_at"]),
    )


def issue_tokens(uow: UnitOfWork, name: str, scopes: list[str]) -> TokenPair:
    access, refresh = new_secret("ops_oat"), new_secret("ops_ort")
    now, epoch = now_ts(), int(time.time())
    uow.oauth.add_token(
        token_hash=hash_token(access),
        grant_name=name,
        kind="access",
        expires_at=epoch + ACCESS_TTL_S,
        now=now,
    )
    uow.oauth.add_token(
        token_hash=hash_token(refresh),
        grant_name=name,
        kind="refresh",
        expires_at=epoch + REFRESH_TTL_S,
        now=now,
    )
    return TokenPair(
        access_token=access,
        refresh_token=refresh,
        expires_in=ACCESS_TTL_S,
        scopes=list(scopes),
        grant=name,
    )


def audit_reuse(uow: UnitOfWork, name: str, *, what: str) -> None:
    grant = uow.oauth.grant(name) or {}
    log.warning("OAuth %s reused: grant %s revoked", what, name)
    audit.record(
        uow.audit,
        actor=f"{grant.get('role', 'actions')}:{name}",
        action="oauth.token.reuse",
        target=name,
        outcome="denied",
        detail={**(grant_detail(grant) if grant else {}), "reused": what},
    )
