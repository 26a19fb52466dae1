"""GET /ops/events: the event log as Server-Sent Events (resumable, filtered)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from starlette.responses import StreamingResponse

from core.eventhub import EventHub
from core.services.events import parse_after, parse_types
from gateway.deps import PrincipalDep
from gateway.sse import KEEPALIVE, OPENED, event_stream, sse_message

router = APIRouter(prefix="/ops/events", tags=["events"])


@router.get(
    "",
    summary="Stream events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "An event stream."}},
)
async def stream_events(
    request: Request,
    principal: PrincipalDep,
    types: Annotated[
        str | None,
        Query(max_length=1000, description="Comma-separated event types to receive."),
    ] = None,
    after: Annotated[
        int | None, Query(ge=0, description="Send the events after this seq first.")
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", max_length=40, description="Resume after this seq."),
    ] = None,
) -> StreamingResponse:
    """Server-Sent Events: ``id:`` is the event's seq, ``event:`` its type, ``data:`` the
    event as JSON; a comment line keeps an idle connection open."""
    wanted = parse_types(types)
    start = parse_after(last_event_id, after)
    hub: EventHub = request.app.state.event_hub
    idle_s = request.app.state.settings.event_keepalive_s

    async def chunks() -> AsyncIterator[str]:
        async with hub.subscription(types=wanted) as sub:
            if sub is None:
                return
            yield OPENED
            async for event in hub.events(sub, after=start, idle_s=idle_s):
                if event is None:
                    yield KEEPALIVE
                else:
                    yield sse_message(
                        event=event.type, data=event.model_dump(mode="json"), id=event.seq
                    )

    return event_stream(chunks())
