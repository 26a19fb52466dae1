"""Webhooks (admin): create (the secret is shown once), list, delete, read deliveries."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from starlette.responses import Response

from core.auth import Action, Principal
from core.models import Page
from core.webhooks.models import Delivery, Webhook, WebhookCreated, WebhookIn
from gateway.deps import ServicesDep, require
from gateway.problems import problem_responses
from gateway.render import location, render
from gateway.routes.params import Cursor, Limit

router = APIRouter(prefix="/ops/webhooks", tags=["webhooks"])

WebhookId = Annotated[str, Path(description="Webhook id: 'w_' followed by a ULID.")]
Admin = Annotated[Principal, require(Action.WEBHOOKS)]


@router.post("", response_model=WebhookCreated, status_code=201, summary="Create a webhook")
def create_webhook(body: WebhookIn, principal: Admin, services: ServicesDep) -> Response:
    """Post future events of ``types`` to ``url``, signed per Standard Webhooks. Without
    ``secret`` one is generated; the answer is the only place it is ever shown."""
    created = services.webhooks.create(data=body, actor=principal)
    return render(created, status=201, headers=location("/ops/webhooks", created))


@router.get("", response_model=Page[Webhook], summary="List webhooks")
def list_webhooks(
    principal: Admin, services: ServicesDep, limit: Limit = 50, cursor: Cursor = None
) -> Response:
    """Webhooks with their delivery status (active or disabled), newest first; never the
    secret."""
    return render(services.webhooks.list(limit=limit, cursor=cursor))


@router.get(
    "/{id}", response_model=Webhook, summary="Get a webhook", responses=problem_responses(404)
)
def get_webhook(id: WebhookId, principal: Admin, services: ServicesDep) -> Response:
    """One webhook and its delivery status; never the secret."""
    return render(services.webhooks.get(webhook_id=id))


@router.delete(
    "/{id}", status_code=204, summary="Delete a webhook", responses=problem_responses(404)
)
def delete_webhook(id: WebhookId, principal: Admin, services: ServicesDep) -> Response:
    """Stop delivering to this webhook and forget its recorded attempts."""
    services.webhooks.delete(webhook_id=id, actor=principal)
    return Response(status_code=204)


@router.post(
    "/{id}/enable",
    response_model=Webhook,
    summary="Enable a disabled webhook",
    responses=problem_responses(404),
)
def enable_webhook(id: WebhookId, principal: Admin, services: ServicesDep) -> Response:
    """Deliver again to a webhook that was disabled, from the event it stopped on."""
    return render(services.webhooks.enable(webhook_id=id, actor=principal))


@router.get(
    "/{id}/deliveries",
    response_model=Page[Delivery],
    summary="List a webhook's deliveries",
    responses=problem_responses(404),
)
def list_deliveries(
    id: WebhookId,
    principal: Admin,
    services: ServicesDep,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    """Every delivery attempt, newest first: event seq, attempt, status code or error,
    duration, time and the next attempt."""
    return render(services.webhooks.deliveries(webhook_id=id, limit=limit, cursor=cursor))
