"""One provider call's context: the answer as it is read, the errors it becomes (redacted),
the key it sends, and the pauses between its attempts. Shared by both clients of
``core.provider`` (httpx, and ``core.lite_http`` for plain HTTP)."""

from __future__ import annotations

import email.utils
import os
import random
import time
from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from core.errors import ProviderError
from core.lite_http import LiteError
from core.models import ProviderEntry
from core.redact import redact, redact_key

if TYPE_CHECKING:
    import httpx

__all__ = [
    "Answer",
    "Call",
    "answer_json",
    "api_key",
    "backoff",
    "httpx_module",
    "retry_after",
    "retryable_transport_error",
    "usage_of",
]

MAX_RETRY_AFTER_S = 30.0  # a provider asking for a longer pause gets this much, then a retry
BACKOFF_BASE_S = 0.25
BACKOFF_CAP_S = 8.0
MAX_ERROR_BODY = 500


class Answer(Protocol):
    """What is read of an answer: httpx's ``Response`` or ``core.lite_http.LiteAnswer``."""

    @property
    def status_code(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def text(self) -> str: ...
    @property
    def is_success(self) -> bool: ...
    def json(self) -> Any: ...


def api_key(entry: ProviderEntry) -> str | None:
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


def httpx_module() -> ModuleType:
    import httpx  # deferred: see the module docstring

    return httpx


def retry_after(response: Answer) -> float | None:
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


def backoff(attempt: int) -> float:
    """Exponential backoff with jitter: 0.25 s, 0.5 s, 1 s … (each times 0.5-1.0), capped."""
    base: float = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2.0**attempt)
    return base * random.uniform(0.5, 1.0)


def retryable_transport_error(exc: httpx.TransportError) -> bool:
    # Connect errors never reached the server, so a retry cannot execute anything twice.
    lib = httpx_module()
    return isinstance(exc, (lib.ConnectError, lib.ConnectTimeout, lib.PoolTimeout))


class Call:
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
        lib = httpx_module()
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

    def lite_error(self, exc: LiteError, attempts: int) -> ProviderError:
        """The same texts as ``translate`` for the lean client's failures."""
        tries = f" (after {attempts} attempts)" if attempts > 1 else ""
        if exc.kind in ("connect_timeout", "read_timeout", "write_timeout"):
            kind = "connecting" if exc.kind == "connect_timeout" else "waiting"
            return self.error(
                f"provider timed out {kind} for {self.url} after {self.entry.timeout_s:g} s{tries}",
                reason="timeout",
            )
        if exc.kind == "connect":
            return self.error(
                f"cannot connect to the provider at {self.url}: {exc}{tries}", reason="connect"
            )
        return self.error(
            f"provider request to {self.url} failed: {exc}{tries}", reason="transport"
        )

    def status_error(self, response: Answer, attempts: int) -> ProviderError:
        tries = f" (after {attempts} attempts)" if attempts > 1 else ""
        body = response.text.strip().replace("\n", " ")[:MAX_ERROR_BODY]
        return self.error(
            f"provider answered HTTP {response.status_code} for {self.url}{tries}"
            + (f": {body}" if body else ""),
            status=response.status_code,
        )


def usage_of(value: object, key: str | None = None) -> dict[str, Any] | None:
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


def answer_json(response: Answer, call: Call) -> Any:
    try:
        return response.json()
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than json allows
        snippet = response.text.strip().replace("\n", " ")[:MAX_ERROR_BODY]
        raise call.error(
            f"provider answered invalid JSON: {snippet}", reason="bad_answer"
        ) from None
