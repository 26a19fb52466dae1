"""Gateway benchmark: real uvicorn on loopback, an async httpx load generator.

Prints, measured in one run:

1. requests per second of an authenticated ``GET /ops/approved/{id}`` (a token from the
   registry, as ``make run`` creates them) divided by requests per second of a bare FastAPI
   async endpoint that returns the same bytes. Goal: >= 0.5. Both servers run the same
   uvicorn configuration in a subprocess; they are measured alternately, best of
   ``--rounds``; the server CPU time per request is printed too (the load generator shares
   the machine, so the CPU figure is the one that isolates the gateway's own cost).
2. approvals per second over HTTP: ``POST /ops/drafts/{id}/approve`` of distinct drafts by
   16 concurrent clients (each approval is a durable SQLite write).

Run: ``.venv/bin/python bench/gateway.py`` (about half a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

# This file is named like the ``gateway`` package: take its own directory off the import path
# (and put the repository root on it) before anything imports the package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

CONNECTIONS = 16
GOAL = 0.5
BENCH_RATE_LIMIT = 100_000_000


# --- the two servers (run in a subprocess by this same script) ---------------------------


def _uvicorn(app: Any, port: int) -> None:
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=port, access_log=False, log_level="warning")


def serve_gateway(data_dir: Path, port: int) -> None:
    """The real gateway over the benchmark's store (no worker, limits out of the way)."""
    from core.config import Settings
    from gateway.app import create_app

    settings = Settings(data_dir=data_dir, rate_limit_per_minute=BENCH_RATE_LIMIT)
    _uvicorn(create_app(settings), port)


def serve_bare(body_file: Path, port: int) -> None:
    """A bare FastAPI app with one async endpoint returning the same bytes."""
    from fastapi import FastAPI
    from starlette.responses import Response

    body = body_file.read_bytes()
    app = FastAPI()

    @app.get("/bare/{item_id}")
    async def bare(item_id: str) -> Response:
        return Response(content=body, media_type="application/json")

    _uvicorn(app, port)


# --- load generation ---------------------------------------------------------------------


