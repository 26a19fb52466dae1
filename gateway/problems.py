"""RFC 9457 ``application/problem+json``: one class -> status table and the handlers.

Every error answer of the gateway is built here; routes never build error bodies.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import Scope

from core.errors import (
    ConflictStateError,
    ForbiddenRoleError,
    InputValidationError,
    InvalidIdError,
    LeaseLostError,
    NotFoundError,
    OpsError,
    PayloadTooLargeError,
    ProviderError,
    ProviderNotConfiguredError,
    RateLimitedError,
    RevisionMismatchError,
    RunAlreadyActiveError,
    StorageError,
    UnauthorizedError,
)
from gateway.deps import api_routes, guard_request

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "STATUS",
    "Problem",
    "install_problem_handlers",
    "problem_body",
    "problem_of",
    "problem_response",
    "problem_responses",
    "request_id_of",
    "status_of",
]

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:ops-trigger:problem:"

# The one table from core error class to HTTP status; subclasses inherit their parent's row
# unless they have their own (looked up along the MRO).
STATUS: dict[type[OpsError], int] = {
    NotFoundError: 404,
    InvalidIdError: 422,
    InputValidationError: 422,
    ConflictStateError: 409,
    RunAlreadyActiveError: 409,
    LeaseLostError: 409,
    RevisionMismatchError: 412,
    UnauthorizedError: 401,
    ForbiddenRoleError: 403,
    ProviderNotConfiguredError: 409,
    ProviderError: 502,
    RateLimitedError: 429,
    PayloadTooLargeError: 413,
    StorageError: 503,
}

_RESERVED = frozenset({"type", "title", "status", "detail", "code", "request_id"})
_MAX_FIELD_ERRORS = 20
_MAX_TEXT = 300


class Problem(BaseModel):
    """An RFC 9457 problem document with the product's ``code`` and ``request_id``."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="URN naming the problem type, e.g. urn:ops-trigger:problem:…")
    title: str
    status: int
    detail: str
    code: str = Field(description="Stable error code, e.g. NOT_FOUND or REVISION_MISMATCH.")
    request_id: str


