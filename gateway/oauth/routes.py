"""The authorization server's endpoints: the mcp SDK's handlers, mounted at SPEC's paths.

``/.well-known/oauth-authorization-server`` (RFC 8414), ``/.well-known/oauth-protected-
resource/mcp`` (RFC 9728), ``/oauth/register`` (RFC 7591), ``/oauth/authorize``,
``/oauth/token`` and ``/oauth/revoke`` (RFC 7009). Each handler is wrapped by ``OAuthEndpoint``:
rate limits per client address, audited refusals at the token endpoint, and a store failure
answered as ``temporarily_unavailable`` (503) instead of a 500.
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from mcp.server.auth.handlers.authorize import AuthorizationHandler
from mcp.server.auth.handlers.metadata import MetadataHandler, ProtectedResourceMetadataHandler
from mcp.server.auth.handlers.register import RegistrationHandler
from mcp.server.auth.handlers.revoke import RevocationHandler
from mcp.server.auth.handlers.token import TokenHandler
from mcp.server.auth.routes import cors_middleware
from mcp.shared.auth import OAuthMetadata, ProtectedResourceMetadata
from starlette.concurrency import run_in_threadpool
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route, request_response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.bootstrap import Services
from core.errors import OpsError, RateLimitedError
from core.storage.failures import as_storage_error
from gateway.clientaddr import ClientAddress
from gateway.oauth.clientauth import HashedSecretAuthenticator
from gateway.oauth.config import OAUTH_PREFIX, OAuthConfig, supported_scopes
from gateway.oauth.provider import OpsOAuthProvider, client_address
from gateway.ratelimit import Limits, RateLimiter

__all__ = ["OAuthEndpoint", "metadata", "oauth_routes", "resource_metadata"]

log = logging.getLogger(__name__)

REGISTRATIONS_PER_MINUTE = 20
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def metadata(config: OAuthConfig) -> OAuthMetadata:
    """The RFC 8414 document: PKCE S256 only, code and refresh grants, our own paths."""
    methods = ["client_secret_post", "client_secret_basic", "none"]
    return OAuthMetadata.model_validate(
        {
            "issuer": config.issuer,
            "authorization_endpoint": config.endpoint("authorize"),
            "token_endpoint": config.endpoint("token"),
            "registration_endpoint": config.endpoint("register"),
            "revocation_endpoint": config.endpoint("revoke"),
            "scopes_supported": supported_scopes(),
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_methods_supported": methods,
            "revocation_endpoint_auth_methods_supported": methods,
            "code_challenge_methods_supported": ["S256"],
            "service_documentation": f"{config.issuer}/docs",
        }
    )


def resource_metadata(config: OAuthConfig) -> ProtectedResourceMetadata:
    """The RFC 9728 document of ``/mcp``: this gateway is its authorization server."""
    return ProtectedResourceMetadata.model_validate(
        {
            "resource": config.resource,
            "authorization_servers": [config.issuer],
            "scopes_supported": supported_scopes(),
            "bearer_methods_supported": ["header"],
            "resource_name": "OPS Trigger (read-only MCP)",
            "resource_documentation": f"{config.issuer}/docs",
        }
    )


def _oauth_error(status: int, error: str, description: str, **headers: str) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={**_NO_STORE, **headers},
    )


class OAuthEndpoint:
    """ASGI wrapper of one SDK handler (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        services: Services,
        limits: Limits,
        clients: ClientAddress,
        name: str,
        registrations: RateLimiter | None = None,
    ) -> None:
        self.app = app
        self.services = services
        self.limits = limits
        self.clients = clients
        self.name = name
        self.registrations = registrations

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = self.clients.of(scope)
        try:
            self.limits.auth_failures.check(client)
            if self.registrations is not None and scope.get("method") == "POST":
                self.registrations.hit(client)
        except RateLimitedError as exc:
            response = _oauth_error(
                429, "temporarily_unavailable", exc.message, **{"Retry-After": str(exc.retry_after)}
            )
            await response(scope, receive, send)
            return
        if self.name == "revoke" and scope.get("method") == "POST":
            receive = await _with_client_secret_field(receive)
        status = 0
        body = bytearray()

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and len(body) < 4096:
                body.extend(message.get("body", b""))
            await send(message)

        token = client_address.set(client)
        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            error = exc if isinstance(exc, OpsError) else as_storage_error(exc)
            if status or error is None:
                raise
            log.warning("OAuth %s failed: %s", self.name, error.message)
            response = _oauth_error(503, "temporarily_unavailable", "the store is unavailable")
            await response(scope, receive, send)
            return
        finally:
            client_address.reset(token)
        if self.name in ("token", "revoke") and status in (400, 401):
            await self._refused(client, status, bytes(body))

    async def _refused(self, client: str, status: int, body: bytes) -> None:
        """A refused token or revocation request: counted against the address, audited."""
        self.limits.auth_failures.record(client)
        try:
            error = str(json.loads(body).get("error", "invalid_request"))[:64]
        except (ValueError, AttributeError):
            error = "invalid_request"
        await run_in_threadpool(
            functools.partial(
                self.services.access.record_denial,
                actor="anonymous",
                action=f"oauth.{self.name}",
                target=None,
                detail={"reason": error, "status": status, "client": client},
            )
        )


