"""Text that can be stored: every string from outside must encode as UTF-8.

JSON may carry a lone surrogate (``"\\udfff"``) that Python decodes into a ``str`` no
encoder accepts; found anywhere in a value (string, list item, object key or value, at any
depth), it is refused with the path of the first one, before it reaches a hash, the store
or an answer.
"""

from __future__ import annotations

from typing import Any

__all__ = ["UNENCODABLE", "find_unencodable", "is_encodable"]

UNENCODABLE = "is not valid Unicode text (it holds a lone surrogate such as \\udfff)"


def is_encodable(text: str) -> bool:
    """True if ``text`` encodes as UTF-8 (holds no lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def find_unencodable(value: Any) -> list[str | int] | None:
    """The path (keys and indexes) to the first text in ``value`` that is not encodable,
    ``[]`` for ``value`` itself, or None if every text is fine. An object key that is not
    encodable is reported by its position among the keys (``key 2``)."""
    stack: list[tuple[list[str | int], Any]] = [([], value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if not is_encodable(item):
                return path
        elif isinstance(item, dict):
            children: list[tuple[list[str | int], Any]] = []
            for index, (key, child) in enumerate(item.items()):
                if isinstance(key, str) and not is_encodable(key):
                    return [*path, f"key {index}"]
                children.append(([*path, _printable(key)], child))
            stack.extend(reversed(children))
        elif isinstance(item, list | tuple):
            stack.extend(reversed([([*path, i], child) for i, child in enumerate(item)]))
    return None


def _printable(key: object) -> str | int:
    if isinstance(key, int):
        return key
    text = str(key)
    return text if len(text) <= 64 else text[:63] + "…"
