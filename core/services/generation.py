"""Generate drafts with the active LLM provider; provider health and model list.

The service is async (the provider call is I/O); store calls run in worker threads. The
gateway checks roles before calling it.
"""

from __future__ import annotations

import json
import time

from anyio import to_thread

import prompts
from core.auth import Principal
from core.errors import (
    InputValidationError,
    PayloadTooLargeError,
    ProviderError,
    ProviderNotConfiguredError,
)
from core.models import (
    DraftIn,
    DraftView,
    GenerateIn,
    Generation,
    ModelList,
    Plan,
    ProviderEntry,
    ProviderHealth,
)
from core.ports import LlmProvider
from core.services.base import check_content, check_context
from core.services.drafts import DraftService
from core.services.plan import PlanService
from core.services.settings import ProviderConfigService

__all__ = ["GenerationService", "generate_messages"]

NOT_CONFIGURED = "no active provider is configured; set one with PUT /ops/provider"


def _bullets(items: list[str]) -> str:
    return "\n".join(f"- {item}" for item in items) if items else "(none)"


def generate_messages(plan: Plan, data: GenerateIn) -> list[dict[str, str]]:
    """The chat messages for a generation: the system template, then the request."""
    task = plan.task(data.task_id) if data.task_id else None
    if task is None:
        task_text = "(no task: a free-standing draft)"
    else:
        task_text = f"{task.id}: {task.title}".rstrip(": ")
        if task.description:
            task_text += f"\n{task.description}"
        if task.depends:
            task_text += f"\nDepends on: {', '.join(task.depends)}"
        if task.agent:
            task_text += f"\nAgent: {task.agent}"
        if task.scope:
            task_text += f"\nTask scope: {', '.join(task.scope)}"
    scope = data.scope
    scope_text = (
        f"files {', '.join(scope.files) or '(any)'}; agents {', '.join(scope.agents) or '(any)'}"
    )
    system = prompts.render(
        "generate_system",
        objective=plan.objective or "(not set)",
        constraints=_bullets(plan.constraints),
        task=task_text,
        scope=scope_text,
    )
    user = data.prompt
    if data.context:
        context = json.dumps(data.context, ensure_ascii=False, indent=2, sort_keys=True)
        user += f"\n\nContext (JSON):\n```json\n{context}\n```"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


class GenerationService:
    """Draft generation through the active provider; ``llm`` is the process's one adapter."""

    def __init__(
        self,
        *,
        plan: PlanService,
        drafts: DraftService,
        providers: ProviderConfigService,
        llm: LlmProvider,
    ) -> None:
        self._plan = plan
        self._drafts = drafts
        self._providers = providers
        self.llm = llm

    async def active(self) -> tuple[str, ProviderEntry] | None:
        """The active provider's name and entry, or None."""
        config = await to_thread.run_sync(self._providers.load)
        return config.active_entry()

    async def generate(self, *, data: GenerateIn, actor: Principal) -> DraftView:
        """Ask the provider for a draft. Failure records an ``error`` draft and raises
        ``ProviderError`` whose detail names it (``draft_id``)."""
        active = await self.active()
        if active is None:
            raise ProviderNotConfiguredError(NOT_CONFIGURED)
        name, entry = active
        check_context(data.context)
        plan = await to_thread.run_sync(self._plan.get)
        if data.task_id is not None and plan.task(data.task_id) is None:
            raise InputValidationError(
                f"task_id '{data.task_id}' is not a task of the plan",
                detail={"task_id": data.task_id},
            )
        messages = generate_messages(plan, data)
        started = time.monotonic()
        try:
            completion = await self.llm.complete(entry, messages)
            check_content(completion.text)
        except (ProviderError, PayloadTooLargeError) as exc:
            message = exc.message
            if isinstance(exc, PayloadTooLargeError):
                message = f"provider answer too large for a draft: {exc.message}"
            generation = Generation(
                provider=name,
                model=entry.model,
                latency_ms=int((time.monotonic() - started) * 1000),
            )
            draft = await self._record(data, actor, generation=generation, error=message)
            raise ProviderError(
                message, detail={**exc.detail, "draft_id": draft.id, "provider": name}
            ) from None
        generation = Generation(
            provider=name,
            model=completion.model,
            usage=completion.usage,
            latency_ms=completion.latency_ms,
        )
        return await self._record(data, actor, generation=generation, content=completion.text)

    async def _record(
        self,
        data: GenerateIn,
        actor: Principal,
        *,
        generation: Generation,
        content: str = "",
        error: str | None = None,
    ) -> DraftView:
        draft_in = DraftIn(
            prompt=data.prompt,
            content=content,
            context=data.context,
            task_id=data.task_id,
            scope=data.scope,
        )

        def create() -> DraftView:
            return self._drafts.create(
                data=draft_in, actor=actor, generation=generation, error=error
            )

        return await to_thread.run_sync(create)

    async def health(self) -> ProviderHealth:
        """Probe ``GET /models`` of the active provider once (no retries)."""
        active = await self.active()
        if active is None:
            return ProviderHealth(provider=None, ok=False, latency_ms=None, error=NOT_CONFIGURED)
        name, entry = active
        started = time.monotonic()
        error: str | None = None
        try:
            await self.llm.list_models(entry, retries=0)
        except ProviderError as exc:
            error = exc.message
        latency_ms = int((time.monotonic() - started) * 1000)
        return ProviderHealth(provider=name, ok=error is None, latency_ms=latency_ms, error=error)

    async def models(self) -> ModelList:
        """Model ids the active provider offers."""
        active = await self.active()
        if active is None:
            raise ProviderNotConfiguredError(NOT_CONFIGURED)
        _, entry = active
        return ModelList(items=await self.llm.list_models(entry))

    async def aclose(self) -> None:
        """Close the adapter's pooled connections (call on shutdown, on the serving loop)."""
        await self.llm.aclose()
