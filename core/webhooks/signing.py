"""Standard Webhooks signing: ``webhook-signature: v1,<base64 HMAC-SHA256>`` over
``{id}.{timestamp}.{body}`` with the secret's bytes (base64 after ``whsec_``)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from core.errors import InputValidationError

__all__ = [
    "SECRET_PREFIX",
    "new_secret",
    "parse_secret",
    "sign",
    "signature_headers",
    "verify",
]

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64


def new_secret() -> str:
    """A fresh random signing secret, ``whsec_<base64 of 32 bytes>``."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def parse_secret(secret: str) -> bytes:
    """The key bytes of ``whsec_<base64>``; a clear error when it is not one."""
    help_text = (
        f"secret must be '{SECRET_PREFIX}' followed by the base64 of "
        f"{MIN_SECRET_BYTES}-{MAX_SECRET_BYTES} random bytes (omit it to have one generated)"
    )
    if not secret.startswith(SECRET_PREFIX):
        raise InputValidationError(help_text)
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :].encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise InputValidationError(help_text) from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise InputValidationError(help_text)
    return key


def sign(secret: str, *, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value of one message."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(parse_secret(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_headers(secret: str, *, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of one attempt."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id=msg_id, timestamp=timestamp, body=body),
    }


def verify(secret: str, *, msg_id: str, timestamp: str, body: bytes, signature: str) -> bool:
    """Whether any ``v1`` signature of the (space-separated) header matches."""
    expected = sign(secret, msg_id=msg_id, timestamp=int(timestamp), body=body)
    return any(hmac.compare_digest(expected, given) for given in signature.split())
