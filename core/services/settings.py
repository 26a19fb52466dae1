"""Runtime config and provider config (keys never leave core; reads show ``api_key_set``;
stored keys are encrypted, see ``core.crypto``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core import audit
from core.auth import Principal
from core.crypto import SecretBox, SecretKeyMismatchError
from core.errors import InputValidationError, StorageError
from core.eventlog import emit
from core.events import SETTINGS_CHANGED, EventBus
from core.models import (
    Config,
    ConfigPatch,
    EventType,
    ProviderConfig,
    ProviderConfigIn,
    ProviderConfigView,
    ProviderEntry,
    ProviderEntryView,
)
from core.ports import UnitOfWork, UowFactory
from core.services.base import CONFIG_KEY, PROVIDER_KEY, Service, load_config
from core.timeutil import now_ts

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

__all__ = ["ConfigService", "ProviderConfigService", "view_of"]


class ConfigService(Service):
    def __init__(self, uow: UowFactory, events: EventBus | None = None) -> None:
        super().__init__(uow)
        self._events = events

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
            emit(uow, EventType.CONFIG_UPDATED, "config", changed=changes, actor=actor.actor)
            uow.commit()
        _settings_changed(self._events, "config")
        return config


def _settings_changed(events: EventBus | None, what: str) -> None:
    """Tell this process's worker to re-read the config and the provider."""
    if events is not None:
        events.publish(SETTINGS_CHANGED, what)


def view_of(config: ProviderConfig) -> ProviderConfigView:
    return ProviderConfigView(
        active=config.active,
        providers={
            name: ProviderEntryView(
                **entry.model_dump(exclude={"api_key", "api_key_encrypted", "api_key_error"}),
                api_key_set=bool(entry.api_key or entry.api_key_encrypted),
            )
            for name, entry in config.providers.items()
        },
    )


def _stored(uow: UnitOfWork) -> ProviderConfig:
    stored = uow.kv.get(PROVIDER_KEY)
    return ProviderConfig.model_validate(stored) if stored else ProviderConfig()


def _storable(config: ProviderConfig) -> dict[str, Any]:
    """The provider config as stored: keys only in their encrypted form."""
    return config.model_dump(
        mode="json", exclude={"providers": {"__all__": {"api_key", "api_key_error"}}}
    )


