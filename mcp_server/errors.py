"""Core errors, mapped once for the three MCP surfaces: tools, resources and prompts.

A tool gets ``ToolError`` (an ``is_error`` result the model can read and correct), a resource
read gets ``ResourceNotFoundError``/``ResourceError``, a prompt gets an ``MCPError`` with
``INVALID_PARAMS``. The text is the same everywhere: the code, the caller-safe message and a
hint on what to do next.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS

from core.errors import (
    InputValidationError,
    InvalidIdError,
    NotFoundError,
    OpsError,
    PayloadTooLargeError,
    StorageError,
)

__all__ = ["describe", "prompt_errors", "resource_errors", "tool_errors"]

_HINTS: dict[str, str] = {
    "NOT_FOUND": "Use list_approved or list_runs to find existing ids.",
    "INVALID_ID": (
        "Approved ids look like a_ followed by 26 characters, run ids like r_…; draft ids (d_…) "
        "are never visible here: only approved items are."
    ),
    "VALIDATION_ERROR": "Correct the argument and call again.",
    "STORAGE_ERROR": "The OPS Trigger store is not readable right now; try again shortly.",
}


def describe(exc: OpsError) -> str:
    """One line for the model: code, message and, where it helps, what to do next."""
    hint = _HINTS.get(exc.code)
    text = f"{exc.code}: {exc.message}"
    return f"{text}. {hint}" if hint else text


@contextmanager
def tool_errors() -> Iterator[None]:
    """Turn a core error raised inside a tool into a ``ToolError`` the model can act on."""
    try:
        yield
    except OpsError as exc:
        raise ToolError(describe(exc)) from None


@contextmanager
def resource_errors() -> Iterator[None]:
    """Turn a core error raised while reading a resource into a resource error."""
    try:
        yield
    except (NotFoundError, InvalidIdError) as exc:
        raise ResourceNotFoundError(describe(exc)) from None
    except OpsError as exc:
        raise ResourceError(describe(exc)) from None


@contextmanager
def prompt_errors() -> Iterator[None]:
    """Turn a core error raised while building a prompt into an ``MCPError`` that says why."""
    try:
        yield
    except (NotFoundError, InvalidIdError, InputValidationError, PayloadTooLargeError) as exc:
        raise MCPError(code=INVALID_PARAMS, message=describe(exc)) from None
    except StorageError as exc:
        raise MCPError(code=INTERNAL_ERROR, message=describe(exc)) from None
    except OpsError as exc:
        raise MCPError(code=INVALID_PARAMS, message=describe(exc)) from None
