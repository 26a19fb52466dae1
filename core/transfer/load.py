"""Reading a legacy layout into the store: every file checked, then one transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from core.errors import InputValidationError
from core.ids import IdKind
from core.models import Approved, Config, Draft, DraftStatus, Plan, ProviderConfig
from core.ports import UnitOfWork
from core.services.base import CONFIG_KEY, PLAN_ID, PROVIDER_KEY, load_config
from core.services.drafts import record_revision
from core.timeutil import now_ts, ts_after
from core.transfer.fields import LEGACY_ACTOR
from core.transfer.files import item_files, load_json, parse_file, read_single
from core.transfer.parse import (
    RunIn,
    parse_approved,
    parse_config,
    parse_draft,
    parse_plan,
    parse_provider,
    parse_run,
)

__all__ = ["Bundle", "read_bundle", "write_bundle"]

_CLEANED_DRAFTS = frozenset({DraftStatus.REJECTED, DraftStatus.ERROR})


@dataclass
class Bundle:
    plan: Plan | None = None
    config: Config | None = None
    provider: ProviderConfig | None = None
    # Providers whose file says a key was set (``api_key_set``) but carries none: an export.
    keys_left_out: list[str] = field(default_factory=list)
    drafts: list[Draft] = field(default_factory=list)
    approved: list[tuple[Approved, bool]] = field(default_factory=list)
    # Approved files without content_sha256, imported as drafts (``unhashed_as_drafts``).
    unhashed: list[Approved] = field(default_factory=list)
    runs: list[RunIn] = field(default_factory=list)
    sealed_provider: dict[str, Any] | None = None

    @property
    def empty(self) -> bool:
        return not (
            self.plan
            or self.config
            or self.provider
            or self.drafts
            or self.approved
            or self.unhashed
            or self.runs
        )


def read_bundle(root: Path, *, unhashed_as_drafts: bool) -> Bundle:
    bundle = Bundle()
    bundle.plan = read_single(root, "plan.json", parse_plan)
    bundle.config = read_single(root, "config.json", parse_config)
    bundle.provider = read_single(root, "provider.json", parse_provider)
    if bundle.provider is not None:
        raw = load_json(root / "provider.json").get("providers")
        entries: dict[str, Any] = raw if isinstance(raw, dict) else {}
        bundle.keys_left_out = sorted(
            name
            for name, entry in bundle.provider.providers.items()
            if not entry.api_key
            and not entry.api_key_env
            and isinstance(entries.get(name), dict)
            and entries[name].get("api_key_set") is True
        )
    for path in item_files(root, IdKind.DRAFT):
        bundle.drafts.append(parse_file(root, path, partial(parse_draft, stem=path.stem)))
    for path in item_files(root, IdKind.APPROVED):
        item, computed = parse_file(root, path, partial(parse_approved, stem=path.stem))
        if not computed:
            bundle.approved.append((item, computed))
        elif unhashed_as_drafts:
            bundle.unhashed.append(item)
        else:
            label = path.relative_to(root).as_posix()
            raise InputValidationError(
                f"{label}: no content_sha256, so nothing proves what was approved; it is not "
                "imported as approved. To import it as a draft to review and approve again, "
                "run the import with --unhashed-as-drafts",
                detail={"file": label},
            )
    for path in item_files(root, IdKind.RUN):
        bundle.runs.append(parse_file(root, path, partial(parse_run, stem=path.stem)))
    seen: dict[str, str] = {}
    for item in [a for a, _ in bundle.approved] + bundle.unhashed:
        if item.draft_id in seen:
            raise InputValidationError(
                f"approved/{item.id}.json: draft {item.draft_id} is also approved by "
                f"approved/{seen[item.draft_id]}.json; a draft has one approved item"
            )
        seen[item.draft_id] = item.id
    return bundle


# --- import: writing ------------------------------------------------------------------------


def write_bundle(uow: UnitOfWork, bundle: Bundle) -> dict[str, int]:
    counts = {"plan": 0, "config": 0, "provider": 0, "drafts": 0, "approved": 0, "runs": 0}
    counts["log_lines"] = 0
    extra: dict[str, int] = {}

    def bump(key: str) -> None:
        extra[key] = extra.get(key, 0) + 1

    if bundle.plan is not None:
        if uow.plan.get(PLAN_ID) is None:
            uow.plan.save(bundle.plan)
            counts["plan"] = 1
        else:
            bump("skipped_plan")
    for key, kv_key, value in (
        ("config", CONFIG_KEY, bundle.config),
        ("provider", PROVIDER_KEY, bundle.provider),
    ):
        if value is None:
            continue
        if uow.kv.get(kv_key) is None:
            stored = bundle.sealed_provider if key == "provider" else None
            uow.kv.put(kv_key, stored or value.model_dump(mode="json"), now=now_ts())
            counts[key] = 1
            if key == "provider" and bundle.keys_left_out:
                extra["provider_keys_to_set_again"] = len(bundle.keys_left_out)
        else:
            bump(f"skipped_{key}")

    # Rejected/error drafts and finished runs older than the TTLs are imported as they are,
    # and the next cleanup pass deletes them; the counts tell the caller so.
    config = bundle.config if bundle.config is not None and counts["config"] else load_config(uow)
    draft_cutoff = ts_after(-config.draft_ttl_days * 86_400)
    run_cutoff = ts_after(-config.run_ttl_days * 86_400)

    approved_drafts: set[str] = set()
    for item, _ in sorted(bundle.approved, key=lambda a: (a[0].approved_at, a[0].id)):
        approved_drafts.add(item.draft_id)
        if uow.approved.get(item.id) is not None:
            bump("skipped_approved")
            continue
        label = f"approved/{item.id}.json"
        other = uow.approved.get_by_draft(item.draft_id)
        if other is not None:
            raise InputValidationError(
                f"{label}: draft {item.draft_id} already has approved item {other.id} in the store"
            )
        stored_draft = uow.drafts.get(item.draft_id)
        if stored_draft is not None and stored_draft.status is not DraftStatus.APPROVED:
            raise InputValidationError(
                f"{label}: draft {item.draft_id} is {stored_draft.status.value} in the store"
            )
        uow.approved.add(item)
        counts["approved"] += 1

    bundled_drafts = {draft.id for draft in bundle.drafts}
    for item in bundle.unhashed:
        bump("approved_unhashed_as_drafts")
        if item.draft_id in bundled_drafts or uow.drafts.get(item.draft_id) is not None:
            continue  # its draft comes with the import or is already here: reviewed there
        unhashed_draft = _draft_of_unhashed(item)
        uow.drafts.add(unhashed_draft)
        record_revision(uow, unhashed_draft, by=LEGACY_ACTOR, at=unhashed_draft.updated_at)
        counts["drafts"] += 1

    for draft in sorted(bundle.drafts, key=lambda d: (d.created_at, d.id)):
        if uow.drafts.get(draft.id) is not None:
            bump("skipped_drafts")
            continue
        has_approved = (
            draft.id in approved_drafts or uow.approved.get_by_draft(draft.id) is not None
        )
        if has_approved and draft.status is not DraftStatus.APPROVED:
            draft = draft.model_copy(update={"status": DraftStatus.APPROVED, "error": None})
            bump("drafts_marked_approved")
        elif not has_approved and draft.status is DraftStatus.APPROVED:
            # Without its approved item it cannot be shown as approved: an operator reviews
            # and approves it again (an error draft with content can be approved).
            draft = draft.model_copy(
                update={
                    "status": DraftStatus.ERROR,
                    "error": "imported as approved, but its approved item was not in the "
                    "import; review it and approve it again",
                    # Changed by the import, so the cleanup pass does not take it at once.
                    "updated_at": now_ts(),
                }
            )
            bump("drafts_unapproved")
        uow.drafts.add(draft)
        record_revision(uow, draft, by=draft.created_by, at=draft.updated_at)
        counts["drafts"] += 1
        if draft.status in _CLEANED_DRAFTS and draft.updated_at < draft_cutoff:
            bump("expire_at_next_cleanup_drafts")

    unhashed_ids = {item.id for item in bundle.unhashed}
    for entry in sorted(bundle.runs, key=lambda r: (r.run.created_at, r.run.id)):
        run = entry.run
        if run.approved_id in unhashed_ids:
            bump("skipped_runs_of_unhashed")
            continue
        if uow.runs.get(run.id) is not None:
            bump("skipped_runs")
            continue
        label = f"runs/{run.id}.json"
        approved: Approved | None = uow.approved.get(run.approved_id)
        if approved is None:
            raise InputValidationError(
                f"{label}: approved item {run.approved_id} is neither in the import nor "
                "in the store"
            )
        if entry.stored_sha256 is not None and entry.stored_sha256 != approved.content_sha256:
            raise InputValidationError(
                f"{label}: content_sha256 differs from that of approved item {approved.id}"
            )
        uow.runs.add(run.model_copy(update={"content_sha256": approved.content_sha256}))
        for ts, level, msg in entry.log:
            uow.logs.append(run.id, ts=ts, level=level, msg=msg)
            counts["log_lines"] += 1
        counts["runs"] += 1
        if entry.cancelled_from is not None:
            bump("runs_cancelled")
        elif run.finished_at is not None and run.finished_at < run_cutoff:
            bump("expire_at_next_cleanup_runs")
    return counts | dict(sorted(extra.items()))


def _draft_of_unhashed(item: Approved) -> Draft:
    """A draft for review from an approved file that carried no hash."""
    now = now_ts()
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
        updated_at=now,
        created_by=LEGACY_ACTOR,
    )
