"""The consent page of ``/oauth/authorize``: sign in with a token, see who asks, allow or deny.

``/oauth/authorize`` (the SDK's handler) validates the request and sends the browser here
with it. The page re-validates everything against the store (the client, its exact redirect
URI, the PKCE challenge, the scopes), because the query is the browser's to change. The form
posts back with a CSRF token (double-submit cookie) and must come from this origin. A user
signed in to the web console may leave the token empty: the console session stands in. Allowing
issues a single-use code for the role the user chose, never above their own token's role;
denying sends ``access_denied`` to the client. Both are audited.
"""

from __future__ import annotations

import functools
import hmac
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from mcp.server.auth.provider import construct_redirect_uri
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from core.auth import Principal
from core.bootstrap import Services
from core.errors import OpsError, RateLimitedError
from core.models import Role
from core.services.oauth import MAX_OAUTH_ROLE
from gateway.clientaddr import ClientAddress
from gateway.console.web import SESSION_COOKIE
from gateway.oauth.config import (
    CONSENT_PATH,
    SCOPE_AGENT,
    SCOPE_READ,
    OAuthConfig,
    scopes_for_role,
)
from gateway.oauth.provider import StoredClient, _client_from
from gateway.ratelimit import Limits

__all__ = ["consent_routes"]

CSRF_COOKIE = "ops_oauth_csrf"
_CHALLENGE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=select_autoescape(default=True),
)
_STYLE = Path(__file__).with_name("static") / "consent.css"
SCOPE_TEXT = {
    SCOPE_READ: "read the plan, approved items and runs (read-only)",
    SCOPE_AGENT: "claim and report agent runs",
}
ROLE_TEXT = {"actions": "read-only", "agent": "agent: read, claim and report agent runs"}
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    # Same-origin: the form's POST then carries a real Origin header (no-referrer sends null).
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}
_FIELDS = (
    "client_id",
    "redirect_uri",
    "redirect_uri_provided_explicitly",
    "code_challenge",
    "scope",
    "state",
    "resource",
)


class ConsentError(Exception):
    """A request that cannot be shown (no redirect: the redirect URI is not trusted yet)."""


@dataclass(frozen=True)
class Pending:
    client: StoredClient
    fields: dict[str, str]
    scopes: list[str]

    @property
    def redirect_uri(self) -> str:
        return self.fields["redirect_uri"]

    @property
    def state(self) -> str | None:
        return self.fields.get("state")

    def back(self, **params: str | None) -> RedirectResponse:
        """Send the browser to the client's redirect URI with ``params`` (and its state)."""
        url = construct_redirect_uri(self.redirect_uri, **params, state=self.state)
        return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


def _offered_roles() -> list[Role]:
    return [role for role in Role if MAX_OAUTH_ROLE.includes(role)]


