"""Server-Sent Events framing for the streaming routes (``text/event-stream``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import StreamingResponse

__all__ = ["KEEPALIVE", "OPENED", "event_stream", "sse_message"]

# Sent once the stream is subscribed, and as the keep-alive: comment lines, which clients
# ignore.
OPENED = ": stream open\nretry: 2000\n\n"
KEEPALIVE = ": keep-alive\n\n"


def sse_message(*, event: str, data: Any, id: int | None = None) -> str:
    """One message: ``id:`` (when given), ``event:`` and one ``data:`` line of JSON."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    head = f"id: {id}\n" if id is not None else ""
    return f"{head}event: {event}\ndata: {body}\n\n"


def event_stream(chunks: AsyncIterator[str]) -> StreamingResponse:
    """A streaming answer that proxies do not buffer; Starlette ends it (and closes the
    generator) as soon as the client disconnects."""
    return StreamingResponse(
        chunks,
        media_type="text/event-stream; charset=utf-8",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