class ProviderConfigService(Service):
    """Provider config; api keys are stored encrypted with the ``SecretBox`` key and only
    ``load`` (for core adapters) decrypts them."""

    def __init__(
        self, uow: UowFactory, box: SecretBox | None = None, events: EventBus | None = None
    ) -> None:
        super().__init__(uow)
        self._box = box
        self._events = events

    @property
    def box(self) -> SecretBox:
        if self._box is None:
            raise StorageError("this process opened the store read-only: no secret key")
        return self._box

    def load(self) -> ProviderConfig:
        """The stored provider config with keys decrypted: for core adapters only, never
        rendered. A key that cannot be decrypted leaves ``api_key_error`` set instead, and
        the adapter raises it as a ``ProviderError`` when the key is needed."""
        with self._uow() as uow:
            config = _stored(uow)
        providers: dict[str, ProviderEntry] = {}
        for name, entry in config.providers.items():
            if entry.api_key_encrypted:
                try:
                    key = self.box.decrypt(entry.api_key_encrypted)
                    entry = entry.model_copy(update={"api_key": key})
                except (SecretKeyMismatchError, StorageError) as exc:
                    source = exc.args[0] if isinstance(exc, SecretKeyMismatchError) else exc
                    entry = entry.model_copy(
                        update={
                            "api_key": None,
                            "api_key_error": f"the api key of provider '{name}' cannot be "
                            f"decrypted with the secret key from {source}; restore the key "
                            "that encrypted it (OPS_SECRET_KEY or <data dir>/secret.key), or "
                            "set the provider's api_key again with PUT /ops/provider",
                        }
                    )
            providers[name] = entry
        return config.model_copy(update={"providers": providers})

    def get(self) -> ProviderConfigView:
        with self._uow() as uow:
            return view_of(_stored(uow))

    def seal(self, config: ProviderConfig) -> dict[str, Any]:
        """``config`` as stored, any plaintext ``api_key`` encrypted (for the import)."""
        providers = {name: self._sealed(entry) for name, entry in config.providers.items()}
        return _storable(config.model_copy(update={"providers": providers}))

    def _sealed(self, entry: ProviderEntry) -> ProviderEntry:
        if not entry.api_key:
            return entry
        return entry.model_copy(
            update={"api_key": None, "api_key_encrypted": self.box.encrypt(entry.api_key)}
        )

    def update(self, *, data: ProviderConfigIn, actor: Principal) -> ProviderConfigView:
        """Merge: providers not named are kept; for a named one, omitted fields keep their
        stored values (``null`` clears ``api_key``, ``api_key_env`` or ``temperature``);
        ``active`` must name an existing provider. A new ``api_key`` is stored encrypted."""
        with self._uow(write=True) as uow:
            current = _stored(uow)
            providers = dict(current.providers)
            for name, entry_in in data.providers.items():
                previous = providers.get(name)
                base = previous.model_dump() if previous is not None else entry_in.model_dump()
                given = entry_in.model_dump(exclude_unset=True)
                values: dict[str, Any] = base | given
                if "api_key" in given:
                    key = given["api_key"]
                    values["api_key_encrypted"] = self.box.encrypt(key) if key else None
                values["api_key"] = None
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
            uow.kv.put(PROVIDER_KEY, _storable(result), now=now_ts())
            audit.record(
                uow.audit,
                actor=actor.actor,
                action="provider.update",
                target="provider",
                detail={"active": active, "updated": sorted(data.providers)},
            )
            uow.commit()
        _settings_changed(self._events, "provider")
        return view_of(result)

    def encrypt_plaintext_keys(self) -> list[str]:
        """Encrypt any key a store written before encryption holds in plaintext (applied on
        every start of a writer); the names of the providers whose key it encrypted."""
        with self._uow() as uow:
            if not any(e.api_key for e in _stored(uow).providers.values()):
                return []
        with self._uow(write=True) as uow:
            current = _stored(uow)
            names = sorted(name for name, e in current.providers.items() if e.api_key)
            if not names:
                return []
            uow.kv.put(PROVIDER_KEY, self.seal(current), now=now_ts())
            audit.record(
                uow.audit,
                actor="system:secrets",
                action="provider.keys_encrypted",
                target="provider",
                detail={"providers": names},
            )
            uow.commit()
        return names

    def rotate(self, new: Fernet, *, actor: str) -> int:
        """Re-encrypt every stored key under ``new`` in one transaction; how many."""
        with self._uow(write=True) as uow:
            current = _stored(uow)
            providers: dict[str, ProviderEntry] = {}
            for name, entry in current.providers.items():
                if entry.api_key_encrypted:
                    try:
                        token = self.box.rewrap(entry.api_key_encrypted, new)
                    except SecretKeyMismatchError:
                        raise InputValidationError(
                            f"the api key of provider '{name}' cannot be decrypted with the "
                            f"current secret key ({self.box.source}); nothing was changed. "
                            "Set that provider's api_key again, then rotate"
                        ) from None
                    entry = entry.model_copy(update={"api_key_encrypted": token})
                elif entry.api_key:
                    entry = entry.model_copy(
                        update={
                            "api_key": None,
                            "api_key_encrypted": new.encrypt(entry.api_key.encode()).decode(),
                        }
                    )
                providers[name] = entry
            count = sum(1 for e in providers.values() if e.api_key_encrypted)
            if current.providers:
                config = current.model_copy(update={"providers": providers})
                uow.kv.put(PROVIDER_KEY, _storable(config), now=now_ts())
            webhooks = self._rewrap_webhook_secrets(uow, new)
            audit.record(
                uow.audit,
                actor=actor,
                action="secrets.rotate",
                target="provider",
                detail={"keys": count, "webhooks": webhooks},
            )
            uow.commit()
        return count

    def _rewrap_webhook_secrets(self, uow: UnitOfWork, new: Fernet) -> int:
        """Webhook signing secrets are under the same key: re-encrypt them in the same
        transaction."""
        found = uow.webhooks.secrets()
        for webhook_id, token in found:
            try:
                sealed = self.box.rewrap(token, new)
            except SecretKeyMismatchError:
                raise InputValidationError(
                    f"the signing secret of webhook {webhook_id} cannot be decrypted with the "
                    f"current secret key ({self.box.source}); nothing was changed. Delete that "
                    "webhook and create it again, then rotate"
                ) from None
            uow.webhooks.update(webhook_id, secret_encrypted=sealed)
        return len(found)
