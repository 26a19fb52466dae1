"""The transfer service: export to and import from the legacy layout (``core.transfer``)."""

from __future__ import annotations

from pathlib import Path

from core import audit
from core.errors import InputValidationError
from core.ports import UowFactory
from core.services.base import Service
from core.services.settings import ProviderConfigService
from core.transfer.export import export_layout
from core.transfer.load import read_bundle, write_bundle

__all__ = ["TransferService"]


class TransferService(Service):
    def __init__(self, uow: UowFactory, provider: ProviderConfigService) -> None:
        super().__init__(uow)
        self._provider = provider

    def export_layout(self, *, directory: Path) -> dict[str, int]:
        """Write the store to DIRECTORY in the legacy layout (provider keys redacted)."""
        with self._uow() as uow:
            return export_layout(uow, Path(directory))

    def import_layout(
        self, *, directory: Path, actor: str, unhashed_as_drafts: bool = False
    ) -> dict[str, int]:
        """Read a legacy layout into the store in one transaction; returns what was imported.

        An approved file without ``content_sha256`` is refused (nothing proves what was
        approved), unless ``unhashed_as_drafts``: then it becomes a draft to review and
        approve again, and runs of it are skipped."""
        root = Path(directory)
        if not root.is_dir():
            raise InputValidationError(f"{root} is not a directory")
        bundle = read_bundle(root, unhashed_as_drafts=unhashed_as_drafts)
        if bundle.empty:
            raise InputValidationError(
                f"{root} holds no legacy layout (plan.json, config.json, provider.json, "
                "drafts/, approved/, runs/)"
            )
        if bundle.provider is not None:
            # Keys an older orchestrator kept in plaintext are stored encrypted.
            bundle.sealed_provider = self._provider.seal(bundle.provider)
        with self._uow(write=True) as uow:
            counts = write_bundle(uow, bundle)
            audit.record(
                uow.audit,
                actor=actor,
                action="store.import",
                target="store",
                detail={"source": root.name[:200], "counts": counts},
            )
            uow.commit()
        return counts
