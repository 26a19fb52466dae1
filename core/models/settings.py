"""Runtime config and provider config."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from core.models.base import Executor, Name, _In, _Out

__all__ = [
    "Config",
    "ConfigPatch",
    "ModelList",
    "ProviderConfig",
    "ProviderConfigIn",
    "ProviderConfigView",
    "ProviderEntry",
    "ProviderEntryIn",
    "ProviderEntryView",
    "ProviderHealth",
]

# --- config and provider -------------------------------------------------------------------


class Config(_Out):
    default_auto_run: bool = False
    operator_can_generate: bool = False
    prevent_self_approval: bool = False
    max_concurrent_runs: Annotated[int, Field(ge=1, le=256)] = 4
    run_timeout_s: Annotated[int, Field(ge=1, le=86_400)] = 300
    max_attempts: Annotated[int, Field(ge=1, le=20)] = 2
    default_executor: Executor = "provider"
    event_ttl_days: Annotated[int, Field(ge=1, le=36_500)] = 7
    draft_ttl_days: Annotated[int, Field(ge=1, le=36_500)] = 7
    run_ttl_days: Annotated[int, Field(ge=1, le=36_500)] = 30
    # Approval policies (SPEC section 19).
    approvals_required: Annotated[int, Field(ge=1, le=6)] = 1
    approval_ttl_hours: Annotated[int, Field(ge=1, le=8760)] = 72
    approved_ttl_days: Annotated[int, Field(ge=0, le=36_500)] = 30  # 0: never


class ConfigPatch(_In):
    """Body of ``PUT /ops/config``: any subset; omitted fields keep their values."""

    default_auto_run: bool | None = None
    operator_can_generate: bool | None = None
    prevent_self_approval: bool | None = None
    max_concurrent_runs: Annotated[int, Field(ge=1, le=256)] | None = None
    run_timeout_s: Annotated[int, Field(ge=1, le=86_400)] | None = None
    max_attempts: Annotated[int, Field(ge=1, le=20)] | None = None
    default_executor: Executor | None = None
    event_ttl_days: Annotated[int, Field(ge=1, le=36_500)] | None = None
    draft_ttl_days: Annotated[int, Field(ge=1, le=36_500)] | None = None
    run_ttl_days: Annotated[int, Field(ge=1, le=36_500)] | None = None
    approvals_required: Annotated[int, Field(ge=1, le=6)] | None = None
    approval_ttl_hours: Annotated[int, Field(ge=1, le=8760)] | None = None
    approved_ttl_days: Annotated[int, Field(ge=0, le=36_500)] | None = None


_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"


class ProviderEntry(_Out):
    """One stored provider; ``api_key`` never leaves core."""

    type: Literal["openai_compat"] = "openai_compat"
    base_url: str
    model: str
    api_key: str | None = None
    api_key_env: str | None = None
    timeout_s: float = 60.0
    max_retries: int = 2
    temperature: float | None = None
    # As stored: the key encrypted with the secret key (``api_key`` is never stored), and,
    # in memory only, why a stored key could not be decrypted.
    api_key_encrypted: str | None = None
    api_key_error: str | None = None


class ProviderEntryIn(_In):
    """One provider in ``PUT /ops/provider``: fields merge over the stored entry (an omitted
    field keeps its stored value, ``null`` clears an optional one); a new provider needs
    ``base_url`` and ``model``."""

    type: Literal["openai_compat"] = "openai_compat"
    base_url: Annotated[str, Field(min_length=1, max_length=2000)] | None = None
    model: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    api_key: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    api_key_env: Annotated[str, Field(pattern=_ENV_NAME)] | None = None
    timeout_s: Annotated[float, Field(gt=0, le=3600)] = 60.0
    max_retries: Annotated[int, Field(ge=0, le=10)] = 2
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        parts = urlsplit(value)
        if "@" in parts.netloc:  # it would be shown back: keys belong in api_key(_env)
            raise ValueError("base_url must not carry credentials; use api_key or api_key_env")
        if parts.query or parts.fragment or not parts.hostname:
            raise ValueError("base_url must be scheme://host[:port][/path], no query or fragment")
        return value


class ProviderConfig(_Out):
    active: str | None = None
    providers: dict[str, ProviderEntry] = {}

    def active_entry(self) -> tuple[str, ProviderEntry] | None:
        if self.active and self.active in self.providers:
            return self.active, self.providers[self.active]
        return None


class ProviderConfigIn(_In):
    active: Name | None = None
    providers: dict[Name, ProviderEntryIn] = {}


class ProviderEntryView(_Out):
    type: str
    base_url: str
    model: str
    api_key_env: str | None = None
    api_key_set: bool
    timeout_s: float
    max_retries: int
    temperature: float | None = None


class ProviderConfigView(_Out):
    active: str | None = None
    providers: dict[str, ProviderEntryView] = {}


class ProviderHealth(_Out):
    provider: str | None
    ok: bool
    latency_ms: int | None = None
    error: str | None = None


class ModelList(_Out):
    items: list[str]
