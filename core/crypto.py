"""Provider keys at rest: Fernet (the ``cryptography`` package) under a secret key that never
lives in the database.

The secret key comes from ``OPS_SECRET_KEY``, or from ``<data dir>/secret.key`` (mode 0600,
created on the first start of a writer). ``ops-trigger secrets rotate`` re-encrypts every
stored key under a new one in three steps that survive a crash at any point: the new key is
written to ``secret.key.new``, the store is re-encrypted in one transaction, then the new
file replaces ``secret.key``. While ``secret.key.new`` exists it is tried too, and a process
that meets a key it cannot decrypt reads the file again, so running gateways and workers
follow a rotation without a restart.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from core.config import Settings
from core.errors import InputValidationError, StorageError

__all__ = [
    "SECRET_KEY_FILE",
    "SecretBox",
    "SecretKeyMismatchError",
    "new_secret_key",
    "parse_secret_key",
    "write_key_file",
]

log = logging.getLogger(__name__)

SECRET_KEY_FILE = "secret.key"
PENDING_SUFFIX = ".new"
_KEY_HELP = (
    "a Fernet key: 44 url-safe base64 characters (make one with 'ops-trigger secrets new-key')"
)


class SecretKeyMismatchError(Exception):
    """A stored secret cannot be decrypted with the secret key at hand (internal: callers
    turn it into the error their door needs)."""


def new_secret_key() -> str:
    """A fresh random secret key."""
    return Fernet.generate_key().decode("ascii")


def parse_secret_key(value: str, *, where: str) -> Fernet:
    """``value`` as a Fernet key; a clear error naming ``where`` if it is not one."""
    try:
        return Fernet(value.strip().encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise InputValidationError(f"{where} is not {_KEY_HELP}") from None


def write_key_file(path: Path, key: str, *, exclusive: bool) -> None:
    """Write ``key`` to ``path`` with mode 0600 (``exclusive``: fail if it exists)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    flags |= getattr(os, "O_NOFOLLOW", 0)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, flags, 0o600)
    try:
        os.write(fd, (key + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(path, 0o600)


def _read_key_file(path: Path) -> Fernet | None:
    """The key in ``path``, None if there is no such file; a clear error if it is unusable."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StorageError(f"cannot read the secret key {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise StorageError(f"the secret key {path} is not a regular file (a link is refused)")
    if info.st_mode & 0o077:
        log.warning("secret key %s was readable by others; setting its mode to 0600", path)
        os.chmod(path, 0o600)
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise StorageError(f"cannot read the secret key {path}: {exc}") from None
    return parse_secret_key(text, where=f"the secret key file {path}")


class SecretBox:
    """Encrypt and decrypt provider keys with the process's secret key."""

    def __init__(self, settings: Settings, *, create: bool) -> None:
        self._path = settings.data_dir / SECRET_KEY_FILE
        self._env = settings.secret_key.get_secret_value() if settings.secret_key else None
        self._lock = threading.Lock()
        self._primary: Fernet | None = None
        self._all: MultiFernet | None = None
        self._seen: tuple[object, ...] = ()
        if self._env is not None:
            self._primary = parse_secret_key(self._env, where="OPS_SECRET_KEY")
            self._all = MultiFernet([self._primary])
            return
        self._load(create=create)

    @property
    def source(self) -> str:
        """Where the key comes from, for messages (never the key)."""
        return "OPS_SECRET_KEY" if self._env is not None else str(self._path)

    @property
    def from_env(self) -> bool:
        return self._env is not None

    @property
    def path(self) -> Path:
        return self._path

    @property
    def pending_path(self) -> Path:
        return self._path.with_name(self._path.name + PENDING_SUFFIX)

    def _signature(self) -> tuple[object, ...]:
        found: list[object] = []
        for path in (self._path, self.pending_path):
            try:
                info = os.lstat(path)
            except OSError:
                found.append(None)
            else:
                found.append((info.st_ino, info.st_mtime_ns, info.st_size))
        return tuple(found)

    def _load(self, *, create: bool) -> None:
        seen = self._signature()
        primary = _read_key_file(self._path)
        if primary is None and create:
            try:
                write_key_file(self._path, new_secret_key(), exclusive=True)
                log.info("wrote a new secret key for provider keys to %s (mode 0600)", self._path)
            except FileExistsError:
                pass  # another process was first: use its key
            except OSError as exc:
                raise StorageError(
                    f"cannot create the secret key {self._path}: {exc.strerror or exc}"
                ) from None
            primary = _read_key_file(self._path)
        pending = _read_key_file(self.pending_path)
        keys = [k for k in (primary, pending) if k is not None]
        with self._lock:
            self._primary = primary
            self._all = MultiFernet(keys) if keys else None
            self._seen = seen if not create else self._signature()

    def encrypt(self, plaintext: str) -> str:
        """The Fernet token of ``plaintext`` (under the current key file: a rotation by
        another process is picked up first)."""
        if self._env is None and self._signature() != self._seen:
            self._load(create=False)
        if self._primary is None:
            raise StorageError(
                f"no secret key to encrypt provider keys with: {self._path} is missing and "
                "OPS_SECRET_KEY is not set (start the gateway or run 'ops-trigger init' once)"
            )
        return self._primary.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """The plaintext of ``token``; ``SecretKeyMismatchError`` if no key at hand opens it
        (the key file is read again first: it may have been rotated meanwhile)."""
        for attempt in range(2):
            keys = self._all
            if keys is not None:
                try:
                    return keys.decrypt(token.encode("ascii")).decode("utf-8")
                except (InvalidToken, UnicodeError):
                    pass
            if attempt == 0 and self._env is None:
                try:
                    self._load(create=False)
                except (StorageError, InputValidationError):
                    break
        raise SecretKeyMismatchError(self.source)

    def rewrap(self, token: str, new: Fernet) -> str:
        """``token`` decrypted with the current key and encrypted with ``new``."""
        return new.encrypt(self.decrypt(token).encode("utf-8")).decode("ascii")
