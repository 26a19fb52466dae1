"""Webhooks (SPEC section 15): the admin use cases, and the store side of delivery.

Delivery is at-least-once from the event log, one event at a time per webhook, in seq
order. A worker claims a webhook (a lease on its row, taken in a write transaction, so two
processes never deliver to one webhook at the same time), posts outside any transaction,
then records the attempt and moves the webhook's cursor in one transaction. A worker that
dies mid-attempt leaves a lease that expires: the event is posted again by whoever claims
next (receivers deduplicate on ``webhook-id``).
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from core import audit
from core.auth import Principal
from core.config import Settings
from core.crypto import SecretBox, SecretKeyMismatchError
from core.errors import InputValidationError, NotFoundError, StorageError
from core.ids import IdKind, new_id, validate_id
from core.models import EVENT_TYPES, Event, Page
from core.pagination import check_limit, decode_cursor, encode_cursor
from core.ports import UnitOfWork, UowFactory
from core.services.base import Service
from core.timeutil import format_ts, now_ts, parse_ts
from core.webhooks.models import (
    Delivery,
    DeliveryOutcome,
    Webhook,
    WebhookCreated,
    WebhookIn,
    WebhookStatus,
)
from core.webhooks.policy import RetryPolicy
from core.webhooks.signing import new_secret, parse_secret
from core.webhooks.targets import Resolver, check_url, resolve_host, url_origin

__all__ = ["Attempt", "DeliveryJob", "DueWebhooks", "WebhookService"]

SYSTEM_ACTOR = "system:webhooks"
MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class DeliveryJob:
    """One event to post to one claimed webhook."""

    webhook_id: str
    url: str
    format: str
    secret: str | None  # None: it cannot be decrypted (the attempt fails saying so)
    event: Event
    attempt: int  # the number of this attempt, 1-based
    first_attempt_at: datetime | None


@dataclass(frozen=True)
class Attempt:
    """What one POST gave: a status code, or an error before any answer."""

    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class DueWebhooks:
    ready: list[str]  # ids with an event to post now
    wake_at: datetime | None  # the next time one becomes due (a retry, an expiring lease)
    active: int = 0  # how many webhooks are active (0: nothing to deliver to at all)


def _view(row: dict[str, Any]) -> Webhook:
    return Webhook.model_validate(row | {"event_seq": row["cursor"]})


class WebhookService(Service):
    def __init__(
        self,
        uow: UowFactory,
        *,
        settings: Settings,
        box: SecretBox | None,
        resolve: Resolver = resolve_host,
    ) -> None:
        super().__init__(uow)
        self._settings = settings
        self._box = box
        self.resolve = resolve  # how host names are resolved for the target check

    @property
    def public_url(self) -> str:
        return self._settings.public_url

    # --- admin ------------------------------------------------------------------------------

    def create(self, *, data: WebhookIn, actor: Principal) -> WebhookCreated:
        """Register a webhook for future events; the answer holds the secret (only here)."""
        check_url(
            data.url, allow_private=self._settings.webhook_allow_private, resolve=self.resolve
        )
        types = list(dict.fromkeys(data.types))
        unknown = [name for name in types if name not in EVENT_TYPES]
        if unknown:
            shown = ", ".join(repr(name[:40]) for name in unknown[:5])
            raise InputValidationError(
                f"unknown event type {shown}; known types: {', '.join(EVENT_TYPES)}",
                detail={"known": list(EVENT_TYPES)},
            )
        secret = data.secret if data.secret is not None else new_secret()
        parse_secret(secret)
        if self._box is None:
            raise StorageError("this process opened the store read-only: no secret key")
        sealed = self._box.encrypt(secret)
        webhook_id = new_id(IdKind.WEBHOOK)
        with self._uow(write=True) as uow:
            now = now_ts()
            row: dict[str, Any] = {
                "id": webhook_id,
                "url": data.url,
                "types": types,
                "format": data.format.value,
                "secret_encrypted": sealed,
                "status": WebhookStatus.ACTIVE.value,
                "created_at": now,
                "created_by": actor.actor,
                "cursor": uow.events.head(),
                "attempt": 0,
            }
            uow.webhooks.add(**row)
            audit.record(
                uow.audit,
                actor=actor.actor,
                action="webhook.create",
                target=webhook_id,
                detail={"origin": url_origin(data.url), "types": types, "format": row["format"]},
            )
            uow.commit()
        view = _view(row)
        return WebhookCreated(**view.model_dump(), secret=secret)

    def list(self, *, limit: int | None = None, cursor: str | None = None) -> Page[Webhook]:
        """Webhooks, newest first (never their secrets)."""
        after = decode_cursor("wh", cursor)
        with self._uow() as uow:
            rows, last = uow.webhooks.page(after=after, limit=check_limit(limit))
        return Page[Webhook](
            items=[_view(r) for r in rows], next_cursor=encode_cursor("wh", last) if last else None
        )

    def get(self, *, webhook_id: str) -> Webhook:
        validate_id(IdKind.WEBHOOK, webhook_id)
        with self._uow() as uow:
            row = uow.webhooks.get(webhook_id)
        if row is None:
            raise NotFoundError(f"webhook {webhook_id} not found", detail={"id": webhook_id})
        return _view(row)

    def delete(self, *, webhook_id: str, actor: Principal) -> None:
        """Remove a webhook and its recorded attempts."""
        validate_id(IdKind.WEBHOOK, webhook_id)
        with self._uow(write=True) as uow:
            row = uow.webhooks.get(webhook_id)
            if row is None:
                raise NotFoundError(f"webhook {webhook_id} not found", detail={"id": webhook_id})
            uow.webhooks.delete(webhook_id)
            audit.record(
                uow.audit,
                actor=actor.actor,
                action="webhook.delete",
                target=webhook_id,
                detail={"origin": url_origin(row["url"]), "types": row["types"]},
            )
            uow.commit()

    def enable(self, *, webhook_id: str, actor: Principal) -> Webhook:
        """Deliver again to a disabled webhook, starting with the event it was stopped on
        (its failure record is cleared); an active webhook is returned as it is."""
        validate_id(IdKind.WEBHOOK, webhook_id)
        with self._uow(write=True) as uow:
            row = uow.webhooks.get(webhook_id, lock=True)
            if row is None:
                raise NotFoundError(f"webhook {webhook_id} not found", detail={"id": webhook_id})
            if row["status"] == WebhookStatus.ACTIVE.value:
                return _view(row)
            values: dict[str, Any] = {
                "status": WebhookStatus.ACTIVE.value,
                "disabled_at": None,
                "disabled_reason": None,
                "failing_since": None,
                "attempt": 0,
                "first_attempt_at": None,
                "next_attempt_at": None,
            }
            uow.webhooks.update(webhook_id, **values)
            audit.record(
                uow.audit,
                actor=actor.actor,
                action="webhook.enable",
                target=webhook_id,
                detail={"reason": row["disabled_reason"], "event_seq": row["cursor"]},
            )
            uow.commit()
        return _view(row | values)

    def deliveries(
        self, *, webhook_id: str, limit: int | None = None, cursor: str | None = None
    ) -> Page[Delivery]:
        """The webhook's delivery attempts, newest first."""
        validate_id(IdKind.WEBHOOK, webhook_id)
        after = decode_cursor("wd", cursor)
        with self._uow() as uow:
            if uow.webhooks.get(webhook_id) is None:
                raise NotFoundError(f"webhook {webhook_id} not found", detail={"id": webhook_id})
            rows, last = uow.webhooks.deliveries(webhook_id, after=after, limit=check_limit(limit))
        return Page[Delivery](
            items=[Delivery.model_validate(r) for r in rows],
            next_cursor=encode_cursor("wd", last) if last else None,
        )

    # --- delivery (the worker's loop) ----------------------------------------------------

    def due(self, *, now: datetime) -> DueWebhooks:
        """Which webhooks have an event to post now, and when the next one falls due."""
        stamp = format_ts(now)
        ready: builtins.list[str] = []
        wake: str | None = None
        with self._uow() as uow:
            rows = uow.webhooks.active()
            for row in rows:
                later = None
                if row["lease_expires_at"] and row["lease_expires_at"] > stamp:
                    later = row["lease_expires_at"]
                elif row["next_attempt_at"] and row["next_attempt_at"] > stamp:
                    later = row["next_attempt_at"]
                elif uow.webhooks.next_event(row["cursor"], row["types"]) is not None:
                    ready.append(row["id"])
                if later is not None and (wake is None or later < wake):
                    wake = later
        return DueWebhooks(ready=ready, wake_at=parse_ts(wake) if wake else None, active=len(rows))

    def claim(
        self, *, webhook_ids: builtins.list[str], owner: str, now: datetime, lease_s: float
    ) -> builtins.list[DeliveryJob]:
        """Lease each of ``webhook_ids`` that is free and due, with its next event."""
        stamp = format_ts(now)
        claimed: builtins.list[tuple[dict[str, Any], Event]] = []
        with self._uow(write=True) as uow:
            for row in uow.webhooks.lock_free(webhook_ids, now=stamp):
                if row["next_attempt_at"] and row["next_attempt_at"] > stamp:
                    continue
                event = uow.webhooks.next_event(row["cursor"], row["types"])
                if event is None:
                    continue
                uow.webhooks.update(
                    row["id"],
                    lease_owner=owner,
                    lease_expires_at=format_ts(now + timedelta(seconds=lease_s)),
                )
                claimed.append((row, event))
            uow.commit()
        return [self._job(row, event) for row, event in claimed]

    def _job(self, row: dict[str, Any], event: Event) -> DeliveryJob:
        secret: str | None = None
        if self._box is not None:
            try:
                secret = self._box.decrypt(row["secret_encrypted"])
            except SecretKeyMismatchError:
                secret = None
        first = row["first_attempt_at"]
        return DeliveryJob(
            webhook_id=row["id"],
            url=row["url"],
            format=row["format"],
            secret=secret,
            event=event,
            attempt=int(row["attempt"]) + 1,
            first_attempt_at=parse_ts(first) if first else None,
        )

    def record(
        self,
        *,
        job: DeliveryJob,
        result: Attempt,
        owner: str,
        now: datetime,
        policy: RetryPolicy,
        lease_s: float,
        worker: str | None = None,
    ) -> DeliveryJob | None:
        """Record one attempt and move the webhook on, in one transaction; after a success,
        the webhook's next event (still leased) if there is one."""
        stamp = format_ts(now)
        with self._uow(write=True) as uow:
            row = uow.webhooks.get(job.webhook_id, lock=True)
            if row is None:
                return None  # deleted meanwhile: its attempts went with it
            values, outcome, next_at = self._outcome(uow, row, job, result, now, policy)
            uow.webhooks.add_delivery(
                webhook_id=job.webhook_id,
                event_seq=job.event.seq,
                event_type=job.event.type,
                attempt=job.attempt,
                ts=stamp,
                outcome=outcome.value,
                status_code=result.status_code,
                error=(result.error or None) and result.error[:MAX_ERROR_CHARS],
                duration_ms=result.duration_ms,
                next_attempt_at=next_at,
                worker=worker,
            )
            following: Event | None = None
            if outcome is not DeliveryOutcome.FAILED and values.get("status") != "disabled":
                cursor = int(values.get("cursor", row["cursor"]))
                following = uow.webhooks.next_event(cursor, row["types"])
            if following is not None:
                values["lease_expires_at"] = format_ts(now + timedelta(seconds=lease_s))
            else:
                values |= {"lease_owner": None, "lease_expires_at": None}
            if not uow.webhooks.update_leased(job.webhook_id, owner, **values):
                following = None  # the lease was lost: whoever holds it now carries on
            uow.commit()
        if following is None:
            return None
        return self._job(row | values, following)

    def _outcome(
        self,
        uow: UnitOfWork,
        row: dict[str, Any],
        job: DeliveryJob,
        result: Attempt,
        now: datetime,
        policy: RetryPolicy,
    ) -> tuple[dict[str, Any], DeliveryOutcome, str | None]:
        stamp = format_ts(now)
        done = {"attempt": 0, "first_attempt_at": None, "next_attempt_at": None}
        if result.ok:
            values = done | {
                "cursor": job.event.seq,
                "failing_since": None,
                "last_success_at": stamp,
            }
            return values, DeliveryOutcome.DELIVERED, None
        failing_since = parse_ts(row["failing_since"]) if row["failing_since"] else now
        values = {"failing_since": format_ts(failing_since)}
        reason = None
        if result.status_code == 410:
            reason = "the receiver answered 410 Gone"
        elif policy.disable(failing_since=failing_since, now=now):
            reason = f"every attempt failed since {format_ts(failing_since)}"
        if reason is not None:
            values |= {"status": "disabled", "disabled_at": stamp, "disabled_reason": reason}
            audit.record(
                uow.audit,
                actor=SYSTEM_ACTOR,
                action="webhook.disable",
                target=job.webhook_id,
                detail={"reason": reason, "event_seq": job.event.seq},
            )
            return values, DeliveryOutcome.ABANDONED, None
        first = job.first_attempt_at or now
        next_at = policy.next_attempt(failed_attempts=job.attempt, first_attempt=first, now=now)
        if next_at is None:
            return values | done | {"cursor": job.event.seq}, DeliveryOutcome.ABANDONED, None
        later = format_ts(next_at)
        values |= {
            "attempt": job.attempt,
            "first_attempt_at": format_ts(first),
            "next_attempt_at": later,
        }
        return values, DeliveryOutcome.FAILED, later

    def release(self, *, webhook_id: str, owner: str) -> None:
        """Give a claimed webhook back without an attempt (a stopping worker)."""
        with self._uow(write=True) as uow:
            uow.webhooks.update_leased(webhook_id, owner, lease_owner=None, lease_expires_at=None)
            uow.commit()
