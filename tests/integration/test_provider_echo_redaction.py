"""Everything a provider returns is stored with any 8-character-or-longer fragment of the
active key redacted: draft content, run output, usage, log lines, errors, audit detail,
model names and the model list. The provider here echoes the key, pieces of it and its last
12 characters, over real loopback HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from core.auth import Principal
from core.bootstrap import Services
from core.errors import ProviderError
from core.models import DraftIn, GenerateIn, ProviderConfigIn, ProviderEntryIn
from core.provider import REDACTED, redact
from tests.fake_llm import FakeLlm, FakeLlmServer, Receive, Scope, Send, _json, _read_body
from tests.integration.test_worker import running, wait_run

KEY = "sk-proj-Zq7RmW2xKp9LtV4nBc8YhF3sJd6GaE1u"


def _echo() -> str:
    return (
        f"full {KEY} bare {KEY.removeprefix('sk-')} tail {KEY[-12:]} "
        f"middle {KEY[5:13]} long {KEY[10:30]} glued x{KEY[12:24]}y"
    )


@dataclass
class EchoLlm(FakeLlm):
    fail: bool = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await _read_body(receive)
        if scope["path"] == "/v1/models":
            await _json(send, 200, {"data": [{"id": f"m-{KEY[-12:]}"}, {"id": "plain"}]})
            return
        if self.fail:
            await _json(send, 500, {"error": {"message": f"bad key {KEY[4:20]}: {_echo()}"}})
            return
        await _json(
            send,
            200,
            {
                "model": f"gpt_{KEY[8:20]}",
                "choices": [{"message": {"role": "assistant", "content": _echo()}}],
                "usage": {"total_tokens": 7, f"t_{KEY[-10:]}": 3, "prompt_tokens": 2},
            },
        )


@pytest.fixture
def echo() -> Iterator[FakeLlmServer]:
    with FakeLlmServer(EchoLlm()) as server:
        yield server


def _configure(services: Services, admin: Principal, url: str) -> None:
    services.provider.update(
        data=ProviderConfigIn(
            providers={"echo": ProviderEntryIn(base_url=url, model="m", api_key=KEY, max_retries=0)}
        ),
        actor=admin,
    )


def _assert_clean(text: str) -> None:
    for size in range(8, len(KEY) + 1):
        for start in range(len(KEY) - size + 1):
            assert KEY[start : start + size] not in text, (KEY[start : start + size], text)


def test_redact_removes_every_fragment_of_eight_or_more() -> None:
    text = redact(_echo(), (KEY,))
    _assert_clean(text)
    assert text.startswith("full [redacted] bare [redacted] tail [redacted]")
    assert "x[redacted]y" in text
    short = KEY[3:10]  # seven characters may stay: too short to be a fragment
    assert redact(f"a {short} b", (KEY,)) == f"a {short} b"
    assert redact("nothing secret here", (KEY,)) == "nothing secret here"
    assert REDACTED == "[redacted]"


def test_generated_content_model_and_usage_are_redacted(
    services: Services, admin: Principal, echo: FakeLlmServer
) -> None:
    _configure(services, admin, echo.url)
    draft = _generate(services, admin)
    stored = services.drafts.get(draft_id=draft.id)
    dumped = stored.model_dump_json()
    _assert_clean(dumped)
    assert "[redacted]" in stored.content
    assert stored.generation is not None
    assert stored.generation.model == "gpt_[redacted]"
    assert stored.generation.usage == {"total_tokens": 7, "prompt_tokens": 2}
    models = _call(services, "models")
    assert models.items == ["m-[redacted]", "plain"]


def test_run_output_usage_log_and_audit_are_redacted(
    services: Services, admin: Principal, operator: Principal, echo: FakeLlmServer, tmp_path: Any
) -> None:
    _configure(services, admin, echo.url)
    draft = services.drafts.create(data=DraftIn(prompt="p", content="c"), actor=admin)
    approved = services.approvals.approve(draft_id=draft.id, actor=operator).approved
    run, _ = services.runs.create(approved_id=approved.id, actor=operator)
    assert _finish(services, run.id).status.value == "done"
    final = services.runs.get(run_id=run.id)
    _assert_clean(final.model_dump_json())
    assert final.output is not None and "[redacted]" in final.output
    lines = services.runs.log(run_id=run.id).items
    _assert_clean(json.dumps([line.model_dump() for line in lines]))
    audit = services.maintenance.audit_page(limit=200).items
    _assert_clean(json.dumps([entry.model_dump() for entry in audit]))
    services.transfer.export_layout(directory=tmp_path / "export")
    for path in (tmp_path / "export").rglob("*.json"):
        _assert_clean(path.read_text())


def test_provider_errors_are_redacted_of_fragments(
    services: Services, admin: Principal, operator: Principal, echo: FakeLlmServer
) -> None:
    assert isinstance(echo.app, EchoLlm)
    echo.app.fail = True
    _configure(services, admin, echo.url)
    with pytest.raises(ProviderError) as info:
        _generate(services, admin)
    _assert_clean(info.value.message)
    error_draft = services.drafts.get(draft_id=info.value.detail["draft_id"])
    _assert_clean(error_draft.model_dump_json())
    health = _call(services, "health")
    assert health.ok is True  # /models still answers
    draft = services.drafts.create(data=DraftIn(prompt="p", content="c"), actor=admin)
    approved = services.approvals.approve(draft_id=draft.id, actor=operator).approved
    run, _ = services.runs.create(approved_id=approved.id, actor=operator)
    failed = _finish(services, run.id)
    assert failed.status.value == "error"
    _assert_clean(failed.model_dump_json())
    _assert_clean(json.dumps([x.model_dump() for x in services.runs.log(run_id=run.id).items]))


def _finish(services: Services, run_id: str) -> Any:
    async def drive() -> Any:
        async with running(services):
            return await wait_run(services, run_id, timeout=30)

    return asyncio.run(drive())


def _generate(services: Services, admin: Principal) -> Any:
    async def go() -> Any:
        try:
            return await services.generation.generate(data=GenerateIn(prompt="go"), actor=admin)
        finally:
            await services.generation.aclose()

    return asyncio.run(go())


def _call(services: Services, name: str) -> Any:
    async def go() -> Any:
        try:
            return await getattr(services.generation, name)()
        finally:
            await services.generation.aclose()

    return asyncio.run(go())
