"""The OpenAPI documents: the full one for people (``/openapi.json``, ``/docs``) and the
Actions-facing one per role (SPEC section 7), both generated from the app's real routes."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from core.auth import Action, required_role
from core.config import Settings
from core.models import Config, Role
from gateway.deps import BEARER_SCHEME, api_routes
from gateway.problems import PROBLEM_MEDIA_TYPE

__all__ = [
    "MAX_PARAMETER_DESCRIPTION",
    "MAX_SUMMARY",
    "actions_openapi",
    "full_openapi",
    "operations_for",
]

MAX_SUMMARY = 300
MAX_PARAMETER_DESCRIPTION = 700
OPS_PREFIX = "/ops"
_REF = "#/components/schemas/"
_HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
# Server-Sent Events are no use to an Action (it wants one JSON answer): streaming-only
# operations, and the parameters that turn a JSON route into a stream, are left out.
_STREAM_MEDIA = "text/event-stream"
_STREAM_PARAMETERS = frozenset({"follow", "Last-Event-ID"})


def _json_success(operation: dict[str, Any]) -> bool:
    return any(
        "application/json" in (response.get("content") or {})
        for status, response in operation.get("responses", {}).items()
        if status.startswith("2")
    )


def full_openapi(app: FastAPI) -> dict[str, Any]:
    """The whole API; error answers are documented as ``application/problem+json``."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    document = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
        servers=app.servers,
    )
    for item in document.get("paths", {}).values():
        for method, operation in item.items():
            if method not in _HTTP_METHODS:
                continue
            for status, response in operation.get("responses", {}).items():
                content = response.get("content")
                if status[:1] in "45" and content and "application/json" in content:
                    content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")
    app.openapi_schema = document
    return document


def operations_for(app: FastAPI, role: Role, config: Config | None = None) -> set[tuple[str, str]]:
    """(path, method) of every ``/ops`` operation ``role`` may call under ``config`` (the
    default config if None): with ``operator_can_generate`` an operator may write drafts.
    The agent executor's routes are for agent runners, not for Actions: never listed."""
    config = config if config is not None else Config()
    return {
        (info.path, info.method.lower())
        for info in api_routes(app)
        if info.path.startswith(OPS_PREFIX)
        and info.action is not None
        and info.action is not Action.AGENT_RUN
        and role.includes(required_role(info.action, config))
    }


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0]
    return cut + "…"


def _resolve(schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(_REF):
        target = copy.deepcopy(schemas.get(ref[len(_REF) :], {}))
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        return _resolve({**target, **rest}, schemas)
    return schema


def _flat_schema(schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    """A parameter schema without anyOf/oneOf/allOf, null types or references."""
    schema = dict(schema)
    for key in ("anyOf", "oneOf", "allOf"):
        variants = schema.pop(key, None)
        if variants is None:
            continue
        concrete = [v for v in variants if v.get("type") != "null"]
        chosen = concrete[0] if len(concrete) == 1 else {"type": "string"}
        schema = {**_resolve(chosen, schemas), **schema}
    schema = _resolve(schema, schemas)
    kind = schema.get("type")
    if isinstance(kind, list):
        concrete_types = [t for t in kind if t != "null"]
        schema["type"] = concrete_types[0] if concrete_types else "string"
    if "default" in schema and schema["default"] is None:
        del schema["default"]
    return schema


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """``X | None`` as ``X``: an optional body is already marked by ``required: false``."""
    variants = schema.get("anyOf")
    if isinstance(variants, list):
        concrete = [v for v in variants if v.get("type") != "null"]
        if len(concrete) == 1:
            return dict(concrete[0])
    return schema


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(_REF):
                yield value[len(_REF) :]
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _used_schemas(paths: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    used: dict[str, Any] = {}
    pending = list(_refs(paths))
    while pending:
        name = pending.pop()
        if name in used or name not in schemas:
            continue
        used[name] = schemas[name]
        pending.extend(_refs(schemas[name]))
    return dict(sorted(used.items()))


def actions_openapi(
    app: FastAPI, settings: Settings, role: Role, config: Config | None = None
) -> dict[str, Any]:
    """The document a GPT builder imports: only what ``role`` may call under ``config``,
    flat parameters, short texts, and ``x-openai-isConsequential`` on every operation."""
    full = full_openapi(app)
    schemas: dict[str, Any] = full.get("components", {}).get("schemas", {})
    allowed = operations_for(app, role, config)
    paths: dict[str, Any] = {}
    for path, item in full.get("paths", {}).items():
        for method, source in item.items():
            if (path, method) not in allowed or not _json_success(source):
                continue
            operation = copy.deepcopy(source)
            for response in operation.get("responses", {}).values():
                (response.get("content") or {}).pop(_STREAM_MEDIA, None)
            operation["summary"] = _clip(
                operation.get("summary") or operation["operationId"], MAX_SUMMARY
            )
            if operation.get("description"):
                operation["description"] = _clip(operation["description"], MAX_SUMMARY)
            parameters = []
            for parameter in operation.get("parameters", []):
                if parameter.get("name") in _STREAM_PARAMETERS:
                    continue
                parameter = dict(parameter)
                parameter["schema"] = _flat_schema(parameter.get("schema", {}), schemas)
                description = parameter.get("description") or parameter["schema"].pop(
                    "description", None
                )
                if description:
                    parameter["description"] = _clip(description, MAX_PARAMETER_DESCRIPTION)
                parameter["schema"].pop("description", None)
                parameters.append(parameter)
            if parameters:
                operation["parameters"] = parameters
            for media in operation.get("requestBody", {}).get("content", {}).values():
                if "schema" in media:
                    media["schema"] = _without_null(media["schema"])
            operation["security"] = [{BEARER_SCHEME: []}]
            operation["x-openai-isConsequential"] = method != "get"
            paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"OPS Trigger ({role.value})",
            "version": app.version,
            "description": (
                f"OPS Trigger operations for a token of role '{role.value}': read the plan, "
                "drafts, approved items and runs"
                + (
                    "; approve or reject drafts; start and cancel runs."
                    if role.includes(Role.OPERATOR)
                    else "."
                )
            ),
        },
        "servers": [{"url": settings.public_url.rstrip("/")}],
        "paths": paths,
        "components": {
            "schemas": _used_schemas(paths, schemas),
            "securitySchemes": {
                BEARER_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The OPS Trigger token (actions: read-only; operator: "
                    "approve and run).",
                }
            },
        },
        "security": [{BEARER_SCHEME: []}],
    }
