"""Webhook and delivery models as the API shows them (the secret only in the create answer)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from core.models.base import _In

__all__ = [
    "Delivery",
    "DeliveryOutcome",
    "Webhook",
    "WebhookCreated",
    "WebhookFormat",
    "WebhookIn",
    "WebhookStatus",
]

MAX_URL_CHARS = 2000


class WebhookFormat(StrEnum):
    STANDARD = "standard"  # the event as JSON, Standard Webhooks headers and signature
    SLACK = "slack"  # {"text": ...} for a Slack incoming webhook (signed the same way)


class WebhookStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class DeliveryOutcome(StrEnum):
    DELIVERED = "delivered"  # a 2xx answer
    FAILED = "failed"  # tried again at next_attempt_at
    ABANDONED = "abandoned"  # the last attempt for this event (retry window over, or disabled)


class WebhookIn(_In):
    """Body of ``POST /ops/webhooks``."""

    url: Annotated[str, Field(min_length=1, max_length=MAX_URL_CHARS)]
    types: Annotated[list[Annotated[str, Field(max_length=64)]], Field(min_length=1, max_length=20)]
    format: Annotated[WebhookFormat, Field(strict=False)] = WebhookFormat.STANDARD
    secret: Annotated[str | None, Field(max_length=200)] = None


class Webhook(BaseModel):
    """A webhook as stored, without its secret."""

    model_config = ConfigDict(extra="ignore")

    id: str
    url: str
    types: list[str]
    format: WebhookFormat
    status: WebhookStatus
    created_at: str
    created_by: str
    event_seq: int = Field(description="The seq of the last matching event that is done.")
    attempt: int = Field(description="Failed attempts so far on the next event to deliver.")
    next_attempt_at: str | None = None
    failing_since: str | None = None
    last_success_at: str | None = None
    disabled_at: str | None = None
    disabled_reason: str | None = None


class WebhookCreated(Webhook):
    """The create answer: the only time the signing secret is shown."""

    secret: str


class Delivery(BaseModel):
    """One delivery attempt."""

    model_config = ConfigDict(extra="ignore")

    seq: int
    webhook_id: str
    event_seq: int
    event_type: str
    attempt: int
    ts: str
    outcome: DeliveryOutcome
    status_code: int | None = None
    error: str | None = None
    duration_ms: int
    next_attempt_at: str | None = None
