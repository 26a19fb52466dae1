"""Reading a legacy layout into the store, streaming, in the caller's one transaction.

The three small files are read first (``read_head``). Item files are then read one at a
time and written in batches (``COPY`` on PostgreSQL, one ``executemany`` on SQLite):
approved items, then drafts, then runs, so each check against the store (an id already
there, a draft already approved, the approved item of a run) is one query per batch and
sees the items imported before it. Memory holds
one batch, the file names and the draft ids of the approved items (a draft has one).

Rows get their numbers (the order of every list) in file order; when that is not the
order of their timestamps, one statement renumbers them by ``(time, id)`` at the end, as
if they had been written oldest first. Any error raises, and the caller's transaction
rolls back: nothing is written.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from core.errors import InputValidationError
from core.ids import IdKind
from core.models import Approved, Config, Draft, Plan, ProviderConfig
from core.ports import UnitOfWork
from core.services.base import CONFIG_KEY, PLAN_ID, PROVIDER_KEY, load_config
from core.timeutil import now_ts, ts_after
from core.transfer.files import SUBDIRS, item_names, load_json, parse_item, read_single
from core.transfer.items import ItemWriter
from core.transfer.parse import (
    RunIn,
    parse_approved,
    parse_config,
    parse_draft,
    parse_plan,
    parse_provider,
    parse_run,
)

__all__ = ["Head", "load_items", "read_head", "write_head"]

T = TypeVar("T")

BATCH_ITEMS = 1000
# A batch is written early once it holds this much text (content, output, log lines).
BATCH_CHARS = 8 * 1024 * 1024


@dataclass
class Head:
    """The small files of a layout and the names of its item files."""

    plan: Plan | None = None
    config: Config | None = None
    provider: ProviderConfig | None = None
    # Providers whose file says a key was set (``api_key_set``) but carries none: an export.
    keys_left_out: list[str] = field(default_factory=list)
    sealed_provider: dict[str, Any] | None = None
    names: dict[IdKind, list[str]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.plan or self.config or self.provider or any(self.names.values()))


def read_head(root: Path) -> Head:
    head = Head()
    head.plan = read_single(root, "plan.json", parse_plan)
    head.config = read_single(root, "config.json", parse_config)
    head.provider = read_single(root, "provider.json", parse_provider)
    if head.provider is not None:
        raw = load_json(root / "provider.json").get("providers")
        entries: dict[str, Any] = raw if isinstance(raw, dict) else {}
        head.keys_left_out = sorted(
            name
            for name, entry in head.provider.providers.items()
            if not entry.api_key
            and not entry.api_key_env
            and isinstance(entries.get(name), dict)
            and entries[name].get("api_key_set") is True
        )
    head.names = {kind: item_names(root, kind) for kind in SUBDIRS}
    return head


def write_head(uow: UnitOfWork, head: Head, counts: dict[str, int], extra: dict[str, int]) -> None:
    """The plan, config and provider config, each only into a store that has none yet."""
    if head.plan is not None:
        if uow.plan.get(PLAN_ID) is None:
            uow.plan.save(head.plan)
            counts["plan"] = 1
        else:
            extra["skipped_plan"] = 1
    for key, kv_key, value in (
        ("config", CONFIG_KEY, head.config),
        ("provider", PROVIDER_KEY, head.provider),
    ):
        if value is None:
            continue
        if uow.kv.get(kv_key) is None:
            stored = head.sealed_provider if key == "provider" else None
            uow.kv.put(kv_key, stored or value.model_dump(mode="json"), now=now_ts())
            counts[key] = 1
            if key == "provider" and head.keys_left_out:
                extra["provider_keys_to_set_again"] = len(head.keys_left_out)
        else:
            extra[f"skipped_{key}"] = 1


def load_items(
    uow: UnitOfWork, root: Path, head: Head, *, unhashed_as_drafts: bool
) -> dict[str, int]:
    """Write the head and every item file; returns the counts (then the notes, sorted)."""
    counts = {"plan": 0, "config": 0, "provider": 0, "drafts": 0, "approved": 0, "runs": 0}
    counts["log_lines"] = 0
    extra: dict[str, int] = {}
    write_head(uow, head, counts, extra)
    # Rejected/error drafts and finished runs older than the TTLs are imported as they are,
    # and the next cleanup pass deletes them; the counts tell the caller so.
    config = head.config if head.config is not None and counts["config"] else load_config(uow)
    writer = ItemWriter(
        uow,
        counts=counts,
        extra=extra,
        draft_cutoff=ts_after(-config.draft_ttl_days * 86_400),
        run_cutoff=ts_after(-config.run_ttl_days * 86_400),
        drafts_dir=root / SUBDIRS[IdKind.DRAFT],
    )
    seen: dict[str, str] = {}  # draft id -> the approved item that approves it

    def approved(data: dict[str, Any], stem: str) -> tuple[Approved, bool]:
        item, computed = parse_approved(data, stem)
        if computed and not unhashed_as_drafts:
            label = f"approved/{stem}.json"
            raise InputValidationError(
                f"{label}: no content_sha256, so nothing proves what was approved; it is not "
                "imported as approved. To import it as a draft to review and approve again, "
                "run the import with --unhashed-as-drafts",
                detail={"file": label},
            )
        if item.draft_id in seen:
            raise InputValidationError(
                f"approved/{item.id}.json: draft {item.draft_id} is also approved by "
                f"approved/{seen[item.draft_id]}.json; a draft has one approved item"
            )
        seen[item.draft_id] = item.id
        return item, computed

    for batch in _batches(root, IdKind.APPROVED, head, approved, _approved_weight):
        writer.approved(batch)
    seen.clear()
    for drafts in _batches(root, IdKind.DRAFT, head, parse_draft, _draft_weight):
        writer.drafts(drafts)
    for runs in _batches(root, IdKind.RUN, head, parse_run, _run_weight):
        writer.runs(runs)
    writer.settle()
    return counts | dict(sorted(extra.items()))


def _batches(
    root: Path,
    kind: IdKind,
    head: Head,
    parse: Callable[[dict[str, Any], str], T],
    weight: Callable[[T], int],
) -> Iterator[list[T]]:
    """Parsed item files of one kind, in batches bounded in count and in text held."""
    folder = os.fspath(root / SUBDIRS[kind]) + os.sep
    batch: list[T] = []
    held = 0
    for name in head.names.get(kind, []):
        item = parse_item(folder, name, parse)
        batch.append(item)
        held += weight(item)
        if len(batch) >= BATCH_ITEMS or held >= BATCH_CHARS:
            yield batch
            batch, held = [], 0
    if batch:
        yield batch


def _approved_weight(item: tuple[Approved, bool]) -> int:
    return len(item[0].prompt) + len(item[0].content)


def _draft_weight(draft: Draft) -> int:
    return len(draft.prompt) + len(draft.content)


def _run_weight(entry: RunIn) -> int:
    return len(entry.run.output or "") + sum(len(line[2]) + 48 for line in entry.log)
