"""Ports the services depend on; adapters in core.storage and core.provider implement them."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol

from core.models import ProviderEntry

__all__ = ["Completion", "LlmProvider", "UnitOfWork", "UowFactory"]


class UnitOfWork(Protocol):
    """A transaction with repositories as attributes (see ``SqlUnitOfWork``)."""

    plan: Any
    kv: Any
    drafts: Any
    approved: Any
    runs: Any
    logs: Any
    tokens: Any
    audit: Any
    idempotency: Any
    workers: Any
    revisions: Any
    oauth: Any
    events: Any
    sessions: Any
    webhooks: Any

    def commit(self) -> None: ...


UowFactory = Callable[..., AbstractContextManager[UnitOfWork]]


class Completion(Protocol):
    """One chat completion as the services see it (read-only)."""

    @property
    def text(self) -> str: ...

    @property
    def model(self) -> str: ...

    @property
    def usage(self) -> dict[str, Any] | None: ...

    @property
    def latency_ms(self) -> int: ...


class LlmProvider(Protocol):
    """An LLM backend for one provider entry (``openai_compat`` today)."""

    async def complete(
        self, entry: ProviderEntry, messages: list[dict[str, str]]
    ) -> Completion: ...

    async def list_models(
        self, entry: ProviderEntry, *, retries: int | None = None
    ) -> list[str]: ...

    async def open(self) -> None: ...

    async def aclose(self) -> None: ...
