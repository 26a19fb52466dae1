"""MCP server benchmark over real stdio: ``ops-trigger mcp`` against a minimal MCPServer.

Two ratios, in one run:

- cold start: spawn until the ``initialize`` answer, ``ops-trigger mcp`` / minimal server
  (goal <= 1.25);
- whole process: spawn, ``initialize``, ``tools/list`` answered, stdin closed, until the
  process has exited, ``ops-trigger mcp`` / minimal server (goal <= 1.25): what a client that
  spawns the server for one question waits for;
- call latency: median ``get_approved`` round trip / median round trip of the minimal
  server's one tool (goal <= 2.0);
- remote (``bench/mcp_remote.py``): the same over the gateway's ``/mcp`` (Streamable HTTP)
  against a minimal MCPServer over Streamable HTTP under the same uvicorn settings (goal
  <= 2.0), and requests/s at 16 concurrent clients.

Both servers run with this interpreter, with the same environment, alternately, so noise on
the machine hits both alike. Usage: ``python bench/mcp.py [--starts N] [--calls N]
[--postgres URL]`` (with ``--postgres`` the store is a fresh PostgreSQL database and the remote
figures are left out; ``BENCH_SCALE=small``: fewer starts and calls, no remote figures).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# bench/ off the import path (this file would shadow the mcp package), the repository on it.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from bench import benchlib  # noqa: E402

MINIMAL_SERVER = '''\
from mcp.server.mcpserver import MCPServer

mcp = MCPServer("minimal")


@mcp.tool()
def echo(text: str) -> str:
    """Return the text."""
    return text


if __name__ == "__main__":
    mcp.run()
'''

HANDSHAKE_VERSION = "2025-11-25"
GOAL_START = 1.25
GOAL_CALL = 2.0


class StdioPeer:
    """A spawned server spoken to with newline-delimited JSON-RPC over its stdin/stdout."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self._next_id = 0

    def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._next_id += 1
        msg = {"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params}
        self._send(msg)
        while True:
            answer = self._receive()
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method} failed: {answer['error']}")
                return answer["result"]  # type: ignore[no-any-return]

    def notify(self, method: str) -> None:
        self._send({"jsonrpc": "2.0", "method": method})

    def initialize(self) -> float:
        """Send ``initialize``; seconds from spawn to its answer."""
        self.request(
            "initialize",
            {
                "protocolVersion": HANDSHAKE_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "bench", "version": "0"},
            },
        )
        elapsed = time.perf_counter() - self.started
        self.notify("notifications/initialized")
        return elapsed

    def _send(self, msg: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(msg).encode() + b"\n")
        self.proc.stdin.flush()

    def _receive(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"server exited with {self.proc.wait()}")
        return json.loads(line)  # type: ignore[no-any-return]

    def lifetime(self) -> tuple[float, float]:
        """Handshake, list the tools, close stdin; (seconds from spawn until the exit, CPU
        seconds the process used in all)."""
        self.initialize()
        self.request("tools/list", {})
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        _, status, usage = os.wait4(self.proc.pid, 0)
        elapsed = time.perf_counter() - self.started
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        return elapsed, usage.ru_utime + usage.ru_stime

    def close(self) -> None:
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


@contextmanager
def peer(argv: list[str], env: dict[str, str]) -> Iterator[StdioPeer]:
    server = StdioPeer(argv, env)
    try:
        yield server
    finally:
        server.close()


def seed(data_dir: Path, database_url: str | None = None) -> str:
    """A store with a plan, one approved item and a draft; returns the approved id."""
    from core.auth import Principal
    from core.bootstrap import build_services
    from core.config import Settings
    from core.models import DraftIn, PlanIn, Role, Scope, Task

    services = build_services(Settings(data_dir=data_dir, database_url=database_url))
    try:
        admin = Principal(role=Role.ADMIN, name="bench")
        services.plan.put(
            data=PlanIn(
                title="Bench",
                objective="Measure the MCP server",
                tasks=[Task(id="t1", title="Task", agent="coder", scope=["src/**"])],
            ),
            actor=admin,
        )
        draft = services.drafts.create(
            data=DraftIn(
                prompt="Refactor the parser",
                content="x" * 2000,
                task_id="t1",
                scope=Scope(files=["src/**"], agents=["coder"]),
            ),
            actor=admin,
        )
        approved = services.approvals.approve(draft_id=draft.id, actor=admin).approved
        services.drafts.create(data=DraftIn(prompt="still a draft"), actor=admin)
        return approved.id
    finally:
        services.close()


def call_latencies(server: StdioPeer, tool: str, args: dict[str, Any], calls: int) -> list[float]:
    for _ in range(20):  # warm-up: the first calls load the store and fill caches
        server.request("tools/call", {"name": tool, "arguments": args})
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        result = server.request("tools/call", {"name": tool, "arguments": args})
        times.append(time.perf_counter() - start)
        if result.get("isError"):
            raise RuntimeError(f"{tool} failed: {result}")
    return times