async def _with_client_secret_field(receive: Receive) -> Receive:
    """The SDK's revocation request model requires a ``client_secret`` field even for public
    clients (``none``), which RFC 7009 does not; add an empty one when a form lacks it."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return receive
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        pairs = None
    if pairs is not None and not any(key == "client_secret" for key, _ in pairs):
        body = urlencode([*pairs, ("client_secret", "")]).encode()
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _cors(app: ASGIApp, methods: list[str]) -> ASGIApp:
    return CORSMiddleware(app=app, allow_origins="*", allow_methods=methods)


def oauth_routes(
    services: Services, config: OAuthConfig, limits: Limits, clients: ClientAddress
) -> list[BaseRoute]:
    """Every route of the authorization server and the resource metadata of ``/mcp``."""
    assert config.auth is not None and config.auth.client_registration_options is not None
    provider = OpsOAuthProvider(services, config)
    authenticator = HashedSecretAuthenticator(provider)
    wrap: Any = functools.partial(OAuthEndpoint, services=services, limits=limits, clients=clients)
    handlers = {
        "authorize": AuthorizationHandler(provider).handle,
        "token": TokenHandler(provider, authenticator).handle,
        "register": RegistrationHandler(
            provider,
            options=config.auth.client_registration_options,
        ).handle,
        "revoke": RevocationHandler(provider, authenticator).handle,
    }
    registrations = RateLimiter(REGISTRATIONS_PER_MINUTE, what="client registrations")
    routes: list[BaseRoute] = [
        Route(
            "/.well-known/oauth-authorization-server",
            endpoint=cors_middleware(MetadataHandler(metadata(config)).handle, ["GET", "OPTIONS"]),
            methods=["GET", "OPTIONS"],
        ),
        Route(
            urlsplit(config.resource_metadata_url).path,
            endpoint=cors_middleware(
                ProtectedResourceMetadataHandler(resource_metadata(config)).handle,
                ["GET", "OPTIONS"],
            ),
            methods=["GET", "OPTIONS"],
        ),
        Route(
            f"{OAUTH_PREFIX}/authorize",
            # No CORS: a browser navigates here, no script calls it.
            endpoint=wrap(request_response(handlers["authorize"]), name="authorize"),
            methods=["GET", "POST"],
        ),
    ]
    for name in ("token", "register", "revoke"):
        app = wrap(
            request_response(handlers[name]),
            name=name,
            registrations=registrations if name == "register" else None,
        )
        routes.append(
            Route(
                f"{OAUTH_PREFIX}/{name}",
                endpoint=_cors(app, ["POST", "OPTIONS"]),
                methods=["POST", "OPTIONS"],
            )
        )
    return routes
