"""Runtime config and provider config (keys never leave core; reads show ``api_key_set``)."""

from __future__ import annotations

from typing import Any

from core import audit
from core.auth import Principal
from core.errors import InputValidationError
from core.models import (
    Config,
    ConfigPatch,
    ProviderConfig,
    ProviderConfigIn,
    ProviderConfigView,
    ProviderEntry,
    ProviderEntryView,
)
from core.services.base import CONFIG_KEY, PROVIDER_KEY, Service, load_config
from core.timeutil import now_ts

__all__ = ["ConfigService", "ProviderConfigService", "view_of"]


class ConfigService(Service):
    def get(self) -> Config:
        with self._uow() as uow:
            return load_config(uow)

    def update(self, *, patch: ConfigPatch, actor: Principal) -> Config:
        changes = patch.model_dump(exclude_none=True)
        with self._uow(write=True) as uow:
            config = load_config(uow).model_copy(update=changes)
            config = Config.model_validate(config.model_dump())
            uow.kv.put(CONFIG_KEY, config.model_dump(mode="json"), now=now_ts())
            audit.record(
                uow.audit,
                actor=actor.actor,
                action="config.update",
                target="config",
                detail={"changed": changes},
            )
            uow.commit()
        return config


def view_of(config: ProviderConfig) -> ProviderConfigView:
    return ProviderConfigView(
        active=config.active,
        providers={
            name: ProviderEntryView(
                **entry.model_dump(exclude={"api_key"}), api_key_set=bool(entry.api_key)
            )
            for name, entry in config.providers.items()
        },
    )


class ProviderConfigService(Service):
    def load(self) -> ProviderConfig:
        """The stored provider config with keys: for core adapters only, never rendered."""
        with self._uow() as uow:
            stored = uow.kv.get(PROVIDER_KEY)
        return ProviderConfig.model_validate(stored) if stored else ProviderConfig()

    def get(self) -> ProviderConfigView:
        return view_of(self.load())

    def update(self, *, data: ProviderConfigIn, actor: Principal) -> ProviderConfigView:
        """Merge: providers not named are kept; for a named one, omitted fields keep their
        stored values (``null`` clears ``api_key``, ``api_key_env`` or ``temperature``);
        ``active`` must name an existing provider."""
        with self._uow(write=True) as uow:
            stored = uow.kv.get(PROVIDER_KEY)
            current = ProviderConfig.model_validate(stored) if stored else ProviderConfig()
            providers = dict(current.providers)
            for name, entry_in in data.providers.items():
                previous = providers.get(name)
                base = previous.model_dump() if previous is not None else entry_in.model_dump()
                values: dict[str, Any] = base | entry_in.model_dump(exclude_unset=True)
                missing = [key for key in ("base_url", "model") if not values.get(key)]
                if missing:
                    raise InputValidationError(
                        f"provider '{name}' needs {' and '.join(missing)}",
                        detail={"provider": name, "missing": missing},
                    )
                providers[name] = ProviderEntry.model_validate(values)
            active = data.active if "active" in data.model_fields_set else current.active
            if active is not None and active not in providers:
                raise InputValidationError(
                    f"active provider '{active}' is not configured",
                    detail={"active": active, "providers": sorted(providers)},
                )
            if active is None and len(providers) == 1:
                active = next(iter(providers))
            result = ProviderConfig(active=active, providers=providers)
            uow.kv.put(PROVIDER_KEY, result.model_dump(mode="json"), now=now_ts())
            audit.record(
                uow.audit,
                actor=actor.actor,
                action="provider.update",
                target="provider",
                detail={"active": active, "updated": sorted(data.providers)},
            )
            uow.commit()
        return view_of(result)
