"""Writing a store to the legacy layout (provider keys redacted)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.errors import InputValidationError, StorageError
from core.ids import IdKind, is_valid_id
from core.models import ProviderConfig
from core.ports import UnitOfWork
from core.services.base import PROVIDER_KEY, load_config, load_plan
from core.services.settings import view_of
from core.transfer.files import SUBDIRS

__all__ = ["export_layout"]

_LOG_PAGE = 1000


def export_layout(uow: UnitOfWork, root: Path) -> dict[str, int]:
    """Write what ``uow`` sees to ROOT (new or empty); returns the counts written."""
    _prepare_export_dir(root)
    counts = {"plan": 0, "drafts": 0, "approved": 0, "runs": 0, "log_lines": 0}
    plan = load_plan(uow)
    if plan.revision > 0:
        _write_json(root / "plan.json", plan.model_dump(mode="json"))
        counts["plan"] = 1
    _write_json(root / "config.json", load_config(uow).model_dump(mode="json"))
    stored = uow.kv.get(PROVIDER_KEY)
    provider = ProviderConfig.model_validate(stored) if stored else ProviderConfig()
    _write_json(root / "provider.json", view_of(provider).model_dump(mode="json"))
    for draft in uow.drafts.iter_all():
        _write_json(_item_path(root, IdKind.DRAFT, draft.id), draft.model_dump(mode="json"))
        counts["drafts"] += 1
    for item in uow.approved.iter_all():
        _write_json(_item_path(root, IdKind.APPROVED, item.id), item.model_dump(mode="json"))
        counts["approved"] += 1
    for run in list(uow.runs.iter_all()):
        lines = [line.model_dump(mode="json") for line in _all_log_lines(uow, run.id)]
        body = run.model_dump(mode="json") | {"log": lines}
        _write_json(_item_path(root, IdKind.RUN, run.id), body)
        counts["runs"] += 1
        counts["log_lines"] += len(lines)
    counts["config"] = 1
    counts["provider"] = 1
    return counts


def _prepare_export_dir(root: Path) -> None:
    try:
        if root.exists():
            if not root.is_dir():
                raise InputValidationError(f"{root} exists and is not a directory")
            if any(root.iterdir()):
                raise InputValidationError(
                    f"{root} is not empty; export into a new or empty directory"
                )
        root.mkdir(parents=True, exist_ok=True)
        for sub in SUBDIRS.values():
            (root / sub).mkdir()
    except OSError as exc:
        raise InputValidationError(f"cannot create {root}: {exc.strerror or exc}") from None


def _all_log_lines(uow: UnitOfWork, run_id: str) -> Iterator[Any]:
    after = 0
    while True:
        page = uow.logs.page(run_id, after=after, limit=_LOG_PAGE)
        yield from page
        if len(page) < _LOG_PAGE:
            return
        after = page[-1].seq


def _item_path(root: Path, kind: IdKind, item_id: str) -> Path:
    """``<root>/<kind dir>/<id>.json``; the id is validated before it becomes a file name."""
    if not is_valid_id(kind, item_id):
        raise StorageError(
            f"the store holds a malformed {SUBDIRS[kind]} id {item_id[:80]!r}; "
            "refusing to use it as a file name"
        )
    folder = root / SUBDIRS[kind]
    path = folder / f"{item_id}.json"
    if path.resolve().parent != folder.resolve():  # belt and braces: never leave DIRECTORY
        raise StorageError(f"refusing to write outside {root}")
    return path


def _write_json(path: Path, data: Any) -> None:
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise InputValidationError(f"cannot write {path}: {exc.strerror or exc}") from None
