"""The mcp SDK's authorization-server provider, backed by core's ``OAuthService``.

The SDK's handlers (``mcp.server.auth.handlers``) speak the protocol: they parse requests,
check PKCE S256, redirect URIs, code expiry and scopes, and answer with RFC 6749 error codes.
This class only stores and looks up, in a worker thread, and says what core decided.
"""

from __future__ import annotations

import contextvars
import ipaddress
import logging
from functools import partial
from typing import Any
from urllib.parse import urlencode, urlsplit

from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    AuthorizeError,
    RefreshToken,
    RegistrationError,
    TokenError,
)
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from pydantic import AnyUrl, ValidationError
from starlette.concurrency import run_in_threadpool

from core.bootstrap import Services
from core.services.oauth import OAuthAccess
from gateway.oauth.config import CONSENT_PATH, OAuthConfig, role_for_scopes, supported_scopes

__all__ = ["OpsOAuthProvider", "StoredClient", "client_address", "redirect_uri_problem"]

log = logging.getLogger(__name__)

# The address of the caller of the OAuth endpoint being served (set by the route guard).
client_address: contextvars.ContextVar[str] = contextvars.ContextVar(
    "ops_oauth_client_address", default="unknown"
)

MAX_REDIRECT_URIS = 10
MAX_NAME_CHARS = 200
# Schemes a browser must never be sent to with a code (RFC 8252 section 7.1 allows private
# schemes such as cursor:// for native apps; these are not that).
_FORBIDDEN_SCHEMES = frozenset(
    {"javascript", "data", "file", "vbscript", "about", "blob", "filesystem", "ftp", "ws", "wss"}
)


class StoredClient(OAuthClientInformationFull):
    """A registered client as the handlers see it; the secret is only known as a hash."""

    secret_hash: str | None = None


class OpsAccessToken(AccessToken):
    grant: str


class OpsRefreshToken(RefreshToken):
    grant: str
    user_token: str
    role: str


