"""The console's request cycle: session, Origin and CSRF checks, the permission table, and
rendering (a page, or an error page instead of problem+json).

Every console route is declared with the ``Action`` it performs, exactly as the API routes
are; the check is core's (``Principal.can`` and ``AccessService.authorize``, which audits a
denial). Handlers call core services and render a template: nothing more.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from core.auth import Action, Principal
from core.bootstrap import Services
from core.config import Settings
from core.errors import OpsError, RateLimitedError
from core.ids import kind_of
from core.models import Config, Role
from core.services.sessions import ConsoleSession
from gateway.clientaddr import ClientAddress
from gateway.console.markup import pretty_json, render_markdown, short_ts
from gateway.console.security import CONSOLE_PREFIX, csrf_ok, same_origin
from gateway.problems import status_of
from gateway.ratelimit import Limits

__all__ = ["SESSION_COOKIE", "Console", "Ctx", "Handler"]

log = logging.getLogger(__name__)

SESSION_COOKIE = "ops_session"
STATIC_DIR = Path(__file__).with_name("static")
TEMPLATES_DIR = Path(__file__).with_name("templates")
T = TypeVar("T")


@dataclass
class Ctx:
    """One console request: who asks, with which session, under which config."""

    request: Request
    console: Console
    session: ConsoleSession
    config: Config
    form: FormData | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def principal(self) -> Principal:
        return self.session.principal

    @property
    def services(self) -> Services:
        return self.console.services

    def can(self, action: Action | str) -> bool:
        return self.principal.can(Action(action), self.config)

    async def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run a (blocking) core service call in a worker thread."""
        return await run_in_threadpool(functools.partial(fn, *args, **kwargs))

    def field(self, name: str, default: str = "") -> str:
        value = self.form.get(name) if self.form is not None else None
        return value.strip() if isinstance(value, str) else default

    def text(self, name: str) -> str:
        """A textarea as typed (not stripped), with the browser's CRLF line ends as LF."""
        value = self.form.get(name) if self.form is not None else None
        return value.replace("\r\n", "\n") if isinstance(value, str) else ""

    def query(self, name: str) -> str | None:
        value = self.request.query_params.get(name)
        return value.strip() or None if value is not None else None

    def render(self, template: str, *, http_status: int = 200, **values: Any) -> HTMLResponse:
        return self.console.page(
            self.request, template, http_status=http_status, ctx=self, **values
        )

    def redirect(self, path: str) -> RedirectResponse:
        return RedirectResponse(path, status_code=303)


Handler = Callable[[Ctx], Awaitable[Response]]


def _static_version() -> str:
    digest = hashlib.sha256()
    for path in sorted(STATIC_DIR.iterdir()):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


