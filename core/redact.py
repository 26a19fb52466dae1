"""Secrets out of text before anyone stores or shows it: provider keys (and any 8
characters or more of them), bearer values, ``api_key=…`` fields, ``sk-…`` tokens and
credentials in URLs."""

from __future__ import annotations

import functools
import re

__all__ = ["MIN_FRAGMENT", "REDACTED", "redact", "redact_key"]

REDACTED = "[redacted]"

_BEARER = re.compile(r"(?i)\b(bearer\s+)[^\s\"',;]+")
_KEY_FIELD = re.compile(
    r"(?i)((?:api[_-]?key|x-api-key|authorization)[\"']?\s*[:=]\s*[\"']?)[^\s\"',;&]+"
)
_SK_TOKEN = re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}")
_USERINFO = re.compile(r"(https?://)[^/\s@]+@")

MIN_FRAGMENT = 8


@functools.lru_cache(maxsize=16)
def _fragments(secret: str) -> re.Pattern[str]:
    """Matches any 8 characters in a row of ``secret``."""
    grams = sorted({secret[i : i + MIN_FRAGMENT] for i in range(len(secret) - MIN_FRAGMENT + 1)})
    return re.compile("|".join(re.escape(gram) for gram in grams))


def _redact_fragments(text: str, secret: str) -> str:
    """Replace every run of 8 or more characters that occurs in ``secret``."""
    pattern = _fragments(secret)
    parts: list[str] = []
    pos = 0
    while True:
        found = pattern.search(text, pos)
        if found is None:
            break
        start, end = found.start(), found.end()
        # Extend the match as long as it is still a piece of the secret.
        while end < len(text) and text[start : end + 1] in secret:
            end += 1
        parts.append(text[pos:start])
        parts.append(REDACTED)
        pos = end
    if not parts:
        return text
    parts.append(text[pos:])
    return "".join(parts)


def redact(text: str, secrets: list[str] | tuple[str, ...] = ()) -> str:
    """Remove secrets from ``text``: the given keys and any 8 characters or more of them,
    bearer values, ``api_key=…`` fields, ``sk-…`` tokens and credentials in URLs."""
    for secret in secrets:
        if not secret or len(secret) < 4:
            continue
        text = text.replace(secret, REDACTED)
        if len(secret) > MIN_FRAGMENT:
            text = _redact_fragments(text, secret)
    text = _BEARER.sub(lambda m: m.group(1) + REDACTED, text)
    text = _KEY_FIELD.sub(lambda m: m.group(1) + REDACTED, text)
    text = _SK_TOKEN.sub(REDACTED, text)
    return _USERINFO.sub(lambda m: m.group(1) + REDACTED + "@", text)


def redact_key(text: str, key: str | None) -> str:
    """``text`` from a provider (content, model names) with the key and any 8 characters or
    more of it redacted, and any text that is not valid Unicode replaced; other text is
    kept as the provider wrote it."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    if not key or len(key) < 4:
        return text
    text = text.replace(key, REDACTED)
    return _redact_fragments(text, key) if len(key) > MIN_FRAGMENT else text
