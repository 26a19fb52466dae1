"""The legacy file layout of SPEC section 3: export a store to it and import it back.

Layout of DIRECTORY::

    plan.json              the plan
    config.json            the runtime config
    provider.json          provider config; keys redacted (``api_key_set`` instead of ``api_key``)
    drafts/<id>.json       one draft per file
    approved/<id>.json     one approved item per file
    runs/<id>.json         one run per file, its log lines under ``log``

Import rules (also for files written by older orchestrators):

- All or nothing: every file is read and checked first, then everything is written in one
  write transaction with one ``store.import`` audit entry carrying the counts. A file that is
  not JSON, has wrong types, an id that is not an id (path separators, NUL, ...), or a field
  over its limit stops the import with an ``InputValidationError`` naming the file; nothing
  is written.
- Items whose id already exists in the store are skipped and counted (``skipped_*``); the
  plan, config and provider config are imported only into a store that has none yet.
- Legacy ids (``d_1707000000000_ab12cd``), statuses, missing optional fields and timestamps
  given as epoch seconds, epoch milliseconds or ISO strings are accepted.
- An approved item without ``content_sha256`` is refused: nothing proves what was approved.
  With ``unhashed_as_drafts`` (``import --unhashed-as-drafts``) it becomes a ``draft`` to
  review and approve again, and its runs are skipped. One whose stored hash does not match
  its prompt, content, scope (and context, for ``hash_version`` 2) is refused, never
  trusted. ``hash_version`` absent means 1 (files from before ``context`` was hashed); each
  item keeps its version, and the export writes it.
- Nothing is read through a symbolic link: a link (even a broken one) in the directory is an
  error naming it. Numbers beyond 20 digits or out of float range, and text that is not
  valid Unicode (a lone surrogate), are errors naming the file and field.
- Runs left ``pending`` or ``running`` by the old system are imported as ``cancelled``, with
  the reason in ``error`` and a warning log line: an import never makes anything execute.
  (``cancelled`` rather than ``error``: nothing failed, the run was simply not carried over.)
  Create a new run from the approved item to execute it again.
- Timestamps are kept as the files give them (a finished run without ``finished_at`` gets the
  latest time its file does give). Rejected/error drafts and finished runs older than
  ``draft_ttl_days``/``run_ttl_days`` are therefore deleted by the next cleanup pass; the
  counts report them (``expire_at_next_cleanup_drafts``/``_runs``) and the CLI says so.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from core import audit
from core.canonical import (
    HASH_VERSION,
    HASH_VERSIONS,
    canonical_json,
    content_sha256,
    sha256_hex,
)
from core.errors import InputValidationError, InvalidIdError, OpsError, StorageError
from core.ids import IdKind, is_valid_id, validate_id, validate_name
from core.models import (
    MAX_CONTENT_BYTES,
    MAX_CONTEXT_BYTES,
    MAX_PROMPT_CHARS,
    Approved,
    Config,
    Draft,
    DraftStatus,
    Generation,
    Plan,
    PlanIn,
    ProviderConfig,
    ProviderEntry,
    ProviderEntryIn,
    Run,
    RunStatus,
    Scope,
    Task,
)
from core.services.base import CONFIG_KEY, PLAN_ID, PROVIDER_KEY, load_config, load_plan
from core.services.drafts import record_revision
from core.services.plan import validate_tasks
from core.services.settings import view_of
from core.storage.sql import SqlUnitOfWork
from core.text import UNENCODABLE, find_unencodable
from core.timeutil import format_ts, now_ts, parse_ts, ts_after

if TYPE_CHECKING:
    from core.bootstrap import Services

__all__ = ["export_store", "import_store"]

T = TypeVar("T")

MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_OUTPUT_CHARS = 4_000_000
MAX_TEXT_CHARS = 64 * 1024
MAX_LOG_LINES = 100_000
MAX_LOG_MSG = 8000
MAX_NUMBER_DIGITS = 20
LEGACY_ACTOR = "legacy:unknown"
_LOG_PAGE = 1000
_SUBDIRS = {IdKind.DRAFT: "drafts", IdKind.APPROVED: "approved", IdKind.RUN: "runs"}
_LEVELS = {
    "debug": "debug",
    "info": "info",
    "warn": "warning",
    "warning": "warning",
    "error": "error",
    "err": "error",
    "critical": "error",
    "fatal": "error",
}
_RUN_STATUS_ALIASES = {"canceled": "cancelled"}
_DRAFT_STATUSES = frozenset(s.value for s in DraftStatus)
_CLEANED_DRAFTS = frozenset({DraftStatus.REJECTED, DraftStatus.ERROR})
_RUN_STATUSES = frozenset(s.value for s in RunStatus)


class _BadFile(Exception):
    """A problem with one field of one file; the caller adds the file name."""


# --- export -----------------------------------------------------------------------------


def export_store(services: Services, directory: Path) -> dict[str, int]:
    """Write the store to DIRECTORY in the legacy layout (provider keys redacted)."""
    root = Path(directory)
    _prepare_export_dir(root)
    counts = {"plan": 0, "drafts": 0, "approved": 0, "runs": 0, "log_lines": 0}
    with SqlUnitOfWork(services.engine) as uow:
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
        for sub in _SUBDIRS.values():
            (root / sub).mkdir()
    except OSError as exc:
        raise InputValidationError(f"cannot create {root}: {exc.strerror or exc}") from None


def _all_log_lines(uow: SqlUnitOfWork, run_id: str) -> Iterator[Any]:
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
            f"the store holds a malformed {_SUBDIRS[kind]} id {item_id[:80]!r}; "
            "refusing to use it as a file name"
        )
    folder = root / _SUBDIRS[kind]
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


# --- import: reading and checking files ------------------------------------------------------


@dataclass
class _RunIn:
    run: Run
    stored_sha256: str | None
    log: list[tuple[str, str, str]]
    cancelled_from: str | None


@dataclass
class _Bundle:
    plan: Plan | None = None
    config: Config | None = None
    provider: ProviderConfig | None = None
    # Providers whose file says a key was set (``api_key_set``) but carries none: an export.
    keys_left_out: list[str] = field(default_factory=list)
    drafts: list[Draft] = field(default_factory=list)
    approved: list[tuple[Approved, bool]] = field(default_factory=list)
    # Approved files without content_sha256, imported as drafts (``unhashed_as_drafts``).
    unhashed: list[Approved] = field(default_factory=list)
    runs: list[_RunIn] = field(default_factory=list)
    sealed_provider: dict[str, Any] | None = None

    @property
    def empty(self) -> bool:
        return not (
            self.plan
            or self.config
            or self.provider
            or self.drafts
            or self.approved
            or self.unhashed
            or self.runs
        )


def import_store(
    services: Services, directory: Path, *, actor: str, unhashed_as_drafts: bool = False
) -> dict[str, int]:
    """Read a legacy layout into the store in one transaction; returns what was imported.

    An approved file without ``content_sha256`` is refused (nothing proves what was
    approved), unless ``unhashed_as_drafts``: then it becomes a draft to review and approve
    again, and runs of it are skipped."""
    root = Path(directory)
    if not root.is_dir():
        raise InputValidationError(f"{root} is not a directory")
    bundle = _read_bundle(root, unhashed_as_drafts=unhashed_as_drafts)
    if bundle.empty:
        raise InputValidationError(
            f"{root} holds no legacy layout (plan.json, config.json, provider.json, "
            "drafts/, approved/, runs/)"
        )
    if bundle.provider is not None:
        # Keys an older orchestrator kept in plaintext are stored encrypted.
        bundle.sealed_provider = services.provider.seal(bundle.provider)
    with SqlUnitOfWork(services.engine, write=True) as uow:
        counts = _write_bundle(uow, bundle)
        audit.record(
            uow.audit,
            actor=actor,
            action="store.import",
            target="store",
            detail={"source": root.name[:200], "counts": counts},
        )
        uow.commit()
    return counts


def _read_bundle(root: Path, *, unhashed_as_drafts: bool) -> _Bundle:
    bundle = _Bundle()
    bundle.plan = _read_single(root, "plan.json", _parse_plan)
    bundle.config = _read_single(root, "config.json", _parse_config)
    bundle.provider = _read_single(root, "provider.json", _parse_provider)
    if bundle.provider is not None:
        raw = _load_json(root / "provider.json").get("providers")
        entries: dict[str, Any] = raw if isinstance(raw, dict) else {}
        bundle.keys_left_out = sorted(
            name
            for name, entry in bundle.provider.providers.items()
            if not entry.api_key
            and not entry.api_key_env
            and isinstance(entries.get(name), dict)
            and entries[name].get("api_key_set") is True
        )
    for path in _item_files(root, IdKind.DRAFT):
        bundle.drafts.append(_parse_file(root, path, partial(_parse_draft, stem=path.stem)))
    for path in _item_files(root, IdKind.APPROVED):
        item, computed = _parse_file(root, path, partial(_parse_approved, stem=path.stem))
        if not computed:
            bundle.approved.append((item, computed))
        elif unhashed_as_drafts:
            bundle.unhashed.append(item)
        else:
            label = path.relative_to(root).as_posix()
            raise InputValidationError(
                f"{label}: no content_sha256, so nothing proves what was approved; it is not "
                "imported as approved. To import it as a draft to review and approve again, "
                "run the import with --unhashed-as-drafts",
                detail={"file": label},
            )
    for path in _item_files(root, IdKind.RUN):
        bundle.runs.append(_parse_file(root, path, partial(_parse_run, stem=path.stem)))
    seen: dict[str, str] = {}
    for item in [a for a, _ in bundle.approved] + bundle.unhashed:
        if item.draft_id in seen:
            raise InputValidationError(
                f"approved/{item.id}.json: draft {item.draft_id} is also approved by "
                f"approved/{seen[item.draft_id]}.json; a draft has one approved item"
            )
        seen[item.draft_id] = item.id
    return bundle


def _read_single(root: Path, name: str, parse: Callable[[dict[str, Any]], T]) -> T | None:
    path = root / name
    if not os.path.lexists(path):
        return None
    return _parse_file(root, path, parse)


def _no_link(root: Path, path: Path) -> None:
    """The import follows no symbolic link (not even a broken one): it names the path."""
    if path.is_symlink():
        label = path.relative_to(root).as_posix()
        raise InputValidationError(
            f"{label}: a symbolic link; the import follows no links (copy the file itself in)",
            detail={"file": label},
        )


def _item_files(root: Path, kind: IdKind) -> list[Path]:
    folder = root / _SUBDIRS[kind]
    _no_link(root, folder)
    if not folder.is_dir():
        return []
    try:
        files = sorted(p for p in folder.iterdir() if p.name.endswith(".json"))
    except OSError as exc:
        raise InputValidationError(f"cannot list {folder}: {exc.strerror or exc}") from None
    for path in files:
        _no_link(root, path)
    return files


def _parse_file(root: Path, path: Path, parse: Callable[[dict[str, Any]], T]) -> T:
    label = path.relative_to(root).as_posix()
    _no_link(root, path)
    try:
        return parse(_load_json(path))
    except _BadFile as exc:
        raise InputValidationError(f"{label}: {exc}", detail={"file": label}) from None
    except ValidationError as exc:
        raise InputValidationError(
            f"{label}: {_first_error(exc)}", detail={"file": label}
        ) from None
    except OpsError as exc:
        raise InputValidationError(f"{label}: {exc.message}", detail={"file": label}) from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(part) for part in err.get("loc", ())) or "value"
    return f"{where}: {err.get('msg', 'invalid value')}"


def _reject_constant(name: str) -> Any:
    raise _BadFile(f"{name} is not valid JSON")


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_NUMBER_DIGITS:
        raise _BadFile(
            f"a number with {digits} digits is out of range (at most {MAX_NUMBER_DIGITS})"
        )
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _BadFile(f"the number {text[:40]} is out of range")
    return value


def _load_json(path: Path) -> dict[str, Any]:
    if path.is_symlink() or not path.is_file():
        raise _BadFile("not a regular file")
    try:
        # O_NOFOLLOW: a link swapped in after the check above is refused too.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise _BadFile(f"cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise _BadFile(f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    try:
        data = json.loads(
            raw.decode("utf-8"),
            parse_constant=_reject_constant,
            parse_int=_bounded_int,
            parse_float=_finite_float,
        )
    except UnicodeDecodeError:
        raise _BadFile("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise _BadFile(f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise _BadFile("JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise _BadFile(f"expected a JSON object, got {type(data).__name__}")
    where = find_unencodable(data)
    if where is not None:
        raise _BadFile(f"{'.'.join(str(part) for part in where)} {UNENCODABLE}")
    return data


# --- field helpers -------------------------------------------------------------------------


def _text(
    data: dict[str, Any], key: str, *, default: str | None = None, max_chars: int = MAX_TEXT_CHARS
) -> str | None:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise _BadFile(f"{key} must be a string, got {type(value).__name__}")
    if len(value) > max_chars:
        raise _BadFile(f"{key} is {len(value)} characters; the limit is {max_chars}")
    return value


def _required_text(data: dict[str, Any], key: str, *, max_chars: int = MAX_TEXT_CHARS) -> str:
    value = _text(data, key, max_chars=max_chars)
    if value is None:
        raise _BadFile(f"{key} is missing")
    return value


def _int(data: dict[str, Any], key: str, *, default: int, minimum: int = 0) -> int:
    value = data.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value < 2**53:
        raise _BadFile(f"{key} must be an integer of at least {minimum}")
    return value


def _object(data: dict[str, Any], key: str, *, max_bytes: int) -> dict[str, Any] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _BadFile(f"{key} must be a JSON object, got {type(value).__name__}")
    size = len(json.dumps(value, ensure_ascii=False).encode("utf-8"))
    if size > max_bytes:
        raise _BadFile(f"{key} is {size} bytes; the limit is {max_bytes}")
    return value


def _ts(data: dict[str, Any], key: str) -> str | None:
    """Epoch seconds, epoch milliseconds or an ISO string, as RFC 3339 UTC."""
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        if len(value.strip()) > 16:
            raise _BadFile(f"{key} is not a timestamp (too many digits)")
        value = int(value.strip())
    try:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, int | float):
            if not math.isfinite(value):
                raise ValueError
            seconds = value / 1000 if abs(value) >= 1e11 else value
            return format_ts(datetime.fromtimestamp(seconds, UTC))
        if isinstance(value, str) and len(value) <= 64:
            return format_ts(parse_ts(value.strip()))
    except (ValueError, OverflowError, OSError):
        pass
    raise _BadFile(f"{key} is not a timestamp (epoch seconds, epoch milliseconds or ISO 8601)")


def _item_id(data: dict[str, Any], stem: str, kind: IdKind) -> str:
    value = data.get("id", stem)
    try:
        item_id = validate_id(kind, value)
    except InvalidIdError as exc:
        raise _BadFile(f"id: {exc.message}") from None
    if item_id != stem:
        raise _BadFile(f"the file name does not match its id {item_id}")
    return item_id


def _ref_id(data: dict[str, Any], key: str, kind: IdKind) -> str:
    value = data.get(key)
    if value is None:
        raise _BadFile(f"{key} is missing")
    try:
        return validate_id(kind, value)
    except InvalidIdError as exc:
        raise _BadFile(f"{key}: {exc.message}") from None


def _task_id(data: dict[str, Any]) -> str | None:
    value = data.get("task_id")
    if value is None or value == "":
        return None
    try:
        return validate_name(value, what="task_id")
    except InvalidIdError as exc:
        raise _BadFile(exc.message) from None


def _scope(value: Any) -> Scope:
    if value is None:
        return Scope()
    if isinstance(value, list):  # older orchestrators stored a bare list of globs
        value = {"files": value}
    if not isinstance(value, dict):
        raise _BadFile(f"scope must be an object, got {type(value).__name__}")
    try:
        return Scope.model_validate(value)
    except ValidationError as exc:
        raise _BadFile(f"scope.{_first_error(exc)}") from None


def _actor(data: dict[str, Any], key: str) -> str:
    return _text(data, key, default=LEGACY_ACTOR, max_chars=200) or LEGACY_ACTOR


def _known(model: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    """Keep only the fields ``model`` knows (older files may carry extra keys)."""
    return {k: v for k, v in data.items() if k in model.model_fields}


def _content_fields(data: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    prompt = _required_text(data, "prompt", max_chars=MAX_PROMPT_CHARS)
    content = _text(data, "content", default="", max_chars=MAX_CONTENT_BYTES) or ""
    size = len(content.encode("utf-8"))
    if size > MAX_CONTENT_BYTES:
        raise _BadFile(f"content is {size} bytes; the limit is {MAX_CONTENT_BYTES}")
    context = _object(data, "context", max_bytes=MAX_CONTEXT_BYTES) or {}
    return prompt, content, context


# --- parsers ---------------------------------------------------------------------------------


def _parse_plan(data: dict[str, Any]) -> Plan:
    tasks = data.get("tasks") or []
    if not isinstance(tasks, list):
        raise _BadFile("tasks must be a list")
    for index, task in enumerate(tasks):
        if not isinstance(task, dict):
            raise _BadFile(f"tasks.{index} must be an object")
    body = _known(PlanIn, data) | {"tasks": [_known(Task, task) for task in tasks]}
    for key in ("title", "objective", "workspace"):
        if body.get(key) is None:
            body.pop(key, None)
    if body.get("constraints") is None:
        body.pop("constraints", None)
    plan_in = PlanIn.model_validate(body)
    try:
        validate_tasks(plan_in.tasks)
    except InputValidationError as exc:
        raise _BadFile(exc.message) from None
    return Plan(
        id=PLAN_ID,
        **plan_in.model_dump(),
        revision=_int(data, "revision", default=1, minimum=1),
        updated_at=_ts(data, "updated_at") or now_ts(),
    )


def _parse_config(data: dict[str, Any]) -> Config:
    return Config.model_validate(_known(Config, data))


def _parse_provider(data: dict[str, Any]) -> ProviderConfig:
    if "providers" not in data and "base_url" in data:  # older single-provider form
        data = {"active": "default", "providers": {"default": data}}
    providers_raw = data.get("providers") or {}
    if not isinstance(providers_raw, dict):
        raise _BadFile("providers must be an object")
    providers: dict[str, ProviderEntry] = {}
    for name, raw in providers_raw.items():
        try:
            validate_name(name, what="provider name")
        except InvalidIdError as exc:
            raise _BadFile(exc.message) from None
        if not isinstance(raw, dict):
            raise _BadFile(f"providers.{name} must be an object")
        values = _known(ProviderEntryIn, raw)
        if not values.get("api_key"):  # redacted exports carry api_key_set instead
            values.pop("api_key", None)
        for key in ("api_key_env", "temperature"):
            if values.get(key) is None:
                values.pop(key, None)
        entry = ProviderEntryIn.model_validate(values)
        providers[name] = ProviderEntry.model_validate(entry.model_dump())
    active = data.get("active")
    if active is not None and (not isinstance(active, str) or active not in providers):
        raise _BadFile(f"active provider {str(active)[:64]!r} is not among the providers")
    if active is None and len(providers) == 1:
        active = next(iter(providers))
    return ProviderConfig(active=active, providers=providers)


def _parse_draft(data: dict[str, Any], stem: str) -> Draft:
    draft_id = _item_id(data, stem, IdKind.DRAFT)
    prompt, content, context = _content_fields(data)
    status = data.get("status") or DraftStatus.DRAFT.value
    if not isinstance(status, str) or status.strip().lower() not in _DRAFT_STATUSES:
        raise _BadFile(f"status {str(status)[:40]!r} is not one of draft|approved|rejected|error")
    created_at = _ts(data, "created_at")
    updated_at = _ts(data, "updated_at")
    generation = _object(data, "generation", max_bytes=MAX_TEXT_CHARS)
    rejected = _text(data, "rejected_reason") or _text(data, "reason")
    return Draft(
        id=draft_id,
        prompt=prompt,
        content=content,
        context=context,
        task_id=_task_id(data),
        scope=_scope(data.get("scope")),
        status=DraftStatus(status.strip().lower()),
        revision=_int(data, "revision", default=1, minimum=1),
        created_at=created_at or updated_at or now_ts(),
        updated_at=updated_at or created_at or now_ts(),
        created_by=_actor(data, "created_by"),
        generation=Generation.model_validate(generation) if generation else None,
        error=_text(data, "error"),
        rejected_reason=rejected,
    )


def _parse_approved(data: dict[str, Any], stem: str) -> tuple[Approved, bool]:
    """The approved item, and whether its ``content_sha256`` had to be computed.

    ``hash_version`` says which formula the stored hash follows (absent: 1, the formula of
    files written before ``context`` was covered); the item keeps that version.
    """
    approved_id = _item_id(data, stem, IdKind.APPROVED)
    prompt, content, context = _content_fields(data)
    scope = _scope(data.get("scope"))
    stored = (_text(data, "content_sha256", max_chars=128) or "").strip().lower()
    computed = stored == ""
    version = HASH_VERSION if computed and "hash_version" not in data else 1
    if "hash_version" in data:
        version = _int(data, "hash_version", default=1, minimum=1)
        if version not in HASH_VERSIONS:
            raise _BadFile(
                f"hash_version {version} is not one of {', '.join(map(str, HASH_VERSIONS))}"
            )
    expected = content_sha256(
        prompt=prompt,
        content=content,
        context=context,
        scope=scope.model_dump(mode="json"),
        version=version,
    )
    if not computed and stored != expected:
        # An older writer may have hashed its scope in the raw form it stored; accept that
        # only if the hash proves the prompt and content are exactly what it approved.
        raw = {"prompt": prompt, "content": content, "scope": data.get("scope")}
        if version != 1 or stored != sha256_hex(canonical_json(raw)):
            raise _BadFile(
                f"content_sha256 does not match its prompt, content{', context' * (version > 1)} "
                f"and scope (hash_version {version}); the item may have been altered, so it "
                "is not imported"
            )
    return (
        Approved(
            id=approved_id,
            draft_id=_ref_id(data, "draft_id", IdKind.DRAFT),
            draft_revision=_int(data, "draft_revision", default=1, minimum=1),
            task_id=_task_id(data),
            prompt=prompt,
            content=content,
            context=context,
            scope=scope,
            content_sha256=expected,
            hash_version=version,
            approved_at=_ts(data, "approved_at") or _ts(data, "created_at") or now_ts(),
            approved_by=_actor(data, "approved_by"),
            note=_text(data, "note"),
        ),
        computed,
    )


def _parse_run(data: dict[str, Any], stem: str) -> _RunIn:
    run_id = _item_id(data, stem, IdKind.RUN)
    raw_status = data.get("status") or RunStatus.PENDING.value
    if not isinstance(raw_status, str):
        raise _BadFile("status must be a string")
    status_text = _RUN_STATUS_ALIASES.get(raw_status.strip().lower(), raw_status.strip().lower())
    if status_text not in _RUN_STATUSES:
        raise _BadFile(
            f"status {raw_status[:40]!r} is not one of pending|running|done|error|cancelled"
        )
    status = RunStatus(status_text)
    executor = data.get("executor") or "provider"
    if executor not in ("provider", "agent"):
        raise _BadFile("executor must be 'provider' or 'agent'")
    created_at = _ts(data, "created_at") or now_ts()
    error = _text(data, "error")
    started_at = _ts(data, "started_at")
    # A finished run always has finished_at (the cleanup pass ages runs by it); older files
    # may lack it, so the latest time the file does give stands in for it.
    finished_at = _ts(data, "finished_at") or (
        (_ts(data, "updated_at") or started_at or created_at) if status.terminal else None
    )
    cancelled_from: str | None = None
    log = _parse_log(data, default_ts=created_at)
    if not status.terminal:
        cancelled_from = status.value
        note = (
            f"imported from a legacy store while {status.value}; cancelled so that the import "
            "does not execute it (create a new run to execute it)"
        )
        status, error, finished_at = RunStatus.CANCELLED, note, finished_at or now_ts()
        log.append((now_ts(), "warning", note))
    cancel = data.get("cancel_requested", False)
    if not isinstance(cancel, bool):
        raise _BadFile("cancel_requested must be true or false")
    stored = (_text(data, "content_sha256", max_chars=128) or "").strip().lower()
    run = Run(
        id=run_id,
        approved_id=_ref_id(data, "approved_id", IdKind.APPROVED),
        content_sha256=stored or "",
        status=status,
        executor=executor,
        attempt=_int(data, "attempt", default=1, minimum=1),
        created_at=created_at,
        created_by=_actor(data, "created_by"),
        started_at=started_at,
        finished_at=finished_at,
        output=_text(data, "output", max_chars=MAX_OUTPUT_CHARS),
        error=error,
        usage=_object(data, "usage", max_bytes=MAX_TEXT_CHARS),
        cancel_requested=cancel,
    )
    return _RunIn(run=run, stored_sha256=stored or None, log=log, cancelled_from=cancelled_from)


def _parse_log(data: dict[str, Any], *, default_ts: str) -> list[tuple[str, str, str]]:
    raw = data.get("log")
    if raw is None:
        raw = data.get("logs")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _BadFile("log must be a list of lines")
    if len(raw) > MAX_LOG_LINES:
        raise _BadFile(f"log has {len(raw)} lines; the limit is {MAX_LOG_LINES}")
    lines: list[tuple[str, str, str]] = []
    for index, item in enumerate(raw):
        if isinstance(item, str):
            lines.append((default_ts, "info", item[:MAX_LOG_MSG]))
            continue
        if not isinstance(item, dict):
            raise _BadFile(f"log.{index} must be a string or an object")
        msg = item.get("msg", item.get("message"))
        if not isinstance(msg, str):
            raise _BadFile(f"log.{index}.msg must be a string")
        level = item.get("level") or "info"
        if not isinstance(level, str):
            raise _BadFile(f"log.{index}.level must be a string")
        ts = _ts(item, "ts") or default_ts
        lines.append((ts, _LEVELS.get(level.lower(), "info"), msg[:MAX_LOG_MSG]))
    return lines


# --- import: writing ------------------------------------------------------------------------


def _write_bundle(uow: SqlUnitOfWork, bundle: _Bundle) -> dict[str, int]:
    counts = {"plan": 0, "config": 0, "provider": 0, "drafts": 0, "approved": 0, "runs": 0}
    counts["log_lines"] = 0
    extra: dict[str, int] = {}

    def bump(key: str) -> None:
        extra[key] = extra.get(key, 0) + 1

    if bundle.plan is not None:
        if uow.plan.get(PLAN_ID) is None:
            uow.plan.save(bundle.plan)
            counts["plan"] = 1
        else:
            bump("skipped_plan")
    for key, kv_key, value in (
        ("config", CONFIG_KEY, bundle.config),
        ("provider", PROVIDER_KEY, bundle.provider),
    ):
        if value is None:
            continue
        if uow.kv.get(kv_key) is None:
            stored = bundle.sealed_provider if key == "provider" else None
            uow.kv.put(kv_key, stored or value.model_dump(mode="json"), now=now_ts())
            counts[key] = 1
            if key == "provider" and bundle.keys_left_out:
                extra["provider_keys_to_set_again"] = len(bundle.keys_left_out)
        else:
            bump(f"skipped_{key}")

    # Rejected/error drafts and finished runs older than the TTLs are imported as they are,
    # and the next cleanup pass deletes them; the counts tell the caller so.
    config = bundle.config if bundle.config is not None and counts["config"] else load_config(uow)
    draft_cutoff = ts_after(-config.draft_ttl_days * 86_400)
    run_cutoff = ts_after(-config.run_ttl_days * 86_400)

    approved_drafts: set[str] = set()
    for item, _ in sorted(bundle.approved, key=lambda a: (a[0].approved_at, a[0].id)):
        approved_drafts.add(item.draft_id)
        if uow.approved.get(item.id) is not None:
            bump("skipped_approved")
            continue
        label = f"approved/{item.id}.json"
        other = uow.approved.get_by_draft(item.draft_id)
        if other is not None:
            raise InputValidationError(
                f"{label}: draft {item.draft_id} already has approved item {other.id} in the store"
            )
        stored_draft = uow.drafts.get(item.draft_id)
        if stored_draft is not None and stored_draft.status is not DraftStatus.APPROVED:
            raise InputValidationError(
                f"{label}: draft {item.draft_id} is {stored_draft.status.value} in the store"
            )
        uow.approved.add(item)
        counts["approved"] += 1

    bundled_drafts = {draft.id for draft in bundle.drafts}
    for item in bundle.unhashed:
        bump("approved_unhashed_as_drafts")
        if item.draft_id in bundled_drafts or uow.drafts.get(item.draft_id) is not None:
            continue  # its draft comes with the import or is already here: reviewed there
        unhashed_draft = _draft_of_unhashed(item)
        uow.drafts.add(unhashed_draft)
        record_revision(uow, unhashed_draft, by=LEGACY_ACTOR, at=unhashed_draft.updated_at)
        counts["drafts"] += 1

    for draft in sorted(bundle.drafts, key=lambda d: (d.created_at, d.id)):
        if uow.drafts.get(draft.id) is not None:
            bump("skipped_drafts")
            continue
        has_approved = (
            draft.id in approved_drafts or uow.approved.get_by_draft(draft.id) is not None
        )
        if has_approved and draft.status is not DraftStatus.APPROVED:
            draft = draft.model_copy(update={"status": DraftStatus.APPROVED, "error": None})
            bump("drafts_marked_approved")
        elif not has_approved and draft.status is DraftStatus.APPROVED:
            # Without its approved item it cannot be shown as approved: an operator reviews
            # and approves it again (an error draft with content can be approved).
            draft = draft.model_copy(
                update={
                    "status": DraftStatus.ERROR,
                    "error": "imported as approved, but its approved item was not in the "
                    "import; review it and approve it again",
                    # Changed by the import, so the cleanup pass does not take it at once.
                    "updated_at": now_ts(),
                }
            )
            bump("drafts_unapproved")
        uow.drafts.add(draft)
        record_revision(uow, draft, by=draft.created_by, at=draft.updated_at)
        counts["drafts"] += 1
        if draft.status in _CLEANED_DRAFTS and draft.updated_at < draft_cutoff:
            bump("expire_at_next_cleanup_drafts")

    unhashed_ids = {item.id for item in bundle.unhashed}
    for entry in sorted(bundle.runs, key=lambda r: (r.run.created_at, r.run.id)):
        run = entry.run
        if run.approved_id in unhashed_ids:
            bump("skipped_runs_of_unhashed")
            continue
        if uow.runs.get(run.id) is not None:
            bump("skipped_runs")
            continue
        label = f"runs/{run.id}.json"
        approved: Approved | None = uow.approved.get(run.approved_id)
        if approved is None:
            raise InputValidationError(
                f"{label}: approved item {run.approved_id} is neither in the import nor "
                "in the store"
            )
        if entry.stored_sha256 is not None and entry.stored_sha256 != approved.content_sha256:
            raise InputValidationError(
                f"{label}: content_sha256 differs from that of approved item {approved.id}"
            )
        uow.runs.add(run.model_copy(update={"content_sha256": approved.content_sha256}))
        for ts, level, msg in entry.log:
            uow.logs.append(run.id, ts=ts, level=level, msg=msg)
            counts["log_lines"] += 1
        counts["runs"] += 1
        if entry.cancelled_from is not None:
            bump("runs_cancelled")
        elif run.finished_at is not None and run.finished_at < run_cutoff:
            bump("expire_at_next_cleanup_runs")
    return counts | dict(sorted(extra.items()))


def _draft_of_unhashed(item: Approved) -> Draft:
    """A draft for review from an approved file that carried no hash."""
    now = now_ts()
    return Draft(
        id=item.draft_id,
        prompt=item.prompt,
        content=item.content,
        context=item.context,
        task_id=item.task_id,
        scope=item.scope,
        status=DraftStatus.DRAFT,
        revision=1,
        created_at=item.approved_at,
        # Changed by the import, so the cleanup pass does not take it at once.
        updated_at=now,
        created_by=LEGACY_ACTOR,
    )
