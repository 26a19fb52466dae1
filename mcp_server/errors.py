"""Core errors, mapped once for the three MCP surfaces: tools, resources and prompts.

A tool gets ``ToolError`` (an ``is_error`` result the model can read and correct), a resource
read gets ``ResourceNotFoundError``/``ResourceError``, a prompt gets an ``MCPError`` with
``INVALID_PARAMS``. The text is the same everywhere: the code, the caller-safe message and a
hint on what to do next.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS, Prompt

from core.errors import InvalidIdError, NotFoundError, OpsError, StorageError
from core.storage.failures import as_storage_error

__all__ = ["PromptArguments", "describe", "prompt_errors", "resource_errors", "tool_errors"]

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
    "HASH_MISMATCH": "Do not act on this item; tell an operator that it was altered in the "
    "store after approval.",
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
def _mapped(convert: Callable[[OpsError], Exception]) -> Iterator[None]:
    """Re-raise a core (or store) error raised inside the block as ``convert(error)``."""
    try:
        yield
    except Exception as exc:
        error = _core_error(exc)
        if error is None:
            raise
        raise convert(error) from None


def _resource_error(error: OpsError) -> Exception:
    if isinstance(error, NotFoundError | InvalidIdError):
        return ResourceNotFoundError(describe(error))
    return ResourceError(describe(error))


def _prompt_error(error: OpsError) -> Exception:
    code = INTERNAL_ERROR if isinstance(error, StorageError) else INVALID_PARAMS
    return MCPError(code=code, message=describe(error))


def tool_errors() -> AbstractContextManager[None]:
    """Turn a core error raised inside a tool into a ``ToolError`` the model can act on."""
    return _mapped(lambda error: ToolError(describe(error)))


def resource_errors() -> AbstractContextManager[None]:
    """Turn a core error raised while reading a resource into a resource error."""
    return _mapped(_resource_error)


def prompt_errors() -> AbstractContextManager[None]:
    """Turn a core error raised while building a prompt into an ``MCPError`` that says why."""
    return _mapped(_prompt_error)


class PromptArguments:
    """Middleware: ``prompts/get`` with an unknown prompt name or a missing required argument
    gets ``INVALID_PARAMS`` naming what is wrong (the SDK would answer "Internal server
    error"). The prompts and their required arguments are read from ``list_prompts``."""

    def __init__(self, list_prompts: Callable[[], Awaitable[list[Prompt]]]) -> None:
        self._list_prompts = list_prompts
        self._required: dict[str, tuple[str, ...]] | None = None

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        if ctx.method == "prompts/get":
            if self._required is None:
                self._required = {
                    p.name: tuple(a.name for a in p.arguments or () if a.required)
                    for p in await self._list_prompts()
                }
            self._check(self._required, ctx.params or {})
        return await call_next(ctx)

    @staticmethod
    def _check(required: dict[str, tuple[str, ...]], params: Mapping[str, Any]) -> None:
        name = params.get("name")
        if not isinstance(name, str) or name not in required:
            shown = name[:64] if isinstance(name, str) else name
            raise MCPError(
                code=INVALID_PARAMS,
                message=f"unknown prompt {shown!r}; the prompts are {', '.join(required)}",
            )
        given = params.get("arguments") or {}
        missing = [arg for arg in required[name] if given.get(arg) is None]
        if missing:
            raise MCPError(
                code=INVALID_PARAMS,
                message=f"{name} needs the arguments {', '.join(required[name])}; "
                f"missing: {', '.join(missing)}",
            )
