"""Explicit transition tables for drafts, approvals and runs; an illegal move raises
``ConflictStateError``."""

from __future__ import annotations

from core.errors import ConflictStateError
from core.models import DraftStatus, RunStatus

__all__ = [
    "APPROVAL_TRANSITIONS",
    "DRAFT_EDITABLE",
    "DRAFT_TRANSITIONS",
    "RUN_ACTIVE",
    "RUN_SOURCES",
    "RUN_TERMINAL",
    "RUN_TRANSITIONS",
    "check_approval_transition",
    "check_draft_transition",
    "check_run_transition",
]

DRAFT_TRANSITIONS: dict[DraftStatus, frozenset[DraftStatus]] = {
    DraftStatus.DRAFT: frozenset({DraftStatus.APPROVED, DraftStatus.REJECTED, DraftStatus.ERROR}),
    # An error draft can be fixed by an edit (back to draft), approved if it has content,
    # or rejected.
    DraftStatus.ERROR: frozenset({DraftStatus.DRAFT, DraftStatus.APPROVED, DraftStatus.REJECTED}),
    DraftStatus.APPROVED: frozenset(),
    DraftStatus.REJECTED: frozenset(),
}

DRAFT_EDITABLE = frozenset({DraftStatus.DRAFT, DraftStatus.ERROR})

# A recorded approval (SPEC section 19) counts while active; an edit voids it, age lapses it,
# the quorum it completes uses it. Nothing comes back.
APPROVAL_TRANSITIONS: dict[str, frozenset[str]] = {
    "active": frozenset({"void", "lapsed", "used"}),
    "void": frozenset(),
    "lapsed": frozenset(),
    "used": frozenset(),
}

RUN_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.PENDING: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED, RunStatus.ERROR}),
    # running -> pending only when a lease expires (attempt + 1).
    RunStatus.RUNNING: frozenset(
        {RunStatus.DONE, RunStatus.ERROR, RunStatus.CANCELLED, RunStatus.PENDING}
    ),
    RunStatus.DONE: frozenset(),
    RunStatus.ERROR: frozenset(),
    RunStatus.CANCELLED: frozenset(),
}

# The one definition of "active" (a run that holds its approved item) and "terminal".
RUN_ACTIVE = frozenset({RunStatus.PENDING, RunStatus.RUNNING})
RUN_TERMINAL = frozenset(s for s, targets in RUN_TRANSITIONS.items() if not targets)

# For each status, the statuses a run may be in to move there: the storage guard of every
# status change (``RunRepo.set``) is derived from this, so the table is the only rule.
RUN_SOURCES: dict[RunStatus, frozenset[RunStatus]] = {
    target: frozenset(s for s, targets in RUN_TRANSITIONS.items() if target in targets)
    for target in RunStatus
}


def check_approval_transition(current: str, target: str) -> None:
    if target not in APPROVAL_TRANSITIONS.get(current, frozenset()):
        raise ConflictStateError(
            f"an approval in status '{current}' cannot become '{target}'",
            detail={"status": current, "target": target},
        )


def check_draft_transition(current: DraftStatus, target: DraftStatus) -> None:
    if target not in DRAFT_TRANSITIONS[current]:
        raise ConflictStateError(
            f"a draft in status '{current.value}' cannot become '{target.value}'",
            detail={"status": current.value, "target": target.value},
        )


def check_run_transition(current: RunStatus, target: RunStatus) -> None:
    if target not in RUN_TRANSITIONS[current]:
        raise ConflictStateError(
            f"a run in status '{current.value}' cannot become '{target.value}'",
            detail={"status": current.value, "target": target.value},
        )
