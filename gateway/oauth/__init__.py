"""Remote MCP and OAuth (SPEC section 17): the gateway's second door for MCP clients.

``install_oauth`` mounts ``/mcp`` and ``/mcp/token`` (``gateway.remote_mcp``) and, when
``OPS_PUBLIC_URL`` can be an issuer, the authorization server (``routes``: the mcp SDK's
handlers over ``provider``) and its consent page (``consent``). Core only learns a token with
a role and a client name (``core.services.oauth``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from core.bootstrap import Services
from core.config import Settings

if TYPE_CHECKING:
    from gateway.remote_mcp import RemoteMcp

__all__ = ["install_oauth"]


def install_oauth(app: FastAPI, settings: Settings, services: Services) -> RemoteMcp:
    """Add the routes to ``app``; returns the remote MCP door, whose ``run()`` the app's
    lifespan enters."""
    from gateway.oauth.config import OAuthConfig
    from gateway.remote_mcp import RemoteMcp

    config = OAuthConfig.from_settings(settings)
    limits = app.state.limits
    clients = app.state.client_address
    remote = RemoteMcp(
        settings,
        services,
        limits=limits,
        cache=app.state.auth_cache,
        clients=clients,
        oauth=config,
    )
    app.router.routes.extend(remote.routes)
    if config.enabled:
        from gateway.oauth.consent import consent_routes
        from gateway.oauth.routes import oauth_routes

        app.router.routes.extend(oauth_routes(services, config, limits, clients))
        app.router.routes.extend(consent_routes(services, config, limits, clients))
    app.state.oauth = config
    return remote
