"""Gateway benchmark: real uvicorn on loopback, wrk as the load generator.

Prints, measured in one run on one store (SQLite, or a fresh PostgreSQL database with
``--postgres URL``); rounds alternate between the servers, so load on the shared machine hits
both alike:

1. authenticated ``GET /ops/approved/{id}`` (a registry token) against a bare FastAPI
   ``async def`` returning the same bytes: req/s, p99 and the server's CPU time per request,
   and the ratio of each. Goal (req/s): >= 0.5.
2. ``GET /ops/drafts?limit=50`` against the bare app returning the same page. Goal: >= 0.3.
3. approvals over HTTP, 16 connections (``POST /ops/drafts/{id}/approve`` of distinct
   drafts, each a durable write), against plain driver transactions: sqlite3 with the same
   statements on the same schema (``bench/store.py``), or psycopg replaying the statements
   the services issue (``bench/approvals_pg.py``). Goal: >= 0.3.
4. writes per second of one client over HTTP (create a draft, approve it, create a run)
   against ``bench/opsv2.py``, a baseline modelled on OPS v2 (one JSON file per item, no
   fsync), driven by the same client loop in alternating rounds. Goal: >= 3.

The load generator is wrk (``wrk -t2 -c16``, Lua scripts for the token and the POSTs); it is
written in C, so the servers, not the client, are what saturate. The CPU figure (from
``/proc/<pid>/stat``) is the one that isolates the gateway's own cost on a busy machine.

Run: ``.venv/bin/python bench/gateway.py [--postgres URL] [--seconds 5] [--rounds 3]``
(about two minutes; ``BENCH_SCALE=small`` for a smoke run; ``BENCH_PROFILE=DIR`` samples the
gateway with py-spy during its rounds, see ``bench/stacks.py``). ``--reads-only``: figures 1
and 2 only. ``BENCH_UNCACHED=1``: the gateway's read cache never hits, as when the store
changed between any two reads (figures 1 and 2 then measure a read from the store).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
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

# This file is named like the ``gateway`` package, and bench/mcp.py like the ``mcp`` package:
# take bench/ off the import path (and put the repository root on it) before any import.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from bench import benchlib  # noqa: E402

CONNECTIONS = 16
THREADS = 2
BENCH_RATE_LIMIT = 100_000_000
DRAFTS_ON_PAGE = 50

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


def serve_gateway(data_dir: Path, port: int, database_url: str | None) -> None:
    """The real gateway over the benchmark's store (no worker, limits out of the way)."""
    from core.config import Settings
    from gateway.app import create_app

    settings = Settings(
        data_dir=data_dir, database_url=database_url, rate_limit_per_minute=BENCH_RATE_LIMIT
    )
    app = create_app(settings)
    if os.environ.get("BENCH_UNCACHED") == "1":
        from gateway.readcache import ReadCache

        # A stamp equal to nothing: every read misses, as when the store changed since the
        # last read (the cost of a read under a stream of writes).
        app.state.read_cache = ReadCache(object)
    _uvicorn(app, port)


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


_cpu_seconds = benchlib.cpu_seconds


@contextmanager
def server(script: str, *argv: str) -> Iterator[tuple[str, int]]:
    """Start ``script ARGV... PORT`` as a server subprocess; yield (base url, pid)."""
    port = benchlib.free_port()
    # The server's log goes to a file: a pipe nobody reads would fill and stop the server.
    log = tempfile.NamedTemporaryFile(prefix="ops-bench-server-", suffix=".log")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, script, *argv, str(port)],
        env=benchlib.clean_env(PYTHONPATH=str(_HERE.parent)),
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                error = Path(log.name).read_text()[-4000:]
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
        log.close()


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


# --- main --------------------------------------------------------------------------------


def _row(key: str, label: str, gateway: Measure, bare: Measure, backend: str) -> list[str]:
    ratio = gateway.rate / bare.rate
    benchlib.record(
        key,
        backend,
        ratio,
        f"{ratio:.2f} ({gateway.rate:.0f} vs {bare.rate:.0f} req/s; CPU {gateway.cpu_us:.0f} vs "
        f"{bare.cpu_us:.0f} µs/request)",
        cpu_us=gateway.cpu_us,
        bare_cpu_us=bare.cpu_us,
    )
    return [
        f"  {label}",
        f"    gateway {gateway.rate:8.0f} req/s  p99 {gateway.p99_ms:7.1f} ms  "
        f"server CPU {gateway.cpu_us:6.0f} us/request",
        f"    bare    {bare.rate:8.0f} req/s  p99 {bare.p99_ms:7.1f} ms  "
        f"server CPU {bare.cpu_us:6.0f} us/request",
        f"    ratio gateway / bare: req/s {ratio:.2f} ({benchlib.verdict(key, ratio)});  "
        f"bare / gateway CPU per request {bare.cpu_us / gateway.cpu_us:.2f}",
    ]


