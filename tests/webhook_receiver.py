"""The receiver side of webhooks: a real HTTP server on loopback that records what it gets,
and ``verify`` from docs/events.md (read from the file, so the documented code is the code
under test)."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.webhooks.delivery import WebhookDispatcher

__all__ = ["Received", "Receiver", "docs_verify", "receiver"]

_DOC = Path(__file__).resolve().parent.parent / "docs" / "events.md"


def docs_verify() -> Callable[[str, Mapping[str, str], bytes], bool]:
    """The ``verify`` function of the docs' receiver example."""
    text = _DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    [snippet] = [block for block in blocks if "def verify(" in block]
    namespace: dict[str, Any] = {}
    exec(compile(snippet, str(_DOC), "exec"), namespace)
    verify: Callable[[str, Mapping[str, str], bytes], bool] = namespace["verify"]
    return verify


@dataclass
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when it arrived
    status: int  # what the receiver answered (0: it hung up without answering)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1: answers each request with the next status of
    ``statuses`` (then ``default``); ``hang`` makes it hold every request until released."""

    statuses: list[int] = field(default_factory=list)
    default: int = 204
    hang: bool = False
    received: list[Received] = field(default_factory=list)
    url: str = ""
    _arrived: threading.Condition = field(default_factory=threading.Condition)
    _release: threading.Event = field(default_factory=threading.Event)

    def answer(self) -> int:
        with self._arrived:
            return self.statuses.pop(0) if self.statuses else self.default

    def record(self, item: Received) -> None:
        with self._arrived:
            self.received.append(item)
            self._arrived.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until ``count`` requests have arrived (AssertionError on timeout)."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.received)} of {count} requests arrived")
                self._arrived.wait(left)
            return list(self.received)

    def release(self) -> None:
        self._release.set()


def _handler(state: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {key.lower(): value for key, value in self.headers.items()}
            if state.hang:
                state.record(Received(self.path, headers, body, time.monotonic(), 0))
                state._release.wait(60)
                return
            status = state.answer()
            state.record(Received(self.path, headers, body, time.monotonic(), status))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None  # keep the test output clean

    return Handler


@contextmanager
def receiver(**options: Any) -> Iterator[Receiver]:
    """A running receiver on a free loopback port."""
    state = Receiver(**options)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/ops"
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release()
        server.shutdown()
        server.server_close()
        thread.join(5)


def deliver_once(dispatcher: WebhookDispatcher) -> None:
    """One delivery pass of ``dispatcher`` on a loop of its own, waiting for the posts it
    started (the client is opened for it and closed after)."""

    async def one_pass() -> None:
        await dispatcher.open()
        try:
            await dispatcher.pass_once()
            await dispatcher.idle()
        finally:
            await dispatcher.aclose()

    asyncio.run(one_pass())
