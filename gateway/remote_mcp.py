"""The MCP surface of SPEC section 8 over Streamable HTTP: ``/mcp`` and ``/mcp/token``.

One session manager (the mcp SDK's, stateful: server notifications need a session's GET
stream; an unknown session id is 404) serves both paths with the stdio server's own tools,
resources and prompts, reading through its read-only store. In front of it the SDK's
resource-server pieces: ``BearerAuthBackend`` with our ``TokenVerifier``, and
``RequireAuthMiddleware``, which answers 401 with ``WWW-Authenticate: Bearer …`` carrying
``resource_metadata`` on ``/mcp`` (RFC 9728) and nothing about OAuth on ``/mcp/token``.

- ``/mcp``: registry bearer tokens of any role and OAuth access tokens issued for ``/mcp``.
- ``/mcp/token``: registry bearer tokens only, no discovery (for clients that drop their
  configured header once they see OAuth metadata).

Failed authentication is audited and rate limited per client address, requests per token,
as on ``/ops``. The use of an OAuth token is audited (with its client and user) by the
gateway's writer services here, never through the MCP surface's read-only store.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.auth.middleware.bearer_auth import (
    AuthenticatedUser,
    BearerAuthBackend,
    RequireAuthMiddleware,
)
from mcp.server.auth.provider import AccessToken
from pydantic import AnyHttpUrl
from starlette.concurrency import run_in_threadpool
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from core.auth import hash_token, well_formed_token
from core.bootstrap import Services
from core.config import Settings
from core.errors import RateLimitedError
from core.services.oauth import OAuthAccess
from gateway.authcache import AuthCache
from gateway.clientaddr import ClientAddress
from gateway.oauth.config import MCP_PATH, TOKEN_ONLY_PATH, OAuthConfig, scopes_for_role
from gateway.ratelimit import Limits

__all__ = ["GatewayTokenVerifier", "RemoteMcp"]


class OpsAccess(AccessToken):
    """What the MCP door knows of a caller: the actor, and for OAuth the grant."""

    actor: str
    oauth: OAuthAccess | None = None


class GatewayTokenVerifier:
    """The SDK's ``TokenVerifier`` over core: registry tokens (cached for a moment, the cache
    dropped when the token registry changes) and, if ``oauth``, OAuth access tokens for
    ``resource``."""

    def __init__(self, services: Services, cache: AuthCache, *, resource: str, oauth: bool) -> None:
        self.services = services
        self.cache = cache
        self.resource = resource
        self.oauth = oauth

    async def verify_token(self, token: str) -> AccessToken | None:
        if not well_formed_token(token):
            return None  # any other byte string: 401 like an unknown token
        principal = await self.cache.get(token)
        if principal is None:
            mark = await self.cache.mark()
            principal = await run_in_threadpool(self.services.access.authenticate, token)
            if principal is not None:
                await self.cache.put(token, principal, mark=mark)
        if principal is not None:
            return OpsAccess(
                token=hash_token(token),
                client_id=f"token:{principal.name}",
                scopes=scopes_for_role(principal.role),
                resource=self.resource,
                subject=principal.actor,
                actor=principal.actor,
            )
        if not self.oauth:
            return None
        access = await run_in_threadpool(self.services.oauth.authenticate, token)
        if access is None:
            return None
        return OpsAccess(
            token=hash_token(token),
            client_id=access.client_id,
            scopes=access.scopes,
            expires_at=access.expires_at,
            resource=(access.resource or self.resource).rstrip("/"),
            subject=access.user,
            actor=access.principal.actor,
            oauth=access,
        )


def _has_authorization(scope: Scope) -> bool:
    return any(key == b"authorization" for key, _ in scope.get("headers", ()))


def _too_many(exc: RateLimitedError) -> JSONResponse:
    return JSONResponse(
        {"error": "rate_limited", "error_description": exc.message},
        status_code=429,
        headers={"Retry-After": str(exc.retry_after)},
    )


class _Require(RequireAuthMiddleware):
    """The SDK's 401/403 answers, plus our audit, rate limits and record of OAuth use."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        services: Services,
        limits: Limits,
        clients: ClientAddress,
        route: str,
        resource_metadata_url: str | None,
    ) -> None:
        super().__init__(
            app,
            required_scopes=[],
            resource_metadata_url=AnyHttpUrl(resource_metadata_url)
            if resource_metadata_url
            else None,
        )
        self.services = services
        self.limits = limits
        self.clients = clients
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        user = scope.get("user")
        if not isinstance(user, AuthenticatedUser) or not isinstance(user.access_token, OpsAccess):
            # The token was checked first: a valid one is never refused for other callers'
            # failures from its address; a failure is a 429 once the address failed too often.
            client = self.clients.of(scope)
            try:
                self.limits.auth_failures.check(client)
            except RateLimitedError as exc:
                await _too_many(exc)(scope, receive, send)
                return
            await self._refuse(scope, client)
            await super().__call__(scope, receive, send)  # the SDK's 401 and its header
            return
        access = user.access_token
        try:
            self.limits.requests.hit(access.actor)
        except RateLimitedError as exc:
            await _too_many(exc)(scope, receive, send)
            return
        if access.oauth is not None:
            await run_in_threadpool(
                functools.partial(self.services.oauth.record_use, access.oauth, route=self.route)
            )
        await super().__call__(scope, receive, send)

    async def _refuse(self, scope: Scope, client: str) -> None:
        self.limits.auth_failures.record(client)
        reason = "unknown token" if _has_authorization(scope) else "missing token"
        await run_in_threadpool(
            functools.partial(
                self.services.access.record_denial,
                actor="anonymous",
                action="read",
                target=None,
                detail={
                    "reason": reason,
                    "route": f"{scope.get('method', '?')} {self.route}",
                    "client": client,
                },
            )
        )


class RemoteMcp:
    """The session manager and the two authenticated routes in front of it."""

    def __init__(
        self,
        settings: Settings,
        services: Services,
        *,
        limits: Limits,
        cache: AuthCache,
        clients: ClientAddress,
        oauth: OAuthConfig,
    ) -> None:
        from mcp_server.server import http_session_manager

        self._manager = http_session_manager(settings)
        self.routes: list[BaseRoute] = []
        for path, with_oauth in ((MCP_PATH, oauth.enabled), (TOKEN_ONLY_PATH, False)):
            verifier = GatewayTokenVerifier(
                services, cache, resource=oauth.resource, oauth=with_oauth
            )
            require = _Require(
                self._manager.handle_request,
                services=services,
                limits=limits,
                clients=clients,
                route=path,
                resource_metadata_url=oauth.resource_metadata_url if with_oauth else None,
            )
            backend = BearerAuthBackend(
                verifier,
                resource_server_url=AnyHttpUrl(oauth.resource) if with_oauth else None,
            )
            app: Any = AuthenticationMiddleware(require, backend=backend)
            self.routes.append(Route(path, endpoint=app))

    @asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """Serve sessions (and run the MCP server's lifespan: its store and change feed)."""
        async with self._manager.run():
            yield
