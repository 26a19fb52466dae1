"""Scope globs: path-style matching with ``**``, and the check of a file argument.

Semantics (the same for every front door that shows scope to agents):

- ``*`` matches any run of characters inside one path segment, ``?`` one character, and
  ``[abc]`` / ``[!abc]`` a character class; none of them crosses ``/``.
- ``**`` as a whole segment matches zero or more segments: ``src/**/*.py`` matches
  ``src/a.py`` and ``src/x/y/a.py``; a trailing ``src/**`` (or ``src/``) matches every file
  under ``src``; ``**`` alone matches every file.
- A pattern without ``/`` matches at the top level only (``*.md`` is not ``docs/a.md``).
"""

from __future__ import annotations

import re
from functools import lru_cache

from core.errors import InputValidationError

__all__ = ["first_match", "glob_matches", "normalize_file"]

MAX_PATH = 1024


def _class(pattern: str, start: int) -> tuple[str, int] | None:
    """Translate the ``[...]`` class at ``start``; None if it is not closed."""
    i = start + 1
    negate = i < len(pattern) and pattern[i] in "!^"
    if negate:
        i += 1
    body_start = i
    if i < len(pattern) and pattern[i] == "]":
        i += 1  # a leading ']' is literal
    while i < len(pattern) and pattern[i] != "]":
        i += 1
    if i >= len(pattern):
        return None
    body = pattern[body_start:i].replace("\\", "\\\\").replace("[", "\\[")
    body = body.replace("/", "")
    if not body:
        return None
    if negate:
        return f"[^/{body}]", i + 1
    return f"[{body}]", i + 1


def _segment(segment: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(segment):
        char = segment[i]
        if char == "*":
            while i < len(segment) and segment[i] == "*":
                i += 1
            out.append("[^/]*")
            continue
        if char == "?":
            out.append("[^/]")
        elif char == "[":
            translated = _class(segment, i)
            if translated is not None:
                out.append(translated[0])
                i = translated[1]
                continue
            out.append(re.escape(char))
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


@lru_cache(maxsize=1024)
def _compile(pattern: str) -> re.Pattern[str]:
    pattern = pattern.strip().replace("\\", "/")
    while pattern.startswith("./"):
        pattern = pattern[2:]
    pattern = pattern.lstrip("/")
    if pattern.endswith("/"):
        pattern += "**"
    segments = [s for s in pattern.split("/") if s not in ("", ".")] or ["**"]
    parts: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            parts.append("(?:[^/]+/)*[^/]+" if last else "(?:[^/]+/)*")
        else:
            parts.append(_segment(segment) + ("" if last else "/"))
    return re.compile("".join(parts), re.DOTALL)


def glob_matches(pattern: str, path: str) -> bool:
    """True if the normalized relative ``path`` matches the scope glob ``pattern``."""
    return _compile(pattern).fullmatch(path) is not None


def first_match(patterns: list[str], path: str) -> str | None:
    """The first pattern of ``patterns`` that ``path`` matches, or None."""
    return next((p for p in patterns if glob_matches(p, path)), None)


def normalize_file(value: str) -> str:
    """A relative, forward-slash path inside the workspace; anything else is refused."""
    if not isinstance(value, str) or not value.strip():
        raise InputValidationError("file must be a non-empty relative path")
    if len(value) > MAX_PATH:
        raise InputValidationError(f"file is longer than {MAX_PATH} characters")
    if any(ch in value for ch in "\x00\r\n"):
        raise InputValidationError("file must not contain NUL or line breaks")
    path = value.strip().replace("\\", "/")
    if path.startswith("/") or re.match(r"^[A-Za-z]:/", path):
        raise InputValidationError(
            f"file '{value}' is absolute: give a path relative to the plan's workspace"
        )
    segments = [s for s in path.split("/") if s not in ("", ".")]
    if ".." in segments:
        raise InputValidationError(f"file '{value}' leaves the workspace ('..' is not allowed)")
    if not segments:
        raise InputValidationError("file must name a file, not the workspace itself")
    return "/".join(segments)
