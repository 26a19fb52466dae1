"""Web console sessions: opened with a token, found by the id in the cookie, ended by
sign-out, by idle expiry or by revoking the token they were opened with.

The store keeps only the SHA-256 of a session id and of its token; the CSRF token of a
session is derived from its id (an HMAC), so it needs no storage and reveals nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from core import audit
from core.auth import Principal, hash_token
from core.config import Settings
from core.models import Role
from core.ports import UnitOfWork, UowFactory
from core.services.access import ENV_TOKEN_NAME, check_env_tokens
from core.services.base import Service
from core.timeutil import now_ts

__all__ = ["ConsoleSession", "SessionService", "csrf_of"]

# A session in use is written back at most this often (its idle expiry moves forward).
TOUCH_EVERY_S = 60.0
_SESSION_ID = re.compile(r"[A-Za-z0-9_\-]{32,128}")


def csrf_of(session_id: str) -> str:
    """The CSRF token of a session: an HMAC of a fixed label under the session id."""
    return hmac.new(session_id.encode("ascii"), b"ops-console-csrf", hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class ConsoleSession:
    """A signed-in console user: who, the stored handle, and the CSRF token of the forms."""

    principal: Principal
    id_hash: str
    csrf: str
    created_at: str


class SessionService(Service):
    def __init__(self, uow: UowFactory, settings: Settings) -> None:
        super().__init__(uow)
        self._idle_s = settings.console_idle_s
        self._env = {hash_token(value): role for role, value in check_env_tokens(settings).items()}

    @property
    def idle_s(self) -> float:
        return self._idle_s

    def open(
        self, *, principal: Principal, token: str, client: str | None = None
    ) -> tuple[str, ConsoleSession]:
        """A new session for ``principal`` (authenticated with ``token``); returns the
        session id for the cookie (never stored) and the session. Audited."""
        session_id = secrets.token_urlsafe(32)
        id_hash = hash_token(session_id)
        now, stamp = time.time(), now_ts()
        with self._uow(write=True) as uow:
            uow.sessions.purge_expired(now=now)
            uow.sessions.add(
                id_hash=id_hash,
                token_name=principal.name,
                role=principal.role.value,
                token_hash=hash_token(token),
                created_at=stamp,
                last_seen_at=stamp,
                idle_expires=now + self._idle_s,
            )
            audit.record(
                uow.audit,
                actor=principal.actor,
                action="console.sign_in",
                target=None,
                detail={"client": client} if client else {},
            )
            uow.commit()
        return session_id, ConsoleSession(principal, id_hash, csrf_of(session_id), stamp)

    def resolve(self, session_id: str) -> ConsoleSession | None:
        """The live session behind a cookie value, or None (unknown, expired, or its token
        revoked). A session in use has its idle expiry moved forward."""
        if not _SESSION_ID.fullmatch(session_id):
            return None
        id_hash = hash_token(session_id)
        with self._uow() as uow:
            row = uow.sessions.get(id_hash)
            if row is None or not self._token_live(uow, row):
                return None
        now = time.time()
        if row["idle_expires"] <= now:
            return None
        if now - (row["idle_expires"] - self._idle_s) >= TOUCH_EVERY_S:
            with self._uow(write=True) as uow:
                uow.sessions.touch(id_hash, last_seen_at=now_ts(), idle_expires=now + self._idle_s)
                uow.commit()
        principal = Principal(role=Role(row["role"]), name=row["token_name"])
        return ConsoleSession(principal, id_hash, csrf_of(session_id), row["created_at"])

    def close(self, *, session: ConsoleSession) -> bool:
        """Sign out: the session ends now. Audited; False if it had already ended."""
        with self._uow(write=True) as uow:
            ended = bool(uow.sessions.delete(session.id_hash))
            audit.record(
                uow.audit,
                actor=session.principal.actor,
                action="console.sign_out",
                target=None,
                outcome="ok" if ended else "error",
            )
            uow.commit()
        return ended

    def _token_live(self, uow: UnitOfWork, row: dict[str, Any]) -> bool:
        """Whether the token the session was opened with still authenticates, as that role."""
        if row["token_name"] == ENV_TOKEN_NAME:
            return self._env.get(row["token_hash"]) == Role(row["role"])
        info = uow.tokens.by_hash(row["token_hash"])
        return bool(info is not None and info.name == row["token_name"])
