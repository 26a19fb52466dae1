"""The ``openai_compat`` LLM adapter over one pooled ``httpx.AsyncClient``.

This is the only core module that imports httpx, and it does so on first use: processes
that never call a provider (the MCP server) do not pay for the import. Every httpx
exception and every failed
HTTP answer becomes a ``ProviderError`` in ``_translate``/``_status_error``, with its text
redacted of the api key and of bearer values before anyone stores or shows it.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import random
import re
import time
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from core.errors import ProviderError
from core.models import ProviderEntry
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

MAX_RETRY_AFTER_S = 30.0  # a provider asking for a longer pause gets this much, then a retry
BACKOFF_BASE_S = 0.25
BACKOFF_CAP_S = 8.0
MAX_ERROR_BODY = 500
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


def _api_key(entry: ProviderEntry) -> str | None:
    """The key for ``entry``: stored, or read from the named variable now (call time)."""
    if entry.api_key:
        return entry.api_key
    if entry.api_key_error:
        raise ProviderError(entry.api_key_error, detail={"reason": "secret_key"})
    if entry.api_key_env:
        value = os.environ.get(entry.api_key_env)
        if not value:
            raise ProviderError(
                f"environment variable {entry.api_key_env} (api_key_env) is not set",
                detail={"api_key_env": entry.api_key_env},
            )
        return value
    return None


def _httpx() -> ModuleType:
    import httpx  # deferred: see the module docstring

    return httpx


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from a ``Retry-After`` header (delta seconds or an HTTP date), capped."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def _backoff(attempt: int) -> float:
    """Exponential backoff with jitter: 0.25 s, 0.5 s, 1 s … (each times 0.5-1.0), capped."""
    base: float = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2.0**attempt)
    return base * random.uniform(0.5, 1.0)


def _retryable_transport_error(exc: httpx.TransportError) -> bool:
    # Connect errors never reached the server, so a retry cannot execute anything twice.
    lib = _httpx()
    return isinstance(exc, (lib.ConnectError, lib.ConnectTimeout, lib.PoolTimeout))


class _Call:
    """The context of one adapter call, used to phrase and redact its errors."""

    def __init__(self, entry: ProviderEntry, url: str, key: str | None) -> None:
        self.entry = entry
        self.url = redact(url)
        self.key = key
        self.secrets = (key,) if key else ()

    def error(self, message: str, **detail: Any) -> ProviderError:
        text = redact(message, self.secrets)
        return ProviderError(text, detail={k: v for k, v in detail.items() if v is not None})

    def translate(self, exc: httpx.HTTPError, attempts: int) -> ProviderError:
        """The one place where httpx exceptions become ``ProviderError``."""
        lib = _httpx()
        tries = f" (after {attempts} attempts)" if attempts > 1 else ""
        if isinstance(exc, lib.TimeoutException):
            kind = "connecting" if isinstance(exc, lib.ConnectTimeout) else "waiting"
            return self.error(
                f"provider timed out {kind} for {self.url} after {self.entry.timeout_s:g} s{tries}",
                reason="timeout",
            )
        if isinstance(exc, lib.ConnectError):
            return self.error(
                f"cannot connect to the provider at {self.url}: {exc}{tries}", reason="connect"
            )
        return self.error(
            f"provider request to {self.url} failed: {type(exc).__name__}: {exc}{tries}",
            reason="transport",
        )

    def status_error(self, response: httpx.Response, attempts: int) -> ProviderError:
        tries = f" (after {attempts} attempts)" if attempts > 1 else ""
        body = response.text.strip().replace("\n", " ")[:MAX_ERROR_BODY]
        return self.error(
            f"provider answered HTTP {response.status_code} for {self.url}{tries}"
            + (f": {body}" if body else ""),
            status=response.status_code,
        )


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

    def _usable(self, loop: asyncio.AbstractEventLoop) -> bool:
        # A client's pooled connections belong to the loop that opened them.
        return self._client is not None and not self._client.is_closed and self._loop is loop

    def _new_client(self) -> httpx.AsyncClient:
        lib = _httpx()
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

    async def aclose(self) -> None:
        """Close the pooled client this adapter made (a given client is the caller's)."""
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
        data = _json(response, call)
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
            usage=_usage(usage, call.key),
            latency_ms=latency_ms,
        )

    async def list_models(self, entry: ProviderEntry, *, retries: int | None = None) -> list[str]:
        """Model ids from ``GET {base_url}/models``."""
        response, call = await self._request(
            entry, "GET", "/models", None, retries=entry.max_retries if retries is None else retries
        )
        data = _json(response, call)
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
    ) -> tuple[httpx.Response, _Call]:
        """Send with retries on connect errors, 429 and 5xx; a non-2xx answer raises."""
        url = normalise_base_url(entry.base_url) + path
        key = _api_key(entry)
        call = _Call(entry, url, key)
        headers = {"Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        lib = _httpx()
        timeout = lib.Timeout(entry.timeout_s, connect=min(entry.timeout_s, CONNECT_TIMEOUT_CAP_S))
        client = self._http()
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await client.request(
                    method, url, json=body, headers=headers, timeout=timeout
                )
            except lib.TransportError as exc:
                if _retryable_transport_error(exc) and attempt <= retries:
                    delay = _backoff(attempt - 1)
                    log.info(
                        "provider connect failed (%s); retry in %.2f s", type(exc).__name__, delay
                    )
                    await asyncio.sleep(delay)
                    continue
                raise call.translate(exc, attempt) from None
            except lib.HTTPError as exc:
                raise call.translate(exc, attempt) from None
            if response.status_code == 429 or response.status_code >= 500:
                if attempt <= retries:
                    wait = _retry_after(response)
                    delay = wait if wait is not None else _backoff(attempt - 1)
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


def _usage(value: object, key: str | None = None) -> dict[str, Any] | None:
    """Token counts from a provider's ``usage``: numbers, and one level of nested counts
    (``prompt_tokens_details``); anything else a provider sends is dropped, not stored, and
    so is a name that holds a piece of the key."""
    if not isinstance(value, dict):
        return None

    def clean(name: object) -> bool:
        return isinstance(name, str) and len(name) <= 64 and redact_key(name, key) == name

    def number(item: object) -> bool:
        return isinstance(item, int | float) and not isinstance(item, bool)

    kept: dict[str, Any] = {}
    for name, item in list(value.items())[:32]:
        if not clean(name):
            continue
        if number(item):
            kept[name] = item
        elif isinstance(item, dict):
            inner = {k: v for k, v in list(item.items())[:32] if clean(k) and number(v)}
            if inner:
                kept[name] = inner
    return kept


def _json(response: httpx.Response, call: _Call) -> Any:
    try:
        return response.json()
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than json allows
        snippet = response.text.strip().replace("\n", " ")[:MAX_ERROR_BODY]
        raise call.error(
            f"provider answered invalid JSON: {snippet}", reason="bad_answer"
        ) from None
