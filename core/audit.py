"""The hash-chained audit log: append in the caller's transaction, verify the whole chain."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from core.canonical import canonical_json, sha256_hex
from core.models import AuditEntry
from core.timeutil import now_ts

__all__ = [
    "GENESIS",
    "AuditBatchSink",
    "AuditSink",
    "VerifyResult",
    "entry_hash",
    "record",
    "record_many",
    "scrub",
    "verify_rows",
]

GENESIS = "0" * 64
_OUTCOMES = ("ok", "denied", "error")
_SECRET_KEYS = ("api_key", "token", "secret", "password", "authorization")


class AuditSink(Protocol):
    """Where entries are appended. A sink may also offer ``known_head() -> (seq, hash) |
    None`` (the head it believes current, without reading it) and ``add_at_head(entry) ->
    bool`` (append only if that entry's ``seq - 1`` and ``prev_hash`` are still the head):
    ``record`` then skips the read of the head when the belief holds."""

    def head(self) -> tuple[int, str] | None: ...
    def add(self, entry: AuditEntry) -> None: ...


class AuditBatchSink(Protocol):
    def head(self) -> tuple[int, str] | None: ...
    def add_many(self, entries: list[AuditEntry]) -> None: ...


@lru_cache(maxsize=4096)
def _secret_key(key: str) -> bool:
    """Whether a detail key could name a secret (the keys are a small fixed set: cached)."""
    lowered = key.lower()
    return any(word in lowered for word in _SECRET_KEYS) and lowered != "api_key_set"


def scrub(detail: dict[str, Any]) -> dict[str, Any]:
    """Drop any key that could hold a secret, at any depth."""
    clean: dict[str, Any] = {}
    for key, value in detail.items():
        if _secret_key(key):
            continue
        clean[key] = scrub(value) if isinstance(value, dict) else value
    return clean


def entry_hash(fields: dict[str, Any]) -> str:
    """SHA-256 over the canonical JSON of every field except ``hash`` itself."""
    body = {
        k: fields[k]
        for k in ("seq", "ts", "actor", "action", "target", "outcome", "detail", "prev_hash")
    }
    return sha256_hex(canonical_json(body))


def record(
    sink: AuditSink,
    *,
    actor: str,
    action: str,
    target: str | None = None,
    outcome: str = "ok",
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry chained to the previous one, inside the caller's transaction."""
    fields = _fields(
        ts=now_ts(), actor=actor, action=action, target=target, outcome=outcome, detail=detail
    )
    add_at_head = getattr(sink, "add_at_head", None)
    if add_at_head is not None:
        known: tuple[int, str] | None = sink.known_head()  # type: ignore[attr-defined]
        if known is not None:
            entry = _entry(fields, known)
            if add_at_head(entry):
                return entry
    entry = _entry(fields, sink.head())
    sink.add(entry)
    return entry


def _fields(
    *,
    ts: str,
    actor: str,
    action: str,
    target: str | None = None,
    outcome: str = "ok",
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An entry's fields before it is chained (``_entry`` sets ``seq`` and ``prev_hash``)."""
    if outcome not in _OUTCOMES:
        raise ValueError(f"audit outcome must be one of {_OUTCOMES}")
    return {
        "seq": 0,
        "ts": ts,
        "actor": actor,
        "action": action,
        "target": target,
        "outcome": outcome,
        "detail": scrub(detail or {}),
        "prev_hash": GENESIS,
    }


def _entry(fields: dict[str, Any], head: tuple[int, str] | None) -> AuditEntry:
    """The entry of ``fields`` chained after ``head`` (None: the first of the chain)."""
    fields["seq"], fields["prev_hash"] = (head[0] + 1, head[1]) if head else (1, GENESIS)
    # Every field is built by ``_fields``, so there is nothing to validate: skip pydantic's pass.
    return AuditEntry.model_construct(**fields, hash=entry_hash(fields))


def record_many(sink: AuditBatchSink, entries: Iterable[dict[str, Any]]) -> list[AuditEntry]:
    """Append several entries, each chained to the one before it, inside the caller's
    transaction: one read of the head and one insert for all of them. Each of ``entries``
    holds ``record``'s keyword arguments (``actor``, ``action``, ``target``, ``outcome``,
    ``detail``)."""
    specs = list(entries)
    if not specs:
        return []
    head = sink.head()
    ts = now_ts()
    chained: list[AuditEntry] = []
    for spec in specs:
        entry = _entry(_fields(ts=ts, **spec), head)
        head = (entry.seq, entry.hash)
        chained.append(entry)
    sink.add_many(chained)
    return chained


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    entries: int
    bad_seq: int | None = None
    reason: str | None = None
    # The last entry verified (seq 0 and GENESIS for an empty chain).
    head_seq: int = 0
    head_hash: str = GENESIS


def verify_rows(
    rows: Iterable[dict[str, Any]], *, expect_head: tuple[int, str] | None = None
) -> VerifyResult:
    """Check every link and every hash; name the first entry that does not hold.

    With ``expect_head`` (a ``(seq, hash)`` recorded earlier), the chain must also reach
    that entry with that hash: deleting the newest entries leaves a chain that links, and
    only a head kept elsewhere shows that it is shorter than it was."""
    prev = GENESIS
    expected_seq = 1
    count = 0
    seen_expected: str | None = None
    for row in rows:
        count += 1
        seq = row.get("seq")
        if seq != expected_seq:
            return VerifyResult(False, count, seq, f"entry {seq}: expected sequence {expected_seq}")
        if row.get("prev_hash") != prev:
            return VerifyResult(False, count, seq, f"entry {seq}: prev_hash does not link")
        if entry_hash(row) != row.get("hash"):
            return VerifyResult(False, count, seq, f"entry {seq}: hash does not match its content")
        prev = str(row["hash"])
        if expect_head is not None and seq == expect_head[0]:
            seen_expected = prev
        expected_seq += 1
    head = (expected_seq - 1, prev)
    if expect_head is not None:
        want_seq, want_hash = expect_head
        if want_seq == 0:
            seen_expected = GENESIS
        if seen_expected is None:
            return VerifyResult(
                False,
                count,
                None,
                f"the chain ends at seq {head[0]}, before the expected head seq {want_seq}: "
                "newer entries were deleted",
                *head,
            )
        if seen_expected != want_hash.lower():
            return VerifyResult(
                False,
                count,
                want_seq,
                f"entry {want_seq} has hash {seen_expected}, not the expected {want_hash}: "
                "the chain was rewritten",
                *head,
            )
    return VerifyResult(True, count, None, None, *head)
