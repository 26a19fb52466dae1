"""The ``openai_compat`` LLM adapter: plain ``http://`` providers through the lean keep-alive
client of ``core.lite_http`` (about a tenth of httpx's CPU per call), anything else (HTTPS,
a proxy from the environment, a client or transport given by the caller) through one pooled
``httpx.AsyncClient``.

httpx is imported on first use: processes that never call a provider (the MCP server) do
not pay for the import. Every transport failure and every failed HTTP answer becomes a
``ProviderError`` in ``core.provider_call.Call``, with its text redacted of the api key and
of bearer values before anyone stores or shows it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from core import __version__
from core.lite_http import LiteError, LitePool
from core.models import ProviderEntry
from core.provider_call import (
    MAX_ERROR_BODY,
    Answer,
    Call,
    answer_json,
    api_key,
    backoff,
    httpx_module,
    retry_after,
    retryable_transport_error,
    usage_of,
)
from core.redact import REDACTED, redact, redact_key

if TYPE_CHECKING:
    import httpx

__all__ = [
    "REDACTED",
    "Completion",
    "HttpxLlmProvider",
    "normalise_base_url",
    "redact",
    "redact_key",
]

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_CAP_S = 10.0


@dataclass(frozen=True, slots=True)
class Completion:
    """One chat completion: the text, the model that answered, usage and latency."""

    text: str
    model: str
    usage: dict[str, Any] | None
    latency_ms: int


def normalise_base_url(base_url: str) -> str:
    """``http://h:1`` / ``http://h:1/`` / ``http://h:1/v1/`` all become ``http://h:1/v1``.

    A base URL with another path (``https://host/api/openai``) is kept as given, minus the
    trailing slash; a doubled ``/v1/v1`` collapses to one ``/v1``.
    """
    parts = urlsplit(base_url.strip())
    path = re.sub(r"/+", "/", parts.path).rstrip("/")
    while path.endswith("/v1/v1"):
        path = path[: -len("/v1")]
    if not path:
        path = "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


# Plain-HTTP calls go through ``core.lite_http`` unless one of these is set (httpx applies
# proxies from the environment; the lean client has none).
_PROXY_VARS = ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY")
_LITE_HEADERS = (
    ("Content-Type", "application/json"),
    ("Accept", "application/json"),
    ("User-Agent", f"ops-trigger/{__version__}"),
)


@functools.lru_cache(maxsize=256)
def _lite_route(url: str) -> tuple[str, int, str, str] | None:
    """(host, port, authority, target) of a plain ``http://`` URL without credentials."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or "@" in parts.netloc:
        return None
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.hostname, parts.port or 80, parts.netloc, target


class HttpxLlmProvider:
    """``LlmProvider`` for OpenAI-compatible servers (Ollama, vLLM, llama.cpp, OpenAI…).

    Pass ``client`` (owned by the caller) or ``transport``; otherwise the adapter makes one
    pooled client lazily on the running event loop and closes it in ``aclose``.
    """

    def __init__(
        self,
        client: httpx.AsyncClient | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._given = client
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lite: LitePool | None = None
        self._lite_loop: asyncio.AbstractEventLoop | None = None

    def _usable(self, loop: asyncio.AbstractEventLoop) -> bool:
        # A client's pooled connections belong to the loop that opened them.
        return self._client is not None and not self._client.is_closed and self._loop is loop

    def _new_client(self) -> httpx.AsyncClient:
        lib = httpx_module()
        client: httpx.AsyncClient = lib.AsyncClient(
            transport=self._transport,
            limits=lib.Limits(max_connections=512, max_keepalive_connections=64),
            follow_redirects=False,
        )
        return client

    def _http(self) -> httpx.AsyncClient:
        if self._given is not None:
            return self._given
        loop = asyncio.get_running_loop()
        if not self._usable(loop):
            self._client, self._loop = self._new_client(), loop
        assert self._client is not None
        return self._client

    async def open(self) -> None:
        """Make the pooled client now (building its TLS context takes tens of ms), in a
        thread, so that the first call does not pay for it on the event loop."""
        loop = asyncio.get_running_loop()
        if self._given is not None or self._usable(loop):
            return
        client = await asyncio.to_thread(self._new_client)
        if self._usable(loop):  # another caller was quicker
            await client.aclose()
            return
        self._client, self._loop = client, loop

    def _lite_pool(self) -> LitePool:
        loop = asyncio.get_running_loop()
        if self._lite is None or self._lite_loop is not loop:
            self._lite, self._lite_loop = LitePool(), loop
        return self._lite

    async def aclose(self) -> None:
        """Close the pooled client this adapter made (a given client is the caller's)."""
        lite, self._lite = self._lite, None
        if lite is not None and self._lite_loop is asyncio.get_running_loop():
            await lite.aclose()
        client, self._client = self._client, None
        if client is not None and not client.is_closed and self._loop is asyncio.get_running_loop():
            await client.aclose()

    async def complete(self, entry: ProviderEntry, messages: list[dict[str, str]]) -> Completion:
        """One chat completion (``POST {base_url}/chat/completions``)."""
        body: dict[str, Any] = {"model": entry.model, "messages": messages, "stream": False}
        if entry.temperature is not None:
            body["temperature"] = entry.temperature
        started = time.monotonic()
        response, call = await self._request(
            entry, "POST", "/chat/completions", body, retries=entry.max_retries
        )
        latency_ms = int((time.monotonic() - started) * 1000)
        data = answer_json(response, call)
        try:
            message = data["choices"][0]["message"]
            text = message.get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise call.error(
                "provider answer has no choices[0].message: " + json.dumps(data)[:MAX_ERROR_BODY],
                reason="bad_answer",
            ) from None
        if not isinstance(text, str):
            raise call.error("provider answer content is not text", reason="bad_answer")
        usage = data.get("usage")
        model = data.get("model")
        # What the provider sends is stored and shown: no piece of the key may survive.
        return Completion(
            text=redact_key(text, call.key),
            model=redact_key(model if isinstance(model, str) and model else entry.model, call.key),
            usage=usage_of(usage, call.key),
            latency_ms=latency_ms,
        )

    async def list_models(self, entry: ProviderEntry, *, retries: int | None = None) -> list[str]:
        """Model ids from ``GET {base_url}/models``."""
        response, call = await self._request(
            entry, "GET", "/models", None, retries=entry.max_retries if retries is None else retries
        )
        data = answer_json(response, call)
        items = data.get("data") if isinstance(data, dict) else None
        if items is None and isinstance(data, dict):
            items = data.get("models")  # some servers answer {"models": [...]}
        if not isinstance(items, list):
            raise call.error("provider answer to /models has no data list", reason="bad_answer")
        ids: list[str] = []
        for item in items:
            if isinstance(item, dict):
                name = item.get("id") or item.get("name") or item.get("model")
                if isinstance(name, str):
                    ids.append(name)
            elif isinstance(item, str):
                ids.append(item)
        return [redact_key(name, call.key) for name in ids]

    async def _request(
        self,
        entry: ProviderEntry,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        *,
        retries: int,
    ) -> tuple[Answer, Call]:
        """Send with retries on connect errors, 429 and 5xx; a non-2xx answer raises."""
        url = normalise_base_url(entry.base_url) + path
        key = api_key(entry)
        call = Call(entry, url, key)
        connect_s = min(entry.timeout_s, CONNECT_TIMEOUT_CAP_S)
        route = None
        if self._given is None and self._transport is None:
            route = _lite_route(url)
            if route is not None and any(os.environ.get(name) for name in _PROXY_VARS):
                route = None
        send: Callable[[], Awaitable[Answer]]
        if route is not None:
            host, port, authority, target = route
            headers = list(_LITE_HEADERS)
            if key:
                headers.append(("Authorization", f"Bearer {key}"))
            data = None if body is None else _encode(body)
            pool = self._lite_pool()
            send = functools.partial(
                pool.request, method, host, port, authority, target, headers, data,
                timeout_s=entry.timeout_s, connect_s=connect_s,
            )  # fmt: skip
        else:
            send = self._httpx_send(method, url, body, key, entry.timeout_s, connect_s)
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await send()
            except LiteError as exc:
                if exc.kind in ("connect", "connect_timeout") and attempt <= retries:
                    await self._pause_after_connect_error(exc.kind, attempt)
                    continue
                raise call.lite_error(exc, attempt) from None
            except Exception as exc:
                lib = httpx_module()
                if not isinstance(exc, lib.HTTPError):
                    raise
                if (
                    isinstance(exc, lib.TransportError)
                    and retryable_transport_error(exc)
                    and attempt <= retries
                ):
                    await self._pause_after_connect_error(type(exc).__name__, attempt)
                    continue
                raise call.translate(exc, attempt) from None
            if response.status_code == 429 or response.status_code >= 500:
                if attempt <= retries:
                    wait = retry_after(response)
                    delay = wait if wait is not None else backoff(attempt - 1)
                    log.info(
                        "provider answered %s; retry %d/%d in %.2f s",
                        response.status_code,
                        attempt,
                        retries,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    continue
            if response.is_success:
                return response, call
            raise call.status_error(response, attempt)

    @staticmethod
    async def _pause_after_connect_error(kind: str, attempt: int) -> None:
        delay = backoff(attempt - 1)
        log.info("provider connect failed (%s); retry in %.2f s", kind, delay)
        await asyncio.sleep(delay)

    def _httpx_send(
        self,
        method: str,
        url: str,
        body: dict[str, Any] | None,
        key: str | None,
        timeout_s: float,
        connect_s: float,
    ) -> Callable[[], Awaitable[Answer]]:
        headers = {"Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        lib = httpx_module()
        timeout = lib.Timeout(timeout_s, connect=connect_s)
        client = self._http()

        async def send() -> Answer:
            response: httpx.Response = await client.request(
                method, url, json=body, headers=headers, timeout=timeout
            )
            return response

        return send


def _encode(body: dict[str, Any]) -> bytes:
    """The request body as httpx's ``json=`` encodes it (compact, UTF-8)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
