"""``ops-trigger secrets rotate``: re-encrypt every stored provider key under a new secret
key (the steps and why they survive a crash: ``core.crypto``)."""

from __future__ import annotations

import os
from collections.abc import Callable

from cryptography.fernet import Fernet

from core.config import Settings
from core.crypto import new_secret_key, parse_secret_key, write_key_file
from core.errors import InputValidationError
from core.services.settings import ProviderConfigService

__all__ = ["SecretKeyService"]

_ENV_STEPS = (
    "make a new key with 'ops-trigger secrets new-key', run "
    "'OPS_NEW_SECRET_KEY=<new key> ops-trigger secrets rotate', then set OPS_SECRET_KEY to "
    "the new key for every process that uses this store (gateways, workers) and restart them"
)


class SecretKeyService:
    """Rotation of the secret key; ``scrub`` runs after the keys were rewritten (on SQLite it
    empties the WAL, so no page with an old ciphertext stays behind)."""

    def __init__(
        self, provider: ProviderConfigService, settings: Settings, scrub: Callable[[], None]
    ) -> None:
        self._provider = provider
        self._settings = settings
        self._scrub = scrub

    def rotate(self, *, actor: str) -> str:
        """Rotate, and say what happened and what (if anything) is left to do."""
        return _rotate(self._provider, self._settings, self._scrub, actor=actor)


def _rotate(
    provider: ProviderConfigService, settings: Settings, scrub: Callable[[], None], *, actor: str
) -> str:
    box = provider.box
    if box.from_env:
        if settings.new_secret_key is None:
            raise InputValidationError(
                f"OPS_SECRET_KEY is set, so the secret key lives in your environment: {_ENV_STEPS}"
            )
        new = parse_secret_key(
            settings.new_secret_key.get_secret_value(), where="OPS_NEW_SECRET_KEY"
        )
        count = provider.rotate(new, actor=actor)
        scrub()
        return (
            f"Re-encrypted {count} provider key(s) under OPS_NEW_SECRET_KEY. Now set "
            "OPS_SECRET_KEY to that value (and unset OPS_NEW_SECRET_KEY) for every process "
            "that uses this store, gateways and workers, and restart them: the old key opens "
            "nothing any more."
        )
    key = new_secret_key()
    pending = box.pending_path
    write_key_file(pending, key, exclusive=False)
    try:
        count = provider.rotate(Fernet(key.encode("ascii")), actor=actor)
    except BaseException:
        pending.unlink(missing_ok=True)
        raise
    os.replace(pending, box.path)
    scrub()
    return (
        f"Re-encrypted {count} provider key(s); the new secret key is in {box.path} "
        "(mode 0600) and the old one is gone. Running gateways and workers read it on their "
        "next use."
    )
