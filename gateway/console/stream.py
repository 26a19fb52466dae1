"""``/console/events``: the event stream of ``GET /ops/events`` for a console session.

A browser's ``EventSource`` cannot send a bearer token, so the console reads the same hub
with the session cookie. A stream ends after a few minutes; ``EventSource`` reconnects by
itself with ``Last-Event-ID``, so a session that has ended stops receiving events.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from starlette.responses import Response

from core.auth import Action
from core.errors import InputValidationError
from core.eventhub import EventHub
from core.ids import kind_of
from core.services.events import parse_after, parse_types
from gateway.console.web import Console, Ctx
from gateway.sse import KEEPALIVE, OPENED, event_stream, sse_message

__all__ = ["install_stream"]

STREAM_S = 300.0


def install_stream(console: Console) -> None:
    @console.route("/events", action=Action.READ)
    async def events(ctx: Ctx) -> Response:
        wanted = parse_types(ctx.query("types"))
        subject = ctx.query("subject")
        if subject is not None and kind_of(subject) is None:
            raise InputValidationError("subject must be the id of a draft, approved item or run")
        after_text = ctx.query("after")
        if after_text is not None and not after_text.isdigit():
            raise InputValidationError("after must be the seq of an event")
        start = parse_after(
            ctx.request.headers.get("last-event-id"),
            int(after_text) if after_text is not None else None,
        )
        app_state = ctx.request.app.state
        hub: EventHub = app_state.event_hub
        idle_s = min(app_state.settings.event_keepalive_s, 15.0)
        ends = time.monotonic() + STREAM_S

        async def chunks() -> AsyncIterator[str]:
            async with hub.subscription(types=wanted, subject=subject) as sub:
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
                    if time.monotonic() > ends:
                        return

        return event_stream(chunks())
