"""Every core error is mapped by each MCP surface: tools, resources and prompts."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.shared.exceptions import MCPError

from core import errors
from core.errors import InvalidIdError, OpsError, RateLimitedError
from mcp_server.errors import describe, prompt_errors, resource_errors, tool_errors


def all_subclasses(cls: type[OpsError]) -> list[type[OpsError]]:
    found: list[type[OpsError]] = []
    for sub in cls.__subclasses__():
        found += [sub, *all_subclasses(sub)]
    return found


def instance(cls: type[OpsError]) -> OpsError:
    if issubclass(cls, RateLimitedError):
        return cls("slow down", retry_after=3)
    return cls(f"something about {cls.__name__}")


ERRORS = [OpsError, *all_subclasses(OpsError)]


def test_the_walk_covers_the_error_tree() -> None:
    declared = {getattr(errors, name) for name in errors.__all__}
    assert declared <= set(ERRORS)


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: c.__name__)
def test_each_surface_maps_the_error(cls: type[OpsError]) -> None:
    exc = instance(cls)
    text = describe(exc)
    assert text.startswith(f"{exc.code}: {exc.message}")
    with pytest.raises(ToolError) as tool, tool_errors():
        raise exc
    assert str(tool.value) == text
    with pytest.raises(ResourceError) as resource, resource_errors():
        raise exc
    assert str(resource.value) == text
    with pytest.raises(MCPError) as prompt, prompt_errors():
        raise exc
    assert prompt.value.message == text


def test_foreign_errors_are_not_swallowed() -> None:
    with pytest.raises(KeyError), tool_errors():
        raise KeyError("not ours")


def corrupt_store_error() -> sa.exc.DatabaseError:
    """What SQLAlchemy raises when ops.db is not a database (not an OperationalError)."""
    return sa.exc.DatabaseError("SELECT 1", {}, sqlite3.DatabaseError("file is not a database"))


def test_a_corrupt_store_is_a_storage_error_on_every_surface() -> None:
    with pytest.raises(ToolError) as tool, tool_errors():
        raise corrupt_store_error()
    assert str(tool.value).startswith("STORAGE_ERROR: the store is not a valid SQLite database")
    with pytest.raises(ResourceError) as resource, resource_errors():
        raise corrupt_store_error()
    assert str(resource.value) == str(tool.value)
    with pytest.raises(MCPError) as prompt, prompt_errors():
        raise corrupt_store_error()
    assert prompt.value.message == str(tool.value)
    assert "SELECT" not in str(tool.value)  # no statement text reaches the model


def test_a_malformed_task_id_gets_no_item_id_hint() -> None:
    text = describe(InvalidIdError("malformed task id: use 1-64 letters, digits, '_'"))
    assert "a_" not in text
    assert "a_1707000000000_ab12cd" in describe(InvalidIdError("malformed approved item id"))
