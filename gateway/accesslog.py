"""Keep secrets out of uvicorn's access log: a URL query that mentions a token or a key is
logged as ``?[redacted]`` (tokens are accepted only in the Authorization header, but a client
may still put one in a URL)."""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

__all__ = ["ACCESS_LOGGER", "RedactQueryFilter", "install_access_log_filter", "redact_query"]

ACCESS_LOGGER = "uvicorn.access"
REDACTED_QUERY = "[redacted]"
_SENSITIVE = re.compile(r"token|key|secret|password|auth", re.IGNORECASE)


def redact_query(path: str) -> str:
    """``/p?access_token=x`` -> ``/p?[redacted]``; a harmless query is kept."""
    base, sep, query = path.partition("?")
    if not sep:
        return path
    if _SENSITIVE.search(query) or _SENSITIVE.search(unquote_plus(query)):
        return f"{base}?{REDACTED_QUERY}"
    return path


class RedactQueryFilter(logging.Filter):
    """Rewrite the path argument of uvicorn's access records
    (``'%s - "%s %s HTTP/%s" %d'``: client, method, path, version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_query(args[2]), *args[3:])
        elif isinstance(record.msg, str) and "?" in record.msg and not args:
            record.msg = redact_query(record.msg)
        return True


def install_access_log_filter() -> None:
    """Add the filter to uvicorn's access logger once per process."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, RedactQueryFilter) for f in logger.filters):
        logger.addFilter(RedactQueryFilter())
