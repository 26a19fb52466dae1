"""``ops-trigger serve``: uvicorn with the gateway, and a start-up banner on stderr that
names the URL, the token files (never their values) and one ready-to-paste ``curl``."""

from __future__ import annotations

import asyncio
import logging
import shlex
import socket
import sys
from collections.abc import Callable

import uvicorn

from core.bootstrap import build_services
from core.config import Settings
from core.errors import InputValidationError
from core.models import Role
from core.storage.presence import locate_store
from gateway.accesslog import install_access_log_filter
from gateway.app import create_app

__all__ = ["banner", "serve"]

log = logging.getLogger(__name__)

_ENV_VARS = {Role.ADMIN: "ORCH_TOKEN", Role.OPERATOR: "ORCH_OPERATOR_TOKEN",
             Role.ACTIONS: "ORCH_ACTIONS_TOKEN"}  # fmt: skip


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def banner(settings: Settings, *, url: str, with_worker: bool) -> str:
    """The start-up text: where to reach the gateway and how to authenticate."""
    lines = [
        f"OPS Trigger gateway listening on {url}  (API docs: {url}/docs)",
        f"  console: {url}/console  (sign in with a token: a token file below, or the env)",
        f"  data: {settings.data_dir.resolve()}  run worker: {'on' if with_worker else 'off'}",
        f"  store: {locate_store(settings).where}",
    ]
    env_roles = [
        role
        for role, secret in (
            (Role.ADMIN, settings.admin_token),
            (Role.OPERATOR, settings.operator_token),
            (Role.ACTIONS, settings.actions_token),
        )
        if secret is not None
    ]
    files = {role: settings.tokens_dir / f"{role.value}.token" for role in Role}
    present = {role: path.resolve() for role, path in files.items() if path.exists()}
    token_expr: str
    if env_roles:
        names = ", ".join(_ENV_VARS[role] for role in env_roles)
        lines.append(f"  tokens: from the environment ({names})")
        chosen = min(env_roles, key=lambda role: role.rank)
        token_expr = f"${_ENV_VARS[chosen]}"
    elif present:
        lines.append("  token files (mode 0600; values are never printed):")
        for role, path in present.items():
            lines.append(f"    {role.value:<9} {path}")
        chosen = min(present, key=lambda role: role.rank)
        token_expr = f"$(cat {shlex.quote(str(present[chosen]))})"
    else:
        lines.append(
            "  tokens: none in a file; create one with "
            f"'ops-trigger token create --role actions --name me --data-dir "
            f"{shlex.quote(str(settings.data_dir))}' and export it as OPS_TOKEN"
        )
        token_expr = "$OPS_TOKEN"
    lines.append("  try:")
    lines.append(f'    curl -H "Authorization: Bearer {token_expr}" {url}/ops/status')
    return "\n".join(lines) + "\n"


class _Server(uvicorn.Server):
    """Ends the event streams first on shutdown: an open ``curl -N`` would otherwise hold
    the graceful shutdown for its whole timeout."""

    def __init__(self, config: uvicorn.Config, close_streams: Callable[[], None]) -> None:
        super().__init__(config)
        self._close_streams = close_streams

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._close_streams()
        await super().shutdown(sockets)


async def _announce(
    server: uvicorn.Server, settings: Settings, host: str, with_worker: bool
) -> None:
    while not server.started:
        if server.should_exit:
            return
        await asyncio.sleep(0.05)
    port = None
    for listener in getattr(server, "servers", []):
        for sock in listener.sockets:
            port = sock.getsockname()[1]
            break
        if port is not None:
            break
    url = f"http://{_url_host(host)}:{port}"
    sys.stderr.write(banner(settings, url=url, with_worker=with_worker))
    sys.stderr.flush()


async def _run(
    server: uvicorn.Server,
    settings: Settings,
    host: str,
    with_worker: bool,
    sock: socket.socket,
) -> None:
    announcer = asyncio.create_task(_announce(server, settings, host, with_worker))
    try:
        await server.serve(sockets=[sock])
    finally:
        announcer.cancel()
        await asyncio.gather(announcer, return_exceptions=True)


def serve(settings: Settings, *, host: str, port: int, with_worker: bool) -> None:
    """Run the gateway until interrupted (migrations and first-start tokens first)."""
    if "public_url" not in settings.model_fields_set and port != 0:
        # Without OPS_PUBLIC_URL the Actions document points at the address actually served.
        settings = settings.model_copy(update={"public_url": f"http://{_url_host(host)}:{port}"})
    # Bind first: a busy port is a one-line error before any store, token or worker starts.
    sock = _bind(host, port)
    try:
        services = build_services(settings)
    except BaseException:
        sock.close()
        raise
    try:
        # First start: token files are written (core logs their paths) before the banner.
        services.access.bootstrap()
        app = create_app(settings, services=services, with_worker=with_worker)
        install_access_log_filter()
        proxies = [str(network) for network in settings.trusted_proxy_networks]
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            lifespan="on",
            server_header=False,
            log_config=None,
            timeout_graceful_shutdown=10,
            # X-Forwarded-For counts only from OPS_TRUSTED_PROXIES (uvicorn would otherwise
            # trust 127.0.0.1, or $FORWARDED_ALLOW_IPS).
            proxy_headers=bool(proxies),
            forwarded_allow_ips=proxies or "",
        )
        server = _Server(config, app.state.event_hub.close)
        asyncio.run(_run(server, settings, host, with_worker, sock))
    finally:
        sock.close()
        services.close()


def _bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on ``host:port``; a clear error if it cannot be had."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise InputValidationError(f"cannot listen on {host}:{port}: {exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise InputValidationError(f"cannot listen on {host}:{port}: {reason}") from None
    sock.set_inheritable(True)
    return sock
