"""Parsers from one legacy file's JSON object to the core model it holds.

Legacy ids (``d_1707000000000_ab12cd``), statuses, missing optional fields and timestamps
given as epoch seconds, epoch milliseconds or ISO strings are accepted. An approved item
whose stored hash does not match its prompt, content, scope (and context, for
``hash_version`` 2) is refused; runs left ``pending`` or ``running`` become ``cancelled``
(see ``core.transfer`` for why).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.canonical import HASH_VERSION, HASH_VERSIONS, canonical_json, content_sha256, sha256_hex
from core.errors import InputValidationError, InvalidIdError
from core.ids import IdKind, validate_name
from core.models import (
    Approved,
    Config,
    Draft,
    DraftStatus,
    Executor,
    Generation,
    Plan,
    PlanIn,
    ProviderConfig,
    ProviderEntry,
    ProviderEntryIn,
    Run,
    RunStatus,
    Task,
)
from core.services.base import PLAN_ID
from core.services.plan import validate_tasks
from core.timeutil import now_ts
from core.transfer import fields as f
from core.transfer.fields import MAX_TEXT_CHARS
from core.transfer.files import BadFile

__all__ = [
    "RunIn",
    "parse_approved",
    "parse_config",
    "parse_draft",
    "parse_plan",
    "parse_provider",
    "parse_run",
]

MAX_OUTPUT_CHARS = 4_000_000
MAX_LOG_LINES = 100_000
MAX_LOG_MSG = 8000
_LEVELS = {
    "debug": "debug",
    "info": "info",
    "warn": "warning",
    "warning": "warning",
    "error": "error",
    "err": "error",
    "critical": "error",
    "fatal": "error",
}
_RUN_STATUS_ALIASES = {"canceled": "cancelled"}
_DRAFT_STATUSES = frozenset(s.value for s in DraftStatus)
_RUN_STATUSES = frozenset(s.value for s in RunStatus)


@dataclass
class RunIn:
    """A run file: the run, the hash its file gave, its log lines ``(ts, level, msg)``, and
    the status it had if the import cancelled it."""

    run: Run
    stored_sha256: str | None
    log: list[tuple[str, str, str]]
    cancelled_from: str | None


def parse_plan(data: dict[str, Any]) -> Plan:
    tasks = data.get("tasks") or []
    if not isinstance(tasks, list):
        raise BadFile("tasks must be a list")
    for index, task in enumerate(tasks):
        if not isinstance(task, dict):
            raise BadFile(f"tasks.{index} must be an object")
    body = f.known(PlanIn, data) | {"tasks": [f.known(Task, task) for task in tasks]}
    for key in ("title", "objective", "workspace"):
        if body.get(key) is None:
            body.pop(key, None)
    if body.get("constraints") is None:
        body.pop("constraints", None)
    plan_in = PlanIn.model_validate(body)
    try:
        validate_tasks(plan_in.tasks)
    except InputValidationError as exc:
        raise BadFile(exc.message) from None
    return Plan(
        id=PLAN_ID,
        **plan_in.model_dump(),
        revision=f.integer(data, "revision", default=1, minimum=1),
        updated_at=f.timestamp(data, "updated_at") or now_ts(),
    )


def parse_config(data: dict[str, Any]) -> Config:
    return Config.model_validate(f.known(Config, data))


def parse_provider(data: dict[str, Any]) -> ProviderConfig:
    if "providers" not in data and "base_url" in data:  # older single-provider form
        data = {"active": "default", "providers": {"default": data}}
    providers_raw = data.get("providers") or {}
    if not isinstance(providers_raw, dict):
        raise BadFile("providers must be an object")
    providers: dict[str, ProviderEntry] = {}
    for name, raw in providers_raw.items():
        try:
            validate_name(name, what="provider name")
        except InvalidIdError as exc:
            raise BadFile(exc.message) from None
        if not isinstance(raw, dict):
            raise BadFile(f"providers.{name} must be an object")
        values = f.known(ProviderEntryIn, raw)
        if not values.get("api_key"):  # redacted exports carry api_key_set instead
            values.pop("api_key", None)
        for key in ("api_key_env", "temperature"):
            if values.get(key) is None:
                values.pop(key, None)
        entry = ProviderEntryIn.model_validate(values)
        providers[name] = ProviderEntry.model_validate(entry.model_dump())
    active = data.get("active")
    if active is not None and (not isinstance(active, str) or active not in providers):
        raise BadFile(f"active provider {str(active)[:64]!r} is not among the providers")
    if active is None and len(providers) == 1:
        active = next(iter(providers))
    return ProviderConfig(active=active, providers=providers)


def parse_draft(data: dict[str, Any], stem: str) -> Draft:
    draft_id = f.item_id(data, stem, IdKind.DRAFT)
    prompt, content, context = f.content_fields(data)
    status = data.get("status") or DraftStatus.DRAFT.value
    if not isinstance(status, str) or status.strip().lower() not in _DRAFT_STATUSES:
        raise BadFile(f"status {str(status)[:40]!r} is not one of draft|approved|rejected|error")
    created_at = f.timestamp(data, "created_at")
    updated_at = f.timestamp(data, "updated_at")
    generation = f.json_object(data, "generation", max_bytes=MAX_TEXT_CHARS)
    rejected = f.text(data, "rejected_reason") or f.text(data, "reason")
    # Every field was checked above (and the file's text at load): no second validation.
    return Draft.model_construct(
        id=draft_id,
        prompt=prompt,
        content=content,
        context=context,
        task_id=f.task_id(data),
        scope=f.scope(data.get("scope")),
        status=DraftStatus(status.strip().lower()),
        revision=f.integer(data, "revision", default=1, minimum=1),
        created_at=created_at or updated_at or now_ts(),
        updated_at=updated_at or created_at or now_ts(),
        created_by=f.actor(data, "created_by"),
        generation=Generation.model_validate(generation) if generation else None,
        error=f.text(data, "error"),
        rejected_reason=rejected,
    )


def parse_approved(data: dict[str, Any], stem: str) -> tuple[Approved, bool]:
    """The approved item, and whether its ``content_sha256`` had to be computed.

    ``hash_version`` says which formula the stored hash follows (absent: 1, the formula of
    files written before ``context`` was covered); the item keeps that version.
    """
    approved_id = f.item_id(data, stem, IdKind.APPROVED)
    prompt, content, context = f.content_fields(data)
    scope = f.scope(data.get("scope"))
    stored = (f.text(data, "content_sha256", max_chars=128) or "").strip().lower()
    computed = stored == ""
    version = HASH_VERSION if computed and "hash_version" not in data else 1
    if "hash_version" in data:
        version = f.integer(data, "hash_version", default=1, minimum=1)
        if version not in HASH_VERSIONS:
            raise BadFile(
                f"hash_version {version} is not one of {', '.join(map(str, HASH_VERSIONS))}"
            )
    expected = content_sha256(
        prompt=prompt,
        content=content,
        context=context,
        scope=scope.model_dump(mode="json"),
        version=version,
    )
    if not computed and stored != expected:
        # An older writer may have hashed its scope in the raw form it stored; accept that
        # only if the hash proves the prompt and content are exactly what it approved.
        raw = {"prompt": prompt, "content": content, "scope": data.get("scope")}
        if version != 1 or stored != sha256_hex(canonical_json(raw)):
            raise BadFile(
                f"content_sha256 does not match its prompt, content{', context' * (version > 1)} "
                f"and scope (hash_version {version}); the item may have been altered, so it "
                "is not imported"
            )
    return (
        Approved.model_construct(
            id=approved_id,
            draft_id=f.ref_id(data, "draft_id", IdKind.DRAFT),
            draft_revision=f.integer(data, "draft_revision", default=1, minimum=1),
            task_id=f.task_id(data),
            prompt=prompt,
            content=content,
            context=context,
            scope=scope,
            content_sha256=expected,
            hash_version=version,
            approved_at=f.timestamp(data, "approved_at")
            or f.timestamp(data, "created_at")
            or now_ts(),
            approved_by=f.actor(data, "approved_by"),
            note=f.text(data, "note"),
        ),
        computed,
    )


def parse_run(data: dict[str, Any], stem: str) -> RunIn:
    run_id = f.item_id(data, stem, IdKind.RUN)
    raw_status = data.get("status") or RunStatus.PENDING.value
    if not isinstance(raw_status, str):
        raise BadFile("status must be a string")
    status_text = _RUN_STATUS_ALIASES.get(raw_status.strip().lower(), raw_status.strip().lower())
    if status_text not in _RUN_STATUSES:
        raise BadFile(
            f"status {raw_status[:40]!r} is not one of pending|running|done|error|cancelled"
        )
    status = RunStatus(status_text)
    raw_executor = data.get("executor") or "provider"
    if raw_executor not in ("provider", "agent"):
        raise BadFile("executor must be 'provider' or 'agent'")
    executor: Executor = "agent" if raw_executor == "agent" else "provider"
    agent = data.get("agent") or None
    if agent is not None:
        try:
            agent = validate_name(agent, what="agent")
        except InvalidIdError as exc:
            raise BadFile(exc.message) from None
    created_at = f.timestamp(data, "created_at") or now_ts()
    error = f.text(data, "error")
    started_at = f.timestamp(data, "started_at")
    # A finished run always has finished_at (the cleanup pass ages runs by it); older files
    # may lack it, so the latest time the file does give stands in for it.
    finished_at = f.timestamp(data, "finished_at") or (
        (f.timestamp(data, "updated_at") or started_at or created_at) if status.terminal else None
    )
    cancelled_from: str | None = None
    log = parse_log(data, default_ts=created_at)
    if not status.terminal:
        cancelled_from = status.value
        note = (
            f"imported from a legacy store while {status.value}; cancelled so that the import "
            "does not execute it (create a new run to execute it)"
        )
        status, error, finished_at = RunStatus.CANCELLED, note, finished_at or now_ts()
        log.append((now_ts(), "warning", note))
    cancel = data.get("cancel_requested", False)
    if not isinstance(cancel, bool):
        raise BadFile("cancel_requested must be true or false")
    stored = (f.text(data, "content_sha256", max_chars=128) or "").strip().lower()
    run = Run.model_construct(
        id=run_id,
        approved_id=f.ref_id(data, "approved_id", IdKind.APPROVED),
        content_sha256=stored or "",
        status=status,
        executor=executor,
        agent=agent if executor == "agent" else None,
        attempt=f.integer(data, "attempt", default=1, minimum=1),
        created_at=created_at,
        created_by=f.actor(data, "created_by"),
        started_at=started_at,
        finished_at=finished_at,
        output=f.text(data, "output", max_chars=MAX_OUTPUT_CHARS),
        error=error,
        usage=f.json_object(data, "usage", max_bytes=MAX_TEXT_CHARS),
        cancel_requested=cancel,
    )
    return RunIn(run=run, stored_sha256=stored or None, log=log, cancelled_from=cancelled_from)


def parse_log(data: dict[str, Any], *, default_ts: str) -> list[tuple[str, str, str]]:
    raw = data.get("log")
    if raw is None:
        raw = data.get("logs")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise BadFile("log must be a list of lines")
    if len(raw) > MAX_LOG_LINES:
        raise BadFile(f"log has {len(raw)} lines; the limit is {MAX_LOG_LINES}")
    lines: list[tuple[str, str, str]] = []
    for index, item in enumerate(raw):
        if isinstance(item, str):
            lines.append((default_ts, "info", item[:MAX_LOG_MSG]))
            continue
        if not isinstance(item, dict):
            raise BadFile(f"log.{index} must be a string or an object")
        msg = item.get("msg", item.get("message"))
        if not isinstance(msg, str):
            raise BadFile(f"log.{index}.msg must be a string")
        level = item.get("level") or "info"
        if not isinstance(level, str):
            raise BadFile(f"log.{index}.level must be a string")
        ts = f.timestamp(item, "ts") or default_ts
        lines.append((ts, _LEVELS.get(level.lower(), "info"), msg[:MAX_LOG_MSG]))
    return lines
