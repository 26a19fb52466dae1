"""The client address that rate limits and audit entries name: the peer's, or the one a
trusted reverse proxy put in ``X-Forwarded-For`` (``OPS_TRUSTED_PROXIES``; none by default).

The walk matches uvicorn's ``ProxyHeadersMiddleware``, which ``serve`` configures with the same
list: from the right, the first address that is not a trusted proxy is the client. Applying it
again to a scope uvicorn already rewrote changes nothing, so the ASGI app can be served by
any server and still never trusts a header it should not.
"""

from __future__ import annotations

import ipaddress

from starlette.types import Scope

from core.config import Network

__all__ = ["ClientAddress"]

_MAX_ADDRESS = 100


def _host_of(value: str) -> str:
    """``1.2.3.4``, ``1.2.3.4:56``, ``[::1]:56`` or ``::1`` without the port."""
    value = value.strip()
    if value.startswith("[") and "]" in value:
        return value[1 : value.index("]")]
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


class ClientAddress:
    """Resolve a request's client address against the trusted proxy networks."""

    def __init__(self, trusted: list[Network]) -> None:
        self.trusted = list(trusted)

    def is_trusted(self, host: str | None) -> bool:
        if not host or not self.trusted:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.trusted)

    def of(self, scope: Scope) -> str:
        client = scope.get("client")
        peer = str(client[0]) if client else "unknown"
        if not self.is_trusted(peer):
            return peer
        values = [v for k, v in scope.get("headers", ()) if k == b"x-forwarded-for"]
        if not values:
            return peer
        hops = [_host_of(hop) for hop in b",".join(values).decode("latin-1").split(",")]
        hops = [hop for hop in hops if hop]
        if not hops:
            return peer
        for hop in reversed(hops):
            if not self.is_trusted(hop):
                return hop[:_MAX_ADDRESS]
        return hops[0][:_MAX_ADDRESS]
