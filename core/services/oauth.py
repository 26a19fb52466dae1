"""OAuth grants as core sees them: a client, a user who allowed it, and tokens with a role.

The protocol (endpoints, PKCE, error codes) lives in the gateway's OAuth door; this service
keeps the records and the rules that hold whatever the protocol: codes are single use and
short-lived, refresh tokens rotate and a reused one revokes its whole grant, a grant never
carries more than its user's role nor more than ``agent`` (read-only when there is no agent
role), and every issue and use is audited with the client and the user. Secrets, codes and
tokens are stored as SHA-256 only.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ulid import ULID

from core import audit
from core.auth import Principal, hash_token
from core.errors import (
    ConflictStateError,
    ForbiddenRoleError,
    InputValidationError,
    NotFoundError,
    StorageError,
)
from core.models import Role
from core.ports import UowFactory
from core.services.base import Service
from core.services.oauth_records import (
    ACCESS_TTL_S,
    CODE_TTL_S,
    GRANT_PREFIX,
    MAX_OAUTH_ROLE,
    REFRESH_TTL_S,
    USE_AUDIT_EVERY_S,
    CodeRecord,
    GrantInfo,
    OAuthAccess,
    TokenPair,
    access_of,
    audit_reuse,
    grant_detail,
    issue_tokens,
    new_secret,
)
from core.timeutil import now_ts

__all__ = [
    "ACCESS_TTL_S",
    "CODE_TTL_S",
    "GRANT_PREFIX",
    "MAX_OAUTH_ROLE",
    "REFRESH_TTL_S",
    "CodeRecord",
    "GrantInfo",
    "OAuthAccess",
    "OAuthService",
    "TokenPair",
]

log = logging.getLogger(__name__)


class OAuthService(Service):
    def __init__(self, uow: UowFactory) -> None:
        super().__init__(uow)
        self._used: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    # --- clients ---------------------------------------------------------------------------

    def register_client(
        self,
        *,
        client_id: str,
        client_name: str | None,
        info: dict[str, Any],
        secret: str | None,
        client_address: str,
    ) -> None:
        """Store a dynamically registered client (its secret as SHA-256 only); audited."""
        with self._uow(write=True) as uow:
            uow.oauth.add_client(
                client_id=client_id,
                client_name=client_name,
                info=info,
                secret_hash=hash_token(secret) if secret else None,
                now=now_ts(),
            )
            audit.record(
                uow.audit,
                actor="anonymous",
                action="oauth.client.register",
                target=client_id,
                detail={"client": client_name or client_id, "client_address": client_address},
            )
            uow.commit()

    def client(self, client_id: str) -> tuple[dict[str, Any], str | None] | None:
        """(registered metadata, secret hash) of a client, or None."""
        if not client_id or len(client_id) > 64:
            return None
        with self._uow() as uow:
            row = uow.oauth.client(client_id)
        if row is None:
            return None
        return dict(row["info"]), row["secret_hash"]

    # --- consent and codes -----------------------------------------------------------------

    def issue_code(
        self,
        *,
        client_id: str,
        user: Principal,
        role: Role,
        scopes: list[str],
        code_challenge: str,
        redirect_uri: str,
        redirect_uri_explicit: bool,
        resource: str | None,
    ) -> str:
        """The user allowed the client: a single-use code for ``role``, valid ``CODE_TTL_S``."""
        if not user.role.includes(role):
            raise ForbiddenRoleError(
                f"role '{user.role.value}' cannot grant '{role.value}'",
                detail={"required": role.value},
            )
        if not MAX_OAUTH_ROLE.includes(role):
            raise InputValidationError(f"OAuth tokens are limited to role '{MAX_OAUTH_ROLE}'")
        code = new_secret("ops_oac")
        with self._uow(write=True) as uow:
            client = uow.oauth.client(client_id)
            if client is None:
                raise NotFoundError(f"no OAuth client {client_id}")
            uow.oauth.add_code(
                code_hash=hash_token(code),
                client_id=client_id,
                user_actor=user.actor,
                user_token=user.name,
                role=role.value,
                scopes=list(scopes),
                code_challenge=code_challenge,
                redirect_uri=redirect_uri,
                redirect_uri_explicit=redirect_uri_explicit,
                resource=resource,
                expires_at=time.time() + CODE_TTL_S,
                created_at=now_ts(),
            )
            uow.oauth.purge_codes(before=time.time() - CODE_TTL_S)
            audit.record(
                uow.audit,
                actor=user.actor,
                action="oauth.consent",
                target=client_id,
                detail={
                    "client": client["client_name"] or client_id,
                    "role": role.value,
                    "scopes": list(scopes),
                },
            )
            uow.commit()
        return code

    def record_consent_denied(self, *, client_id: str, actor: str, reason: str) -> None:
        with self._uow(write=True) as uow:
            audit.record(
                uow.audit,
                actor=actor,
                action="oauth.consent",
                target=client_id,
                outcome="denied",
                detail={"reason": reason},
            )
            uow.commit()

    def load_code(self, code: str) -> CodeRecord | None:
        """The code if it can still be exchanged. A code presented again after its exchange
        revokes the grant it created (RFC 6749 section 4.1.2) and is refused."""
        with self._uow() as uow:
            row = uow.oauth.code(hash_token(code))
        if row is None:
            return None
        if row["used_at"] is not None:
            self._revoke_after_reuse(row["grant_name"], what="authorization code")
            return None
        return CodeRecord(
            client_id=row["client_id"],
            scopes=list(row["scopes"]),
            code_challenge=row["code_challenge"],
            redirect_uri=row["redirect_uri"],
            redirect_uri_explicit=bool(row["redirect_uri_explicit"]),
            resource=row["resource"],
            expires_at=float(row["expires_at"]),
            user=row["user_actor"],
        )

    def exchange_code(self, *, code: str, client_id: str) -> TokenPair | None:
        """Trade a code (checked by the caller: PKCE, redirect URI, expiry) for a new grant's
        first tokens; None if the code was used meanwhile."""
        code_hash = hash_token(code)
        name = f"{GRANT_PREFIX}{str(ULID()).lower()}"
        with self._uow(write=True) as uow:
            row = uow.oauth.code(code_hash)
            if row is None or row["client_id"] != client_id:
                return None
            if not uow.oauth.use_code(code_hash, grant_name=name, now=now_ts()):
                return None
            client = uow.oauth.client(client_id) or {}
            uow.oauth.add_grant(
                name=name,
                client_id=client_id,
                client_name=client.get("client_name"),
                user_actor=row["user_actor"],
                user_token=row["user_token"],
                role=row["role"],
                scopes=list(row["scopes"]),
                resource=row["resource"],
                created_at=now_ts(),
            )
            pair = issue_tokens(uow, name, list(row["scopes"]))
            grant = uow.oauth.grant(name) or {}
            audit.record(
                uow.audit,
                actor=f"{row['role']}:{name}",
                action="oauth.token.issue",
                target=name,
                detail={**grant_detail(grant), "grant_type": "authorization_code"},
            )
            uow.commit()
        return pair

    # --- refresh ---------------------------------------------------------------------------

    def load_refresh(self, token: str) -> OAuthAccess | None:
        """An unused, unexpired refresh token of an active grant. One presented again after
        its rotation revokes the whole grant (reuse detection) and is refused."""
        row = self._token_row(token)
        if row is None or row["kind"] != "refresh" or row["revoked_at"] is not None:
            return None
        if row["used_at"] is not None:
            self._revoke_after_reuse(row["grant_name"], what="refresh token")
            return None
        if row["expires_at"] < time.time():
            return None
        return access_of(row)

    def refresh(
        self, *, token: str, client_id: str, scopes: list[str], user_active: bool
    ) -> TokenPair | None:
        """Rotate: the refresh token is spent, a new access and refresh token issued in the
        same grant. None if it was spent meanwhile (then the grant is revoked) or if the
        user who allowed the grant lost their token (``user_active`` False)."""
        token_hash = hash_token(token)
        with self._uow(write=True) as uow:
            row = uow.oauth.token(token_hash)
            if row is None or row["client_id"] != client_id or row["revoked_at"] is not None:
                return None
            name = row["grant_name"]
            if not uow.oauth.use_token(token_hash, now=now_ts()):
                uow.oauth.revoke_grant(name, now=now_ts())
                audit_reuse(uow, name, what="refresh token")
                uow.commit()
                return None
            if not user_active:
                uow.oauth.revoke_grant(name, now=now_ts())
                audit.record(
                    uow.audit,
                    actor=f"{row['role']}:{name}",
                    action="oauth.token.refresh",
                    target=name,
                    outcome="denied",
                    detail={**grant_detail(row), "reason": "the user's token is revoked"},
                )
                uow.commit()
                return None
            pair = issue_tokens(uow, name, scopes)
            audit.record(
                uow.audit,
                actor=f"{row['role']}:{name}",
                action="oauth.token.issue",
                target=name,
                detail={**grant_detail(row), "grant_type": "refresh_token"},
            )
            uow.commit()
        return pair

    # --- access ----------------------------------------------------------------------------

    def authenticate(self, token: str) -> OAuthAccess | None:
        """The active, unexpired access token behind ``token``, or None."""
        row = self._token_row(token)
        if row is None or row["kind"] != "access" or row["revoked_at"] is not None:
            return None
        if row["expires_at"] < time.time():
            return None
        return access_of(row)

    def load_token(self, token: str) -> OAuthAccess | None:
        """Any active token of an active grant (access or refresh), for revocation."""
        row = self._token_row(token)
        if row is None or row["revoked_at"] is not None:
            return None
        return access_of(row)

    def record_use(self, access: OAuthAccess, *, route: str) -> None:
        """Audit the use of an OAuth token with its client and user: the first use at once,
        then at most one entry a minute per grant counting the uses in between."""
        name = access.principal.name
        now = time.monotonic()
        with self._lock:
            last, uses = self._used.get(name, (-USE_AUDIT_EVERY_S, 0))
            uses += 1
            if now - last < USE_AUDIT_EVERY_S:
                self._used[name] = (last, uses)
                return
            self._used[name] = (now, 0)
        try:
            with self._uow(write=True) as uow:
                uow.oauth.touch_grant(name, now=now_ts())
                audit.record(
                    uow.audit,
                    actor=access.principal.actor,
                    action="oauth.token.use",
                    target=name,
                    detail={
                        "client_id": access.client_id,
                        "client": access.client_name or access.client_id,
                        "user": access.user,
                        "route": route,
                        "uses": uses,
                    },
                )
                uow.commit()
        except StorageError:  # a busy or lost store must not fail the request it serves
            log.warning("could not record the use of OAuth grant %s", name)

    # --- grants ----------------------------------------------------------------------------

    def revoke(self, access: OAuthAccess, *, actor: str) -> None:
        """Revoke the grant an access or refresh token belongs to (RFC 7009: all its tokens)."""
        self._revoke_grant(access.principal.name, actor=actor, missing_ok=True)

    def revoke_grant(self, *, name: str, actor: str) -> None:
        self._revoke_grant(name, actor=actor, missing_ok=False)

    def grants(self) -> list[GrantInfo]:
        with self._uow() as uow:
            rows = uow.oauth.grants()
        return [
            GrantInfo(
                name=r["name"],
                role=Role(r["role"]),
                client_id=r["client_id"],
                client_name=r["client_name"],
                user=r["user_actor"],
                scopes=list(r["scopes"]),
                created_at=r["created_at"],
                last_used_at=r["last_used_at"],
                revoked_at=r["revoked_at"],
            )
            for r in rows
        ]

    # --- internals -------------------------------------------------------------------------

    def _token_row(self, token: str) -> dict[str, Any] | None:
        if not token or len(token) > 512:
            return None
        with self._uow() as uow:
            row: dict[str, Any] | None = uow.oauth.token(hash_token(token))
        return row

    def _revoke_after_reuse(self, name: str | None, *, what: str) -> None:
        if name is None:
            return
        with self._uow(write=True) as uow:
            if uow.oauth.revoke_grant(name, now=now_ts()):
                audit_reuse(uow, name, what=what)
                uow.commit()

    def _revoke_grant(self, name: str, *, actor: str, missing_ok: bool) -> None:
        with self._uow(write=True) as uow:
            grant = uow.oauth.grant(name)
            if grant is None:
                if missing_ok:
                    return
                raise NotFoundError(f"no token named '{name}'")
            if not uow.oauth.revoke_grant(name, now=now_ts()):
                if missing_ok:
                    return
                raise ConflictStateError(f"token '{name}' is already revoked")
            audit.record(
                uow.audit,
                actor=actor,
                action="token.revoke",
                target=name,
                detail=grant_detail(grant),
            )
            uow.commit()
