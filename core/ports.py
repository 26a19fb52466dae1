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

    def commit(self) -> None: ...


UowFactory = Callable[..., AbstractContextManager[UnitOfWork]]


class Completion(Protocol):
    text: str
    model: str
    usage: dict[str, Any] | None
    latency_ms: int


class LlmProvider(Protocol):
    """An LLM backend for one provider entry (``openai_compat`` today)."""

    async def complete(
        self, entry: ProviderEntry, messages: list[dict[str, str]]
    ) -> Completion: ...

    async def list_models(self, entry: ProviderEntry) -> list[str]: ...
