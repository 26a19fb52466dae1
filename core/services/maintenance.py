"""Status report, audit reads and verification, and the cleanup pass."""

from __future__ import annotations

from dataclasses import dataclass

from core import __version__, audit
from core.audit import GENESIS, VerifyResult, verify_rows
from core.errors import InputValidationError
from core.models import AuditEntry, AuditHead, DraftStatus, Page, RunStatus, StatusReport
from core.pagination import check_limit, decode_cursor, encode_cursor
from core.services.base import PROVIDER_KEY, Service, load_config, load_plan
from core.services.expiry import expire_pass
from core.timeutil import now_ts, ts_after

__all__ = ["CleanupResult", "MaintenanceService"]

WORKER_ALIVE_S = 30.0


@dataclass(frozen=True)
class CleanupResult:
    drafts: int
    runs: int
    idempotency_keys: int
    events: int = 0
    webhook_deliveries: int = 0
    approvals_lapsed: int = 0
    approved_expired: int = 0


class MaintenanceService(Service):
    def status(self) -> StatusReport:
        with self._uow() as uow:
            drafts = {s.value: 0 for s in DraftStatus} | uow.drafts.count_by_status()
            runs = {s.value: 0 for s in RunStatus} | uow.runs.count_by_status()
            provider = uow.kv.get(PROVIDER_KEY) or {}
            configured = bool(provider.get("active")) and provider.get("active") in provider.get(
                "providers", {}
            )
            return StatusReport(
                version=__version__,
                drafts=drafts,
                approved=uow.approved.count(),
                runs=runs,
                worker_alive=uow.workers.any_alive(since=ts_after(-WORKER_ALIVE_S)),
                provider_configured=configured,
                plan_revision=load_plan(uow).revision,
            )

    def audit_page(
        self,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        actor: str | None = None,
        action: str | None = None,
    ) -> Page[AuditEntry]:
        """Audit entries newest first, optionally only one actor's or one action's."""
        for name, value in (("actor", actor), ("action", action)):
            if value is not None and not 0 < len(value) <= 200:
                raise InputValidationError(f"{name} must be 1-200 characters")
        after = decode_cursor("au", cursor)
        with self._uow() as uow:
            items, last = uow.audit.list(
                after=after, limit=check_limit(limit), actor=actor, action=action
            )
        return Page[AuditEntry](
            items=items, next_cursor=encode_cursor("au", last) if last else None
        )

    def audit_head(self) -> AuditHead:
        """The newest audit entry's seq and hash (``0`` and zeros for an empty chain)."""
        with self._uow() as uow:
            head = uow.audit.head()
        return AuditHead(seq=head[0], hash=head[1]) if head else AuditHead(seq=0, hash=GENESIS)

    def verify_audit(self, *, expect_head: tuple[int, str] | None = None) -> VerifyResult:
        """Verify the whole chain, and that it reaches ``expect_head`` if given."""
        with self._uow() as uow:
            return verify_rows(uow.audit.iter_all(), expect_head=expect_head)

    def cleanup(self, *, actor: str = "system:cleanup") -> CleanupResult:
        """Delete rejected/error drafts after ``draft_ttl_days``, terminal runs after
        ``run_ttl_days``, events and webhook delivery attempts after ``event_ttl_days``;
        approved items are kept. Approvals past ``approval_ttl_hours`` lapse, and approved
        items never run within ``approved_ttl_days`` have their expiry recorded."""
        with self._uow(write=True) as uow:
            config = load_config(uow)
            lapsed, expired = expire_pass(uow, config, actor=actor)
            run_cutoff = ts_after(-config.run_ttl_days * 86_400)
            uow.approvals.keep_started(finished_before=run_cutoff, now=now_ts())
            drafts = uow.drafts.delete_stale(
                statuses=(DraftStatus.REJECTED.value, DraftStatus.ERROR.value),
                before=ts_after(-config.draft_ttl_days * 86_400),
            )
            runs = uow.runs.delete_finished(before=run_cutoff)
            keys = uow.idempotency.purge(before=ts_after(-24 * 3600))
            events = uow.events.delete_before(ts_after(-config.event_ttl_days * 86_400))
            attempts = uow.webhooks.delete_deliveries_before(
                ts_after(-config.event_ttl_days * 86_400)
            )
            uow.workers.purge(before=ts_after(-86_400))
            if drafts or runs:
                audit.record(
                    uow.audit,
                    actor=actor,
                    action="cleanup",
                    target=None,
                    detail={"drafts": drafts, "runs": runs},
                )
            uow.commit()
        return CleanupResult(
            drafts=drafts,
            runs=runs,
            idempotency_keys=keys,
            events=events,
            webhook_deliveries=attempts,
            approvals_lapsed=lapsed,
            approved_expired=expired,
        )
