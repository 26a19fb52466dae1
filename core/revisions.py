"""Differences between two draft revisions (pure: no storage)."""

from __future__ import annotations

from typing import Any

from core.models import DraftDiff, DraftRevision, FieldChange

__all__ = ["DIFF_FIELDS", "diff_revisions", "unified_diff"]

DIFF_FIELDS = ("prompt", "content", "context", "task_id", "scope")
_NO_NEWLINE = "\\ No newline at end of file\n"


def unified_diff(before: str, after: str, *, from_label: str, to_label: str) -> str:
    """A unified diff of two texts ('' when equal), marking a missing final newline."""
    import difflib  # only the diff route needs it: keeps other processes' start-up lean

    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=from_label,
        tofile=to_label,
    )
    return "".join(line if line.endswith("\n") else f"{line}\n{_NO_NEWLINE}" for line in lines)


def diff_revisions(before: DraftRevision, after: DraftRevision) -> DraftDiff:
    """The fields that differ (``{before, after}``) and the unified diff of ``content``."""
    old = before.model_dump(mode="json", include=set(DIFF_FIELDS))
    new = after.model_dump(mode="json", include=set(DIFF_FIELDS))
    changes: dict[str, Any] = {
        name: FieldChange(before=old[name], after=new[name])
        for name in DIFF_FIELDS
        if old[name] != new[name]
    }
    content_diff = unified_diff(
        before.content,
        after.content,
        from_label=f"content (revision {before.revision})",
        to_label=f"content (revision {after.revision})",
    )
    return DraftDiff(
        from_=before.revision, to=after.revision, changes=changes, content_diff=content_diff
    )
