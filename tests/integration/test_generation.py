"""Draft generation, provider health and models through the services and a real server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import pytest

from core.auth import Principal
from core.bootstrap import Services
from core.errors import InputValidationError, ProviderError, ProviderNotConfiguredError
from core.models import (
    DraftStatus,
    GenerateIn,
    PlanIn,
    ProviderConfigIn,
    ProviderEntryIn,
    Scope,
    Task,
)
from tests.fake_llm import FakeLlmServer, reply_for

pytestmark = pytest.mark.anyio

SECRET = "sk-proj-SECRET0123456789abcdef"


@pytest.fixture
def fake() -> Iterator[FakeLlmServer]:
    with FakeLlmServer() as server:
        yield server


@pytest.fixture
async def gen_services(services: Services) -> AsyncIterator[Services]:
    try:
        yield services
    finally:
        await services.generation.aclose()


def configure(services: Services, admin: Principal, base_url: str, **entry: object) -> None:
    values: dict[str, object] = {"base_url": base_url, "model": "fake-model", "max_retries": 0}
    services.provider.update(
        data=ProviderConfigIn(
            active="local", providers={"local": ProviderEntryIn.model_validate(values | entry)}
        ),
        actor=admin,
    )


async def test_generate_records_a_draft_with_generation_details(
    gen_services: Services, fake: FakeLlmServer, admin: Principal
) -> None:
    services = gen_services
    services.plan.put(
        data=PlanIn(objective="ship v2", tasks=[Task(id="notes", title="Release notes")]),
        actor=admin,
    )
    configure(services, admin, fake.url)
    data = GenerateIn(
        prompt="Draft the release notes",
        context={"version": "2.0"},
        task_id="notes",
        scope=Scope(files=["docs/*.md"]),
    )
    draft = await services.generation.generate(data=data, actor=admin)
    assert draft.status is DraftStatus.DRAFT and draft.error is None
    assert draft.task_id == "notes" and draft.scope.files == ["docs/*.md"]
    assert draft.context == {"version": "2.0"} and draft.created_by == "admin:alice"
    assert draft.generation is not None
    assert draft.generation.provider == "local" and draft.generation.model == "fake-model"
    assert draft.generation.usage and draft.generation.usage["total_tokens"] > 0
    assert draft.generation.latency_ms is not None and draft.generation.latency_ms >= 0
    (user_message,) = fake.app.calls
    assert user_message.startswith("Draft the release notes") and '"version": "2.0"' in user_message
    assert draft.content == reply_for(user_message)
    assert services.drafts.get(draft_id=draft.id) == draft


async def test_generate_without_a_provider_is_refused_and_records_nothing(
    gen_services: Services, admin: Principal
) -> None:
    with pytest.raises(ProviderNotConfiguredError):
        await gen_services.generation.generate(data=GenerateIn(prompt="hi"), actor=admin)
    assert gen_services.drafts.list().items == []


async def test_generate_for_an_unknown_task_calls_nobody(
    gen_services: Services, fake: FakeLlmServer, admin: Principal
) -> None:
    configure(gen_services, admin, fake.url)
    with pytest.raises(InputValidationError, match="nope"):
        await gen_services.generation.generate(
            data=GenerateIn(prompt="hi", task_id="nope"), actor=admin
        )
    assert fake.app.total_calls() == 0


async def test_provider_failure_records_an_error_draft_without_the_key(
    gen_services: Services, fake: FakeLlmServer, admin: Principal
) -> None:
    services = gen_services
    configure(services, admin, fake.url, api_key=SECRET, max_retries=1)
    fake.app.fail_500 = 5
    with pytest.raises(ProviderError) as caught:
        await services.generation.generate(data=GenerateIn(prompt="write it"), actor=admin)
    draft_id = caught.value.detail["draft_id"]
    draft = services.drafts.get(draft_id=draft_id)
    assert draft.status is DraftStatus.ERROR and draft.content == ""
    assert draft.error is not None and "HTTP 500" in draft.error
    assert SECRET not in draft.error and SECRET not in caught.value.message
    assert draft.generation is not None and draft.generation.provider == "local"
    audit = json.dumps([e.model_dump() for e in services.maintenance.audit_page().items])
    assert SECRET not in audit
    assert fake.app.total_calls() == 2


async def test_an_oversized_answer_becomes_an_error_draft(
    gen_services: Services, fake: FakeLlmServer, admin: Principal
) -> None:
    configure(gen_services, admin, fake.url)
    fake.app.answer_override = {
        "choices": [{"message": {"role": "assistant", "content": "x" * (300 * 1024)}}]
    }
    with pytest.raises(ProviderError, match="too large") as caught:
        await gen_services.generation.generate(data=GenerateIn(prompt="big"), actor=admin)
    draft = gen_services.drafts.get(draft_id=caught.value.detail["draft_id"])
    assert draft.status is DraftStatus.ERROR


async def test_health_reports_the_active_provider(
    gen_services: Services, fake: FakeLlmServer, admin: Principal
) -> None:
    none = await gen_services.generation.health()
    assert none.provider is None and not none.ok and none.error
    configure(gen_services, admin, fake.url + "/v1")
    health = await gen_services.generation.health()
    assert health.provider == "local" and health.ok and health.error is None
    assert health.latency_ms is not None and health.latency_ms >= 0


async def test_health_of_an_unreachable_provider_is_not_ok(
    gen_services: Services, admin: Principal
) -> None:
    with FakeLlmServer() as server:
        gone = server.url
    configure(gen_services, admin, gone, max_retries=3)
    health = await gen_services.generation.health()
    assert not health.ok and health.error and "cannot connect" in health.error
    assert "after" not in health.error  # one probe, no retries


async def test_models_lists_the_provider_models(
    gen_services: Services, fake: FakeLlmServer, admin: Principal
) -> None:
    with pytest.raises(ProviderNotConfiguredError):
        await gen_services.generation.models()
    configure(gen_services, admin, fake.url)
    models = await gen_services.generation.models()
    assert models.items == ["fake-model", "fake-model-large"]
