"""Property-based fuzzing of the full /openapi.json with schemathesis (admin token).

Every generated request must get a non-5xx answer that conforms to the documented status
codes, content types and schemas. Operations with an ``{id}`` are fuzzed twice: with
generated ids, and with the id of a real item so that their bodies reach the services. The
operations that call the LLM provider are left out: the fuzzer could point the provider at
any host, and tests never leave 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given
from hypothesis import settings as run_with
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from core.auth import Principal
from core.bootstrap import Services
from core.config import Settings
from core.models import DraftIn, Role
from core.webhooks.models import WebhookIn
from tests.integration.gateway.conftest import TOKENS

NETWORK_OPERATIONS = ("generate_draft", "provider_health", "provider_models")
# Long polls wait up to 30 s for work that never comes here: checked by their own tests.
WAITING_OPERATIONS = ("claim_agent_run",)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
MAX_EXAMPLES = 30
# An event stream never ends: the fuzzer reads each for this long and checks what came.
STREAM_OPERATIONS = ("/ops/events",)
STREAM_READ_S = 0.3


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    """An idle event stream sends its keep-alive comments every 50 ms, so that the fuzzer's
    short reads of ``GET /ops/events`` (see ``STREAM_READ_S``) see a few of them."""
    return settings_factory(event_keepalive_s=0.05)


def _real_ids(services: Services) -> dict[str, str]:
    """One existing draft, approved item and run, keyed by the path segment."""
    actor = Principal(role=Role.ADMIN, name="fuzz")
    draft = services.drafts.create(data=DraftIn(prompt="fuzz me", content="c"), actor=actor)
    other = services.drafts.create(data=DraftIn(prompt="approved", content="c"), actor=actor)
    result = services.approvals.approve(draft_id=other.id, actor=actor, auto_run=True)
    assert result.run is not None
    # Webhook targets are checked against what their host resolves to: here a public
    # address for every name, so the fuzzer's URLs cause no DNS lookup (and no delivery loop
    # runs to post to them).
    services.webhooks.resolve = lambda host, port: ["93.184.215.14"]
    hook = services.webhooks.create(
        data=WebhookIn(url="https://hooks.example.test/in", types=["draft.created"]), actor=actor
    )
    return {
        "drafts": draft.id,
        "approved": result.approved.id,
        "runs": result.run.id,
        "webhooks": hook.id,
    }


def _fuzz(operation: Any, auth: dict[str, str], **fixed: Any) -> list[int]:
    statuses: list[int] = []
    limits = {"timeout": STREAM_READ_S} if operation.path in STREAM_OPERATIONS else {}

    @given(case=operation.as_strategy(**fixed))
    @run_with(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case[Any]) -> None:
        statuses.append(case.call_and_validate(headers=auth, checks=CHECKS, **limits).status_code)

    check()
    return statuses


def test_api_conforms_to_its_schema(app: FastAPI, services: Services) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(
        operation_id=[*NETWORK_OPERATIONS, *WAITING_OPERATIONS]
    )
    auth = {"Authorization": f"Bearer {TOKENS['admin']}"}
    ids = _real_ids(services)
    statuses: dict[str, list[int]] = {}
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        statuses[operation.label] = _fuzz(operation, auth)
        if "{id}" in operation.path:
            real = ids[operation.path.split("/")[2]]
            statuses[operation.label] += _fuzz(operation, auth, path_parameters={"id": real})
    network = {"POST /ops/generate", "GET /ops/provider/health", "GET /ops/provider/models"}
    assert not network & statuses.keys()
    assert len(statuses) >= 20
    # The real ids got past validation into the services.
    assert 200 in statuses["GET /ops/drafts/{id}"]
    assert 200 in statuses["GET /ops/runs/{id}/log"]
    assert any(s < 300 for s in statuses["PUT /ops/config"])