def _read_lines(
    runs: dict[str, list[Measure]],
    root: Path,
    args: argparse.Namespace,
    backend: str,
    page_bytes: int | None = None,
) -> list[str]:
    """The two GET figures (recorded) and their lines."""
    failures = sum(m.failures for ms in runs.values() for m in ms)
    if failures:
        raise SystemExit(f"{failures} answers were not 200: the figures would be wrong")
    if page_bytes is None:
        page_bytes = (root / "drafts.json").stat().st_size
    return [
        f"gateway benchmark on {'PostgreSQL' if args.postgres else 'SQLite (WAL)'}: uvicorn on "
        f"127.0.0.1, wrk -t{THREADS} -c{CONNECTIONS} -d{args.seconds:g}s, median of "
        f"{args.rounds} alternating rounds",
        *_row(
            "approved_get",
            "GET /ops/approved/{id} (bearer, registry token)",
            _median(runs["approved_gw"]),
            _median(runs["approved_bare"]),
            backend,
        ),
        *_row(
            "drafts_get",
            f"GET /ops/drafts?limit=50 ({page_bytes // 1024} KB)",
            _median(runs["drafts_gw"]),
            _median(runs["drafts_bare"]),
            backend,
        ),
    ]


def _tokens(data_dir: Path) -> dict[str, str]:
    return {
        role: (data_dir / "tokens" / f"{role}.token").read_text().strip()
        for role in ("actions", "operator", "admin")
    }


