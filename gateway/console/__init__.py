"""The web console (SPEC section 16): server-rendered pages at ``/console``.

A third front door beside the API and MCP: Jinja2 templates, htmx and a few lines of plain
JavaScript (all served from the package: no CDN), routes that call the same core services
as the API routes under the same permission table. ``web`` holds the request cycle
(session, Origin and CSRF checks, authorization, error pages), ``security`` the headers;
the pages live in ``entry`` (sign-in, static files), ``pages``, ``review``, ``batch``
(approve selected drafts), ``authoring``,
``admin``, ``webhooks`` and ``stream`` (live events for the session).
"""

from __future__ import annotations

from fastapi import FastAPI

from core.bootstrap import Services
from core.config import Settings

__all__ = ["install_console"]


def install_console(app: FastAPI, settings: Settings, services: Services) -> None:
    """Add the console's routes to ``app`` (after every other ``/console`` route, such as
    the OAuth consent page: the console's catch-all comes last)."""
    from gateway.console.admin import install_admin
    from gateway.console.authoring import install_authoring
    from gateway.console.batch import install_batch
    from gateway.console.entry import install_entry
    from gateway.console.pages import install_pages
    from gateway.console.review import install_review
    from gateway.console.stream import install_stream
    from gateway.console.web import Console
    from gateway.console.webhooks import install_webhooks

    console = Console(services, settings, app.state.limits, app.state.client_address)
    install_entry(console)
    install_pages(console)
    install_authoring(console)  # /drafts/new before /drafts/{id}
    install_review(console)
    install_batch(console)
    install_admin(console)
    install_webhooks(console)
    install_stream(console)
    app.router.routes.extend(console.routes)
    if console.fallback is not None:
        app.router.routes.append(console.fallback)
    app.state.console = console
