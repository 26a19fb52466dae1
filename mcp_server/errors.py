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

from core.errors import InvalidIdError, NotFoundError, OpsError, StorageError
from core.storage.failures import as_storage_error

__all__ = ["describe", "prompt_errors", "resource_errors", "tool_errors"]

_ID_HINT = (
    "Approved ids look like a_01J9Z3K7Q8M2V4X6Y8Z0A1B2C3 (a_ and 26 characters; imported ones "
    "like a_1707000000000_ab12cd), run ids likewise with r_; draft ids (d_…) are never "
    "visible here: only approved items are."
)
_HINTS: dict[str, str] = {
    "NOT_FOUND": "Use list_approved or list_runs to find existing ids.",
    "INVALID_ID": _ID_HINT,
    "VALIDATION_ERROR": "Correct the argument and call again.",
    "STORAGE_ERROR": "The OPS Trigger store is not readable right now; try again shortly.",
}


def describe(exc: OpsError) -> str:
    """One line for the model: code, message and, where it helps, what to do next."""
    hint = _HINTS.get(exc.code)
    if isinstance(exc, InvalidIdError) and "letters, digits" in exc.message:
        hint = None  # a malformed task id or agent name: the message already says the rule
    text = f"{exc.code}: {exc.message}"
    return f"{text}. {hint}" if hint else text


def _core_error(exc: Exception) -> OpsError | None:
    """``exc`` itself if it is a core error; a ``StorageError`` for a failure of the store
    (a corrupt or unreadable database); None for anything else."""
    if isinstance(exc, OpsError):
        return exc
    return as_storage_error(exc)


@contextmanager
def tool_errors() -> Iterator[None]:
    """Turn a core error raised inside a tool into a ``ToolError`` the model can act on."""
    try:
        yield
    except Exception as exc:
        error = _core_error(exc)
        if error is None:
            raise
        raise ToolError(describe(error)) from None


@contextmanager
def resource_errors() -> Iterator[None]:
    """Turn a core error raised while reading a resource into a resource error."""
    try:
        yield
    except Exception as exc:
        error = _core_error(exc)
        if error is None:
            raise
        if isinstance(error, NotFoundError | InvalidIdError):
            raise ResourceNotFoundError(describe(error)) from None
        raise ResourceError(describe(error)) from None


@contextmanager
def prompt_errors() -> Iterator[None]:
    """Turn a core error raised while building a prompt into an ``MCPError`` that says why."""
    try:
        yield
    except Exception as exc:
        error = _core_error(exc)
        if error is None:
            raise
        code = INTERNAL_ERROR if isinstance(error, StorageError) else INVALID_PARAMS
        raise MCPError(code=code, message=describe(error)) from None
