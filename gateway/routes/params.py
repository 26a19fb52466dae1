"""Query parameters shared by the list routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from core.pagination import DEFAULT_LIMIT, MAX_LIMIT

__all__ = ["Cursor", "Limit", "TaskFilter"]

Limit = Annotated[
    int,
    Query(
        ge=1,
        le=MAX_LIMIT,
        description=f"Page size, 1-{MAX_LIMIT} (default {DEFAULT_LIMIT}).",
    ),
]
Cursor = Annotated[
    str | None,
    Query(
        max_length=64,
        description="Opaque cursor: next_cursor of the previous page; omit for the first page.",
    ),
]
TaskFilter = Annotated[
    str | None, Query(max_length=64, description="Only items of this plan task id.")
]
