"""The console's browser defences: security headers, the Origin check and CSRF tokens.

Every answer under ``/console`` carries the headers of SPEC section 16. A state-changing
request must come from this site (Origin check) and carry the CSRF token of its form.
Under ``Referrer-Policy: no-referrer`` a browser sends ``Origin: null`` on a form POST; it
then still sends ``Sec-Fetch-Site`` (set by the browser, never by a page), and
``same-origin`` there stands in for the hidden origin.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "CONSOLE_PREFIX",
    "SECURITY_HEADERS",
    "ConsoleHeadersMiddleware",
    "csrf_ok",
    "same_origin",
]

CONSOLE_PREFIX = "/console"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
}
_ENCODED = [(name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS.items()]


class ConsoleHeadersMiddleware:
    """Add the security headers to every answer under ``/console`` (a header the route set
    itself, such as the static files' ``Cache-Control``, is kept)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path != CONSOLE_PREFIX and not path.startswith(CONSOLE_PREFIX + "/"):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {key.lower() for key, _ in headers}
                headers.extend((k, v) for k, v in _ENCODED if k not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_origin(request: Request, public_url: str) -> bool:
    """Whether a state-changing request comes from a page of this site."""
    origin = request.headers.get("origin")
    if origin and origin != "null":
        own = {_origin_of(str(request.url)), _origin_of(public_url)}
        return origin.lower() in own
    return request.headers.get("sec-fetch-site") == "same-origin"


def csrf_ok(expected: str, sent: object) -> bool:
    """Constant-time comparison of the CSRF token a form (or header) sent."""
    return isinstance(sent, str) and bool(sent) and hmac.compare_digest(expected, sent)