def _loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def redirect_uri_problem(uri: str) -> str | None:
    """Why ``uri`` cannot be a redirect URI, or None: https anywhere, http on loopback only,
    a private scheme for native apps; never a fragment."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if not scheme:
        return f"redirect URI {uri!r} has no scheme"
    if parts.fragment:
        return f"redirect URI {uri!r} must not have a fragment"
    if scheme in _FORBIDDEN_SCHEMES:
        return f"redirect URI scheme {scheme!r} is not allowed"
    if scheme == "http" and not _loopback(parts.hostname):
        return f"redirect URI {uri!r}: plain http is allowed on loopback only; use https"
    if scheme in ("http", "https") and not parts.hostname:
        return f"redirect URI {uri!r} has no host"
    return None


def _client_from(info: dict[str, Any], secret_hash: str | None) -> StoredClient | None:
    try:
        return StoredClient.model_validate({**info, "secret_hash": secret_hash})
    except ValidationError:
        log.warning("stored OAuth client %s is unreadable", info.get("client_id"))
        return None


def _token(access: OAuthAccess, token: str, resource: str) -> OpsAccessToken:
    return OpsAccessToken(
        token=token,
        client_id=access.client_id,
        scopes=access.scopes,
        expires_at=access.expires_at,
        resource=access.resource or resource,
        subject=access.user,
        grant=access.principal.name,
    )


class OpsOAuthProvider:
    """``OAuthAuthorizationServerProvider`` over core; every store call in a worker thread."""

    def __init__(self, services: Services, config: OAuthConfig) -> None:
        self._services = services
        self._config = config

    # --- clients ---------------------------------------------------------------------------

    async def get_client(self, client_id: str) -> StoredClient | None:
        found = await run_in_threadpool(self._services.oauth.client, client_id)
        if found is None:
            return None
        return _client_from(*found)

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        uris = [str(u) for u in client_info.redirect_uris or []]
        if len(uris) > MAX_REDIRECT_URIS:
            raise RegistrationError("invalid_redirect_uri", "at most 10 redirect URIs")
        for uri in uris:
            problem = redirect_uri_problem(uri)
            if problem is not None:
                raise RegistrationError("invalid_redirect_uri", problem)
        name = client_info.client_name
        if name is not None and len(name) > MAX_NAME_CHARS:
            raise RegistrationError("invalid_client_metadata", "client_name is too long")
        info = client_info.model_dump(mode="json", exclude={"client_secret"}, exclude_none=True)
        await run_in_threadpool(
            partial(
                self._services.oauth.register_client,
                client_id=client_info.client_id,
                client_name=name,
                info=info,
                secret=client_info.client_secret,
                client_address=client_address.get(),
            )
        )

    # --- authorization ---------------------------------------------------------------------

    async def authorize(
        self, client: OAuthClientInformationFull, params: AuthorizationParams
    ) -> str:
        """Send the browser to the consent page with the (validated) request."""
        if params.resource is not None and params.resource.rstrip("/") != self._config.resource:
            raise AuthorizeError(
                "invalid_target", f"this server only issues tokens for {self._config.resource}"
            )
        scopes = params.scopes or ["ops:read"]
        unknown = [s for s in scopes if s not in supported_scopes()]
        if unknown:
            raise AuthorizeError("invalid_scope", f"unsupported scope: {' '.join(unknown)}")
        query = {
            "client_id": client.client_id,
            "redirect_uri": str(params.redirect_uri),
            "redirect_uri_provided_explicitly": "1"
            if params.redirect_uri_provided_explicitly
            else "0",
            "code_challenge": params.code_challenge,
            "scope": " ".join(scopes),
        }
        if params.state is not None:
            query["state"] = params.state
        if params.resource is not None:
            query["resource"] = params.resource
        return f"{CONSENT_PATH}?{urlencode(query)}"

    async def load_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: str
    ) -> AuthorizationCode | None:
        record = await run_in_threadpool(self._services.oauth.load_code, authorization_code)
        if record is None or record.client_id != client.client_id:
            return None
        return AuthorizationCode(
            code=authorization_code,
            scopes=record.scopes,
            expires_at=record.expires_at,
            client_id=record.client_id,
            code_challenge=record.code_challenge,
            redirect_uri=AnyUrl(record.redirect_uri),
            redirect_uri_provided_explicitly=record.redirect_uri_explicit,
            resource=record.resource,
            subject=record.user,
        )

    async def exchange_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: AuthorizationCode
    ) -> OAuthToken:
        pair = await run_in_threadpool(
            partial(
                self._services.oauth.exchange_code,
                code=authorization_code.code,
                client_id=client.client_id,
            )
        )
        if pair is None:
            raise TokenError("invalid_grant", "authorization code was already used")
        return OAuthToken(
            access_token=pair.access_token,
            expires_in=pair.expires_in,
            scope=" ".join(pair.scopes),
            refresh_token=pair.refresh_token,
        )

    # --- refresh ---------------------------------------------------------------------------

    async def load_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: str
    ) -> OpsRefreshToken | None:
        access = await run_in_threadpool(self._services.oauth.load_refresh, refresh_token)
        if access is None or access.client_id != client.client_id:
            return None
        return OpsRefreshToken(
            token=refresh_token,
            client_id=access.client_id,
            scopes=access.scopes,
            expires_at=access.expires_at,
            resource=access.resource,
            subject=access.user,
            grant=access.principal.name,
            user_token=access.user_token,
            role=access.principal.role.value,
        )

    async def exchange_refresh_token(
        self,
        client: OAuthClientInformationFull,
        refresh_token: OpsRefreshToken,
        scopes: list[str],
    ) -> OAuthToken:
        services = self._services
        role = role_for_scopes(refresh_token.scopes)
        active = await run_in_threadpool(
            partial(services.access.user_active, name=refresh_token.user_token, role=role)
        )
        pair = await run_in_threadpool(
            partial(
                services.oauth.refresh,
                token=refresh_token.token,
                client_id=client.client_id,
                scopes=scopes,
                user_active=active,
            )
        )
        if pair is None:
            raise TokenError("invalid_grant", "refresh token is no longer valid")
        return OAuthToken(
            access_token=pair.access_token,
            expires_in=pair.expires_in,
            scope=" ".join(pair.scopes),
            refresh_token=pair.refresh_token,
        )

    # --- access and revocation -------------------------------------------------------------

    async def load_access_token(self, token: str) -> OpsAccessToken | None:
        """Any active token of this server (access or refresh): the revocation endpoint asks
        this first, and revoking either revokes the whole grant."""
        access = await run_in_threadpool(self._services.oauth.load_token, token)
        return _token(access, token, self._config.resource) if access is not None else None

    async def revoke_token(self, token: AccessToken | RefreshToken) -> None:
        access = await run_in_threadpool(self._services.oauth.load_token, token.token)
        if access is None:
            return
        await run_in_threadpool(
            partial(self._services.oauth.revoke, access, actor=access.principal.actor)
        )

    async def exchange_identity_assertion(
        self, client: OAuthClientInformationFull, params: Any
    ) -> OAuthToken:
        raise TokenError("unsupported_grant_type", "the JWT bearer grant is not supported")
