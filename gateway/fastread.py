"""A lean request path for the hottest reads, with their rendered answers kept while the
store has not changed (``gateway.readcache``).

FastAPI solves a route's dependencies, validates its parameters and opens two exit stacks
on every request: most of what a small read costs. A route marked with ``fast(...)`` keeps
its FastAPI declaration (the OpenAPI documents, the permission table of its guard, and the
full path for any request the fast path does not take) and answers through a plain ASGI
app instead: it parses the request's parameters itself, or hands the request untouched to
the FastAPI path when they are anything but plain (so every validation error keeps its
exact answer); then runs the route's own guard (authentication, rate limits, role: the
same 401/403/429 problems, audited), and answers from the cache or reads and renders. Errors
go through the app's exception handlers, as from any route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette._exception_handler import wrap_app_handling_exceptions
from starlette.datastructures import URLPath
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

from core.auth import Principal
from gateway.deps import route_guard
from gateway.readcache import CachedAnswer, ReadCache
from gateway.render import render

__all__ = [
    "FastRead",
    "HotRoutes",
    "Loaded",
    "cached",
    "fast",
    "install_fast",
    "install_hot_routes",
]

F = TypeVar("F", bound=Callable[..., Any])

# (model, until, etag): what a read loaded; ``until`` as in ``core.freshness``.
Loaded = tuple[BaseModel, str | None, int | None]


@dataclass(frozen=True)
class FastRead:
    """``key(request)``: the cache key of a plain request, or None to take the FastAPI path;
    ``answer(request, principal, key)``: the response, once the guard let the caller in."""

    key: Callable[[Request], Hashable | None]
    answer: Callable[[Request, Principal, Any], Awaitable[Response]]


_ATTRIBUTE = "__ops_fast_read__"


def fast(spec: FastRead) -> Callable[[F], F]:
    """Mark a FastAPI endpoint as served by ``spec`` (see ``install_fast``)."""

    def mark(endpoint: F) -> F:
        setattr(endpoint, _ATTRIBUTE, spec)
        return endpoint

    return mark


def install_fast(route: APIRoute) -> None:
    """Serve ``route`` through its ``FastRead`` if its endpoint has one."""
    spec: FastRead | None = getattr(route.endpoint, _ATTRIBUTE, None)
    if spec is None:
        return
    guard = route_guard(route.dependant)
    if guard is None:
        raise RuntimeError(f"{route.path}: a fast read needs the route's guard")
    full = route.app

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        key = spec.key(request)
        if key is None:
            await full(scope, receive, send)
            return

        async def handle(scope: Scope, receive: Receive, send: Send) -> None:
            principal = await guard(request)
            response = await spec.answer(request, principal, key)
            await response(scope, receive, send)

        await wrap_app_handling_exceptions(handle, request)(scope, receive, send)

    route.app = app


async def cached(
    request: Request, key: Hashable, load: Callable[[], Awaitable[Loaded]]
) -> Response:
    """The answer kept for ``key``, or ``load()`` rendered (and kept)."""
    cache: ReadCache = request.app.state.read_cache
    hit = cache.get(key)
    if hit is not None:
        return _response(hit)
    mark = cache.mark()
    model, until, etag = await load()
    response = render(model, etag=etag)
    cache.put(
        key,
        CachedAnswer(body=bytes(response.body), etag=f'"{etag}"' if etag is not None else None,
                     until=until),
        mark=mark,
    )  # fmt: skip
    return response


def _response(hit: CachedAnswer) -> Response:
    headers = {"ETag": hit.etag} if hit.etag is not None else None
    return Response(content=hit.body, media_type="application/json", headers=headers)


class HotRoutes(BaseRoute):
    """The fast-read routes, tried before every other route of the app.

    The router tries its routes in order, each a regular expression and more, and the hot
    reads come after a dozen others; this one entry tries only theirs. It matches a request
    exactly as its route would, and only fully (anything else, a 405 among them, is left to
    the routes behind it, which still hold the same route). It holds no operation of its
    own: the OpenAPI documents are built from the routes themselves."""

    def __init__(self, routes: list[APIRoute]) -> None:
        self._routes = routes

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        for route in self._routes:
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                return match, child_scope
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        route: APIRoute = scope["route"]
        await route.handle(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        raise NoMatchFound(name, path_params)


def install_hot_routes(app: FastAPI) -> None:
    """Put ``HotRoutes`` of the app's fast-read routes first on its router."""
    hot = [
        route
        for route in app.router.routes
        if isinstance(route, APIRoute) and getattr(route.endpoint, _ATTRIBUTE, None) is not None
    ]
    if hot:
        app.router.routes.insert(0, HotRoutes(hot))
