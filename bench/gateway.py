"""Gateway benchmark: real uvicorn on loopback, wrk as the load generator.

Prints, measured in one run (SQLite store; rounds alternate between the servers, so load on
the shared machine hits both alike):

1. authenticated ``GET /ops/approved/{id}`` (a registry token) against a bare FastAPI
   ``async def`` returning the same bytes: req/s, p99 and the server's CPU time per request,
   and the ratio of each. Goal (req/s): >= 0.5.
2. ``GET /ops/drafts?limit=50`` against the bare app returning the same page. Goal: >= 0.3.
3. approvals over HTTP, 16 connections (``POST /ops/drafts/{id}/approve`` of distinct
   drafts, each a durable SQLite write), against plain sqlite3 transactions of the same
   statements on the same schema (``bench/store.py``). Goal: >= 0.3.
4. writes per second of one client over HTTP: create a draft, approve it, create a run.

The load generator is wrk (``wrk -t2 -c16``, Lua scripts for the token and the POSTs); it is
written in C, so the servers, not the client, are what saturate. The CPU figure (from
``/proc/<pid>/stat``) is the one that isolates the gateway's own cost on a busy machine.

Run: ``.venv/bin/python bench/gateway.py [--seconds 5] [--rounds 3]`` (about a minute).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
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
THREADS = 2
BENCH_RATE_LIMIT = 100_000_000
DRAFTS_ON_PAGE = 50
ITEM_CONTENT = "Split parse() into tokenize() and build(); keep the public API. " * 20
PAGE_CONTENT = "Split parse() into tokenize() and build(). " * 25  # 50 drafts: 74 KB
GOALS = {"approved": 0.5, "drafts": 0.3, "approvals": 0.3}

# Each wrk thread approves its own slice of the draft ids (``ids`` is defined above this).
_APPROVE_LUA = """
local counter = 0
local threads = {}
function setup(thread)
  thread:set("offset", counter)
  counter = counter + 1
  table.insert(threads, thread)
end
function init(args)
  next_index = offset + 1
  failures = 0
end
function request()
  local id = ids[next_index]
  next_index = next_index + %(threads)d
  if id == nil then id = "d_exhausted" end
  return wrk.format("POST", "/ops/drafts/" .. id .. "/approve",
    {["Authorization"] = "Bearer %(token)s"}, nil)
end
function response(status, headers, body)
  if status ~= 200 then failures = failures + 1 end
end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("failures") end
  io.write(string.format("failures: %%d\\n", total))
end
"""

_CHECK_LUA = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) failures = 0 end
function response(status, headers, body)
  if status ~= 200 then failures = failures + 1 end
end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("failures") end
  io.write(string.format("failures: %d\\n", total))
end
"""


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


def serve_bare(body_dir: Path, port: int) -> None:
    """A bare FastAPI app: one async endpoint per body, returning the same bytes."""
    from fastapi import FastAPI
    from starlette.responses import Response

    approved = (body_dir / "approved.json").read_bytes()
    drafts = (body_dir / "drafts.json").read_bytes()
    app = FastAPI()

    @app.get("/bare/approved/{item_id}")
    async def bare_approved(item_id: str) -> Response:
        return Response(content=approved, media_type="application/json")

    @app.get("/bare/drafts")
    async def bare_drafts(limit: int = 50) -> Response:
        return Response(content=drafts, media_type="application/json")

    _uvicorn(app, port)


# --- measuring ---------------------------------------------------------------------------


@dataclass
class Measure:
    requests: int
    seconds: float
    p99_ms: float
    server_cpu_s: float
    failures: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_us(self) -> float:
        return self.server_cpu_s / max(1, self.requests) * 1e6


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
        deadline = time.monotonic() + 60
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


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _wrk(url: str, pid: int, seconds: float, script: Path, headers: dict[str, str]) -> Measure:
    argv = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--latency"]
    argv += ["-s", str(script)]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    cpu_before = _cpu_seconds(pid)
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    cpu = _cpu_seconds(pid) - cpu_before
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    failures = re.search(r"failures: (\d+)", out)
    if not (done and p99 and failures):
        raise SystemExit(f"cannot read wrk's output:\n{out}")
    return Measure(
        requests=int(done.group(1)),
        seconds=float(done.group(2)) * _UNITS[done.group(3)] / 1e3,
        p99_ms=float(p99.group(1)) * _UNITS[p99.group(2)],
        server_cpu_s=cpu,
        failures=int(failures.group(1)),
    )


