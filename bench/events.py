"""Event stream benchmark (SQLite): how fast a commit reaches a stream, and what idle
streams cost.

Prints:
  1. commit -> received on GET /ops/events, same process (uvicorn in a thread)   p50, p95
  2. commit -> received, across processes (ops-trigger serve; this process commits)
  3. 500 idle streams on one serve process: memory per stream, CPU while idle, and one
     event reaching all of them

    .venv/bin/python bench/events.py [--events 200] [--streams 500]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parents[1]
# bench/ itself off the path: bench/mcp.py would shadow the mcp package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from core.auth import Principal  # noqa: E402
from core.bootstrap import Services, build_services  # noqa: E402
from core.config import Settings  # noqa: E402
from core.models import DraftIn, Role  # noqa: E402
from gateway.app import create_app  # noqa: E402

TOKEN = "bench-actions-token-0123456789"
ADMIN = Principal(role=Role.ADMIN, name="bench")


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _latencies(url: str, services: Services, count: int) -> list[float]:
    """Commit drafts one at a time; ms from just before the commit to the SSE line."""
    got: list[float] = []
    opened = threading.Event()
    received = threading.Event()

    def listen() -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.stream("GET", f"{url}/ops/events?types=draft.created", headers=headers,
                          timeout=60) as response:  # fmt: skip
            for line in response.iter_lines():
                if line.startswith(": stream open"):
                    opened.set()
                elif line.startswith("data:"):
                    received.set()
                    if len(got) + 1 >= count:
                        return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    opened.wait(30)
    for i in range(count):
        received.clear()
        start = time.perf_counter()
        services.drafts.create(data=DraftIn(prompt=f"bench {i}"), actor=ADMIN)
        if not received.wait(10):
            raise SystemExit("an event did not arrive within 10 s")
        got.append((time.perf_counter() - start) * 1000)
        time.sleep(0.01)
    thread.join(10)
    return got


def same_process(count: int, base: Path) -> list[float]:
    settings = Settings(data_dir=base / "same", actions_token=TOKEN)
    services = build_services(settings)
    port = _port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, services=services),
            host="127.0.0.1",
            port=port,
            log_config=None,
            lifespan="on",
        )  # fmt: skip
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        return _latencies(f"http://127.0.0.1:{port}", services, count)
    finally:
        server.should_exit = True
        thread.join(15)
        services.close()


def _proc(pid: int) -> tuple[int, float]:
    """(resident KiB, CPU seconds) of a process."""
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss, (int(fields[11]) + int(fields[12])) / ticks


async def _idle_streams(url: str, pid: int, services: Services, count: int) -> None:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:
        rss_before, _ = _proc(pid)
        opened = 0
        all_open = asyncio.Event()
        arrived: list[float] = []
        start = 0.0

        async def listen() -> None:
            nonlocal opened
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with client.stream("GET", f"{url}/ops/events", headers=headers) as response:
                async for line in response.aiter_lines():
                    if line.startswith(": stream open"):
                        opened += 1
                        if opened == count:
                            all_open.set()
                    elif line.startswith("data:"):
                        arrived.append(time.perf_counter() - start)
                        return

        tasks = [asyncio.create_task(listen()) for _ in range(count)]
        await asyncio.wait_for(all_open.wait(), 120)
        await asyncio.sleep(1.0)
        rss_after, cpu0 = _proc(pid)
        await asyncio.sleep(5.0)
        _, cpu1 = _proc(pid)
        _say(f"{count} idle streams: {(rss_after - rss_before) / count:.1f} KiB per stream "
             f"(serve RSS {rss_before // 1024} -> {rss_after // 1024} MiB); "
             f"CPU while idle {100 * (cpu1 - cpu0) / 5.0:.1f}% of one core")  # fmt: skip
        start = time.perf_counter()
        await asyncio.to_thread(services.drafts.create, data=DraftIn(prompt="to all"), actor=ADMIN)
        await asyncio.wait_for(asyncio.gather(*tasks), 120)
        _say(
            f"one event reached all {len(arrived)} streams: last after "
            f"{max(arrived) * 1000:.1f} ms, p50 {statistics.median(arrived) * 1000:.1f} ms"
        )


def across_processes(count: int, streams: int, base: Path) -> None:
    data_dir = base / "across"
    port = _port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPS_", "ORCH_"))}
    env |= {"ORCH_ACTIONS_TOKEN": TOKEN, "ORCH_TOKEN": "bench-admin-token-0123456789"}
    subprocess.run(
        [sys.executable, "-c", "from cli.main import main; main()", "init", "--data-dir",
         str(data_dir)],
        cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    serve = subprocess.Popen(
        [sys.executable, "-c", "from cli.main import main; main()", "serve", "--port",
         str(port), "--data-dir", str(data_dir), "--no-worker"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("serve did not start")
            time.sleep(0.1)
        services = build_services(Settings(data_dir=data_dir))
        try:
            got = _latencies(url, services, count)
            _say(f"across processes: commit -> received p50 {statistics.median(got):.1f} ms, "
                 f"p95 {_pct(got, 0.95):.1f} ms ({count} events)")  # fmt: skip
            asyncio.run(_idle_streams(url, serve.pid, services, streams))
        finally:
            services.close()
    finally:
        serve.terminate()
        serve.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--streams", type=int, default=500)
    args = parser.parse_args()
    logging.disable(logging.INFO)  # the servers' request logs (the MCP SDK sets INFO up)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        got = same_process(args.events, base)
        _say(f"same process: commit -> received p50 {statistics.median(got):.1f} ms, "
             f"p95 {_pct(got, 0.95):.1f} ms ({args.events} events)")  # fmt: skip
        across_processes(args.events, args.streams, base)


if __name__ == "__main__":
    main()
