"""The console's front steps: sign-in and sign-out, the static files, and unknown paths.

Sign-in takes a token of any role and opens a server-side session; the form carries a CSRF
token bound to a short-lived cookie (there is no session yet) and must pass the Origin
check. A failed sign-in is audited and rate limited per client address, like a failed
bearer token.
"""

from __future__ import annotations

import functools
import secrets
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from core.auth import Action
from core.errors import RateLimitedError
from gateway.console.security import CONSOLE_PREFIX, csrf_ok, same_origin
from gateway.console.web import SESSION_COOKIE, STATIC_DIR, Console, Ctx

__all__ = ["install_entry"]

SIGN_IN_CSRF = "ops_signin_csrf"
SIGN_IN = f"{CONSOLE_PREFIX}/sign-in"
_STATIC_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}
_STATIC = {
    path.name: (path.read_bytes(), _STATIC_TYPES[path.suffix])
    for path in STATIC_DIR.iterdir()
    if path.suffix in _STATIC_TYPES
}


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a console path on this site, never elsewhere."""
    if not value:
        return CONSOLE_PREFIX
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith(CONSOLE_PREFIX):
        return CONSOLE_PREFIX
    if value.startswith(SIGN_IN) or "\\" in value:
        return CONSOLE_PREFIX
    return value


def install_entry(console: Console) -> None:
    services = console.services

    def sign_in_page(
        request: Request, *, csrf: str, error: str | None = None, status: int = 200
    ) -> Response:
        response = console.page(
            request,
            "sign_in.html",
            http_status=status,
            sign_in_csrf=csrf,
            error=error,
            next=safe_next(request.query_params.get("next")),
        )
        response.set_cookie(
            SIGN_IN_CSRF,
            csrf,
            max_age=3600,
            path=SIGN_IN,
            secure=console.secure_cookie,
            httponly=True,
            samesite="strict",
        )
        return response

    async def show_sign_in(request: Request) -> Response:
        if await console.session_of(request) is not None:
            return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
        csrf = request.cookies.get(SIGN_IN_CSRF) or secrets.token_urlsafe(32)
        return sign_in_page(request, csrf=csrf)

    async def sign_in(request: Request) -> Response:
        if not same_origin(request, console.settings.public_url):
            return console.error(request, status=403, message="Sign in from this site's page.")
        form = await request.form()
        cookie = request.cookies.get(SIGN_IN_CSRF, "")
        if not cookie or not csrf_ok(cookie, form.get("csrf")):
            return console.error(
                request, status=403, message="The sign-in form expired; reload the page."
            )
        client = console.clients.of(request.scope)
        token = form.get("token")
        token = token.strip() if isinstance(token, str) else ""
        principal = await run_in_threadpool(services.access.authenticate, token) if token else None
        if principal is None:
            try:
                console.limits.auth_failures.check(client)
            except RateLimitedError as exc:
                response = sign_in_page(request, csrf=cookie, error=exc.message, status=429)
                response.headers["Retry-After"] = str(exc.retry_after)
                return response
            console.limits.auth_failures.record(client)
            await run_in_threadpool(
                functools.partial(
                    services.access.record_denial,
                    actor="anonymous",
                    action="console.sign_in",
                    target=None,
                    detail={
                        "reason": "unknown token" if token else "missing token",
                        "client": client,
                    },
                )  # fmt: skip
            )
            message = "That token is unknown or revoked." if token else "Enter your token."
            return sign_in_page(request, csrf=cookie, error=message, status=401)
        session_id, _ = await run_in_threadpool(
            functools.partial(
                services.sessions.open, principal=principal, token=token, client=client
            )  # fmt: skip
        )
        wanted = form.get("next")
        target = safe_next(wanted if isinstance(wanted, str) else None)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            session_id,
            path=CONSOLE_PREFIX,
            secure=console.secure_cookie,
            httponly=True,
            samesite="strict",
        )
        response.delete_cookie(SIGN_IN_CSRF, path=SIGN_IN)
        return response

    @console.route("/sign-out", action=Action.READ, methods=("POST",))
    async def sign_out(ctx: Ctx) -> Response:
        await ctx.call(ctx.services.sessions.close, session=ctx.session)
        response = ctx.redirect(SIGN_IN)
        response.delete_cookie(SESSION_COOKIE, path=CONSOLE_PREFIX)
        return response

    async def whoami(request: Request) -> Response:
        """Whether the browser holds a live session: lets the sign-in page skip itself when
        the browser held back the SameSite=Strict cookie on a link from another site."""
        session = await console.session_of(request)
        return JSONResponse({"signed_in": session is not None})

    async def static(request: Request) -> Response:
        found = _STATIC.get(request.path_params["name"])
        if found is None:
            return console.error(request, status=404, message="No such file.")
        body, media = found
        return Response(body, media_type=media, headers={"Cache-Control": "public, max-age=86400"})

    async def not_found(request: Request) -> Response:
        return console.error(request, status=404, message="There is no such console page.")

    console.routes.extend(
        [
            Route(SIGN_IN, show_sign_in, methods=["GET"]),
            Route(SIGN_IN, sign_in, methods=["POST"]),
            Route(f"{CONSOLE_PREFIX}/whoami", whoami, methods=["GET"]),
            Route(f"{CONSOLE_PREFIX}/static/{{name}}", static, methods=["GET"]),
        ]
    )
    console.fallback = Route(f"{CONSOLE_PREFIX}/{{rest:path}}", not_found)
