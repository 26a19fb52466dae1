"""Agent claim benchmark: how soon an agent waiting in a long poll gets a new agent run.

An agent waits in ``POST /ops/agent/claim`` (``wait_s`` 25); this process creates an agent
run (approve with ``auto_run``); the time is from just before that commit to the claim's
answer in the agent's hands (the run is then ``running``).

Prints p50 and p95 of commit -> claimed:
  1. same process (uvicorn in a thread; the run is created through the gateway's services)
  2. across processes (``ops-trigger serve --no-worker``; this process writes the store)
on SQLite, and on PostgreSQL too with ``--database-url postgresql+psycopg://…`` (an empty
database of its own, e.g. created with ``createdb``).

    .venv/bin/python bench/agents.py [--runs 100] [--database-url URL]
"""

from __future__ import annotations

import argparse
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
# bench/mcp.py must not shadow the mcp package that the gateway imports.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from core.auth import Principal  # noqa: E402
from core.bootstrap import Services, build_services  # noqa: E402
from core.config import Settings  # noqa: E402
from core.models import DraftIn, Role, Scope  # noqa: E402
from gateway.app import create_app  # noqa: E402

ADMIN = Principal(role=Role.ADMIN, name="bench")
AGENT = "bench-agent"


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


def _claim(http: httpx.Client, answer: list[httpx.Response]) -> None:
    answer.append(http.post("/ops/agent/claim", json={"agent": AGENT, "wait_s": 25}))


def _latencies(url: str, services: Services, count: int) -> list[float]:
    """ms from just before each run's commit to its claim answer in a waiting agent."""
    name = f"bench-{os.getpid()}-{time.monotonic_ns() % 10**9}"
    _, token = services.access.create_token(role=Role.AGENT, name=name, actor="bench")
    got: list[float] = []
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as http:
        for i in range(count):
            draft = services.drafts.create(
                data=DraftIn(prompt=f"bench {i}", scope=Scope(agents=[AGENT])), actor=ADMIN
            )
            answer: list[httpx.Response] = []
            waiter = threading.Thread(target=_claim, args=(http, answer))
            waiter.start()
            time.sleep(0.15)  # the claim is waiting in the gateway now
            start = time.perf_counter()
            services.approvals.approve(
                draft_id=draft.id, actor=ADMIN, auto_run=True, executor="agent", agent=AGENT
            )
            waiter.join(30)
            if not answer or answer[0].status_code != 200:
                raise SystemExit(f"the claim did not get the run: {answer}")
            got.append((time.perf_counter() - start) * 1000)
            body = answer[0].json()
            lease = {"X-Lease-Token": body["lease_token"]}
            http.post(f"/ops/runs/{body['run']['id']}/complete", json={"output": "ok"},
                      headers=lease)  # fmt: skip
    return got


def same_process(count: int, settings: Settings) -> list[float]:
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


def across_processes(count: int, settings: Settings) -> list[float]:
    port = _port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPS_", "ORCH_"))}
    if settings.database_url:
        env["OPS_DATABASE_URL"] = settings.database_url
    serve = subprocess.Popen(
        [sys.executable, "-c", "from cli.main import main; main()", "serve", "--port",
         str(port), "--data-dir", str(settings.data_dir), "--no-worker"],
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
        services = build_services(settings)
        try:
            return _latencies(url, services, count)
        finally:
            services.close()
    finally:
        serve.terminate()
        serve.wait(30)


def _report(label: str, got: list[float]) -> None:
    _say(f"{label}: commit -> claimed p50 {statistics.median(got):.1f} ms, "
         f"p95 {_pct(got, 0.95):.1f} ms ({len(got)} runs)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        backends = [("sqlite", None)] + ([("postgresql", args.database_url)]
                                         if args.database_url else [])  # fmt: skip
        for name, url in backends:
            settings = Settings(data_dir=base / name, database_url=url)
            _report(f"{name}, same process", same_process(args.runs, settings))
            _report(f"{name}, across processes", across_processes(args.runs, settings))


if __name__ == "__main__":
    main()
