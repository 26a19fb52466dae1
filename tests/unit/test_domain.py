"""Domain rules: transition tables, canonical hashing, model limits, the permission matrix."""

from __future__ import annotations

import hashlib
import json

import pytest
from pydantic import ValidationError

from core.auth import (
    PERMISSIONS,
    Action,
    Principal,
    generate_token,
    hash_token,
    required_role,
)
from core.canonical import HASH_VERSION, canonical_json, content_sha256, json_encoder
from core.errors import ConflictStateError
from core.models import (
    MAX_PROMPT_CHARS,
    ApproveIn,
    Config,
    ConfigPatch,
    DraftIn,
    DraftPatch,
    DraftStatus,
    PlanIn,
    ProviderConfigIn,
    ProviderEntryIn,
    RejectIn,
    Role,
    RunCreateIn,
    RunStatus,
    Scope,
    Task,
)
from core.states import (
    DRAFT_EDITABLE,
    DRAFT_TRANSITIONS,
    RUN_TRANSITIONS,
    check_draft_transition,
    check_run_transition,
)

# --- state machines --------------------------------------------------------------------------


def test_only_draft_and_error_drafts_are_editable() -> None:
    assert DRAFT_EDITABLE == {DraftStatus.DRAFT, DraftStatus.ERROR}


def test_approved_and_rejected_drafts_are_final() -> None:
    for final in (DraftStatus.APPROVED, DraftStatus.REJECTED):
        for target in DraftStatus:
            with pytest.raises(ConflictStateError):
                check_draft_transition(final, target)


def test_draft_transition_table_is_complete_and_accepts_its_moves() -> None:
    assert set(DRAFT_TRANSITIONS) == set(DraftStatus)
    for current, targets in DRAFT_TRANSITIONS.items():
        for target in targets:
            check_draft_transition(current, target)


def test_run_transitions_follow_the_contract() -> None:
    allowed = {(c, t) for c, targets in RUN_TRANSITIONS.items() for t in targets}
    assert (RunStatus.PENDING, RunStatus.RUNNING) in allowed
    assert (RunStatus.PENDING, RunStatus.CANCELLED) in allowed
    assert (RunStatus.RUNNING, RunStatus.DONE) in allowed
    assert (RunStatus.RUNNING, RunStatus.ERROR) in allowed
    assert (RunStatus.RUNNING, RunStatus.CANCELLED) in allowed
    assert (RunStatus.RUNNING, RunStatus.PENDING) in allowed  # lease expiry only
    assert (RunStatus.PENDING, RunStatus.DONE) not in allowed


def test_a_terminal_run_never_changes_status_again() -> None:
    for current in (RunStatus.DONE, RunStatus.ERROR, RunStatus.CANCELLED):
        assert current.terminal
        for target in RunStatus:
            with pytest.raises(ConflictStateError, match=current.value) as info:
                check_run_transition(current, target)
            assert info.value.code == "CONFLICT_STATE"


# --- canonical hashing -----------------------------------------------------------------------


def test_canonical_json_is_the_exact_contract_form() -> None:
    value = {"b": [1, {"z": "ü", "a": None}], "a": "x y"}
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_json(value) == expected == '{"a":"x y","b":[1,{"a":null,"z":"ü"}]}'


def _sha(body: dict[str, object]) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@pytest.mark.parametrize("separators", [(", ", ": "), (",", ":")])
@pytest.mark.parametrize("sort_keys", [False, True])
def test_json_encoder_writes_what_the_standard_encoder_writes(
    separators: tuple[str, str], sort_keys: bool
) -> None:
    encode = json_encoder(separators=separators, sort_keys=sort_keys)
    standard = json.JSONEncoder(ensure_ascii=False, separators=separators, sort_keys=sort_keys)
    values: list[object] = [
        None,
        True,
        12345678901234567890,
        0.1,
        float("inf"),
        'é "q" \n\u2028',
        [],
        {},
        {"b": [1, 2.25, {"z": None, "a": False}], "a": "ü", "c": {"files": ["src/*"]}},
    ]
    for value in values:
        assert encode(value) == standard.encode(value)


def test_content_sha256_version_2_hashes_prompt_content_context_and_scope_as_utf8() -> None:
    scope = {"files": ["src/*.py"], "agents": ["coder"]}
    context = {"ticket": "Ä-1", "n": [1, 2]}
    expected = _sha({"prompt": "Prüfe", "content": "do ✓", "context": context, "scope": scope})
    assert HASH_VERSION == 2
    assert content_sha256(prompt="Prüfe", content="do ✓", context=context, scope=scope) == (
        expected
    )
    # Key order of the input does not matter; any change of content or context does.
    reordered = {"agents": ["coder"], "files": ["src/*.py"]}
    assert (
        content_sha256(prompt="Prüfe", content="do ✓", context=context, scope=reordered) == expected
    )
    assert content_sha256(prompt="Prüfe", content="do ✓ ", context=context, scope=scope) != (
        expected
    )
    assert content_sha256(prompt="Prüfe", content="do ✓", context={}, scope=scope) != expected


def test_content_sha256_version_1_leaves_context_out() -> None:
    scope = {"files": ["src/*.py"], "agents": ["coder"]}
    expected = _sha({"prompt": "Prüfe", "content": "do ✓", "scope": scope})
    for context in ({}, {"ticket": "changed"}):
        digest = content_sha256(
            prompt="Prüfe", content="do ✓", context=context, scope=scope, version=1
        )
        assert digest == expected
    with pytest.raises(ValueError, match="hash_version"):
        content_sha256(prompt="p", content="c", context={}, scope=scope, version=3)


