"""Render core models as JSON responses (ETag, Location and status in one place)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.responses import Response

from core.errors import InputValidationError

__all__ = ["agree", "render"]

T = TypeVar("T")


def render(
    model: BaseModel,
    *,
    status: int = 200,
    etag: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """Serialise ``model`` straight to JSON bytes (the route declares ``response_model``)."""
    merged = dict(headers or {})
    if etag is not None:
        merged["ETag"] = f'"{etag}"'
    return Response(
        content=model.__pydantic_serializer__.to_json(model),
        status_code=status,
        media_type="application/json",
        headers=merged,
    )


def agree(first: T | None, second: T | None, *, names: tuple[str, str]) -> T | None:
    """One value given two ways (body and header/query): they must not contradict."""
    if first is not None and second is not None and first != second:
        raise InputValidationError(
            f"{names[0]} and {names[1]} disagree ({first!r} vs {second!r}); send one of them",
        )
    return first if first is not None else second


def location(path: str, item: Any) -> dict[str, str]:
    """A ``Location`` header for a newly created item."""
    return {"Location": f"{path}/{item.id}"}
