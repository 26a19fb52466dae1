"""Pure ASGI middleware: request ids and last-resort errors, and the request body limit."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import PayloadTooLargeError
from gateway.problems import problem_response, request_id_of

__all__ = [
    "MAX_BODY_BYTES",
    "BodyLimitMiddleware",
    "HeadAsGetMiddleware",
    "RequestContextMiddleware",
]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
REQUEST_ID_HEADER = b"x-request-id"
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
_NO_BODY_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value  # type: ignore[no-any-return]
    return None


class RequestContextMiddleware:
    """Give every request an id (a sane incoming ``X-Request-ID`` is kept), send it back
    on every response, and turn an unexpected exception into a 500 problem without
    internals. ``on_write`` is called as a request of any other method than GET, HEAD and
    OPTIONS starts its answer (after what it wrote was committed)."""

    def __init__(self, app: ASGIApp, on_write: Callable[[], None] | None = None) -> None:
        self.app = app
        self.on_write = on_write

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, REQUEST_ID_HEADER)
        if incoming is not None and _SANE_REQUEST_ID.fullmatch(incoming):
            request_id = incoming.decode("ascii")
        else:
            request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        encoded = request_id.encode("ascii")
        started = False
        on_write = self.on_write if scope.get("method") not in _SAFE_METHODS else None

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if on_write is not None:
                    on_write()
                headers = [(k, v) for k, v in message.get("headers", ()) if k != REQUEST_ID_HEADER]
                headers.append((REQUEST_ID_HEADER, encoded))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception(
                "unexpected error on %s %s (request %s)",
                scope.get("method"),
                scope.get("path", "")[:200],
                request_id,
            )
            if started:
                raise
            response = problem_response(
                status=500,
                code="INTERNAL",
                title="Internal error",
                detail=f"an unexpected error occurred; quote request id {request_id}",
                request_id=request_id,
            )
            await response(scope, receive, send_with_id)


class HeadAsGetMiddleware:
    """Answer ``HEAD`` like ``GET`` without the body (RFC 9110 9.3.2): the routes declare GET
    only, and ``curl -I /healthz`` or a load balancer's probe should not get a 405."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        # A copy: the server keeps its own scope (method HEAD) and frames the answer by it.
        await self.app({**scope, "method": "GET"}, receive, send_headers_only)


class BodyLimitMiddleware:
    """Refuse bodies over ``limit`` bytes with 413 before reading them whole: at once from
    ``Content-Length``, or as soon as a streamed body passes the limit."""

    def __init__(self, app: ASGIApp, *, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            status=413,
            code=PayloadTooLargeError.code,
            title=PayloadTooLargeError.title,
            detail=f"the request body exceeds {self.limit} bytes (1 MiB)",
            request_id=request_id_of(scope),
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                declared = -1
            if declared > self.limit:
                await self._too_large(scope, receive, send)
                return
        elif (
            scope.get("method") in _NO_BODY_METHODS and _header(scope, b"transfer-encoding") is None
        ):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # The client went away while sending: nothing left to answer.
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