_DESCRIPTIONS = {
    401: "Missing or unknown bearer token (UNAUTHORIZED).",
    403: "The token's role is too low (FORBIDDEN_ROLE).",
    404: "No such item (NOT_FOUND).",
    409: "The item's state does not allow this (CONFLICT_STATE, RUN_ALREADY_ACTIVE, "
    "PROVIDER_NOT_CONFIGURED, LEASE_LOST).",
    412: "The item changed since you read it (REVISION_MISMATCH).",
    413: "The request body exceeds 1 MiB, or a field its limit (PAYLOAD_TOO_LARGE).",
    422: "Invalid input (VALIDATION_ERROR) or a malformed id (INVALID_ID).",
    429: "Rate limited (RATE_LIMITED); see Retry-After.",
    502: "The LLM provider failed (PROVIDER_ERROR).",
    503: "The store is unavailable (STORAGE_ERROR).",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these error statuses (rendered as problem+json)."""
    return {status: {"model": Problem, "description": _DESCRIPTIONS[status]} for status in statuses}


def status_of(exc: OpsError) -> int:
    """The HTTP status of a core error (500 only for an error class missing from the table)."""
    for cls in type(exc).__mro__:
        status = STATUS.get(cls)
        if status is not None:
            return status
    return 500


def request_id_of(scope: Scope) -> str:
    """The id the request-context middleware gave this request."""
    state = scope.get("state") or {}
    value = state.get("request_id") if isinstance(state, Mapping) else None
    return value if isinstance(value, str) else "-"


def problem_body(
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The fields of one problem document, without ``request_id``."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_PREFIX + code.lower().replace("_", "-"),
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    for key, value in (extra or {}).items():
        if key not in _RESERVED:
            body[key] = value
    return body


def problem_of(exc: OpsError) -> dict[str, Any]:
    """The problem document of a core error, as its answer would carry it (no
    ``request_id``): for answers that report several outcomes, one per item."""
    return problem_body(
        status=status_of(exc), code=exc.code, title=exc.title, detail=exc.message, extra=exc.detail
    )


def problem_response(
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    request_id: str,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """Render one problem document."""
    body = problem_body(status=status, code=code, title=title, detail=detail, extra=extra)
    body["request_id"] = request_id
    content = json.dumps(body, ensure_ascii=False, default=str, separators=(",", ":")).encode(
        "utf-8", "backslashreplace"
    )
    return Response(
        content=content,
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=dict(headers or {}),
    )


async def _ops_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OpsError)
    status = status_of(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, UnauthorizedError):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, RateLimitedError):
        headers["Retry-After"] = str(exc.retry_after)
    if status >= 500:
        log.warning("%s %s failed: %s (%s)", request.method, request.url.path, exc.code, exc)
    return problem_response(
        status=status,
        code=exc.code,
        title=exc.title,
        detail=exc.message,
        request_id=request_id_of(request.scope),
        extra=exc.detail,
        headers=headers,
    )


def _clip(value: object) -> str:
    # A field name from the caller may hold a lone surrogate: show it escaped.
    text = str(value).encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


def field_errors(errors: Any) -> list[dict[str, Any]]:
    """Field errors without the offending input (it may be huge, or a secret)."""
    result: list[dict[str, Any]] = []
    for error in list(errors)[:_MAX_FIELD_ERRORS]:
        loc = [part if isinstance(part, int) else _clip(part) for part in error.get("loc", ())]
        result.append(
            {"loc": loc, "msg": _clip(error.get("msg", "")), "type": _clip(error.get("type", ""))}
        )
    return result


async def _guard_first(request: Request) -> Response | None:
    """The route's 401/403/429 answer, if the caller fails its guard (see guard_request)."""
    try:
        await guard_request(request)
    except OpsError as exc:
        return await _ops_error(request, exc)
    return None


def _sent_json(request: Request) -> bool:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


_NOT_AN_OBJECT = frozenset({"model_attributes_type", "model_type", "dict_type"})


def _body_detail(request: Request, first: Mapping[str, Any]) -> str | None:
    """A plain sentence for a body that is missing or not a JSON object, else None."""
    if list(first["loc"]) != ["body"]:
        return None
    if first["type"] == "missing":
        return "a JSON request body is required"
    if first["type"] in _NOT_AN_OBJECT:
        if not _sent_json(request):
            return "the request body must be a JSON object sent as Content-Type: application/json"
        return "the request body must be a JSON object"
    return None


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    raw_errors = list(exc.errors())
    if any(error.get("type") == "json_invalid" for error in raw_errors):
        # Raised while the body was read, before the route's guard ran.
        denied = await _guard_first(request)
        if denied is not None:
            return denied
    errors = field_errors(raw_errors)
    if errors:
        first = errors[0]
        where = ".".join(str(part) for part in first["loc"])
        detail = _body_detail(request, first) or f"invalid request: {where}: {first['msg']}"
        if len(raw_errors) > 1:
            detail += f" (and {len(raw_errors) - 1} more)"
    else:
        detail = "invalid request"
    return problem_response(
        status=422,
        code=InputValidationError.code,
        title=InputValidationError.title,
        detail=detail,
        request_id=request_id_of(request.scope),
        extra={"errors": errors},
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    request_id = request_id_of(request.scope)
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        return problem_response(
            status=404,
            code=NotFoundError.code,
            title=NotFoundError.title,
            detail=f"no such endpoint: {_clip(request.url.path)}",
            request_id=request_id,
            headers=headers,
        )
    if exc.status_code == 405:
        allowed = _allowed_methods(request)
        if allowed:
            headers["Allow"] = ", ".join(allowed)
        return problem_response(
            status=405,
            code="METHOD_NOT_ALLOWED",
            title="Method not allowed",
            detail=f"{request.method} is not allowed on {_clip(request.url.path)}",
            request_id=request_id,
            headers=headers,
        )
    if exc.status_code == 413:
        return problem_response(
            status=413,
            code=PayloadTooLargeError.code,
            title=PayloadTooLargeError.title,
            detail="the request body is too large",
            request_id=request_id,
        )
    if exc.status_code == 400:
        # FastAPI raises 400 for a body it cannot parse (before the route's guard ran): for
        # a caller who passes the guard, that is bad input.
        denied = await _guard_first(request)
        if denied is not None:
            return denied
        return problem_response(
            status=422,
            code=InputValidationError.code,
            title=InputValidationError.title,
            detail="the request body could not be parsed; send JSON",
            request_id=request_id,
        )
    return problem_response(
        status=exc.status_code,
        code=f"HTTP_{exc.status_code}",
        title=_clip(exc.detail) if exc.detail else "HTTP error",
        detail=_clip(exc.detail) if exc.detail else "HTTP error",
        request_id=request_id,
        headers=headers,
    )


def _allowed_methods(request: Request) -> list[str]:
    """Every method some API route offers on this path (Starlette names only the first
    route's, while GET and PUT of one path are two routes here)."""
    table: list[tuple[Any, str]] | None = getattr(request.app.state, "route_methods", None)
    if table is None:
        table = [(compile_path(info.path)[0], info.method) for info in api_routes(request.app)]
        request.app.state.route_methods = table
    path = request.scope.get("path", "")
    return sorted({method for regex, method in table if regex.match(path)})


def install_problem_handlers(app: FastAPI) -> None:
    """Register the handlers; unexpected exceptions are caught by the context middleware."""
    app.add_exception_handler(OpsError, _ops_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
