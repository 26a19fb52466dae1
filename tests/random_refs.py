"""Tiny helpers for unique test identifiers."""

from __future__ import annotations

import uuid


def suffix() -> str:
    return uuid.uuid4().hex[:6]


def task_id(name: str = "") -> str:
    return f"task-{name}-{suffix()}" if name else f"task-{suffix()}"
