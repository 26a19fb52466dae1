"""Diffs as people read them: side by side (two columns) or unified, with context."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

__all__ = ["Row", "side_by_side", "unified_rows"]

CONTEXT = 3


@dataclass(frozen=True)
class Row:
    """One line of a diff view: ``kind`` is equal, delete, insert, replace or skip."""

    kind: str
    left_no: int | None = None
    left: str = ""
    right_no: int | None = None
    right: str = ""
    hidden: int = 0


def side_by_side(before: str, after: str, *, context: int = CONTEXT) -> list[Row]:
    """Rows pairing the lines of ``before`` and ``after``; long unchanged runs are folded
    into one ``skip`` row that says how many lines it hides."""
    old, new = before.splitlines(), after.splitlines()
    rows: list[Row] = []
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    shown = 0  # lines of ``before`` accounted for so far
    for group in matcher.get_grouped_opcodes(context):
        if group[0][1] > shown:
            rows.append(Row("skip", hidden=group[0][1] - shown))
        for tag, i1, i2, j1, j2 in group:
            shown = i2
            if tag == "equal":
                rows.extend(
                    Row("equal", i + 1, old[i], j + 1, new[j])
                    for i, j in zip(range(i1, i2), range(j1, j2), strict=True)
                )
                continue
            for k in range(max(i2 - i1, j2 - j1)):
                li = i1 + k if i1 + k < i2 else None
                rj = j1 + k if j1 + k < j2 else None
                rows.append(_changed(old, new, li, rj))
    if rows and shown < len(old):
        rows.append(Row("skip", hidden=len(old) - shown))
    return rows


def _changed(old: list[str], new: list[str], li: int | None, rj: int | None) -> Row:
    if li is not None and rj is not None:
        return Row("replace", li + 1, old[li], rj + 1, new[rj])
    if li is not None:
        return Row("delete", li + 1, old[li])
    assert rj is not None
    return Row("insert", right_no=rj + 1, right=new[rj])


def unified_rows(diff: str) -> list[Row]:
    """A unified diff's lines, each marked for colour (the headers as ``skip``)."""
    rows: list[Row] = []
    for line in diff.splitlines():
        if line.startswith(("---", "+++", "@@", "\\")):
            rows.append(Row("skip", left=line))
        elif line.startswith("+"):
            rows.append(Row("insert", left=line))
        elif line.startswith("-"):
            rows.append(Row("delete", left=line))
        else:
            rows.append(Row("equal", left=line))
    return rows
