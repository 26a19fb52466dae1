"""The body a webhook posts for an event: the event itself (``standard``) or a line of text
for a Slack incoming webhook (``slack``), linking a waiting draft to its console page."""

from __future__ import annotations

import json
from typing import Any

from core.models import Event, EventType
from core.webhooks.models import WebhookFormat

__all__ = ["body_of", "message_id", "review_url", "slack_text"]

MAX_LOG_TEXT = 300


def message_id(event: Event) -> str:
    """The ``webhook-id`` of an event: the same on every attempt and for every webhook."""
    return f"evt_{event.seq}"


def review_url(public_url: str, draft_id: str) -> str:
    return f"{public_url.rstrip('/')}/console/drafts/{draft_id}"


def _escape(text: object) -> str:
    # Slack reads &, < and > as markup.
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _task(data: dict[str, Any]) -> str:
    task = data.get("task_id")
    return f" (task {_escape(task)})" if task else ""


def slack_text(event: Event, *, public_url: str) -> str:
    """One line of Slack text for ``event``."""
    data = event.data
    subject = _escape(event.subject)
    actor = _escape(data.get("actor", "someone"))
    kind = event.type
    if kind in (EventType.DRAFT_CREATED, EventType.DRAFT_UPDATED):
        link = review_url(public_url, event.subject)
        if data.get("status") == "error":
            return f"Draft {subject}{_task(data)} failed to generate: <{link}>"
        if data.get("status") == "draft":
            return f"Draft {subject}{_task(data)} waits for review: <{link}>"
        return f"Draft {subject}{_task(data)} is {_escape(data.get('status'))}: <{link}>"
    if kind == EventType.DRAFT_APPROVED:
        return (
            f"Draft {subject}{_task(data)} was approved by {actor} as "
            f"{_escape(data.get('approved_id'))}"
        )
    if kind == EventType.DRAFT_APPROVAL_ADDED:
        return _approval_added(data, subject, public_url)
    if kind == EventType.DRAFT_APPROVALS_LAPSED:
        draft = str(data.get("draft_id") or event.subject)
        count = _count(data.get("count"))
        return (
            f"Draft {_escape(draft)}{_task(data)} lost {_plural(count, 'approval')}: "
            f"{'it' if count == 1 else 'they'} lapsed before the quorum was met, so it needs "
            f"approving again — <{review_url(public_url, draft)}>"
        )
    if kind == EventType.APPROVED_EXPIRED:
        return (
            f"Approved item {subject} of draft {_escape(data.get('draft_id'))}{_task(data)} "
            "expired without a run: it can no longer be run"
        )
    if kind == EventType.DRAFT_REJECTED:
        return f"Draft {subject}{_task(data)} was rejected by {actor}"
    if kind == EventType.RUN_CREATED:
        return f"Run {subject} of {_escape(data.get('approved_id'))} was created by {actor}"
    if kind == EventType.RUN_STARTED:
        return f"Run {subject} started (attempt {_escape(data.get('attempt'))})"
    if kind == EventType.RUN_FINISHED:
        return f"Run {subject} finished: {_escape(data.get('status'))}"
    if kind == EventType.RUN_LOG:
        msg = str(data.get("msg", ""))[:MAX_LOG_TEXT]
        return f"Run {subject} [{_escape(data.get('level'))}] {_escape(msg)}"
    if kind == EventType.PLAN_UPDATED:
        return f"Plan updated to revision {_escape(data.get('revision'))} by {actor}"
    if kind == EventType.CONFIG_UPDATED:
        fields = ", ".join(sorted(data.get("changed") or {})) or "nothing"
        return f"Config updated by {actor}: {_escape(fields)}"
    return f"{_escape(kind)} {subject}"


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _approval_added(data: dict[str, Any], subject: str, public_url: str) -> str:
    draft = str(data.get("draft_id") or subject)
    have, need = _count(data.get("have")), _count(data.get("need"))
    link = review_url(public_url, draft)
    if have < need:
        return (
            f"Draft {_escape(draft)}{_task(data)} needs {need - have} more approval"
            f"{'' if need - have == 1 else 's'} ({have} of {need}) — <{link}>"
        )
    return (
        f"Draft {_escape(draft)}{_task(data)} has all its approvals ({have} of {need}) — <{link}>"
    )


def body_of(event: Event, *, format: WebhookFormat, public_url: str) -> bytes:
    """The exact bytes posted (and signed) for ``event``."""
    payload: dict[str, Any]
    if format is WebhookFormat.SLACK:
        payload = {"text": slack_text(event, public_url=public_url)}
    else:
        payload = {
            "type": event.type,
            "timestamp": event.ts,
            "seq": event.seq,
            "subject": event.subject,
            "data": event.data,
        }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
