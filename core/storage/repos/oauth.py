"""The OAuth repository: clients, authorization codes, grants and their tokens.

Codes and tokens are looked up by their SHA-256; single use is enforced by conditional
updates (``... WHERE used_at IS NULL``), so two concurrent exchanges of one code or one
refresh token cannot both succeed.
"""

from __future__ import annotations

import builtins
from typing import Any

import sqlalchemy as sa

from core.storage import tables as t
from core.storage.repos.base import Repo, row_dict

__all__ = ["OAuthRepo"]


def _mapping(row: sa.Row[Any] | None) -> dict[str, Any] | None:
    return row_dict(row, drop=())


class OAuthRepo(Repo):
    # --- clients ---------------------------------------------------------------------------

    def add_client(
        self,
        *,
        client_id: str,
        client_name: str | None,
        info: dict[str, Any],
        secret_hash: str | None,
        now: str,
    ) -> None:
        self.conn.execute(
            sa.insert(t.oauth_clients).values(
                client_id=client_id,
                client_name=client_name,
                info=info,
                secret_hash=secret_hash,
                created_at=now,
            )
        )

    def client(self, client_id: str) -> dict[str, Any] | None:
        stmt = sa.select(t.oauth_clients).where(t.oauth_clients.c.client_id == client_id)
        return _mapping(self.conn.execute(stmt).first())

    def count_clients(self) -> int:
        stmt = sa.select(sa.func.count()).select_from(t.oauth_clients)
        return int(self.conn.execute(stmt).scalar() or 0)

    # --- codes -----------------------------------------------------------------------------

    def add_code(self, **values: Any) -> None:
        self.conn.execute(sa.insert(t.oauth_codes).values(**values))

    def code(self, code_hash: str) -> dict[str, Any] | None:
        stmt = sa.select(t.oauth_codes).where(t.oauth_codes.c.code_hash == code_hash)
        return _mapping(self.conn.execute(stmt).first())

    def use_code(self, code_hash: str, *, grant_name: str, now: str) -> bool:
        """Mark the code used by ``grant_name``; False if it was used already."""
        stmt = (
            sa.update(t.oauth_codes)
            .where(t.oauth_codes.c.code_hash == code_hash, t.oauth_codes.c.used_at.is_(None))
            .values(used_at=now, grant_name=grant_name)
        )
        return bool(self.conn.execute(stmt).rowcount)

    def purge_codes(self, *, before: float) -> int:
        stmt = sa.delete(t.oauth_codes).where(
            t.oauth_codes.c.expires_at < before, t.oauth_codes.c.used_at.is_(None)
        )
        return int(self.conn.execute(stmt).rowcount or 0)

    # --- grants ----------------------------------------------------------------------------

    def add_grant(self, **values: Any) -> None:
        self.conn.execute(sa.insert(t.oauth_grants).values(**values))

    def grant(self, name: str) -> dict[str, Any] | None:
        stmt = sa.select(t.oauth_grants).where(t.oauth_grants.c.name == name)
        return _mapping(self.conn.execute(stmt).first())

    def grants(self) -> builtins.list[dict[str, Any]]:
        stmt = sa.select(t.oauth_grants).order_by(t.oauth_grants.c.created_at)
        return [dict(r._mapping) for r in self.conn.execute(stmt)]

    def revoke_grant(self, name: str, *, now: str) -> bool:
        stmt = (
            sa.update(t.oauth_grants)
            .where(t.oauth_grants.c.name == name, t.oauth_grants.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return bool(self.conn.execute(stmt).rowcount)

    def grants_of_user_token(self, user_token: str) -> builtins.list[str]:
        stmt = sa.select(t.oauth_grants.c.name).where(
            t.oauth_grants.c.user_token == user_token, t.oauth_grants.c.revoked_at.is_(None)
        )
        return [str(r[0]) for r in self.conn.execute(stmt)]

    def touch_grant(self, name: str, *, now: str) -> None:
        self.conn.execute(
            sa.update(t.oauth_grants).where(t.oauth_grants.c.name == name).values(last_used_at=now)
        )

    # --- tokens ----------------------------------------------------------------------------

    def add_token(
        self, *, token_hash: str, grant_name: str, kind: str, expires_at: int, now: str
    ) -> None:
        self.conn.execute(
            sa.insert(t.oauth_tokens).values(
                token_hash=token_hash,
                grant_name=grant_name,
                kind=kind,
                expires_at=expires_at,
                created_at=now,
            )
        )

    def token(self, token_hash: str) -> dict[str, Any] | None:
        """The token with its grant's columns (``grant_*``), active or not."""
        g = t.oauth_grants
        stmt = (
            sa.select(
                t.oauth_tokens,
                g.c.client_id,
                g.c.client_name,
                g.c.user_actor,
                g.c.user_token,
                g.c.role,
                g.c.scopes,
                g.c.resource,
                g.c.revoked_at,
            )
            .join(g, g.c.name == t.oauth_tokens.c.grant_name)
            .where(t.oauth_tokens.c.token_hash == token_hash)
        )
        return _mapping(self.conn.execute(stmt).first())

    def use_token(self, token_hash: str, *, now: str) -> bool:
        """Mark a refresh token used (rotated); False if it was used already."""
        stmt = (
            sa.update(t.oauth_tokens)
            .where(t.oauth_tokens.c.token_hash == token_hash, t.oauth_tokens.c.used_at.is_(None))
            .values(used_at=now)
        )
        return bool(self.conn.execute(stmt).rowcount)
