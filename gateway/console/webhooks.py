"""The webhooks page (admin): list with delivery status, create (the signing secret shown
once), delete, enable again after it was disabled, and one webhook's delivery attempts.
The same service as ``/ops/webhooks``."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.responses import Response

from core.auth import Action
from core.errors import InputValidationError, OpsError
from core.models import EVENT_TYPES
from core.webhooks.models import WebhookFormat, WebhookIn
from gateway.console.web import Console, Ctx
from gateway.problems import status_of

__all__ = ["install_webhooks"]

PAGE_SIZE = 50


def webhook_input(ctx: Ctx) -> WebhookIn:
    """The create form as a ``WebhookIn`` (an empty secret field: one is generated)."""
    types = ctx.form.getlist("types") if ctx.form is not None else []
    body: dict[str, Any] = {
        "url": ctx.field("url"),
        "types": [t for t in types if isinstance(t, str)],
        "format": ctx.field("format") or WebhookFormat.STANDARD.value,
    }
    if ctx.field("secret"):
        body["secret"] = ctx.field("secret")
    try:
        return WebhookIn.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        raise InputValidationError(f"{where}: {first.get('msg', 'invalid value')}") from None


def install_webhooks(console: Console) -> None:
    async def listing(ctx: Ctx, http_status: int = 200, **values: Any) -> Response:
        page = await ctx.call(
            ctx.services.webhooks.list, limit=PAGE_SIZE, cursor=ctx.query("cursor")
        )
        return ctx.render(
            "webhooks.html",
            http_status=http_status,
            page=page,
            event_types=EVENT_TYPES,
            formats=[f.value for f in WebhookFormat],
            **values,
        )

    @console.route("/admin/webhooks", action=Action.WEBHOOKS)
    async def webhooks_page(ctx: Ctx) -> Response:
        return await listing(ctx)

    @console.route("/admin/webhooks", action=Action.WEBHOOKS, methods=("POST",))
    async def webhook_create(ctx: Ctx) -> Response:
        try:
            created = await ctx.call(
                ctx.services.webhooks.create, data=webhook_input(ctx), actor=ctx.principal
            )
        except OpsError as exc:
            return await listing(ctx, status_of(exc), problem=exc.message)
        return await listing(ctx, created=created)

    @console.route("/admin/webhooks/{id}/delete", action=Action.WEBHOOKS, methods=("POST",))
    async def webhook_delete(ctx: Ctx) -> Response:
        webhook_id = ctx.request.path_params["id"]
        try:
            await ctx.call(ctx.services.webhooks.delete, webhook_id=webhook_id,
                           actor=ctx.principal)  # fmt: skip
        except OpsError as exc:
            return await listing(ctx, status_of(exc), problem=exc.message)
        return await listing(ctx, deleted=webhook_id)

    @console.route("/admin/webhooks/{id}/enable", action=Action.WEBHOOKS, methods=("POST",))
    async def webhook_enable(ctx: Ctx) -> Response:
        webhook_id = ctx.request.path_params["id"]
        try:
            await ctx.call(ctx.services.webhooks.enable, webhook_id=webhook_id,
                           actor=ctx.principal)  # fmt: skip
        except OpsError as exc:
            return await listing(ctx, status_of(exc), problem=exc.message)
        return await listing(ctx, enabled=webhook_id)

    @console.route("/admin/webhooks/{id}", action=Action.WEBHOOKS)
    async def webhook_page(ctx: Ctx) -> Response:
        webhook_id = ctx.request.path_params["id"]
        webhook = await ctx.call(ctx.services.webhooks.get, webhook_id=webhook_id)
        deliveries = await ctx.call(
            ctx.services.webhooks.deliveries,
            webhook_id=webhook_id,
            limit=PAGE_SIZE,
            cursor=ctx.query("cursor"),
        )
        return ctx.render(
            "webhook.html",
            webhook=webhook,
            deliveries=deliveries,
            paged=ctx.query("cursor") is not None,
        )
