"""Where a webhook may post: http(s) URLs whose host resolves to public addresses only.

Private, loopback, link-local, multicast, reserved and unspecified addresses are refused
unless ``OPS_WEBHOOK_ALLOW_PRIVATE=true``: a webhook must not become a way to reach the
services next to the gateway (SSRF). The check runs when a webhook is created and again
for every connection a delivery makes, which then goes to the addresses checked
(``core.webhooks.pinning``): a name that resolves elsewhere later is caught, and cannot
switch addresses between the check and the connection.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from core.errors import InputValidationError

__all__ = ["Resolver", "check_host", "check_url", "refused_address", "resolve_host", "url_origin"]

Resolver = Callable[[str, int], Iterable[str]]
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def resolve_host(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (an IP literal resolves to itself)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def refused_address(address: str) -> str | None:
    """Why ``address`` may not be a webhook target, or None when it is public."""
    ip: IpAddress = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for label, hit in (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
    ):
        if hit:
            return label
    if not ip.is_global:
        return "private"  # shared address space (100.64/10) and the like
    return None


def url_origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: what logs and the audit show (a Slack URL's
    path is a credential)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


def check_url(url: str, *, allow_private: bool, resolve: Resolver = resolve_host) -> str:
    """``url`` if a webhook may post to it; ``InputValidationError`` saying why not."""
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise InputValidationError("url must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InputValidationError("url is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise InputValidationError("url must be an http:// or https:// URL")
    host = parts.hostname
    if not host:
        raise InputValidationError("url has no host")
    if parts.username is not None or parts.password is not None:
        raise InputValidationError("url must not carry a user name or password")
    if parts.fragment:
        raise InputValidationError("url must not have a #fragment")
    if allow_private:
        return url
    check_host(host, port or (443 if parts.scheme == "https" else 80), resolve=resolve)
    return url


def check_host(host: str, port: int, *, resolve: Resolver = resolve_host) -> list[str]:
    """The addresses of ``host``; refused when any is non-public (or none resolves)."""
    try:
        addresses = list(resolve(host, port))
    except (OSError, UnicodeError):
        raise InputValidationError(
            f"the host {host[:100]!r} of url does not resolve", detail={"host": host[:100]}
        ) from None
    if not addresses:
        raise InputValidationError(f"the host {host[:100]!r} of url does not resolve")
    for address in addresses:
        reason = refused_address(address)
        if reason is not None:
            raise InputValidationError(
                f"url resolves to a {reason} address ({address}); webhooks may only reach "
                "public addresses unless OPS_WEBHOOK_ALLOW_PRIVATE=true",
                detail={"host": host[:100], "address": address, "range": reason},
            )
    return addresses
