"""Where the gateway's OAuth pieces live and what they accept, from the settings.

The gateway is the authorization server (issuer: ``OPS_PUBLIC_URL``) for one protected
resource, its ``/mcp`` endpoint. RFC 8414 requires an HTTPS issuer, loopback aside; with any
other public URL the gateway offers no OAuth at all and ``/mcp`` takes bearer tokens only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mcp.server.auth.routes import build_resource_metadata_url, validate_issuer_url
from mcp.server.auth.settings import AuthSettings, ClientRegistrationOptions, RevocationOptions
from pydantic import AnyHttpUrl, ValidationError

from core.config import Settings
from core.models import Role

__all__ = [
    "AGENT_ROLE",
    "SCOPE_AGENT",
    "SCOPE_READ",
    "OAuthConfig",
    "role_for_scopes",
    "scopes_for_role",
    "supported_scopes",
]

log = logging.getLogger(__name__)

SCOPE_READ = "ops:read"
SCOPE_AGENT = "ops:agent"
# ``ops:agent`` is offered only once the agent role exists (SPEC section 14).
AGENT_ROLE: Role | None = getattr(Role, "AGENT", None)

MCP_PATH = "/mcp"
TOKEN_ONLY_PATH = "/mcp/token"
OAUTH_PREFIX = "/oauth"
CONSENT_PATH = "/console/oauth/consent"


def supported_scopes() -> list[str]:
    return [SCOPE_READ, SCOPE_AGENT] if AGENT_ROLE is not None else [SCOPE_READ]


def scopes_for_role(role: Role) -> list[str]:
    """The scopes a token of ``role`` holds on ``/mcp`` (every role reads)."""
    if AGENT_ROLE is not None and role.includes(AGENT_ROLE):
        return [SCOPE_READ, SCOPE_AGENT]
    return [SCOPE_READ]


def role_for_scopes(scopes: list[str]) -> Role:
    """The role an OAuth token with ``scopes`` acts as."""
    if AGENT_ROLE is not None and SCOPE_AGENT in scopes:
        return AGENT_ROLE
    return Role.ACTIONS


@dataclass(frozen=True)
class OAuthConfig:
    issuer: str
    resource: str
    auth: AuthSettings | None

    @property
    def enabled(self) -> bool:
        return self.auth is not None

    @property
    def resource_metadata_url(self) -> str:
        return str(build_resource_metadata_url(AnyHttpUrl(self.resource)))

    def endpoint(self, name: str) -> str:
        return f"{self.issuer}{OAUTH_PREFIX}/{name}"

    @classmethod
    def from_settings(cls, settings: Settings) -> OAuthConfig:
        issuer = settings.public_url.strip().rstrip("/")
        resource = issuer + MCP_PATH
        try:
            validate_issuer_url(AnyHttpUrl(issuer))
        except (ValueError, ValidationError) as exc:
            reason = str(exc).splitlines()[0]
            log.warning(
                "OAuth is off: OPS_PUBLIC_URL %s cannot be an issuer (%s); /mcp takes bearer "
                "tokens only",
                issuer,
                reason,
            )
            return cls(issuer=issuer, resource=resource, auth=None)
        auth = AuthSettings(
            issuer_url=AnyHttpUrl(issuer),
            resource_server_url=AnyHttpUrl(resource),
            validate_token_resource=True,
            required_scopes=[SCOPE_READ],
            client_registration_options=ClientRegistrationOptions(
                enabled=True, valid_scopes=supported_scopes(), default_scopes=[SCOPE_READ]
            ),
            revocation_options=RevocationOptions(enabled=True),
        )
        return cls(issuer=issuer, resource=resource, auth=auth)