@dataclass
class Measure:
    requests: int
    seconds: float
    server_cpu_s: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_us_per_request(self) -> float:
        return self.server_cpu_s / self.requests * 1e6


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def server(*argv: str) -> Iterator[tuple[str, int]]:
    """Start this script as a server subprocess; yield (base url, pid)."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPS_", "ORCH_"))}
    process = subprocess.Popen(
        [sys.executable, __file__, *argv, str(port)], env=env, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                error = process.stderr.read().decode() if process.stderr else ""
                raise SystemExit(f"server {argv[0]} exited: {error}")
            try:
                httpx.get(url + "/", timeout=0.5)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"server {argv[0]} did not start") from None
                time.sleep(0.05)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=15)


async def _hammer(url: str, headers: dict[str, str], seconds: float, pid: int) -> Measure:
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    async with httpx.AsyncClient(limits=limits, headers=headers, timeout=30) as client:
        expected = (await client.get(url)).content
        count = 0
        stop_at = 0.0

        async def worker() -> None:
            nonlocal count
            while time.perf_counter() < stop_at:
                response = await client.get(url)
                if response.status_code != 200 or response.content != expected:
                    raise SystemExit(f"unexpected answer {response.status_code} from {url}")
                count += 1

        stop_at = time.perf_counter() + min(1.0, seconds / 3)  # warm up the connections
        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
        count = 0
        cpu_before = _cpu_seconds(pid)
        started = time.perf_counter()
        stop_at = started + seconds
        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
        elapsed = time.perf_counter() - started
        cpu = _cpu_seconds(pid) - cpu_before
    return Measure(requests=count, seconds=elapsed, server_cpu_s=cpu)


async def _approve_all(url: str, headers: dict[str, str], draft_ids: list[str]) -> float:
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    queue = list(draft_ids)
    async with httpx.AsyncClient(limits=limits, headers=headers, timeout=60) as client:

        async def worker() -> None:
            while queue:
                draft_id = queue.pop()
                response = await client.post(f"{url}/ops/drafts/{draft_id}/approve")
                if response.status_code != 200:
                    raise SystemExit(f"approve failed: {response.status_code} {response.text}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
        return len(draft_ids) / (time.perf_counter() - started)


# --- main --------------------------------------------------------------------------------


def _seed(data_dir: Path, drafts: int) -> tuple[str, list[str]]:
    """An approved item to read, drafts to approve; tokens written to the data dir."""
    from core.auth import Principal
    from core.bootstrap import build_services
    from core.config import Settings
    from core.models import DraftIn, Role

    services = build_services(Settings(data_dir=data_dir))
    try:
        services.access.bootstrap()
        admin = Principal(role=Role.ADMIN, name="bench")
        content = "Split parse() into tokenize() and build(); keep the public API. " * 20
        first = services.drafts.create(
            data=DraftIn(prompt="Refactor the parser", content=content), actor=admin
        )
        approved = services.approvals.approve(draft_id=first.id, actor=admin).approved
        ids = [
            services.drafts.create(data=DraftIn(prompt=f"p{i}", content="c"), actor=admin).id
            for i in range(drafts)
        ]
    finally:
        services.close()
    return approved.id, ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="measurement per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--approvals", type=int, default=400)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ops-bench-gw-") as tmp:
        data_dir = Path(tmp) / "data"
        approved_id, draft_ids = _seed(data_dir, args.approvals)
        tokens = {
            role: (data_dir / "tokens" / f"{role}.token").read_text().strip()
            for role in ("actions", "operator")
        }
        body_file = Path(tmp) / "approved.json"
        read_auth = {"Authorization": f"Bearer {tokens['actions']}"}

        gateway_runs: list[Measure] = []
        bare_runs: list[Measure] = []
        with server("--serve-gateway", str(data_dir)) as (gw_url, gw_pid):
            target = f"{gw_url}/ops/approved/{approved_id}"
            body_file.write_bytes(httpx.get(target, headers=read_auth).content)
            with server("--serve-bare", str(body_file)) as (bare_url, bare_pid):
                for _ in range(args.rounds):
                    bare_runs.append(
                        asyncio.run(
                            _hammer(f"{bare_url}/bare/{approved_id}", {}, args.seconds, bare_pid)
                        )
                    )
                    gateway_runs.append(
                        asyncio.run(_hammer(target, read_auth, args.seconds, gw_pid))
                    )
            write_auth = {"Authorization": f"Bearer {tokens['operator']}"}
            approvals = asyncio.run(_approve_all(gw_url, write_auth, draft_ids))

    gateway = max(gateway_runs, key=lambda m: m.rate)
    bare = max(bare_runs, key=lambda m: m.rate)
    ratio = gateway.rate / bare.rate
    cpu_ratio = bare.cpu_us_per_request / gateway.cpu_us_per_request
    lines = [
        f"gateway benchmark: uvicorn on 127.0.0.1, httpx with {CONNECTIONS} connections, "
        f"best of {args.rounds} x {args.seconds:.0f} s",
        f"  GET /ops/approved/{{id}} (bearer, registry token): {gateway.rate:8.0f} req/s"
        f"   server CPU {gateway.cpu_us_per_request:6.0f} us/request",
        f"  bare FastAPI endpoint, same bytes:              {bare.rate:8.0f} req/s"
        f"   server CPU {bare.cpu_us_per_request:6.0f} us/request",
        f"  ratio (gateway / bare, req/s):  {ratio:.2f}   goal >= {GOAL}   "
        f"{'OK' if ratio >= GOAL else 'BELOW GOAL'}",
        f"  ratio (bare / gateway, server CPU per request): {cpu_ratio:.2f}",
        f"  approvals over HTTP: {approvals:.0f} per second "
        f"({args.approvals} drafts, {CONNECTIONS} clients)",
    ]
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve-gateway":
        serve_gateway(Path(sys.argv[2]), int(sys.argv[3]))
    elif len(sys.argv) == 4 and sys.argv[1] == "--serve-bare":
        serve_bare(Path(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