def _median(runs: list[Measure]) -> Measure:
    """The round with the median rate (its own p99 and CPU)."""
    ordered = sorted(runs, key=lambda m: m.rate)
    return ordered[len(ordered) // 2]


# --- the store ---------------------------------------------------------------------------


def _seed(data_dir: Path) -> str:
    """An approved item to read; tokens written to the data dir."""
    from core.auth import Principal
    from core.bootstrap import build_services
    from core.config import Settings
    from core.models import DraftIn, Role

    services = build_services(Settings(data_dir=data_dir))
    try:
        services.access.bootstrap()
        admin = Principal(role=Role.ADMIN, name="bench")
        first = services.drafts.create(
            data=DraftIn(prompt="Refactor the parser", content=ITEM_CONTENT), actor=admin
        )
        approved = services.approvals.approve(draft_id=first.id, actor=admin).approved
    finally:
        services.close()
    return approved.id


def _fill_page(data_dir: Path) -> None:
    """The newest drafts: the first page of the list (50 drafts, 74 KB)."""
    from core.auth import Principal
    from core.bootstrap import build_services
    from core.config import Settings
    from core.models import DraftIn, Role

    services = build_services(Settings(data_dir=data_dir))
    try:
        admin = Principal(role=Role.ADMIN, name="bench")
        for i in range(DRAFTS_ON_PAGE):
            services.drafts.create(
                data=DraftIn(prompt=f"Task {i}: refactor", content=PAGE_CONTENT), actor=admin
            )
    finally:
        services.close()


def _add_drafts(db: Path, count: int) -> list[str]:
    """``count`` drafts to approve, inserted with plain sqlite3 (as bench/store.py does)."""
    from bench.store import _draft_rows, _insert_drafts, _raw_connection

    rows = _draft_rows(count, "http")
    conn = _raw_connection(db)
    try:
        _insert_drafts(conn, rows)
    finally:
        conn.close()
    return [str(row[0]) for row in rows]


def _raw_approvals_per_s(root: Path, count: int) -> float:
    """Plain sqlite3 transactions with the approve statements (bench/store.py)."""
    from bench.store import RawApprover, _draft_rows, _insert_drafts, _raw_connection
    from core.bootstrap import build_services
    from core.config import Settings

    data = root / "raw"
    build_services(Settings(data_dir=data)).close()
    rows = _draft_rows(count + 1, "raw")
    conn = _raw_connection(data / "ops.db")
    _insert_drafts(conn, rows)
    conn.close()
    raw = RawApprover(data / "ops.db")
    try:
        raw.approve(rows[0])
        started = time.perf_counter()
        for row in rows[1:]:
            raw.approve(row)
        return count / (time.perf_counter() - started)
    finally:
        raw.conn.close()


def _writes_per_s(url: str, token: str, count: int) -> float:
    """One client: create a draft, approve it, create a run; each step a durable write."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        started = time.perf_counter()
        for i in range(count):
            draft = client.post("/ops/drafts", json={"prompt": f"w{i}", "content": "c"})
            draft_id = draft.json()["id"]
            approved = client.post(f"/ops/drafts/{draft_id}/approve", json={"auto_run": False})
            run = client.post("/ops/runs", json={"approved_id": approved.json()["approved"]["id"]})
            if run.status_code != 201:
                raise SystemExit(f"writes failed: {run.status_code} {run.text}")
        return count * 3 / (time.perf_counter() - started)


# --- main --------------------------------------------------------------------------------


def _row(label: str, gateway: Measure, bare: Measure, goal: float) -> list[str]:
    ratio = gateway.rate / bare.rate
    verdict = "ok" if ratio >= goal else "BELOW GOAL"
    return [
        f"  {label}",
        f"    gateway {gateway.rate:8.0f} req/s  p99 {gateway.p99_ms:7.1f} ms  "
        f"server CPU {gateway.cpu_us:6.0f} us/request",
        f"    bare    {bare.rate:8.0f} req/s  p99 {bare.p99_ms:7.1f} ms  "
        f"server CPU {bare.cpu_us:6.0f} us/request",
        f"    ratio gateway / bare: req/s {ratio:.2f} (goal >= {goal}: {verdict});  "
        f"bare / gateway CPU per request {bare.cpu_us / gateway.cpu_us:.2f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="wrk duration per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--writes", type=int, default=100, help="draft+approve+run cycles")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk (make bench does it)")

    with tempfile.TemporaryDirectory(prefix="ops-bench-gw-") as tmp:
        root = Path(tmp)
        data_dir = root / "data"
        approved_id = _seed(data_dir)
        draft_ids = _add_drafts(data_dir / "ops.db", 20_000)
        _fill_page(data_dir)
        tokens = {
            role: (data_dir / "tokens" / f"{role}.token").read_text().strip()
            for role in ("actions", "operator", "admin")
        }
        read_auth = {"Authorization": f"Bearer {tokens['actions']}"}
        check = root / "check.lua"
        check.write_text(_CHECK_LUA)
        approve = root / "approve.lua"
        ids = ", ".join(f'"{i}"' for i in draft_ids)
        approve.write_text(
            f"ids = {{{ids}}}\n" + _APPROVE_LUA % {"threads": THREADS, "token": tokens["operator"]}
        )
        targets = {
            "approved": (f"/ops/approved/{approved_id}", f"/bare/approved/{approved_id}"),
            "drafts": (f"/ops/drafts?limit={DRAFTS_ON_PAGE}", "/bare/drafts?limit=50"),
        }
        runs: dict[str, list[Measure]] = {f"{k}_{s}": [] for k in targets for s in ("gw", "bare")}
        with server("--serve-gateway", str(data_dir)) as (gw_url, gw_pid):
            for name, (path, _) in targets.items():
                answer = httpx.get(gw_url + path, headers=read_auth)
                answer.raise_for_status()
                (root / f"{name}.json").write_bytes(answer.content)
            with server("--serve-bare", str(root)) as (bare_url, bare_pid):
                for _ in range(args.rounds):
                    for name, (path, bare_path) in targets.items():
                        runs[f"{name}_bare"].append(
                            _wrk(bare_url + bare_path, bare_pid, args.seconds, check, {})
                        )
                        runs[f"{name}_gw"].append(
                            _wrk(gw_url + path, gw_pid, args.seconds, check, read_auth)
                        )
            raw_before = _raw_approvals_per_s(root / "r1", 1000)
            approvals = _wrk(gw_url + "/", gw_pid, args.seconds, approve, {})
            raw_after = _raw_approvals_per_s(root / "r2", 1000)
            writes = _writes_per_s(gw_url, tokens["admin"], args.writes)
        page_bytes = (root / "drafts.json").stat().st_size

    failures = sum(m.failures for ms in runs.values() for m in ms) + approvals.failures
    if failures:
        raise SystemExit(f"{failures} answers were not 200: the figures would be wrong")
    raw = (raw_before + raw_after) / 2
    lines = [
        f"gateway benchmark: uvicorn on 127.0.0.1, wrk -t{THREADS} -c{CONNECTIONS} "
        f"-d{args.seconds:g}s, median of {args.rounds} alternating rounds",
        *_row(
            "GET /ops/approved/{id} (bearer, registry token)",
            _median(runs["approved_gw"]),
            _median(runs["approved_bare"]),
            GOALS["approved"],
        ),
        *_row(
            f"GET /ops/drafts?limit=50 ({page_bytes // 1024} KB)",
            _median(runs["drafts_gw"]),
            _median(runs["drafts_bare"]),
            GOALS["drafts"],
        ),
        f"  approvals over HTTP, {CONNECTIONS} connections: {approvals.rate:6.0f}/s  "
        f"p99 {approvals.p99_ms:.0f} ms  server CPU {approvals.cpu_us:.0f} us/approval",
        f"    raw sqlite3 transactions, same statements: {raw:6.0f}/s",
        f"    ratio HTTP / raw: {approvals.rate / raw:.2f} (goal >= {GOALS['approvals']}: "
        f"{'ok' if approvals.rate / raw >= GOALS['approvals'] else 'BELOW GOAL'})",
        f"  writes over HTTP, one client (draft, approve, run): {writes:6.0f}/s",
    ]
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve-gateway":
        serve_gateway(Path(sys.argv[2]), int(sys.argv[3]))
    elif len(sys.argv) == 4 and sys.argv[1] == "--serve-bare":
        serve_bare(Path(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
