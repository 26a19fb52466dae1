"""A small OpenAI-compatible server for tests, benchmarks and hand-run walkthroughs.

Real HTTP, served by uvicorn on 127.0.0.1. ``FakeLlm`` is a plain ASGI app whose knobs the
test changes between calls: answer at once or after ``delay`` seconds, fail with 500
``fail_500`` times, answer 429 with ``Retry-After`` ``fail_429`` times, require an api key.
It counts the chat calls it received per prompt (the last user message) and notices when a
client hangs up mid-answer.

By hand::

    python -m tests.fake_llm --port 8011 --delay 0.2

then point a provider at ``http://127.0.0.1:8011`` (``/v1`` is added by the adapter).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import uvicorn

__all__ = ["FakeLlm", "FakeLlmServer", "reply_for"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_DELAY_DIRECTIVE = re.compile(r"\[\[delay=([0-9.]+)\]\]")


def reply_for(user_text: str) -> str:
    """The answer the fake gives to a user message (tests compare run output with it)."""
    first = " ".join(user_text.split())[:120]
    return f"FAKE-REPLY to: {first}"


@dataclass
class CallRecord:
    """One chat request as the server saw it."""

    prompt: str
    status: int
    authorization: str | None
    received_at: float
    finished_at: float | None = None
    disconnected: bool = False


@dataclass
class FakeLlm:
    """The ASGI app and its knobs; thread-safe counters for the test to read."""

    model: str = "fake-model"
    models: list[str] = field(default_factory=lambda: ["fake-model", "fake-model-large"])
    delay: float = 0.0
    fail_500: int = 0
    fail_429: int = 0
    retry_after: str = "1"
    required_key: str | None = None
    answer_override: dict[str, Any] | None = None  # answered as-is (HTTP 200) when set
    calls: Counter[str] = field(default_factory=Counter)
    records: list[CallRecord] = field(default_factory=list)
    models_calls: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- reading what happened ---------------------------------------------------------

    def calls_containing(self, marker: str) -> int:
        """Chat calls received whose prompt contains ``marker``."""
        with self._lock:
            return sum(n for prompt, n in self.calls.items() if marker in prompt)

    def total_calls(self) -> int:
        with self._lock:
            return sum(self.calls.values())

    def records_containing(self, marker: str) -> list[CallRecord]:
        with self._lock:
            return [r for r in self.records if marker in r.prompt]

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.records.clear()
            self.models_calls = 0

    # --- ASGI ---------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        body = await _read_body(receive)
        auth = headers.get("authorization")
        if self.required_key is not None and auth != f"Bearer {self.required_key}":
            # Like real providers, echo what was sent: the adapter must redact it.
            await _json(send, 401, {"error": {"message": f"invalid api key: {auth}"}})
            return
        if method == "GET" and path == "/v1/models":
            with self._lock:
                self.models_calls += 1
            items = [{"id": m, "object": "model", "owned_by": "fake"} for m in self.models]
            await _json(send, 200, {"object": "list", "data": items})
        elif method == "POST" and path == "/v1/chat/completions":
            await self._chat(body, auth, receive, send)
        else:
            await _json(send, 404, {"error": {"message": f"no route {method} {path}"}})

    async def _chat(self, body: bytes, auth: str | None, receive: Receive, send: Send) -> None:
        try:
            request = json.loads(body)
            messages = request["messages"]
            prompt = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
        except (ValueError, KeyError, TypeError):
            await _json(send, 400, {"error": {"message": "bad request body"}})
            return
        with self._lock:
            self.calls[prompt] += 1
            if self.fail_500 > 0:
                self.fail_500 -= 1
                status = 500
            elif self.fail_429 > 0:
                self.fail_429 -= 1
                status = 429
            else:
                status = 200
            record = CallRecord(
                prompt=prompt, status=status, authorization=auth, received_at=time.monotonic()
            )
            self.records.append(record)
            delay = self.delay
        found = _DELAY_DIRECTIVE.search(prompt)
        if found:
            delay = float(found.group(1))
        if status == 500:
            await _json(send, 500, {"error": {"message": f"upstream exploded (auth was {auth})"}})
        elif status == 429:
            await _json(
                send,
                429,
                {"error": {"message": "slow down"}},
                extra=[(b"retry-after", self.retry_after.encode())],
            )
        else:
            if delay > 0 and not await _wait_or_disconnect(receive, delay):
                record.disconnected = True
                record.finished_at = time.monotonic()
                return
            if self.answer_override is not None:
                await _json(send, 200, self.answer_override)
                record.finished_at = time.monotonic()
                return
            text = reply_for(prompt)
            words = len(prompt.split())
            await _json(
                send,
                200,
                {
                    "id": f"chatcmpl-{len(self.records)}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": request.get("model") or self.model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {
                        "prompt_tokens": words,
                        "completion_tokens": len(text.split()),
                        "total_tokens": words + len(text.split()),
                    },
                },
            )
        record.finished_at = time.monotonic()


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _wait_or_disconnect(receive: Receive, delay: float) -> bool:
    """Sleep ``delay`` seconds; False as soon as the client hangs up."""
    listener = asyncio.ensure_future(receive())
    try:
        deadline = time.monotonic() + delay
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            done, _ = await asyncio.wait({listener}, timeout=remaining)
            if not done:
                return True
            if listener.result().get("type") == "http.disconnect":
                return False
            listener = asyncio.ensure_future(receive())
    finally:
        if not listener.done():
            listener.cancel()


async def _json(
    send: Send, status: int, payload: Any, *, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    data = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send(
        {"type": "http.response.start", "status": status, "headers": headers + (extra or [])}
    )
    await send({"type": "http.response.body", "body": data})


class FakeLlmServer:
    """Serve a ``FakeLlm`` with real uvicorn on a free 127.0.0.1 port in a thread."""

    def __init__(self, app: FakeLlm | None = None) -> None:
        self.app = app or FakeLlm()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            lifespan="off",
            ws="none",
            http="h11",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        """The server root, e.g. ``http://127.0.0.1:54321`` (``/v1`` routes live below it)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeLlmServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake LLM server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> FakeLlmServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """Run the fake server in the foreground (for walkthroughs by hand)."""
    parser = argparse.ArgumentParser(description="OpenAI-compatible fake LLM server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8011)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--model", default="fake-model")
    parser.add_argument("--api-key", default=None, help="require this bearer key")
    args = parser.parse_args(argv)
    app = FakeLlm(model=args.model, delay=args.delay, required_key=args.api_key)
    app.models = [args.model]
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", lifespan="off", ws="none")


if __name__ == "__main__":
    main()
