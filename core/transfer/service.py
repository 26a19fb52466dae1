"""The transfer service: export to and import from the legacy layout (``core.transfer``)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from core import audit
from core.errors import InputValidationError
from core.ports import UowFactory
from core.services.base import Service
from core.services.settings import ProviderConfigService
from core.transfer.copy import CopyResult, copy_store
from core.transfer.export import export_layout
from core.transfer.load import load_items, read_head

__all__ = ["CopyTarget", "TransferService"]


class CopyTarget(Protocol):
    """An empty, migrated database to copy into (``core.storage.target``)."""

    @property
    def uow(self) -> UowFactory: ...

    @property
    def label(self) -> str: ...


class TransferService(Service):
    def __init__(
        self,
        uow: UowFactory,
        provider: ProviderConfigService,
        *,
        store_label: str,
        open_target: Callable[[str], AbstractContextManager[CopyTarget]],
    ) -> None:
        super().__init__(uow)
        self._provider = provider
        self._store_label = store_label
        self._open_target = open_target

    def copy_to(self, *, url: str, actor: str) -> CopyResult:
        """Copy the whole store into the empty database at ``url`` and verify it there."""
        with self._open_target(url) as target:
            with self._uow() as source, target.uow(write=True) as copy:
                result = copy_store(
                    source,
                    copy,
                    source_label=self._store_label,
                    target_label=target.label,
                    actor=actor,
                )
                copy.commit()
        return result

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
        head = read_head(root)
        if head.empty:
            raise InputValidationError(
                f"{root} holds no legacy layout (plan.json, config.json, provider.json, "
                "drafts/, approved/, runs/)"
            )
        if head.provider is not None:
            # Keys an older orchestrator kept in plaintext are stored encrypted.
            head.sealed_provider = self._provider.seal(head.provider)
        with self._uow(write=True) as uow:
            counts = load_items(uow, root, head, unhashed_as_drafts=unhashed_as_drafts)
            audit.record(
                uow.audit,
                actor=actor,
                action="store.import",
                target="store",
                detail={"source": root.name[:200], "counts": counts},
            )
            uow.commit()
        return counts
