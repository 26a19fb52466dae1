"""One error hierarchy for the whole product.

Every error carries a stable ``code`` (the contract of SPEC section 6) and a caller-safe
``message``. Front doors map the base class once: the gateway to problem+json, the MCP
server to ``ToolError``, the CLI to stderr and a non-zero exit.

    OpsError
     ├── UnauthorizedError            UNAUTHORIZED
     ├── ForbiddenRoleError           FORBIDDEN_ROLE
     ├── NotFoundError                NOT_FOUND
     ├── InvalidIdError               INVALID_ID
     ├── InputValidationError         VALIDATION_ERROR
     ├── ConflictStateError           CONFLICT_STATE
     │    ├── RunAlreadyActiveError   RUN_ALREADY_ACTIVE
     │    └── LeaseLostError          LEASE_LOST (an agent's lease is wrong or expired)
     ├── RevisionMismatchError        REVISION_MISMATCH
     ├── ProviderNotConfiguredError   PROVIDER_NOT_CONFIGURED
     ├── ProviderError                PROVIDER_ERROR
     ├── RateLimitedError             RATE_LIMITED
     ├── PayloadTooLargeError         PAYLOAD_TOO_LARGE
     └── StorageError                 STORAGE_ERROR (store missing, read-only, corrupt)
          └── HashMismatchError       HASH_MISMATCH (an approved item fails its hash check)
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConflictStateError",
    "ForbiddenRoleError",
    "HashMismatchError",
    "InputValidationError",
    "InvalidIdError",
    "LeaseLostError",
    "NotFoundError",
    "OpsError",
    "PayloadTooLargeError",
    "ProviderError",
    "ProviderNotConfiguredError",
    "RateLimitedError",
    "RevisionMismatchError",
    "RunAlreadyActiveError",
    "StorageError",
    "UnauthorizedError",
]


class OpsError(Exception):
    """Base of every error the product raises on purpose."""

    code: str = "INTERNAL"
    title: str = "Internal error"

    def __init__(self, message: str, *, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail: dict[str, Any] = detail or {}

    def __str__(self) -> str:
        return self.message


class UnauthorizedError(OpsError):
    """Missing or unknown bearer token."""

    code = "UNAUTHORIZED"
    title = "Unauthorized"


class ForbiddenRoleError(OpsError):
    """The caller's role is too low for the action."""

    code = "FORBIDDEN_ROLE"
    title = "Forbidden"


class NotFoundError(OpsError):
    """The referenced item does not exist."""

    code = "NOT_FOUND"
    title = "Not found"


class InvalidIdError(OpsError):
    """An id from outside does not match the strict pattern of its type."""

    code = "INVALID_ID"
    title = "Invalid id"


class InputValidationError(OpsError):
    """Input that is well-formed but not acceptable (graph errors, limits, unknown fields)."""

    code = "VALIDATION_ERROR"
    title = "Validation error"


class ConflictStateError(OpsError):
    """The item's current status does not allow the operation."""

    code = "CONFLICT_STATE"
    title = "Conflict with the current state"


class DuplicateKeyError(ConflictStateError):
    """The store refused a row whose key exists already (a unique constraint): the storage
    adapter raises it in place of its driver's error; services turn it into their own."""

    code = "CONFLICT_STATE"
    title = "Conflict with the current state"


class RunAlreadyActiveError(ConflictStateError):
    """The approved item already has a pending or running run."""

    code = "RUN_ALREADY_ACTIVE"
    title = "A run is already active"


class LeaseLostError(ConflictStateError):
    """The lease token does not (or no longer) hold the run: stop working on it."""

    code = "LEASE_LOST"
    title = "Lease lost"


class RevisionMismatchError(OpsError):
    """The caller reviewed another revision than the stored one."""

    code = "REVISION_MISMATCH"
    title = "Revision mismatch"


class ProviderNotConfiguredError(OpsError):
    """No active LLM provider is configured."""

    code = "PROVIDER_NOT_CONFIGURED"
    title = "Provider not configured"


class ProviderError(OpsError):
    """The LLM provider failed; the message is already redacted."""

    code = "PROVIDER_ERROR"
    title = "Provider error"


class RateLimitedError(OpsError):
    """Too many requests; retry after ``retry_after`` seconds."""

    code = "RATE_LIMITED"
    title = "Too many requests"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, detail={"retry_after": retry_after})
        self.retry_after = retry_after


class PayloadTooLargeError(OpsError):
    """A body or field exceeds its size limit."""

    code = "PAYLOAD_TOO_LARGE"
    title = "Payload too large"


class StorageError(OpsError):
    """The store cannot serve the request (missing, read-only, or damaged)."""

    code = "STORAGE_ERROR"
    title = "Storage unavailable"


class HashMismatchError(StorageError):
    """A stored approved item no longer has its ``content_sha256``: it is never shown."""

    code = "HASH_MISMATCH"
    title = "Approved item fails its hash check"