def _writes(
    gw_url: str, gw_pid: int, token: str, root: Path, rounds: int, count: int, backend: str
) -> tuple[list[float], list[float], float, float]:
    """Writes/s of the gateway and of the OPS v2-like baseline, in alternating rounds;
    and the CPU seconds per write of each server."""
    from bench.opsv2 import TOKEN, writes_per_s

    ours: list[float] = []
    theirs: list[float] = []
    cpu_ours = cpu_theirs = 0.0
    with server(str(_HERE / "opsv2.py"), str(root / "opsv2")) as (v2_url, v2_pid):
        writes_per_s(v2_url, TOKEN, 5, prefix="")  # warm-up, both
        writes_per_s(gw_url, token, 5)
        for _ in range(rounds):
            with benchlib.profiled(gw_pid, f"writes_v2.{backend}"):
                before = _cpu_seconds(gw_pid)
                ours.append(writes_per_s(gw_url, token, count))
                cpu_ours += _cpu_seconds(gw_pid) - before
            before = _cpu_seconds(v2_pid)
            theirs.append(writes_per_s(v2_url, TOKEN, count, prefix=""))
            cpu_theirs += _cpu_seconds(v2_pid) - before
    writes = rounds * count * 3
    return ours, theirs, cpu_ours / writes, cpu_theirs / writes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=None, help="a server URL: run on PostgreSQL")
    parser.add_argument("--seconds", type=float, default=benchlib.sized(5, 2))
    parser.add_argument("--rounds", type=int, default=benchlib.sized(3, 1))
    parser.add_argument("--writes", type=int, default=benchlib.sized(100, 30),
                        help="draft+approve+run cycles per round")  # fmt: skip
    parser.add_argument("--reads-only", action="store_true",
                        help="only the two GET figures (1 and 2)")  # fmt: skip
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk (make bench does it)")
    from bench import gateway_store as gs
    from core.config import Settings

    backend = benchlib.backend_of(args.postgres)
    with (
        tempfile.TemporaryDirectory(prefix="ops-bench-gw-") as tmp,
        benchlib.fresh_database(args.postgres, "gw") as db_url,
    ):
        root = Path(tmp)
        data_dir = root / "data"
        settings = Settings(data_dir=data_dir, database_url=db_url)
        approved_id = gs.seed(settings)
        # Enough distinct drafts for the approvals' wrk round (it stops at the last one).
        draft_ids = (
            [] if args.reads_only else gs.add_drafts(settings, benchlib.sized(20_000, 4_000))
        )
        gs.fill_page(settings, DRAFTS_ON_PAGE)
        tokens = _tokens(data_dir)
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
        gw_args = [str(data_dir)] + ([db_url] if db_url else [])
        with server(__file__, "--serve-gateway", *gw_args) as (gw_url, gw_pid):
            for name, (path, _) in targets.items():
                answer = httpx.get(gw_url + path, headers=read_auth)
                answer.raise_for_status()
                (root / f"{name}.json").write_bytes(answer.content)
            with server(__file__, "--serve-bare", str(root)) as (bare_url, bare_pid):
                for _ in range(args.rounds):
                    for name, (path, bare_path) in targets.items():
                        runs[f"{name}_bare"].append(
                            _wrk(bare_url + bare_path, bare_pid, args.seconds, check, {})
                        )
                        with benchlib.profiled(gw_pid, f"{name}_get.{backend}"):
                            runs[f"{name}_gw"].append(
                                _wrk(gw_url + path, gw_pid, args.seconds, check, read_auth)
                            )
            if args.reads_only:
                sys.stdout.write("\n".join(_read_lines(runs, root, args, backend)) + "\n")
                return
            raw_count = benchlib.sized(1000, 300)
            raw_before = gs.raw_approvals_per_s(root, args.postgres, raw_count)
            with benchlib.profiled(gw_pid, f"approvals_http.{backend}"):
                approvals = _wrk(gw_url + "/", gw_pid, args.seconds, approve, {})
            raw_after = gs.raw_approvals_per_s(root, args.postgres, raw_count)
            ours, theirs, cpu_ours, cpu_theirs = _writes(
                gw_url, gw_pid, tokens["admin"], root, args.rounds, args.writes, backend
            )
        page_bytes = (root / "drafts.json").stat().st_size

    failures = sum(m.failures for ms in runs.values() for m in ms) + approvals.failures
    if failures:
        raise SystemExit(f"{failures} answers were not 200: the figures would be wrong")
    raw = (raw_before + raw_after) / 2
    driver = "psycopg" if args.postgres else "sqlite3"
    http_ratio = approvals.rate / raw
    benchlib.record(
        "approvals_http",
        backend,
        http_ratio,
        f"{http_ratio:.2f} ({approvals.rate:.0f}/s vs raw {driver} {raw:.0f}/s; server CPU "
        f"{approvals.cpu_us:.0f} µs/approval)",
        cpu_us=approvals.cpu_us,
    )
    our_rate, their_rate = statistics.median(ours), statistics.median(theirs)
    writes_ratio = our_rate / their_rate
    benchlib.record(
        "writes_v2",
        backend,
        writes_ratio,
        f"{writes_ratio:.2f} ({our_rate:.0f} vs {their_rate:.0f} writes/s; server CPU "
        f"{cpu_ours * 1e6:.0f} vs {cpu_theirs * 1e6:.0f} µs/write)",
        cpu_us=cpu_ours * 1e6,
        baseline_cpu_us=cpu_theirs * 1e6,
    )
    lines = [
        *_read_lines(runs, root, args, backend, page_bytes),
        f"  approvals over HTTP, {CONNECTIONS} connections: {approvals.rate:6.0f}/s  "
        f"p99 {approvals.p99_ms:.0f} ms  server CPU {approvals.cpu_us:.0f} us/approval",
        f"    raw {driver} transactions, same statements: {raw:6.0f}/s "
        f"(before {raw_before:.0f}, after {raw_after:.0f})",
        f"    ratio HTTP / raw: {http_ratio:.2f} "
        f"({benchlib.verdict('approvals_http', http_ratio)})",
        f"  writes over HTTP, one client (draft, approve, run), {args.rounds} alternating rounds "
        f"of {args.writes} cycles:",
        f"    gateway           {our_rate:6.0f} writes/s  server CPU {cpu_ours * 1e6:6.0f} us/write"
        f"  (rounds: {', '.join(f'{r:.0f}' for r in ours)})",
        f"    OPS v2-like base  {their_rate:6.0f} writes/s  server CPU "
        f"{cpu_theirs * 1e6:6.0f} us/write  (bench/opsv2.py: a baseline modelled on OPS v2, one "
        "JSON file per item, no fsync; not OPS v2 itself)",
        f"    ratio gateway / baseline: {writes_ratio:.2f} "
        f"({benchlib.verdict('writes_v2', writes_ratio)})",
    ]
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    if len(sys.argv) in (4, 5) and sys.argv[1] == "--serve-gateway":
        database = sys.argv[3] if len(sys.argv) == 5 else None
        serve_gateway(Path(sys.argv[2]), int(sys.argv[-1]), database)
    elif len(sys.argv) == 4 and sys.argv[1] == "--serve-bare":
        serve_bare(Path(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