class Console:
    """The console door: its templates, and the wrapper every console route goes through."""

    def __init__(
        self, services: Services, settings: Settings, limits: Limits, clients: ClientAddress
    ) -> None:
        self.services = services
        self.settings = settings
        self.limits = limits
        self.clients = clients
        self.secure_cookie = settings.public_url.lower().startswith("https://")
        self.templates = Environment(
            loader=FileSystemLoader(TEMPLATES_DIR),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters.update(markdown=render_markdown, pretty=pretty_json, ts=short_ts)
        self.templates.globals.update(
            static_version=_static_version(), prefix=CONSOLE_PREFIX, Action=Action
        )
        self.routes: list[Route] = []
        self.fallback: Route | None = None
        # (method, path, action) of every route declared with ``route``: the tests walk it.
        self.declared: list[tuple[str, str, Action]] = []

    # --- rendering ----------------------------------------------------------------------

    def page(
        self,
        request: Request,
        template: str,
        *,
        http_status: int = 200,
        ctx: Ctx | None = None,
        **values: Any,
    ) -> HTMLResponse:
        html = self.templates.get_template(template).render(
            request=request,
            ctx=ctx,
            principal=ctx.principal if ctx is not None else None,
            csrf=ctx.session.csrf if ctx is not None else None,
            **values,
        )
        return HTMLResponse(html, status_code=http_status)

    def error(
        self, request: Request, *, status: int, message: str, ctx: Ctx | None = None
    ) -> HTMLResponse:
        return self.page(request, "error.html", http_status=status, ctx=ctx, status_code=status,
                         message=message)  # fmt: skip

    # --- routes -------------------------------------------------------------------------

    def route(
        self, path: str, *, action: Action, methods: tuple[str, ...] = ("GET",)
    ) -> Callable[[Handler], Handler]:
        """Declare a console route performing ``action``."""

        def register(handler: Handler) -> Handler:
            async def endpoint(request: Request) -> Response:
                return await self._dispatch(request, handler, action)

            endpoint.__name__ = handler.__name__
            self.routes.append(Route(CONSOLE_PREFIX + path, endpoint, methods=list(methods)))
            self.declared.extend((method, CONSOLE_PREFIX + path, action) for method in methods)
            return handler

        return register

    async def session_of(self, request: Request) -> ConsoleSession | None:
        session_id = request.cookies.get(SESSION_COOKIE)
        if not session_id:
            return None
        return await run_in_threadpool(self.services.sessions.resolve, session_id)

    async def _dispatch(self, request: Request, handler: Handler, action: Action) -> Response:
        writes = request.method not in ("GET", "HEAD")
        ctx: Ctx | None = None
        try:
            session = await self.session_of(request)
            if session is None:
                return await self._signed_out(request, action, writes)
            ctx = Ctx(request=request, console=self, session=session, config=Config())
            if writes:
                refused = await self._check_form(ctx, action)
                if refused is not None:
                    return refused
            self.limits.requests.hit(session.principal.actor)
            ctx.config = await ctx.call(self.services.config.get)
            if not ctx.can(action):
                await ctx.call(
                    self.services.access.authorize,
                    session.principal,
                    action,
                    target=_target(request),
                    config=ctx.config,
                )
            return await handler(ctx)
        except OpsError as exc:
            status = status_of(exc)
            response = self.error(request, status=status, message=exc.message, ctx=ctx)
            if isinstance(exc, RateLimitedError):
                response.headers["Retry-After"] = str(exc.retry_after)
            return response

    async def _signed_out(self, request: Request, action: Action, writes: bool) -> Response:
        if not writes and request.headers.get("hx-request") is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(
                f"{CONSOLE_PREFIX}/sign-in?next={quote(target, safe='')}", status_code=303
            )
        await self._deny(request, actor="anonymous", action=action, reason="no console session")
        response = self.error(request, status=401, message="Your session ended. Sign in again.")
        response.headers["HX-Redirect"] = f"{CONSOLE_PREFIX}/sign-in"
        return response

    async def _check_form(self, ctx: Ctx, action: Action) -> Response | None:
        """Origin check and CSRF token of a state-changing request (both audited)."""
        request = ctx.request
        if not same_origin(request, self.settings.public_url):
            await self._deny(request, actor=ctx.principal.actor, action=action, reason="origin")
            return self.error(
                request, status=403, ctx=ctx, message="This form must be sent from this site."
            )
        ctx.form = await request.form()
        sent = ctx.form.get("csrf") or request.headers.get("x-csrf-token")
        if not csrf_ok(ctx.session.csrf, sent):
            await self._deny(request, actor=ctx.principal.actor, action=action, reason="csrf")
            return self.error(
                request,
                status=403,
                ctx=ctx,
                message="The form expired or was not sent from this console; reload the page.",
            )
        return None

    async def _deny(self, request: Request, *, actor: str, action: Action, reason: str) -> None:
        await run_in_threadpool(
            functools.partial(
                self.services.access.record_denial,
                actor=actor,
                action=action.value,
                target=_target(request),
                detail={
                    "reason": reason,
                    "route": f"{request.method} {request.url.path[:200]}",
                    "client": self.clients.of(request.scope),
                },
            )
        )


def _target(request: Request) -> str | None:
    value = request.path_params.get("id")
    return value if kind_of(value) is not None else None


def roles_below(role: Role) -> list[Role]:
    """The roles ``role`` may hand out (itself and below)."""
    return [r for r in Role if role.includes(r)]