# --- models: limits and unknown fields --------------------------------------------------------


@pytest.mark.parametrize(
    "model, body",
    [
        (DraftIn, {"prompt": "p", "surprise": 1}),
        (DraftPatch, {"status": "approved"}),
        (ApproveIn, {"auto_run": True, "force": True}),
        (RejectIn, {"reason": "no", "extra": ""}),
        (RunCreateIn, {"approved_id": "a_x", "status": "done"}),
        (ConfigPatch, {"default_auto_run": True, "root": True}),
        (PlanIn, {"title": "t", "revision": 3}),
        (Task, {"id": "t1", "owner": "x"}),
        (Scope, {"files": [], "paths": []}),
        (ProviderConfigIn, {"active": None, "keys": {}}),
        (ProviderEntryIn, {"base_url": "http://x", "model": "m", "api_key_set": True}),
    ],
)
def test_input_models_forbid_unknown_fields(model: type, body: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        model.model_validate(body)


def test_prompt_limit_is_32000_characters() -> None:
    DraftIn(prompt="x" * MAX_PROMPT_CHARS)
    with pytest.raises(ValidationError):
        DraftIn(prompt="x" * (MAX_PROMPT_CHARS + 1))
    with pytest.raises(ValidationError):
        DraftIn(prompt="")


def test_field_limits_of_input_models() -> None:
    with pytest.raises(ValidationError):
        RejectIn(reason="")
    with pytest.raises(ValidationError):
        ApproveIn(expected_revision=-1)
    with pytest.raises(ValidationError):
        Task(id="../etc")
    with pytest.raises(ValidationError):
        Scope(files=["x"] * 201)
    with pytest.raises(ValidationError):
        ConfigPatch(max_concurrent_runs=0)
    with pytest.raises(ValidationError):
        ProviderEntryIn(base_url="file:///etc/passwd", model="m")
    with pytest.raises(ValidationError):
        ProviderEntryIn(base_url="http://x", model="m", api_key_env="NOT VALID")


def test_config_defaults_match_the_contract() -> None:
    assert Config().model_dump() == {
        "default_auto_run": False,
        "operator_can_generate": False,
        "prevent_self_approval": False,
        "max_concurrent_runs": 4,
        "run_timeout_s": 300,
        "max_attempts": 2,
        "default_executor": "provider",
        "event_ttl_days": 7,
        "draft_ttl_days": 7,
        "run_ttl_days": 30,
        "approvals_required": 1,
        "approval_ttl_hours": 72,
        "approved_ttl_days": 30,
    }


# --- roles and the permission matrix ----------------------------------------------------------

MATRIX = {
    Action.READ: {"actions", "agent", "operator", "admin"},
    Action.AGENT_RUN: {"agent", "operator", "admin"},
    Action.APPROVE: {"operator", "admin"},
    Action.REJECT: {"operator", "admin"},
    Action.RUN_CREATE: {"operator", "admin"},
    Action.RUN_CANCEL: {"operator", "admin"},
    Action.PROVIDER_HEALTH: {"operator", "admin"},
    Action.DRAFT_WRITE: {"admin"},
    Action.PLAN_WRITE: {"admin"},
    Action.CONFIG_WRITE: {"admin"},
    Action.PROVIDER_READ: {"admin"},
    Action.PROVIDER_WRITE: {"admin"},
    Action.PROVIDER_MODELS: {"admin"},
    Action.AUDIT_READ: {"admin"},
    Action.TOKENS: {"admin"},
    Action.WEBHOOKS: {"admin"},
}


def test_the_matrix_covers_every_action() -> None:
    assert set(PERMISSIONS) == set(Action) == set(MATRIX)


@pytest.mark.parametrize("action", list(Action))
def test_permission_matrix_per_role(action: Action) -> None:
    for role in Role:
        principal = Principal(role=role, name="x")
        assert principal.can(action, Config()) == (role.value in MATRIX[action]), role


def test_operator_can_generate_opens_draft_writes_to_operators_only() -> None:
    config = Config(operator_can_generate=True)
    assert required_role(Action.DRAFT_WRITE, config) is Role.OPERATOR
    assert Principal(role=Role.OPERATOR, name="o").can(Action.DRAFT_WRITE, config)
    assert not Principal(role=Role.ACTIONS, name="a").can(Action.DRAFT_WRITE, config)
    assert required_role(Action.PLAN_WRITE, config) is Role.ADMIN


def test_roles_include_the_ones_below() -> None:
    assert Role.ADMIN.includes(Role.OPERATOR) and Role.OPERATOR.includes(Role.ACTIONS)
    assert Role.OPERATOR.includes(Role.AGENT) and Role.AGENT.includes(Role.ACTIONS)
    assert not Role.AGENT.includes(Role.OPERATOR) and not Role.ACTIONS.includes(Role.AGENT)
    assert not Role.ACTIONS.includes(Role.OPERATOR)


def test_the_actor_is_role_and_name_never_the_token() -> None:
    token = generate_token(Role.OPERATOR)
    principal = Principal(role=Role.OPERATOR, name="ci")
    assert principal.actor == "operator:ci"
    assert token not in repr(principal)
    assert len(token) >= 16
    assert hash_token(token) == hashlib.sha256(token.encode()).hexdigest()