def main() -> None:
    """Run both measurements and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--starts", type=int, default=benchlib.sized(9, 3),
                        help="cold starts per server")  # fmt: skip
    parser.add_argument("--calls", type=int, default=benchlib.sized(300, 50),
                        help="timed calls per server")  # fmt: skip
    parser.add_argument("--no-remote", action="store_true", help="skip the /mcp figures")
    parser.add_argument("--postgres", default=None, help="a server URL: run on PostgreSQL")
    args = parser.parse_args()
    with benchlib.fresh_database(args.postgres, "mcp") as db_url:
        _run(args, db_url)


def _run(args: argparse.Namespace, db_url: str | None) -> None:
    backend = benchlib.backend_of(db_url)

    bin_dir = Path(sys.executable).parent
    script = bin_dir / "ops-trigger"
    ops_cmd = [str(script), "mcp"] if script.exists() else [sys.executable, "-m", "mcp_server"]
    with tempfile.TemporaryDirectory(prefix="ops-bench-mcp-") as tmp:
        data_dir = Path(tmp) / "data"
        approved_id = seed(data_dir, db_url)
        minimal = Path(tmp) / "minimal_server.py"
        minimal.write_text(MINIMAL_SERVER, encoding="utf-8")
        env = benchlib.clean_env(**({"OPS_DATABASE_URL": db_url} if db_url else {}))
        ops_argv = [*ops_cmd, "--data-dir", str(data_dir)]
        minimal_argv = [sys.executable, str(minimal)]

        # One untimed start each, so both run with warm byte-code caches.
        for argv in (ops_argv, minimal_argv):
            with peer(argv, env) as server:
                server.initialize()

        ops_starts: list[float] = []
        minimal_starts: list[float] = []
        ops_lives: list[tuple[float, float]] = []
        minimal_lives: list[tuple[float, float]] = []
        for _ in range(args.starts):
            for argv, sink in ((ops_argv, ops_starts), (minimal_argv, minimal_starts)):
                with peer(argv, env) as server:
                    sink.append(server.initialize())
            for argv, sink in ((ops_argv, ops_lives), (minimal_argv, minimal_lives)):
                with peer(argv, env) as server:
                    sink.append(server.lifetime())

        with peer(ops_argv, env) as server:
            server.initialize()
            ops_calls = call_latencies(
                server, "get_approved", {"approved_id": approved_id}, args.calls
            )
        with peer(minimal_argv, env) as server:
            server.initialize()
            minimal_calls = call_latencies(server, "echo", {"text": "hello"}, args.calls)
        remote: list[str] = []
        if not (args.no_remote or db_url or benchlib.small()):
            from bench.mcp_remote import remote_figures

            remote = remote_figures(data_dir, approved_id, Path(tmp), args.calls)

    start_ops, start_min = statistics.median(ops_starts), statistics.median(minimal_starts)
    call_ops, call_min = statistics.median(ops_calls), statistics.median(minimal_calls)
    start_ratio, call_ratio = start_ops / start_min, call_ops / call_min
    life_ops = statistics.median(t for t, _ in ops_lives)
    life_min = statistics.median(t for t, _ in minimal_lives)
    cpu_ops = statistics.median(c for _, c in ops_lives)
    cpu_min = statistics.median(c for _, c in minimal_lives)
    life_ratio = life_ops / life_min
    cpu_ratio = cpu_ops / cpu_min
    benchlib.record(
        "mcp_process",
        backend,
        cpu_ratio,
        f"{cpu_ratio:.2f} CPU ({cpu_ops * 1000:.0f} vs {cpu_min * 1000:.0f} ms); wall "
        f"{life_ratio:.2f} ({life_ops * 1000:.0f} vs {life_min * 1000:.0f} ms)",
        wall_ratio=life_ratio,
    )
    lines = [
        f"MCP server over stdio (medians), store on {'PostgreSQL' if db_url else 'SQLite'}",
        f"  cold start   ops-trigger mcp {start_ops * 1000:8.1f} ms   "
        f"minimal {start_min * 1000:8.1f} ms   ratio {start_ratio:.2f} (goal <= {GOAL_START})",
        f"  whole process (start, tools/list, stdin closed, exit) {life_ops * 1000:8.1f} ms   "
        f"minimal {life_min * 1000:8.1f} ms   ratio {life_ratio:.2f} (goal <= {GOAL_START})",
        f"    its CPU time                                         {cpu_ops * 1000:8.1f} ms   "
        f"minimal {cpu_min * 1000:8.1f} ms   ratio {cpu_ratio:.2f} "
        f"({benchlib.verdict('mcp_process', cpu_ratio)}; the CPU ratio is the figure: the "
        "wall clock swings with the load on the machine)",
        f"  tool call    get_approved    {call_ops * 1000:8.3f} ms   "
        f"minimal {call_min * 1000:8.3f} ms   ratio {call_ratio:.2f} (goal <= {GOAL_CALL})",
        f"  ({args.starts} cold starts and {args.calls} calls per server)",
        *remote,
    ]
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
