"""Shared helpers for the services."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from core.errors import InputValidationError, NotFoundError, PayloadTooLargeError
from core.models import MAX_CONTENT_BYTES, MAX_CONTEXT_BYTES, Config, Plan
from core.ports import UnitOfWork, UowFactory

__all__ = [
    "CONFIG_KEY",
    "Service",
    "check_content",
    "check_context",
    "config_of",
    "load_config",
    "load_plan",
    "require",
]

T = TypeVar("T")

PLAN_ID = "main"
CONFIG_KEY = "config"
PROVIDER_KEY = "provider"


class Service:
    def __init__(self, uow: UowFactory) -> None:
        self._uow = uow


def load_plan(uow: UnitOfWork) -> Plan:
    plan: Plan | None = uow.plan.get(PLAN_ID)
    return plan if plan is not None else Plan(id=PLAN_ID)


def load_config(uow: UnitOfWork) -> Config:
    return config_of(uow.kv.get(CONFIG_KEY))


def config_of(stored: dict[str, Any] | None) -> Config:
    """The config stored as ``stored`` (the defaults when none is)."""
    return Config.model_validate(stored) if stored else Config()


def require(item: T | None, what: str, item_id: str) -> T:
    """``item``, or ``NOT_FOUND`` naming it when the store has none."""
    if item is None:
        raise NotFoundError(f"{what} {item_id} not found", detail={"id": item_id})
    return item


def check_content(content: str) -> None:
    size = len(content.encode("utf-8"))
    if size > MAX_CONTENT_BYTES:
        raise PayloadTooLargeError(
            f"content is {size} bytes; the limit is {MAX_CONTENT_BYTES} bytes (256 KiB)"
        )


MAX_CONTEXT_DEPTH = 32


def _depth(value: Any) -> int:
    """How deeply ``value`` nests objects and arrays (iterative: no recursion limit)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        node, level = pending.pop()
        if not isinstance(node, dict | list):
            continue
        deepest = max(deepest, level)
        if level > MAX_CONTEXT_DEPTH:
            break
        children = node.values() if isinstance(node, dict) else node
        pending.extend((child, level + 1) for child in children)
    return deepest


def check_context(context: dict[str, Any]) -> None:
    if _depth(context) > MAX_CONTEXT_DEPTH:
        raise InputValidationError(
            f"context nests objects and arrays more than {MAX_CONTEXT_DEPTH} levels deep"
        )
    try:
        size = len(json.dumps(context, ensure_ascii=False, allow_nan=False).encode("utf-8"))
    except (TypeError, ValueError):
        raise InputValidationError(
            "context must be a plain JSON object (no NaN or Infinity)"
        ) from None
    if size > MAX_CONTEXT_BYTES:
        raise PayloadTooLargeError(f"context is {size} bytes; the limit is {MAX_CONTEXT_BYTES}")


def check_task(plan: Plan, task_id: str | None) -> None:
    if task_id is not None and plan.task(task_id) is None:
        raise InputValidationError(
            f"task_id '{task_id}' is not a task of the plan", detail={"task_id": task_id}
        )
