"""Typed ids: a type prefix and a ULID, validated strictly before they reach storage."""

from __future__ import annotations

import re
from enum import StrEnum

from ulid import ULID

from core.errors import InvalidIdError

__all__ = ["IdKind", "is_valid_id", "kind_of", "new_id", "validate_id", "validate_name"]


class IdKind(StrEnum):
    DRAFT = "d"
    APPROVED = "a"
    RUN = "r"
    WEBHOOK = "w"


_LABEL = {
    IdKind.DRAFT: "draft",
    IdKind.APPROVED: "approved item",
    IdKind.RUN: "run",
    IdKind.WEBHOOK: "webhook",
}
# A ULID in Crockford base32, or the legacy form written by older orchestrators
# (millisecond timestamp + short random suffix), e.g. d_1707000000000_ab12cd.
# A ULID's first character is at most 7 (48-bit timestamp); 8ZZZ… is out of range.
_BODY = r"(?:[0-7][0-9A-HJKMNP-TV-Z]{25}|[0-9]{10,16}_[a-z0-9]{4,12})"
_PATTERNS = {kind: re.compile(rf"{kind.value}_{_BODY}") for kind in IdKind}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")


def new_id(kind: IdKind) -> str:
    """Return a fresh id of the given kind."""
    return f"{kind.value}_{ULID()}"


def is_valid_id(kind: IdKind, value: object) -> bool:
    return isinstance(value, str) and _PATTERNS[kind].fullmatch(value) is not None


def kind_of(value: object) -> IdKind | None:
    """The kind of a well-formed id, or None."""
    for kind in IdKind:
        if is_valid_id(kind, value):
            return kind
    return None


def validate_id(kind: IdKind, value: object) -> str:
    """Return ``value`` if it is a well-formed id of ``kind``; raise ``InvalidIdError``."""
    if is_valid_id(kind, value):
        return value  # type: ignore[return-value]
    other = kind_of(value)
    label = _LABEL[kind]
    if other is not None:
        raise InvalidIdError(
            f"expected {_article(label)} {label} id ({kind.value}_…), "
            f"got {_article(_LABEL[other])} {_LABEL[other]} id",
            detail={"expected": kind.value, "got": other.value},
        )
    raise InvalidIdError(f"malformed {label} id: expected '{kind.value}_' followed by a ULID")


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def validate_name(value: object, *, what: str) -> str:
    """Validate a short name (task id, agent, token name): letters, digits, ``_.-``."""
    if isinstance(value, str) and _NAME.fullmatch(value):
        return value
    raise InvalidIdError(
        f"malformed {what}: use 1-64 letters, digits, '_', '.' or '-', starting alphanumeric"
    )
