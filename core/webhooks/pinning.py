"""Webhook connections go to the addresses that were checked, never to a second lookup.

A webhook's host must resolve to public addresses only (``targets.check_host``). Checking
the name and then letting the HTTP client resolve it again leaves a window in which the
name can point elsewhere (DNS rebinding). The transport here closes it: its network
backend resolves the name once per connection, refuses any non-public address (unless
private targets are allowed) and connects to the addresses it checked. TLS still
verifies the certificate against the host name: the connection pool is keyed by the URL's
origin, and that name is what the TLS handshake is given.
"""

from __future__ import annotations

from collections.abc import Iterable

import anyio.to_thread
import httpcore
import httpx

from core.errors import InputValidationError
from core.webhooks.targets import Resolver, check_host

__all__ = ["PinnedBackend", "PinnedTransport", "RefusedTarget"]


class RefusedTarget(httpcore.ConnectError):
    """The host resolved to an address a webhook may not reach; the message says why."""


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Resolve with ``resolve``, check, and connect to the checked addresses in turn."""

    def __init__(
        self,
        resolve: Resolver,
        *,
        allow_private: bool,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._resolve = resolve
        self._allow_private = allow_private
        self._inner = inner or httpcore.AnyIOBackend()

    def _addresses(self, host: str, port: int) -> list[str]:
        if not self._allow_private:
            try:
                return check_host(host, port, resolve=self._resolve)
            except InputValidationError as exc:
                raise RefusedTarget(f"refused: {exc.message}") from None
        try:
            addresses = list(self._resolve(host, port))
        except (OSError, UnicodeError):
            addresses = []
        if not addresses:
            raise httpcore.ConnectError(f"the host {host[:100]!r} does not resolve")
        return addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await anyio.to_thread.run_sync(self._addresses, host, port)
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise RefusedTarget("refused: webhooks do not post to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a pool whose connections are made by ``PinnedBackend``.

    No proxy from the environment (a proxy would make the connection, unchecked)."""

    def __init__(self, resolve: Resolver, *, allow_private: bool) -> None:
        super().__init__(trust_env=False)
        # httpx has no option for the pool's network backend: build the pool it would build,
        # with ours (test_the_connection_goes_to_the_address_the_resolver_gave fails if this stops
        # taking effect).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=20,
            max_keepalive_connections=10,
            keepalive_expiry=5.0,
            network_backend=PinnedBackend(resolve, allow_private=allow_private),
        )
