"""Prompt templates shipped as package data, and a small strict renderer.

Templates are ``prompts/<name>.txt`` using ``$name`` placeholders (``string.Template``):
substituted values are never re-interpreted, so content cannot inject placeholders.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from string import Template

__all__ = ["TemplateError", "load", "render"]


class TemplateError(LookupError):
    """A template is missing or a placeholder has no value."""


@cache
def load(name: str) -> str:
    """The raw text of template ``name``."""
    if not name.replace("_", "").isalnum():
        raise TemplateError(f"invalid template name {name!r}")
    try:
        return resources.files(__name__).joinpath(f"{name}.txt").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TemplateError(f"no prompt template named {name!r}") from None


def render(name: str, **values: object) -> str:
    """Render template ``name``; every placeholder must be given."""
    try:
        return Template(load(name)).substitute({k: str(v) for k, v in values.items()})
    except KeyError as exc:
        raise TemplateError(f"template {name!r} needs a value for {exc.args[0]!r}") from None
