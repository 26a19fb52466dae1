"""Every core error is mapped by each MCP surface: tools, resources and prompts."""

from __future__ import annotations

import pytest
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.shared.exceptions import MCPError

from core import errors
from core.errors import OpsError, RateLimitedError
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
