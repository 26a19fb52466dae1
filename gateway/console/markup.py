"""How the console shows text it did not write: Markdown with raw HTML disabled, JSON, times.

Markdown is rendered by markdown-it-py in its ``commonmark`` preset with ``html`` off, so any
tag in a draft is shown as text; images are not rendered (they would load from anywhere),
and links keep markdown-it's own filter of ``javascript:`` and other unsafe schemes.
"""

from __future__ import annotations

import json
from typing import Any

from markdown_it import MarkdownIt
from markupsafe import Markup

__all__ = ["pretty_json", "render_markdown", "short_ts"]

_MD = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
_MD.disable("image")
_MD.enable("table")


def render_markdown(text: str) -> Markup:
    """Safe HTML for ``text``: raw HTML is escaped, never passed through."""
    return Markup(_MD.render(text))  # escaped by markdown-it: html is off


def pretty_json(value: Any) -> str:
    """Indented JSON for people (escaped by the template like any other text)."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def short_ts(value: str | None) -> str:
    """``2026-11-24T15:04:05.123456Z`` as ``2026-11-24 15:04:05Z`` (empty for None)."""
    if not value:
        return ""
    return value.replace("T", " ")[:19] + "Z"
