"""Writing a store to the legacy layout (provider keys redacted), streaming.

Rows are read in batches (a server-side cursor on PostgreSQL) and written as they come:
memory stays flat whatever the size of the store. Item files are compact JSON from the C
encoder (keys sorted); the three small files are indented for people. A run's log lines
come from one query over every log, read alongside the runs in the same (id) order.

Creating a file is most of the cost of a small one, and the system calls release the GIL:
the files are created on a thread of their own (``_FileSink``, a bounded queue of batches)
while the next rows are read and encoded.
"""

from __future__ import annotations

import json
import os
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.errors import InputValidationError, StorageError
from core.ids import IdKind, is_valid_id
from core.models import APPROVED_COMPUTED, Approved, Draft, LogLine, ProviderConfig, Run
from core.ports import UnitOfWork
from core.services.base import PROVIDER_KEY, load_config, load_plan
from core.services.settings import view_of
from core.transfer.files import SUBDIRS

__all__ = ["export_layout"]

_DRAFT_FIELDS = tuple(Draft.model_fields)
_APPROVED_FIELDS = tuple(f for f in Approved.model_fields if f not in APPROVED_COMPUTED)
_RUN_FIELDS = tuple(Run.model_fields)
_LOG_FIELDS = tuple(LogLine.model_fields)
_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
_encode = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode


def export_layout(uow: UnitOfWork, root: Path) -> dict[str, int]:
    """Write what ``uow`` sees to ROOT (new or empty); returns the counts written."""
    _prepare_export_dir(root)
    counts = {"plan": 0, "drafts": 0, "approved": 0, "runs": 0, "log_lines": 0}
    plan = load_plan(uow)
    if plan.revision > 0:
        _write_pretty(root / "plan.json", plan.model_dump(mode="json"))
        counts["plan"] = 1
    _write_pretty(root / "config.json", load_config(uow).model_dump(mode="json"))
    stored = uow.kv.get(PROVIDER_KEY)
    provider = ProviderConfig.model_validate(stored) if stored else ProviderConfig()
    _write_pretty(root / "provider.json", view_of(provider).model_dump(mode="json"))
    counts["config"] = 1
    counts["provider"] = 1

    sink = _FileSink()
    try:
        _write_items(uow, root, sink, counts)
    except BaseException:
        sink.abandon()
        raise
    sink.close()
    return counts


def _write_items(uow: UnitOfWork, root: Path, sink: _FileSink, counts: dict[str, int]) -> None:
    writer = _Writer(root, IdKind.DRAFT, sink)
    for row in uow.bulk.rows("drafts", columns=_DRAFT_FIELDS, order_by=("seq",)):
        writer.write(row)
    counts["drafts"] = writer.count
    writer = _Writer(root, IdKind.APPROVED, sink)
    for row in uow.bulk.rows("approved", columns=_APPROVED_FIELDS, order_by=("seq",)):
        writer.write(row)
    counts["approved"] = writer.count
    writer = _Writer(root, IdKind.RUN, sink)
    logs = _logs_by_run(uow)
    pending: tuple[str, dict[str, Any]] | None = next(logs, None)
    for row in uow.bulk.rows("runs", columns=_RUN_FIELDS, order_by=("id",)):
        lines: list[dict[str, Any]] = []
        # Both are in id order: skip the logs of runs that sort before this one.
        while pending is not None and pending[0] <= row["id"]:
            if pending[0] == row["id"]:
                lines.append(pending[1])
            pending = next(logs, None)
        row["log"] = lines
        writer.write(row)
        counts["log_lines"] += len(lines)
    counts["runs"] = writer.count


def _logs_by_run(uow: UnitOfWork) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every log line as ``(run id, line)``, by run id then line number."""
    columns = ("run_id", *_LOG_FIELDS)
    for row in uow.bulk.rows("run_logs", columns=columns, order_by=("run_id", "seq")):
        yield row.pop("run_id"), row


class _FileSink:
    """New files, created on a thread of its own in the order given. The first failure is
    raised by the next ``put`` (or by ``close``); nothing after it is written."""

    BATCH = 64  # files per hand-over
    DEPTH = 16  # batches waiting at most (memory stays bounded)

    def __init__(self) -> None:
        self._queue: queue.Queue[list[tuple[str, bytes]] | None] = queue.Queue(self.DEPTH)
        self._batch: list[tuple[str, bytes]] = []
        self._error: InputValidationError | None = None
        self._thread = threading.Thread(target=self._run, name="export files", daemon=True)
        self._thread.start()

    def put(self, path: str, data: bytes) -> None:
        self._batch.append((path, data))
        if len(self._batch) >= self.BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._error is not None:
            raise self._error
        if self._batch:
            self._queue.put(self._batch)
            self._batch = []

    def close(self) -> None:
        """Write what is left and wait for it; raises the first failure."""
        try:
            self._flush()
        finally:
            self._queue.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error

    def abandon(self) -> None:
        """Stop (the caller is raising): what is still queued is written, nothing more."""
        self._batch = []
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (batch := self._queue.get()) is not None:
            if self._error is not None:
                continue  # drain: the producer raises the failure
            try:
                for path, data in batch:
                    _write_bytes(path, data)
            except InputValidationError as exc:
                self._error = exc


class _Writer:
    """Item files of one kind: ``<root>/<kind dir>/<id>.json``."""

    def __init__(self, root: Path, kind: IdKind, sink: _FileSink) -> None:
        self.kind = kind
        self.folder = os.fspath(root / SUBDIRS[kind]) + os.sep
        self.count = 0
        self._sink = sink

    def write(self, row: dict[str, Any]) -> None:
        item_id = row["id"]
        # The id becomes a file name: only a well-formed id (no separator, no "..") does,
        # so every file lands in the folder made for it.
        if not is_valid_id(self.kind, item_id):
            raise StorageError(
                f"the store holds a malformed {SUBDIRS[self.kind]} id {str(item_id)[:80]!r}; "
                "refusing to use it as a file name"
            )
        path = f"{self.folder}{item_id}.json"
        self._sink.put(path, (_encode(row) + "\n").encode("utf-8"))
        self.count += 1


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


def _write_pretty(path: Path, data: Any) -> None:
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    _write_bytes(os.fspath(path), text.encode("utf-8"))


def _write_bytes(path: str, data: bytes) -> None:
    """A new file (never through a link, never over an existing file)."""
    try:
        fd = os.open(path, _OPEN_FLAGS, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
    except OSError as exc:
        raise InputValidationError(f"cannot write {path}: {exc.strerror or exc}") from None
