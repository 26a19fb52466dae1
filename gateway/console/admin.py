"""Admin pages: config, provider (keys never shown), tokens (a new value shown once),
audit (paged, filtered, verified); webhooks have their own module (``webhooks``).

Forms are parsed into the same core input models as the API bodies (``ConfigPatch``,
``ProviderConfigIn``), so the same validation applies and the same service writes the
same audit entry.
"""

from __future__ import annotations

from typing import Any, Literal, get_args, get_origin

from pydantic import ValidationError
from starlette.responses import Response

from core.auth import Action
from core.errors import InputValidationError, OpsError
from core.models import Config, ConfigPatch, ProviderConfigIn, Role
from gateway.console.security import CONSOLE_PREFIX
from gateway.console.web import Console, Ctx, roles_below
from gateway.problems import status_of

__all__ = ["install_admin"]

# The form follows the config model: a checkbox per flag, a number per limit, a choice per
# enumerated field (such as default_executor), so a new config field needs no new form code.
_FLAGS = tuple(name for name, info in Config.model_fields.items() if info.annotation is bool)
_NUMBERS = tuple(name for name, info in Config.model_fields.items() if info.annotation is int)
_CHOICES = {
    name: [str(choice) for choice in get_args(info.annotation)]
    for name, info in Config.model_fields.items()
    if get_origin(info.annotation) is Literal
}
_PROVIDER_NUMBERS = {"timeout_s": float, "max_retries": int, "temperature": float}
AUDIT_PAGE = 50


def _invalid(exc: ValidationError) -> InputValidationError:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    return InputValidationError(f"{where}: {first.get('msg', 'invalid value')}")


def _number(ctx: Ctx, name: str, kind: type[int] | type[float]) -> int | float | None:
    text = ctx.field(name)
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        raise InputValidationError(f"{name} must be a number") from None


def config_patch(ctx: Ctx) -> ConfigPatch:
    """The config form as a ``ConfigPatch`` (every field: the form shows them all)."""
    values: dict[str, Any] = {name: ctx.field(name) == "on" for name in _FLAGS}
    for name in _NUMBERS:
        number = _number(ctx, name, int)
        if number is not None:
            values[name] = number
    for name in _CHOICES:
        if ctx.field(name):
            values[name] = ctx.field(name)
    try:
        return ConfigPatch.model_validate(values)
    except ValidationError as exc:
        raise _invalid(exc) from None


def provider_input(ctx: Ctx) -> ProviderConfigIn:
    """The provider form as a ``ProviderConfigIn``: an empty key field keeps the stored key."""
    name = ctx.field("name")
    entry: dict[str, Any] = {}
    for field in ("base_url", "model", "api_key_env"):
        if ctx.field(field):
            entry[field] = ctx.field(field)
    key = ctx.form.get("api_key") if ctx.form is not None else None
    if isinstance(key, str) and key:
        entry["api_key"] = key
    if ctx.field("clear_api_key") == "on":
        entry["api_key"] = None
    for field, kind in _PROVIDER_NUMBERS.items():
        number = _number(ctx, field, kind)
        if number is not None:
            entry[field] = number
    body: dict[str, Any] = {"providers": {name: entry}}
    if ctx.field("make_active") == "on":
        body["active"] = name
    try:
        return ProviderConfigIn.model_validate(body)
    except ValidationError as exc:
        raise _invalid(exc) from None


def install_admin(console: Console) -> None:
    @console.route("/admin/config", action=Action.READ)
    async def config_page(ctx: Ctx) -> Response:
        return ctx.render(
            "config.html", config=ctx.config, numbers=_NUMBERS, flags=_FLAGS, choices=_CHOICES
        )

    @console.route("/admin/config", action=Action.CONFIG_WRITE, methods=("POST",))
    async def config_save(ctx: Ctx) -> Response:
        try:
            saved = await ctx.call(
                ctx.services.config.update, patch=config_patch(ctx), actor=ctx.principal
            )
        except OpsError as exc:
            return ctx.render(
                "config.html", http_status=status_of(exc), config=ctx.config, numbers=_NUMBERS,
                flags=_FLAGS, choices=_CHOICES, problem=exc.message,
            )  # fmt: skip
        return ctx.render(
            "config.html",
            config=saved,
            numbers=_NUMBERS,
            flags=_FLAGS,
            choices=_CHOICES,
            saved=True,
        )

    async def provider_render(ctx: Ctx, status: int = 200, **values: Any) -> Response:
        view = await ctx.call(ctx.services.provider.get)
        return ctx.render("provider.html", http_status=status, provider=view, **values)

    @console.route("/admin/provider", action=Action.PROVIDER_READ)
    async def provider_page(ctx: Ctx) -> Response:
        return await provider_render(ctx)

    @console.route("/admin/provider", action=Action.PROVIDER_WRITE, methods=("POST",))
    async def provider_save(ctx: Ctx) -> Response:
        try:
            data = provider_input(ctx)
            await ctx.call(ctx.services.provider.update, data=data, actor=ctx.principal)
        except OpsError as exc:
            return await provider_render(ctx, status=status_of(exc), problem=exc.message)
        return await provider_render(ctx, saved=next(iter(data.providers)))

    async def tokens_render(ctx: Ctx, status: int = 200, **values: Any) -> Response:
        tokens = await ctx.call(ctx.services.access.list_tokens)
        roles = [role.value for role in roles_below(ctx.principal.role)]
        return ctx.render("tokens.html", http_status=status, tokens=tokens, roles=roles, **values)

    @console.route("/admin/tokens", action=Action.TOKENS)
    async def tokens_page(ctx: Ctx) -> Response:
        return await tokens_render(ctx)

    @console.route("/admin/tokens", action=Action.TOKENS, methods=("POST",))
    async def token_create(ctx: Ctx) -> Response:
        try:
            role = Role(ctx.field("role"))
        except ValueError:
            return await tokens_render(ctx, status=422, problem="Choose a role for the token.")
        try:
            info, value = await ctx.call(
                ctx.services.access.create_token,
                role=role,
                name=ctx.field("name"),
                actor=ctx.principal.actor,
            )
        except OpsError as exc:
            return await tokens_render(ctx, status=status_of(exc), problem=exc.message)
        return await tokens_render(ctx, created=info, created_value=value)

    @console.route("/admin/tokens/revoke", action=Action.TOKENS, methods=("POST",))
    async def token_revoke(ctx: Ctx) -> Response:
        name = ctx.field("name")
        try:
            await ctx.call(ctx.services.access.revoke_token, name=name, actor=ctx.principal.actor)
        except OpsError as exc:
            return await tokens_render(ctx, status=status_of(exc), problem=exc.message)
        return await tokens_render(ctx, revoked=name)

    @console.route("/admin/audit", action=Action.AUDIT_READ)
    async def audit_page(ctx: Ctx) -> Response:
        actor, action = ctx.query("actor"), ctx.query("action")
        page = await ctx.call(
            ctx.services.maintenance.audit_page,
            limit=AUDIT_PAGE,
            cursor=ctx.query("cursor"),
            actor=actor,
            action=action,
        )
        verified = None
        if ctx.query("verify") == "1":
            verified = await ctx.call(ctx.services.maintenance.verify_audit)
        return ctx.render(
            "audit.html",
            page=page,
            actor=actor or "",
            action=action or "",
            verified=verified,
            paged=ctx.query("cursor") is not None,
        )

    @console.route("/admin", action=Action.READ)
    async def admin_index(ctx: Ctx) -> Response:
        return ctx.redirect(f"{CONSOLE_PREFIX}/admin/config")
