"""The openai_compat adapter against a real OpenAI-compatible server on loopback."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from core.errors import ProviderError
from core.models import ProviderEntry
from core.provider import HttpxLlmProvider, normalise_base_url, redact
from tests.fake_llm import FakeLlmServer, reply_for

pytestmark = pytest.mark.anyio

SECRET = "sk-test-0123456789abcdefSECRET"
MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]


@pytest.fixture
def fake() -> Iterator[FakeLlmServer]:
    with FakeLlmServer() as server:
        yield server


@pytest.fixture
async def llm() -> AsyncIterator[HttpxLlmProvider]:
    provider = HttpxLlmProvider()
    try:
        yield provider
    finally:
        await provider.aclose()


def entry(base_url: str, **values: object) -> ProviderEntry:
    return ProviderEntry.model_validate(
        {"base_url": base_url, "model": "fake-model", "timeout_s": 5.0, **values}
    )


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://h:1", "http://h:1/v1"),
        ("http://h:1/", "http://h:1/v1"),
        ("http://h:1/v1", "http://h:1/v1"),
        ("http://h:1/v1/", "http://h:1/v1"),
        ("http://h:1/v1/v1", "http://h:1/v1"),
        ("http://h:1//v1//", "http://h:1/v1"),
        ("https://api.example.com/openai/v1", "https://api.example.com/openai/v1"),
        ("https://api.example.com/api/openai/", "https://api.example.com/api/openai"),
    ],
)
def test_base_url_is_normalised_without_doubling_v1(given: str, expected: str) -> None:
    assert normalise_base_url(given) == expected


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/", "/v1/v1"])
async def test_completion_works_with_every_base_url_form(
    fake: FakeLlmServer, llm: HttpxLlmProvider, suffix: str
) -> None:
    result = await llm.complete(entry(fake.url + suffix), MESSAGES)
    assert result.text == reply_for("hello")
    assert result.model == "fake-model"
    assert result.usage is not None and result.usage["total_tokens"] > 0
    assert result.latency_ms >= 0
    assert fake.app.calls["hello"] == 1


async def test_api_key_env_is_read_at_call_time(
    fake: FakeLlmServer, llm: HttpxLlmProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = entry(fake.url, api_key_env="FAKE_LLM_KEY")
    monkeypatch.setenv("FAKE_LLM_KEY", "first-key-value-1234")
    fake.app.required_key = "first-key-value-1234"
    await llm.complete(provider, MESSAGES)
    monkeypatch.setenv("FAKE_LLM_KEY", "second-key-value-5678")
    fake.app.required_key = "second-key-value-5678"
    await llm.complete(provider, MESSAGES)
    assert [r.authorization for r in fake.app.records] == [
        "Bearer first-key-value-1234",
        "Bearer second-key-value-5678",
    ]
    monkeypatch.delenv("FAKE_LLM_KEY")
    with pytest.raises(ProviderError, match="FAKE_LLM_KEY"):
        await llm.complete(provider, MESSAGES)
    assert fake.app.total_calls() == 2  # no call without the key


async def test_500_is_retried_until_success(fake: FakeLlmServer, llm: HttpxLlmProvider) -> None:
    fake.app.fail_500 = 2
    result = await llm.complete(entry(fake.url, max_retries=2), MESSAGES)
    assert result.text == reply_for("hello")
    assert [r.status for r in fake.app.records] == [500, 500, 200]


async def test_500_beyond_max_retries_fails_with_redacted_error(
    fake: FakeLlmServer, llm: HttpxLlmProvider
) -> None:
    fake.app.fail_500 = 5
    with pytest.raises(ProviderError) as caught:
        await llm.complete(entry(fake.url, max_retries=1, api_key=SECRET), MESSAGES)
    message = caught.value.message
    assert "HTTP 500" in message and "after 2 attempts" in message
    assert "upstream exploded" in message  # the server echoed the bearer header...
    assert SECRET not in message and SECRET[:8] not in message  # ...which is redacted
    assert caught.value.detail["status"] == 500
    assert fake.app.total_calls() == 2


async def test_429_waits_for_retry_after(fake: FakeLlmServer, llm: HttpxLlmProvider) -> None:
    fake.app.fail_429 = 1
    fake.app.retry_after = "1"
    started = time.monotonic()
    result = await llm.complete(entry(fake.url, max_retries=1), MESSAGES)
    assert result.text == reply_for("hello")
    assert time.monotonic() - started >= 0.95  # honoured Retry-After: 1
    records = fake.app.records
    assert [r.status for r in records] == [429, 200]
    assert records[1].received_at - records[0].received_at >= 0.95


async def test_429_without_retries_left_is_an_error(
    fake: FakeLlmServer, llm: HttpxLlmProvider
) -> None:
    fake.app.fail_429 = 1
    with pytest.raises(ProviderError, match="HTTP 429"):
        await llm.complete(entry(fake.url, max_retries=0), MESSAGES)


async def test_slow_answer_times_out(fake: FakeLlmServer, llm: HttpxLlmProvider) -> None:
    fake.app.delay = 5.0
    started = time.monotonic()
    with pytest.raises(ProviderError, match="timed out") as caught:
        await llm.complete(entry(fake.url, timeout_s=0.3, max_retries=2), MESSAGES)
    assert time.monotonic() - started < 3.0
    assert caught.value.detail["reason"] == "timeout"
    assert fake.app.total_calls() == 1  # a read timeout is not retried


async def test_connect_errors_are_retried_then_reported(llm: HttpxLlmProvider) -> None:
    with FakeLlmServer() as server:
        closed_url = server.url
    with pytest.raises(ProviderError, match="cannot connect") as caught:
        await llm.complete(entry(closed_url, max_retries=2), MESSAGES)
    assert "after 3 attempts" in caught.value.message
    assert caught.value.detail["reason"] == "connect"


async def test_wrong_key_error_never_shows_the_key(
    fake: FakeLlmServer, llm: HttpxLlmProvider
) -> None:
    fake.app.required_key = "the-right-key-000000"
    with pytest.raises(ProviderError, match="HTTP 401") as caught:
        await llm.complete(entry(fake.url, api_key=SECRET), MESSAGES)
    assert SECRET not in str(caught.value)
    assert "[redacted]" in str(caught.value)


async def test_models_are_listed(fake: FakeLlmServer, llm: HttpxLlmProvider) -> None:
    assert await llm.list_models(entry(fake.url + "/v1/")) == ["fake-model", "fake-model-large"]
    assert fake.app.models_calls == 1


async def test_a_given_client_is_used_and_left_open(fake: FakeLlmServer) -> None:
    async with httpx.AsyncClient() as client:
        provider = HttpxLlmProvider(client)
        await provider.complete(entry(fake.url), MESSAGES)
        await provider.aclose()
        assert not client.is_closed


async def test_an_answer_without_choices_is_a_provider_error(
    fake: FakeLlmServer, llm: HttpxLlmProvider
) -> None:
    fake.app.answer_override = {"object": "chat.completion", "choices": []}
    with pytest.raises(ProviderError, match="no choices") as caught:
        await llm.complete(entry(fake.url), MESSAGES)
    assert caught.value.detail["reason"] == "bad_answer"


async def test_only_token_counts_are_kept_from_usage(
    fake: FakeLlmServer, llm: HttpxLlmProvider
) -> None:
    deep: Any = 1
    for _ in range(300):
        deep = {"x": deep}
    fake.app.answer_override = {
        "choices": [{"message": {"role": "assistant", "content": "ok"}}],
        "usage": {
            "prompt_tokens": 3,
            "completion_tokens": 2.0,
            "cached": True,
            "note": "free text",
            "prompt_tokens_details": {"cached_tokens": 1, "label": "x", "deep": deep},
            "deep": deep,
            "k" * 100: 5,
        },
    }
    completion = await llm.complete(entry(fake.url), MESSAGES)
    assert completion.usage == {
        "prompt_tokens": 3,
        "completion_tokens": 2.0,
        "prompt_tokens_details": {"cached_tokens": 1},
    }


def test_redact_removes_keys_bearer_values_and_url_credentials() -> None:
    text = (
        f"bad key {SECRET}; Authorization: Bearer abc.def-ghi; api_key=zzz123; "
        "prefix sk-test-0123456789*** and https://user:pw@host/v1"
    )
    cleaned = redact(text, [SECRET])
    for leaked in (SECRET, "abc.def-ghi", "zzz123", "sk-test-0123", "user:pw"):
        assert leaked not in cleaned
    assert cleaned.count("[redacted]") >= 5
