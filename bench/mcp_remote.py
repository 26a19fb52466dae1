"""Remote MCP figures for ``bench/mcp.py``: ``tools/call`` over Streamable HTTP.

``/mcp`` of the gateway (bearer token) against a minimal ``MCPServer`` with one tool served
by the same uvicorn settings, one after the other; each in its own process on loopback.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

TOKEN = "bench-actions-token-0123456789"
SERVE = """\
import sys, uvicorn
TOKEN = "bench-actions-token-0123456789"
kind, port, data_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if kind == "minimal":
    from mcp.server.mcpserver import MCPServer
    from mcp.server.transport_security import TransportSecuritySettings
    mcp = MCPServer("minimal")

    @mcp.tool()
    def echo(text: str) -> str:
        return text

    security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    app = mcp.streamable_http_app(json_response=True, transport_security=security)
else:
    from pydantic import SecretStr
    from core.config import Settings
    from gateway.app import create_app
    settings = Settings(data_dir=data_dir, actions_token=SecretStr(TOKEN),
                        public_url=f"http://127.0.0.1:{port}", rate_limit_per_minute=10**9)
    app = create_app(settings)
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", server_header=False)
"""

HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INIT = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "b", "version": "0"},
    },
}


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Session:
    """One MCP session over plain HTTP: initialize, then tools/call."""

    def __init__(self, url: str, token: str | None) -> None:
        headers = dict(HEADERS)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.Client(headers=headers, timeout=30)
        self.url = url
        answer = self.http.post(url, json=INIT)
        answer.raise_for_status()
        self.http.headers["Mcp-Session-Id"] = answer.headers["mcp-session-id"]
        self.http.headers["Mcp-Protocol-Version"] = "2025-11-25"
        self.http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        self.next = 1

    def call(self, tool: str, args: dict[str, Any]) -> None:
        self.next += 1
        body = {"jsonrpc": "2.0", "id": self.next, "method": "tools/call",
                "params": {"name": tool, "arguments": args}}  # fmt: skip
        answer = self.http.post(self.url, json=body)
        if answer.status_code != 200 or '"isError":true' in answer.text:
            raise RuntimeError(f"{tool} failed: {answer.status_code} {answer.text[:200]}")

    def close(self) -> None:
        self.http.close()


def _serve(kind: str, data_dir: Path, script: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPS_", "ORCH_"))}
    proc = subprocess.Popen(
        [sys.executable, str(script), kind, str(port), str(data_dir)],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}" + ("/mcp" if kind == "ops" else "/mcp")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{kind} server did not start")


def _latency(url: str, token: str | None, tool: str, args: dict[str, Any], calls: int) -> float:
    session = Session(url, token)
    try:
        for _ in range(30):
            session.call(tool, args)
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            session.call(tool, args)
            times.append(time.perf_counter() - start)
        return statistics.median(times)
    finally:
        session.close()


def _throughput(
    url: str, token: str, tool: str, args: dict[str, Any], clients: int, seconds: float
) -> float:
    sessions = [Session(url, token) for _ in range(clients)]
    done = [0] * clients
    stop = time.perf_counter() + seconds

    def run(i: int) -> None:
        while time.perf_counter() < stop:
            sessions[i].call(tool, args)
            done[i] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    for session in sessions:
        session.close()
    return sum(done) / elapsed


def remote_figures(data_dir: Path, approved_id: str, tmp: Path, calls: int) -> list[str]:
    """The lines bench/mcp.py prints for the remote endpoint."""
    script = tmp / "serve_remote.py"
    script.write_text(SERVE, encoding="utf-8")
    ops, ops_url = _serve("ops", data_dir, script)
    try:
        args = {"approved_id": approved_id}
        ops_p50 = _latency(ops_url, TOKEN, "get_approved", args, calls)
        rps = _throughput(ops_url, TOKEN, "get_approved", args, 16, 5.0)
    finally:
        ops.terminate()
        ops.wait(10)
    minimal, minimal_url = _serve("minimal", data_dir, script)
    try:
        min_p50 = _latency(minimal_url, None, "echo", {"text": "hello"}, calls)
    finally:
        minimal.terminate()
        minimal.wait(10)
    ratio = ops_p50 / min_p50
    return [
        "Remote MCP over Streamable HTTP (uvicorn on loopback, stateful sessions, bearer token)",
        f"  tool call    get_approved /mcp {ops_p50 * 1000:8.3f} ms   "
        f"minimal {min_p50 * 1000:8.3f} ms   ratio {ratio:.2f} (goal <= 2.0)",
        f"  throughput   get_approved /mcp, 16 concurrent clients: {rps:8.0f} requests/s",
    ]
