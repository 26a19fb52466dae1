"""Reading the files of a legacy layout: no links followed, bounded sizes, strict JSON."""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from core.errors import InputValidationError, OpsError
from core.ids import IdKind
from core.text import UNENCODABLE, find_unencodable

__all__ = [
    "MAX_FILE_BYTES",
    "SUBDIRS",
    "BadFile",
    "first_error",
    "item_names",
    "label_of",
    "load_json",
    "no_link",
    "parse_file",
    "parse_item",
    "read_single",
]

T = TypeVar("T")

MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_NUMBER_DIGITS = 20
SUBDIRS = {IdKind.DRAFT: "drafts", IdKind.APPROVED: "approved", IdKind.RUN: "runs"}


class BadFile(Exception):
    """A problem with one field of one file; the caller adds the file name."""


def label_of(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def no_link(root: Path, path: Path) -> None:
    """The import follows no symbolic link (not even a broken one): it names the path."""
    if path.is_symlink():
        label = label_of(root, path)
        raise InputValidationError(
            f"{label}: a symbolic link; the import follows no links (copy the file itself in)",
            detail={"file": label},
        )


def item_names(root: Path, kind: IdKind) -> list[str]:
    """The ``.json`` file names of one item folder, sorted (none if it is absent); a link
    among them (or the folder itself being one) is an error naming it."""
    folder = root / SUBDIRS[kind]
    no_link(root, folder)
    if not folder.is_dir():
        return []
    names: list[str] = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if not entry.name.endswith(".json"):
                    continue
                if entry.is_symlink():  # from the directory entry: no extra system call
                    no_link(root, folder / entry.name)
                names.append(entry.name)
    except OSError as exc:
        raise InputValidationError(f"cannot list {folder}: {exc.strerror or exc}") from None
    names.sort()
    return names


def parse_item(folder: str, name: str, parse: Callable[[dict[str, Any], str], T]) -> T:
    """``parse(data, stem)`` for the file ``name`` of an item folder (``folder`` is its
    path, ending in a separator); any problem names the file (``drafts/<name>``)."""
    try:
        return parse(_load_path(folder + name), name[:-5])
    except (BadFile, ValidationError, OpsError) as exc:
        label = f"{os.path.basename(folder[:-1])}/{name}"
        if isinstance(exc, ValidationError):
            message = first_error(exc)
        elif isinstance(exc, OpsError):
            message = exc.message
        else:
            message = str(exc)
        raise InputValidationError(f"{label}: {message}", detail={"file": label}) from None


def read_single(root: Path, name: str, parse: Callable[[dict[str, Any]], T]) -> T | None:
    path = root / name
    if not os.path.lexists(path):
        return None
    return parse_file(root, path, parse)


def parse_file(root: Path, path: Path, parse: Callable[[dict[str, Any]], T]) -> T:
    """``parse`` applied to the file's JSON object; any problem names the file."""
    label = label_of(root, path)
    no_link(root, path)
    try:
        return parse(load_json(path))
    except BadFile as exc:
        raise InputValidationError(f"{label}: {exc}", detail={"file": label}) from None
    except ValidationError as exc:
        raise InputValidationError(f"{label}: {first_error(exc)}", detail={"file": label}) from None
    except OpsError as exc:
        raise InputValidationError(f"{label}: {exc.message}", detail={"file": label}) from None


def first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(part) for part in err.get("loc", ())) or "value"
    return f"{where}: {err.get('msg', 'invalid value')}"


def _reject_constant(name: str) -> Any:
    raise BadFile(f"{name} is not valid JSON")


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_NUMBER_DIGITS:
        raise BadFile(
            f"a number with {digits} digits is out of range (at most {MAX_NUMBER_DIGITS})"
        )
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadFile(f"the number {text[:40]} is out of range")
    return value


# One decoder for every file (``json.loads`` with hooks builds a new one per call).
_DECODER = json.JSONDecoder(
    parse_constant=_reject_constant, parse_int=_bounded_int, parse_float=_finite_float
)

# O_NOFOLLOW: a link swapped in after the listing is refused too; O_NONBLOCK: opening a
# FIFO returns at once (and is then refused as not a regular file) instead of waiting.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


def load_json(path: Path) -> dict[str, Any]:
    if path.is_symlink() or not path.is_file():
        raise BadFile("not a regular file")
    return _load_path(os.fspath(path))


def _load_path(path: str) -> dict[str, Any]:
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise BadFile(f"cannot read: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise BadFile("not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            raise BadFile(f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
        # The size the file has now, plus one byte to notice one that grew meanwhile (asking
        # for the limit at once would allocate a 16 MiB buffer for every small file).
        raw = os.read(fd, info.st_size + 1)
        if len(raw) != info.st_size:  # a short read, or the file grew: the rest, up to the limit
            chunks = [raw]
            total = len(raw)
            while total <= MAX_FILE_BYTES:
                more = os.read(fd, MAX_FILE_BYTES + 1 - total)
                if not more:
                    break
                chunks.append(more)
                total += len(more)
            raw = b"".join(chunks)
    except OSError as exc:
        raise BadFile(f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(raw) > MAX_FILE_BYTES:
        raise BadFile(f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    try:
        text = raw.decode("utf-8")
        data = _DECODER.decode(text)
    except UnicodeDecodeError:
        raise BadFile("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise BadFile(f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise BadFile("JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise BadFile(f"expected a JSON object, got {type(data).__name__}")
    # A lone surrogate can only come from an escape \uD800-\uDFFF (valid UTF-8 holds none):
    # a text without "\ud" or "\uD" has none, and the walk over every value is skipped.
    where = find_unencodable(data) if "\\ud" in text or "\\uD" in text else None
    if where is not None:
        raise BadFile(f"{'.'.join(str(part) for part in where)} {UNENCODABLE}")
    return data
