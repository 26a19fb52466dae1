"""Client authentication at the token and revocation endpoints, against hashed secrets.

The SDK's ``ClientAuthenticator`` compares a stored plaintext secret; this store keeps only
SHA-256 of it (SPEC section 1.3), so the same rules are applied to the hash: the method the
client registered (``client_secret_basic``, ``client_secret_post`` or ``none``) decides where
the secret must be, and a client registered with a secret must always present it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from typing import Any
from urllib.parse import unquote

from mcp.server.auth.middleware.client_auth import AuthenticationError, ClientAuthenticator
from mcp.shared.auth import OAuthClientInformationFull
from starlette.requests import Request

from core.auth import hash_token
from gateway.oauth.provider import OpsOAuthProvider, StoredClient

__all__ = ["HashedSecretAuthenticator"]


def _basic_secret(header: str, client_id: str) -> str:
    if not header.startswith("Basic "):
        raise AuthenticationError("Missing or invalid Basic authentication in Authorization header")
    try:
        decoded = base64.b64decode(header[6:], validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise AuthenticationError("Invalid Basic authentication header") from None
    if ":" not in decoded:
        raise AuthenticationError("Invalid Basic authentication header")
    basic_id, secret = decoded.split(":", 1)
    if unquote(basic_id) != client_id:
        raise AuthenticationError("Client ID mismatch in Basic auth")
    return unquote(secret)


class HashedSecretAuthenticator(ClientAuthenticator):
    def __init__(self, provider: OpsOAuthProvider) -> None:
        super().__init__(provider)
        self._ops_provider = provider

    async def authenticate_request(self, request: Request) -> OAuthClientInformationFull:
        form: Any = await request.form()
        client_id = form.get("client_id")
        if not isinstance(client_id, str) or not client_id:
            raise AuthenticationError("Missing client_id")
        client = await self._ops_provider.get_client(client_id)
        if not isinstance(client, StoredClient):
            raise AuthenticationError("Invalid client_id")
        method = client.token_endpoint_auth_method or "client_secret_post"
        presented: str | None = None
        if method == "client_secret_basic":
            presented = _basic_secret(request.headers.get("Authorization", ""), client_id)
        elif method == "client_secret_post":
            value = form.get("client_secret")
            presented = value if isinstance(value, str) else None
        elif method != "none":
            raise AuthenticationError(f"Unsupported auth method: {method}")
        if method != "none" and not client.secret_hash:
            raise AuthenticationError("Client is registered for secret-based authentication")
        if client.secret_hash:
            if not presented:
                raise AuthenticationError("Client secret is required")
            if not hmac.compare_digest(client.secret_hash, hash_token(presented)):
                raise AuthenticationError("Invalid client_secret")
            expires = client.client_secret_expires_at
            if expires and expires < int(time.time()):
                raise AuthenticationError("Client secret has expired")
        return client
