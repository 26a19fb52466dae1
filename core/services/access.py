"""Tokens and access: bootstrap, registry, authentication and audited denials."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from core import audit
from core.auth import (
    MAX_TOKEN_LENGTH,
    MIN_TOKEN_LENGTH,
    Action,
    Principal,
    generate_token,
    hash_token,
    required_role,
    tokens_equal,
    well_formed_token,
)
from core.config import Settings
from core.errors import (
    ConflictStateError,
    DuplicateKeyError,
    ForbiddenRoleError,
    InputValidationError,
    NotFoundError,
    StorageError,
)
from core.ids import validate_name
from core.models import Config, Role, TokenInfo
from core.ports import UowFactory
from core.services.base import Service, load_config
from core.timeutil import now_ts

__all__ = ["AccessService", "BootstrapResult", "check_env_tokens"]

log = logging.getLogger(__name__)

BOOTSTRAP_PREFIX = "bootstrap-"
ENV_TOKEN_NAME = "env"
_TOUCH_EVERY_S = 60.0


def check_env_tokens(settings: Settings) -> dict[Role, str]:
    """The bootstrap tokens from the environment; a short one is a start-up error."""
    found: dict[Role, str] = {}
    for role, secret, var in (
        (Role.ADMIN, settings.admin_token, "ORCH_TOKEN"),
        (Role.OPERATOR, settings.operator_token, "ORCH_OPERATOR_TOKEN"),
        (Role.ACTIONS, settings.actions_token, "ORCH_ACTIONS_TOKEN"),
    ):
        if secret is None:
            continue
        value = secret.get_secret_value()
        if len(value) < MIN_TOKEN_LENGTH:
            raise InputValidationError(
                f"{var} is shorter than {MIN_TOKEN_LENGTH} characters; refusing to start"
            )
        if not well_formed_token(value):
            raise InputValidationError(
                f"{var} must be printable ASCII without spaces, at most {MAX_TOKEN_LENGTH} "
                "characters; refusing to start"
            )
        found[role] = value
    return found


@dataclass(frozen=True)
class BootstrapResult:
    created: list[Path]
    existing: list[Path]


class AccessService(Service):
    def __init__(self, uow: UowFactory, settings: Settings) -> None:
        super().__init__(uow)
        self._settings = settings
        self._env = check_env_tokens(settings)
        self._touched: dict[str, float] = {}
        self._lock = threading.Lock()

    # --- bootstrap and registry -----------------------------------------------------------

    def bootstrap(self) -> BootstrapResult:
        """With no token at all (none in the environment, none in the registry), create one
        per role and write each to ``<data dir>/tokens/<role>.token`` with mode 0600."""
        directory = self._settings.tokens_dir
        paths = [directory / f"{role.value}.token" for role in Role]
        if self._env:
            return BootstrapResult(created=[], existing=[])
        with self._uow(write=True) as uow:
            if uow.tokens.count_active() > 0:
                return BootstrapResult(created=[], existing=[p for p in paths if p.exists()])
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            created: list[Path] = []
            now = now_ts()
            for role, path in zip(Role, paths, strict=True):
                token = generate_token(role)
                name = f"{BOOTSTRAP_PREFIX}{role.value}"
                uow.tokens.add(name=name, role=role.value, token_hash=hash_token(token), now=now)
                _write_secret(path, token)
                created.append(path)
                audit.record(
                    uow.audit,
                    actor="system:init",
                    action="token.create",
                    target=name,
                    detail={"role": role.value, "file": str(path)},
                )
            uow.commit()
        for path in created:
            log.info("wrote token file %s", path)
        return BootstrapResult(created=created, existing=[])

    def create_token(self, *, role: Role, name: str, actor: str) -> tuple[TokenInfo, str]:
        validate_name(name, what="token name")
        if name == ENV_TOKEN_NAME:
            raise InputValidationError(f"'{ENV_TOKEN_NAME}' is reserved for environment tokens")
        token = generate_token(role)
        with self._uow(write=True) as uow:
            if uow.tokens.get(name) is not None:
                raise ConflictStateError(f"a token named '{name}' already exists")
            now = now_ts()
            uow.tokens.add(name=name, role=role.value, token_hash=hash_token(token), now=now)
            audit.record(
                uow.audit,
                actor=actor,
                action="token.create",
                target=name,
                detail={"role": role.value},
            )
            try:
                uow.commit()
            except DuplicateKeyError:
                raise ConflictStateError(f"a token named '{name}' already exists") from None
        return TokenInfo(name=name, role=role, created_at=now), token

    def list_tokens(self) -> list[TokenInfo]:
        """Registry tokens, then OAuth grants (with their client and user)."""
        with self._uow() as uow:
            items = list(uow.tokens.list())
            grants = uow.oauth.grants()
        items.extend(
            TokenInfo(
                name=g["name"],
                role=Role(g["role"]),
                created_at=g["created_at"],
                last_used_at=g["last_used_at"],
                revoked_at=g["revoked_at"],
                client=g["client_name"] or g["client_id"],
                user=g["user_actor"],
            )
            for g in grants
        )
        return items

    def revoke_token(self, *, name: str, actor: str) -> None:
        """Revoke a registry token (and the OAuth grants its holder allowed) or one OAuth
        grant (all its access and refresh tokens)."""
        validate_name(name, what="token name")
        with self._uow(write=True) as uow:
            now = now_ts()
            if uow.tokens.revoke(name, now=now):
                # Its console sessions end in the same transaction (SPEC section 16).
                ended = uow.sessions.delete_for_token(name)
                detail = {"console_sessions_ended": ended} if ended else None
                audit.record(
                    uow.audit, actor=actor, action="token.revoke", target=name, detail=detail
                )
                for grant in uow.oauth.grants_of_user_token(name):
                    uow.oauth.revoke_grant(grant, now=now)
                    audit.record(
                        uow.audit,
                        actor=actor,
                        action="token.revoke",
                        target=grant,
                        detail={"reason": f"token '{name}' that allowed it was revoked"},
                    )
            elif uow.oauth.revoke_grant(name, now=now):
                info = uow.oauth.grant(name) or {}
                audit.record(
                    uow.audit,
                    actor=actor,
                    action="token.revoke",
                    target=name,
                    detail={
                        "client_id": info.get("client_id"),
                        "client": info.get("client_name") or info.get("client_id"),
                        "user": info.get("user_actor"),
                    },
                )
            elif uow.tokens.get(name) is None and uow.oauth.grant(name) is None:
                raise NotFoundError(f"no token named '{name}'")
            else:
                raise ConflictStateError(f"token '{name}' is already revoked")
            uow.commit()

    def user_active(self, *, name: str, role: Role) -> bool:
        """Whether the token that allowed an OAuth grant still exists with at least ``role``
        (environment tokens count while the environment holds one that high)."""
        if name == ENV_TOKEN_NAME:
            return any(held.includes(role) for held in self._env)
        with self._uow() as uow:
            info: TokenInfo | None = uow.tokens.get(name)
        return info is not None and info.revoked_at is None and info.role.includes(role)

    # --- authentication and authorization ----------------------------------------------------

    def authenticate(self, token: str) -> Principal | None:
        """The principal behind a bearer token, or None. Never logs the token."""
        if not well_formed_token(token):
            return None
        for role, value in self._env.items():
            if tokens_equal(token, value):
                return Principal(role=role, name=ENV_TOKEN_NAME)
        with self._uow() as uow:
            info: TokenInfo | None = uow.tokens.by_hash(hash_token(token))
        if info is None:
            return None
        self._touch(info.name)
        return Principal(role=info.role, name=info.name)

    def registry_stamp(self) -> object:
        """The token registry's change stamp: equal values mean no token was added, revoked
        or removed in between (by any process). One small read."""
        with self._uow() as uow:
            return uow.tokens.stamp()

    def _touch(self, name: str) -> None:
        # last_used is bookkeeping, not a mutation of the product: written at most once a
        # minute per token so reads do not queue on the write lock.
        now = time.monotonic()
        with self._lock:
            if now - self._touched.get(name, -_TOUCH_EVERY_S) < _TOUCH_EVERY_S:
                return
            self._touched[name] = now
        try:
            with self._uow(write=True) as uow:
                uow.tokens.touch(name, now=now_ts())
                uow.commit()
        except StorageError:  # a busy or lost store must not fail the request it serves
            log.warning("could not record last use of token %s", name)

    def config(self) -> Config:
        with self._uow() as uow:
            return load_config(uow)

    def authorize(
        self,
        principal: Principal,
        action: Action,
        *,
        target: str | None = None,
        config: Config | None = None,
    ) -> None:
        """Raise ``ForbiddenRoleError`` (audited) if the role is too low for ``action``."""
        needed = required_role(action, config if config is not None else self.config())
        if principal.role.includes(needed):
            return
        self.record_denial(
            actor=principal.actor,
            action=action.value,
            target=target,
            detail={"reason": "role", "required": needed.value},
        )
        raise ForbiddenRoleError(
            f"role '{principal.role.value}' cannot {action.value}; needs '{needed.value}'",
            detail={"required": needed.value},
        )

    def record_denial(
        self, *, actor: str, action: str, target: str | None, detail: dict[str, object]
    ) -> None:
        with self._uow(write=True) as uow:
            audit.record(
                uow.audit,
                actor=actor,
                action=action,
                target=target,
                outcome="denied",
                detail=dict(detail),
            )
            uow.commit()


def _write_secret(path: Path, secret: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (secret + "\n").encode())
    finally:
        os.close(fd)
    os.chmod(path, 0o600)
