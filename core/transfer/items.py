"""Writing batches of parsed item files: the checks against the store, then executemany.

Each rule is the one the import has always had (``core.transfer``); only the shape is new:
one query per batch for each check, one statement per batch for each table.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from core.errors import InputValidationError
from core.models import APPROVED_COMPUTED, Approved, Draft, DraftRevision, DraftStatus
from core.ports import UnitOfWork
from core.timeutil import now_ts
from core.transfer.fields import LEGACY_ACTOR
from core.transfer.parse import RunIn

__all__ = ["ItemWriter"]

_CLEANED_DRAFTS = frozenset({DraftStatus.REJECTED, DraftStatus.ERROR})
_REVISION_FROM_DRAFT = tuple(
    name
    for name in DraftRevision.model_fields
    if name not in ("draft_id", "created_by", "created_at")
)


class _Order:
    """Whether rows were written in ``(time, id)`` order; if not, renumber them at the end."""

    def __init__(self, uow: UnitOfWork, table: str, columns: tuple[str, str]) -> None:
        self.table, self.columns = table, columns
        self.after: int = uow.bulk.top(table)
        self.last: tuple[str, str] = ("", "")
        self.sorted = True

    def saw(self, key: tuple[str, str]) -> None:
        if key < self.last:
            self.sorted = False
        self.last = key

    def settle(self, uow: UnitOfWork) -> None:
        if not self.sorted:
            uow.bulk.renumber(self.table, after=self.after, order_by=self.columns)


class ItemWriter:
    def __init__(
        self,
        uow: UnitOfWork,
        *,
        counts: dict[str, int],
        extra: dict[str, int],
        draft_cutoff: str,
        run_cutoff: str,
        drafts_dir: Path,
    ) -> None:
        self._uow = uow
        self._counts = counts
        self._extra = extra
        self._draft_cutoff = draft_cutoff
        self._run_cutoff = run_cutoff
        self._drafts_dir = os.fspath(drafts_dir) + os.sep
        self._unhashed: set[str] = set()  # approved ids imported as drafts: their runs go
        self._orders = {
            "approved": _Order(uow, "approved", ("approved_at", "id")),
            "drafts": _Order(uow, "drafts", ("created_at", "id")),
            "runs": _Order(uow, "runs", ("created_at", "id")),
        }

    def _bump(self, key: str, n: int = 1) -> None:
        if n:
            self._extra[key] = self._extra.get(key, 0) + n

    def approved(self, batch: list[tuple[Approved, bool]]) -> None:
        bulk = self._uow.bulk
        hashed = [item for item, computed in batch if not computed]
        there = bulk.lookup("approved", "id", [a.id for a in hashed], "id")
        new = [item for item in hashed if item.id not in there]
        self._bump("skipped_approved", len(hashed) - len(new))
        draft_ids = [item.draft_id for item in new]
        others = bulk.lookup("approved", "draft_id", draft_ids, "id")
        statuses = bulk.lookup("drafts", "id", draft_ids, "status")
        order = self._orders["approved"]
        for item in new:
            label = f"approved/{item.id}.json"
            other = others.get(item.draft_id)
            if other is not None:
                raise InputValidationError(
                    f"{label}: draft {item.draft_id} already has approved item {other} in the store"
                )
            status = statuses.get(item.draft_id)
            if status is not None and status != DraftStatus.APPROVED.value:
                raise InputValidationError(
                    f"{label}: draft {item.draft_id} is {status} in the store"
                )
            order.saw((item.approved_at, item.id))
        bulk.insert(
            "approved", [item.model_dump(mode="json", exclude=APPROVED_COMPUTED) for item in new]
        )
        self._counts["approved"] += len(new)
        unhashed = [item for item, computed in batch if computed]
        if unhashed:
            self._unhashed_as_drafts(unhashed)

    def _unhashed_as_drafts(self, items: list[Approved]) -> None:
        """Approved files that carried no hash become drafts to review, unless their draft
        comes with the import or is already in the store (it is reviewed there)."""
        self._bump("approved_unhashed_as_drafts", len(items))
        self._unhashed.update(item.id for item in items)
        there = self._uow.bulk.lookup("drafts", "id", [i.draft_id for i in items], "id")
        drafts = [
            _draft_of_unhashed(item)
            for item in items
            if item.draft_id not in there
            and not os.path.lexists(f"{self._drafts_dir}{item.draft_id}.json")
        ]
        self._add_drafts([(draft, LEGACY_ACTOR) for draft in drafts])

    def drafts(self, batch: list[Draft]) -> None:
        bulk = self._uow.bulk
        there = bulk.lookup("drafts", "id", [d.id for d in batch], "id")
        new = [draft for draft in batch if draft.id not in there]
        self._bump("skipped_drafts", len(batch) - len(new))
        approved = bulk.lookup("approved", "draft_id", [d.id for d in new], "id")
        rows: list[tuple[Draft, str]] = []
        for draft in new:
            has_approved = draft.id in approved
            if has_approved and draft.status is not DraftStatus.APPROVED:
                draft = draft.model_copy(update={"status": DraftStatus.APPROVED, "error": None})
                self._bump("drafts_marked_approved")
            elif not has_approved and draft.status is DraftStatus.APPROVED:
                # Without its approved item it cannot be shown as approved: an operator
                # reviews and approves it again (an error draft with content can be approved).
                draft = draft.model_copy(
                    update={
                        "status": DraftStatus.ERROR,
                        "error": "imported as approved, but its approved item was not in the "
                        "import; review it and approve it again",
                        # Changed by the import, so the cleanup pass does not take it at once.
                        "updated_at": now_ts(),
                    }
                )
                self._bump("drafts_unapproved")
            if draft.status in _CLEANED_DRAFTS and draft.updated_at < self._draft_cutoff:
                self._bump("expire_at_next_cleanup_drafts")
            rows.append((draft, draft.created_by))
        self._add_drafts(rows)

    def _add_drafts(self, drafts: list[tuple[Draft, str]]) -> None:
        """Drafts with their first revision (written by ``by``, when the draft last changed)."""
        order = self._orders["drafts"]
        for draft, _ in drafts:
            order.saw((draft.created_at, draft.id))
        bulk = self._uow.bulk
        rows = [draft.model_dump(mode="json") for draft, _ in drafts]
        bulk.insert("drafts", rows)
        bulk.insert(
            "draft_revisions",
            [_revision_of(row, by=by) for row, (_, by) in zip(rows, drafts, strict=True)],
        )
        self._counts["drafts"] += len(drafts)

    def runs(self, batch: list[RunIn]) -> None:
        bulk = self._uow.bulk
        kept = [e for e in batch if e.run.approved_id not in self._unhashed]
        self._bump("skipped_runs_of_unhashed", len(batch) - len(kept))
        there = bulk.lookup("runs", "id", [e.run.id for e in kept], "id")
        new = [entry for entry in kept if entry.run.id not in there]
        self._bump("skipped_runs", len(kept) - len(new))
        hashes = bulk.lookup("approved", "id", [e.run.approved_id for e in new], "content_sha256")
        order = self._orders["runs"]
        runs: list[dict[str, Any]] = []
        logs: list[dict[str, Any]] = []
        for entry in new:
            run = entry.run
            label = f"runs/{run.id}.json"
            sha = hashes.get(run.approved_id)
            if sha is None:
                raise InputValidationError(
                    f"{label}: approved item {run.approved_id} is neither in the import nor "
                    "in the store"
                )
            if entry.stored_sha256 is not None and entry.stored_sha256 != sha:
                raise InputValidationError(
                    f"{label}: content_sha256 differs from that of approved item {run.approved_id}"
                )
            order.saw((run.created_at, run.id))
            row = run.model_dump(mode="json")
            row["content_sha256"] = sha
            row["log_seq"] = len(entry.log)
            runs.append(row)
            logs.extend(
                {"run_id": run.id, "seq": seq, "ts": ts, "level": level, "msg": msg}
                for seq, (ts, level, msg) in enumerate(entry.log, 1)
            )
            if entry.cancelled_from is not None:
                self._bump("runs_cancelled")
            elif run.finished_at is not None and run.finished_at < self._run_cutoff:
                self._bump("expire_at_next_cleanup_runs")
        bulk.insert("runs", runs)
        bulk.insert("run_logs", logs)
        self._counts["runs"] += len(runs)
        self._counts["log_lines"] += len(logs)

    def settle(self) -> None:
        """Renumber what was not written in time order (see ``core.transfer.load``)."""
        for order in self._orders.values():
            order.settle(self._uow)


def _revision_of(draft: dict[str, Any], *, by: str) -> dict[str, Any]:
    """The row of a draft's first revision (``DraftRevision``'s fields) from the draft's
    row: its text as the draft holds it, written by ``by`` when the draft last changed."""
    row = {name: draft[name] for name in _REVISION_FROM_DRAFT}
    row["draft_id"] = draft["id"]
    row["created_by"] = by
    row["created_at"] = draft["updated_at"]
    return row


def _draft_of_unhashed(item: Approved) -> Draft:
    """A draft for review from an approved file that carried no hash."""
    return Draft(
        id=item.draft_id,
        prompt=item.prompt,
        content=item.content,
        context=item.context,
        task_id=item.task_id,
        scope=item.scope,
        status=DraftStatus.DRAFT,
        revision=1,
        created_at=item.approved_at,
        # Changed by the import, so the cleanup pass does not take it at once.
        updated_at=now_ts(),
        created_by=LEGACY_ACTOR,
    )
