"""Dependencies of the routes: services, the caller's identity with its required action,
and the parsed conditional-request headers.

Every ``/ops`` route declares its action with ``require(Action.X)`` (or ``PrincipalDep`` for
reads); the role comes from the one permission table in ``core.auth``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from starlette.concurrency import run_in_threadpool

from core.auth import Action, Principal, well_formed_token
from core.bootstrap import Services
from core.errors import InputValidationError, UnauthorizedError
from core.ids import kind_of
from gateway.authcache import AuthCache
from gateway.clientaddr import ClientAddress
from gateway.ratelimit import Limits

__all__ = [
    "BEARER_SCHEME",
    "Guard",
    "IfMatchDep",
    "PrincipalDep",
    "RouteInfo",
    "ServicesDep",
    "api_routes",
    "guard_request",
    "parse_if_match",
    "require",
    "route_action",
    "route_guard",
]

BEARER_SCHEME = "bearerAuth"

_BEARER_TEXT = "A token of role actions (read-only), operator or admin."


async def get_services(request: Request) -> Services:
    """The services the app was built with."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def _client(request: Request) -> str:
    resolver: ClientAddress = request.app.state.client_address
    return resolver.of(request.scope)


def _target(request: Request) -> str | None:
    """The id the request is about, if it is a well-formed one (never raw hostile input)."""
    value = request.path_params.get("id")
    return value if kind_of(value) is not None else None


def _route_label(request: Request) -> str:
    route = request.scope.get("route")
    path = getattr(route, "path", None) or "?"
    return f"{request.method} {path}"


class Guard(HTTPBearer):
    """Authenticate the bearer token, apply the rate limits, authorize ``action``.

    The token is checked first: a valid token is never refused for other callers' failures
    from its address. A missing, malformed or unknown token is a 401 (audited, and counted
    against the client address), or a 429 once that address has failed too often; a role
    too low is a 403 (audited by ``AccessService.authorize``). Store calls run in a worker
    thread; a token seen in the last seconds needs none (``AuthCache``).

    It is the bearer security scheme itself (the OpenAPI documents declare it from here)
    and reads everything else from the request: one dependency per route, not a tree that
    FastAPI would solve on every request."""

    def __init__(self, action: Action) -> None:
        super().__init__(auto_error=False, scheme_name=BEARER_SCHEME, description=_BEARER_TEXT)
        self.action = action

    def __repr__(self) -> str:
        return f"Guard({self.action.value})"

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        state = request.app.state
        services: Services = state.services
        limits: Limits = state.limits
        cache: AuthCache = state.auth_cache
        credentials = await super().__call__(request)
        token = credentials.credentials if credentials is not None else None
        usable = token is not None and well_formed_token(token)
        principal = await cache.get(token) if token and usable else None
        if principal is None and token and usable:
            mark = await cache.mark()
            principal = await run_in_threadpool(services.access.authenticate, token)
            if principal is not None:
                await cache.put(token, principal, mark=mark)
        if principal is None:
            await self._refuse(request, services, limits, token=token, usable=usable)
        assert principal is not None
        limits.requests.hit(principal.actor)
        # The config can only lower a requirement (operator_can_generate), so a role that
        # passes the static table needs no config read; anything else asks core, which
        # consults the config and audits the denial.
        if not principal.can(self.action):
            await run_in_threadpool(
                functools.partial(
                    services.access.authorize, principal, self.action, target=_target(request)
                )
            )
        return principal

    async def _refuse(
        self,
        request: Request,
        services: Services,
        limits: Limits,
        *,
        token: str | None,
        usable: bool,
    ) -> None:
        """A failed authentication: 429 once the address is over its limit, else an audited
        401."""
        client = _client(request)
        limits.auth_failures.check(client)
        limits.auth_failures.record(client)
        if not token:
            reason = "missing token"
        elif not usable:
            reason = "malformed token"
        else:
            reason = "unknown token"
        await run_in_threadpool(
            functools.partial(
                services.access.record_denial,
                actor="anonymous",
                action=self.action.value,
                target=_target(request),
                detail={"reason": reason, "route": _route_label(request), "client": client},
            )
        )
        raise UnauthorizedError(
            "a bearer token is required" if not token else "the bearer token is unknown or revoked"
        )


def require(action: Action) -> Any:
    """Dependency marker: ``principal: Annotated[Principal, require(Action.APPROVE)]``."""
    return Depends(Guard(action))


PrincipalDep = Annotated[Principal, require(Action.READ)]


def route_guard(dependant: Dependant) -> Guard | None:
    """The guard a route's dependencies hold, if any."""
    pending = list(dependant.dependencies)
    while pending:
        current = pending.pop()
        if isinstance(current.call, Guard):
            return current.call
        pending.extend(current.dependencies)
    return None


def route_action(dependant: Dependant) -> Action | None:
    """The action a route declared through its guard, or None if it declared none."""
    guard = route_guard(dependant)
    return guard.action if guard is not None else None


async def guard_request(request: Request) -> None:
    """Run the guard of the request's route now, raising its 401/403/429.

    FastAPI parses a JSON body before it solves the dependencies, so a body that is not
    JSON would otherwise answer 422 to a caller without a valid token (and go unaudited);
    the error handlers call this first."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    guard = route_guard(dependant) if isinstance(dependant, Dependant) else None
    if guard is None:
        return
    await guard(request)


@dataclass(frozen=True)
class RouteInfo:
    """One operation of the app: method, full path, name and declared action."""

    method: str
    path: str
    name: str
    action: Action | None


def _api_route_parts(app: FastAPI) -> Iterator[tuple[str, set[str], str, Dependant]]:
    try:  # FastAPI keeps included routers as such and resolves them per route context.
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI flattens included routes into app.routes
        for route in app.routes:
            if isinstance(route, APIRoute):
                yield route.path, set(route.methods or ()), route.name, route.dependant
        return
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute):
            yield (
                context.path or "",
                set(context.methods or ()),
                context.name or "",
                (context.dependant),
            )


def api_routes(app: FastAPI) -> list[RouteInfo]:
    """Every API operation of ``app`` (not the docs pages), sorted by path and method."""
    found = [
        RouteInfo(method=method, path=path, name=name, action=route_action(dependant))
        for path, methods, name, dependant in _api_route_parts(app)
        for method in methods
    ]
    return sorted(found, key=lambda info: (info.path, info.method))


_ETAG = re.compile(r'\s*(?:"(\d{1,18})"|(\d{1,18}))\s*')


def parse_if_match(value: str | None) -> int | None:
    """The revision an ``If-Match`` header names: ``"3"`` (or bare ``3``); ``*`` means any."""
    if value is None or value.strip() == "*":
        return None
    match = _ETAG.fullmatch(value)
    if match is None:
        raise InputValidationError(
            'If-Match must be one ETag of this API, e.g. "3" (the revision), or *'
        )
    return int(match.group(1) or match.group(2))


async def if_match_revision(
    if_match: Annotated[
        str | None,
        Header(
            alias="If-Match",
            description='The ETag you read, e.g. "3": the write fails with 412 if the item '
            "changed since.",
            max_length=100,
        ),
    ] = None,
) -> int | None:
    """The revision named by ``If-Match``, or None."""
    return parse_if_match(if_match)


IfMatchDep = Annotated[int | None, Depends(if_match_revision)]