class ConsentPage:
    def __init__(
        self, services: Services, config: OAuthConfig, limits: Limits, clients: ClientAddress
    ) -> None:
        self.services = services
        self.config = config
        self.limits = limits
        self.clients = clients

    async def _pending(self, data: Any) -> Pending:
        fields = {k: v for k in _FIELDS if isinstance(v := data.get(k), str) and v}
        client_id = fields.get("client_id", "")
        found = await run_in_threadpool(self.services.oauth.client, client_id)
        client = _client_from(*found) if found is not None else None
        if client is None:
            raise ConsentError("unknown client")
        registered = [str(uri) for uri in client.redirect_uris or []]
        if fields.get("redirect_uri") not in registered:
            raise ConsentError("the redirect URI is not registered for this client")
        if not _CHALLENGE.fullmatch(fields.get("code_challenge", "")):
            raise ConsentError("missing or malformed PKCE code challenge")
        resource = fields.get("resource")
        if resource is not None and resource.rstrip("/") != self.config.resource:
            raise ConsentError("tokens can only be issued for this server's /mcp")
        scopes = fields.get("scope", SCOPE_READ).split()
        return Pending(client=client, fields=fields, scopes=scopes)

    async def _console_user(self, request: Request) -> Principal | None:
        """The user of the browser's console session, if it has a live one."""
        session_id = request.cookies.get(SESSION_COOKIE)
        if not session_id:
            return None
        session = await run_in_threadpool(self.services.sessions.resolve, session_id)
        return session.principal if session is not None else None

    def _render(
        self,
        request: Request,
        pending: Pending,
        csrf: str,
        *,
        error: str | None,
        status: int,
        signed_in: Principal | None = None,
    ) -> Response:
        target = urlsplit(pending.redirect_uri)
        html = _TEMPLATES.get_template("consent.html").render(
            client_name=pending.client.client_name or pending.client.client_id,
            client_id=pending.client.client_id,
            redirect_host=target.hostname or f"{target.scheme}:",
            redirect_scheme=target.scheme,
            scopes=[(s, SCOPE_TEXT.get(s, s)) for s in pending.scopes],
            roles=[(r.value, ROLE_TEXT.get(r.value, r.value)) for r in _offered_roles()],
            fields=pending.fields,
            csrf=csrf,
            error=error,
            signed_in=signed_in.actor if signed_in is not None else None,
            action=CONSENT_PATH,
            style=f"{CONSENT_PATH}.css",
        )
        response = HTMLResponse(html, status_code=status, headers=_HEADERS)
        response.set_cookie(
            CSRF_COOKIE,
            csrf,
            max_age=3600,
            path=CONSENT_PATH,
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
        return response

    def _problem(self, message: str, status: int = 400) -> Response:
        html = _TEMPLATES.get_template("consent_error.html").render(
            message=message, style=f"{CONSENT_PATH}.css"
        )
        return HTMLResponse(html, status_code=status, headers=_HEADERS)

    async def show(self, request: Request) -> Response:
        try:
            pending = await self._pending(request.query_params)
        except ConsentError as exc:
            return self._problem(f"This authorization request cannot be shown: {exc}.")
        csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
        user = await self._console_user(request)
        return self._render(request, pending, csrf, error=None, status=200, signed_in=user)

    def _same_origin(self, request: Request) -> bool:
        origin = request.headers.get("origin")
        if not origin or origin == "null":
            return False
        own = f"{request.url.scheme}://{request.url.netloc}"
        issuer = urlsplit(self.config.issuer)
        return origin in (own, f"{issuer.scheme}://{issuer.netloc}")

    async def decide(self, request: Request) -> Response:
        if not self._same_origin(request):
            return self._problem("This form must be sent from this site (Origin check).", 403)
        form = await request.form()
        cookie = request.cookies.get(CSRF_COOKIE, "")
        sent = form.get("csrf")
        if not cookie or not isinstance(sent, str) or not hmac.compare_digest(cookie, sent):
            return self._problem("The form expired or was not sent from this page; reload.", 403)
        try:
            pending = await self._pending(form)
        except ConsentError as exc:
            return self._problem(f"This authorization request cannot be completed: {exc}.")
        if form.get("decision") != "allow":
            await self._deny(request, pending, user=None, reason="the user denied access")
            return pending.back(error="access_denied", error_description="the user denied access")
        user, problem = await self._sign_in(request, form.get("token"))
        if user is None:
            return self._render(request, pending, cookie, error=problem, status=401)
        return await self._allow(request, pending, user, form.get("role"), cookie)

    async def _sign_in(self, request: Request, token: object) -> tuple[Principal | None, str]:
        principal = None
        if isinstance(token, str) and token.strip():
            principal = await run_in_threadpool(self.services.access.authenticate, token.strip())
        else:
            principal = await self._console_user(request)
        if principal is not None:
            return principal, ""
        client = self.clients.of(request.scope)
        try:
            self.limits.auth_failures.check(client)
        except RateLimitedError as exc:
            return None, exc.message
        self.limits.auth_failures.record(client)
        await run_in_threadpool(
            functools.partial(
                self.services.access.record_denial,
                actor="anonymous",
                action="oauth.consent",
                target=None,
                detail={"reason": "unknown token", "client": client},
            )
        )
        return None, "That token is unknown or revoked. Sign in with a valid token."

    async def _allow(
        self, request: Request, pending: Pending, user: Principal, chosen: object, csrf: str
    ) -> Response:
        registered = pending.client.scope
        if registered is not None:  # never more than the client registered for
            extra = [s for s in pending.scopes if s not in registered.split()]
            if extra:
                reason = f"scope {' '.join(extra)} was not registered by this client"
                await self._deny(request, pending, user=user, reason=reason)
                return pending.back(error="invalid_scope", error_description=reason)
        ceiling = max((r for r in _offered_roles() if user.role.includes(r)), key=lambda r: r.rank)
        too_high = [s for s in pending.scopes if s not in scopes_for_role(ceiling)]
        if too_high:
            reason = f"scope {' '.join(too_high)} is above what {user.actor} may grant"
            await self._deny(request, pending, user=user, reason=reason)
            return pending.back(error="invalid_scope", error_description=reason)
        try:
            role = Role(chosen) if isinstance(chosen, str) else Role.ACTIONS
        except ValueError:
            role = Role.ACTIONS
        if role not in _offered_roles() or not user.role.includes(role):
            message = f"Your token ({user.role.value}) cannot grant the role '{role.value}'."
            return self._render(request, pending, csrf, error=message, status=403)
        granted = [s for s in pending.scopes if s in scopes_for_role(role)] or [SCOPE_READ]
        try:
            code = await run_in_threadpool(
                functools.partial(
                    self.services.oauth.issue_code,
                    client_id=pending.client.client_id,
                    user=user,
                    role=role,
                    scopes=granted,
                    code_challenge=pending.fields["code_challenge"],
                    redirect_uri=pending.redirect_uri,
                    redirect_uri_explicit=pending.fields.get("redirect_uri_provided_explicitly")
                    == "1",
                    resource=pending.fields.get("resource"),
                )
            )
        except OpsError as exc:
            return pending.back(error="server_error", error_description=exc.message)
        return pending.back(code=code)

    async def _deny(
        self, request: Request, pending: Pending, *, user: Principal | None, reason: str
    ) -> None:
        await run_in_threadpool(
            functools.partial(
                self.services.oauth.record_consent_denied,
                client_id=pending.client.client_id,
                actor=user.actor if user is not None else "anonymous",
                reason=reason,
            )
        )

    async def style(self, request: Request) -> Response:
        return Response(
            _STYLE.read_bytes(),
            media_type="text/css",
            headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )


def consent_routes(
    services: Services, config: OAuthConfig, limits: Limits, clients: ClientAddress
) -> list[BaseRoute]:
    page = ConsentPage(services, config, limits, clients)
    return [
        Route(CONSENT_PATH, page.show, methods=["GET"]),
        Route(CONSENT_PATH, page.decide, methods=["POST"]),
        Route(f"{CONSENT_PATH}.css", page.style, methods=["GET"]),
    ]
