"""Run worker benchmark through the real gateway: ``ops-trigger serve`` (with its embedded
worker) in its own process, runs created over HTTP, an async fake provider on loopback.

Prints, each on a fresh store (SQLite, or a fresh PostgreSQL database with ``--postgres``):

1. worker CPU per run (claim, call, finish), embedded: the serve process's CPU time over N
   runs (created in the store by this process, so the gateway serves no request meanwhile)
   minus its idle CPU over the same wall time, ÷ N, median of 3 rounds of 300; the provider
   answers at once. Goal <= 2 ms.
2. 1 000 runs × 50 ms at 20 slots, created over HTTP (16 connections): makespan (first
   created -> last finished) ÷ the 2.5 s ideal. Goal <= 1.3.
3. 100 runs × 200 ms at 10 slots, created over HTTP by one client: makespan ÷ 2.0 s.
   Goal <= 1.15.
4. runs created in a burst over HTTP (as many at once as there are slots, every slot free):
   created -> started p50. Goal <= 50 ms.

Beside 2 and 3: how many slots were busy (at most, and on average over the makespan), and a
check that the fake provider kept up (its answers' delay above the configured one and its
CPU): the figures are the product's, not the fake's.

    .venv/bin/python bench/runs_http.py [--postgres URL]   (BENCH_SCALE=small: smaller sizes)

With ``BENCH_PROFILE=DIR`` (py-spy beside the interpreter or on the PATH) the serve process is
sampled during each figure into DIR/<figure>.<backend>.txt (``bench/stacks.py`` sums them up);
the sampling costs CPU, so figures measured with it on are not comparable.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_HERE = Path(__file__).resolve().parent
ROOT = _HERE.parent
# bench/ off the import path: bench/mcp.py would shadow the mcp package, bench/gateway.py the
# gateway package.
sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() != _HERE]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from bench import benchlib  # noqa: E402
from bench.fakeprov import FakeProvider  # noqa: E402
from core.auth import Principal  # noqa: E402
from core.bootstrap import Services, build_services  # noqa: E402
from core.config import Settings  # noqa: E402
from core.models import ConfigPatch, DraftIn, ProviderConfigIn, ProviderEntryIn, Role  # noqa: E402
from core.storage import tables as t  # noqa: E402
from core.timeutil import parse_ts  # noqa: E402

ADMIN = Principal(role=Role.ADMIN, name="bench")
OPERATOR = Principal(role=Role.OPERATOR, name="bench-op")


def say(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


@dataclass
class Gateway:
    url: str
    pid: int
    token: str
    services: Services  # this process's own services on the same store


@contextmanager
def gateway(
    server: str | None, provider: str, slots: int, items: int
) -> Iterator[tuple[Gateway, list[str]]]:
    """A fresh store with ``items`` approved items, served by ``ops-trigger serve`` with its
    embedded worker; yields the gateway and the approved ids."""
    with (
        tempfile.TemporaryDirectory(prefix="ops-bench-runs-") as tmp,
        benchlib.fresh_database(server, "runs") as db,
    ):
        settings = Settings(data_dir=Path(tmp), database_url=db)
        services = build_services(settings)
        proc: subprocess.Popen[bytes] | None = None
        try:
            services.access.bootstrap()
            entry = ProviderEntryIn(base_url=provider, model="fake-model", max_retries=0)
            services.provider.update(
                data=ProviderConfigIn(active="fake", providers={"fake": entry}), actor=ADMIN
            )
            services.config.update(patch=ConfigPatch(max_concurrent_runs=slots), actor=ADMIN)
            approved = []
            for i in range(items):
                draft = services.drafts.create(
                    data=DraftIn(prompt=f"bench run {i}", content="benchmark item"), actor=ADMIN
                )
                result = services.approvals.approve(
                    draft_id=draft.id, actor=OPERATOR, auto_run=False
                )
                approved.append(result.approved.id)
            port = benchlib.free_port()
            env = benchlib.clean_env(
                PYTHONPATH=str(ROOT),
                OPS_DATA_DIR=str(settings.data_dir),
                OPS_RATE_LIMIT_PER_MINUTE="100000000",
                **({"OPS_DATABASE_URL": db} if db else {}),
            )
            # Its log goes to a file: a pipe nobody reads would fill and stop the server.
            log = Path(tmp) / "serve.log"
            with log.open("wb") as sink:
                proc = subprocess.Popen(
                    [sys.executable, "-c", "from cli.main import main; main()", "serve",
                     "--host", "127.0.0.1", "--port", str(port)],
                    cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT,
                )  # fmt: skip
            url = f"http://127.0.0.1:{port}"
            token = (settings.tokens_dir / "operator.token").read_text().strip()
            _wait_up(url, token, proc, log)
            yield Gateway(url, proc.pid, token, services), approved
        finally:
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            services.close()


def _wait_up(url: str, token: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"ops-trigger serve exited: {log.read_text()[-4000:]}")
        try:
            answer = httpx.get(url + "/ops/status", headers=_auth(token), timeout=1)
            if answer.status_code == 200 and answer.json().get("worker_alive", True):
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("ops-trigger serve did not start")
        time.sleep(0.1)
    time.sleep(1.0)  # the worker registered and idle


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def create_over_http(gw: Gateway, approved: list[str], connections: int) -> list[str]:
    """POST /ops/runs for each approved id, ``connections`` requests at a time."""

    async def go() -> list[str]:
        limits = httpx.Limits(max_connections=connections)
        async with httpx.AsyncClient(
            base_url=gw.url, headers=_auth(gw.token), limits=limits, timeout=60
        ) as client:
            queue = list(reversed(approved))
            ids: list[str] = []

            async def lane() -> None:
                while queue:
                    answer = await client.post("/ops/runs", json={"approved_id": queue.pop()})
                    if answer.status_code != 201:
                        raise SystemExit(f"POST /ops/runs: {answer.status_code} {answer.text}")
                    ids.append(answer.json()["id"])

            await asyncio.gather(*(lane() for _ in range(connections)))
            return ids

    return asyncio.run(go())


@dataclass
class RunTimes:
    created: float
    started: float
    finished: float


def wait_done(gw: Gateway, run_ids: list[str], timeout: float = 600) -> list[RunTimes]:
    """Wait until every run ended ``done`` (one query per poll); their timestamps."""
    engine = gw.services._engine  # the bench reads the rows it measures directly
    cols = t.runs.c
    query = sa.select(cols.id, cols.status, cols.created_at, cols.started_at, cols.finished_at)
    deadline = time.monotonic() + timeout
    while True:
        with engine.connect() as conn:
            rows = conn.execute(query.where(cols.id.in_(run_ids))).all()
        if all(r.status not in ("pending", "running") for r in rows) and len(rows) == len(run_ids):
            break
        if time.monotonic() > deadline:
            raise SystemExit("runs did not finish in time")
        time.sleep(0.05)
    bad = [r for r in rows if r.status != "done"]
    if bad:
        raise SystemExit(f"{len(bad)} runs did not end done (first: {bad[0].status})")
    return [
        RunTimes(*(parse_ts(v).timestamp() for v in (r.created_at, r.started_at, r.finished_at)))
        for r in rows
    ]


def slots_busy(runs: list[RunTimes]) -> tuple[int, float]:
    """(most runs running at once, mean running over the makespan)."""
    edges = sorted([(r.started, 1) for r in runs] + [(r.finished, -1) for r in runs])
    live = peak = 0
    for _, step in edges:
        live += step
        peak = max(peak, live)
    span = max(r.finished for r in runs) - min(r.created for r in runs)
    return peak, sum(r.finished - r.started for r in runs) / span


def bare_call_cpu(url: str, calls: int, parallel: int) -> float:
    """CPU seconds per chat call of a bare ``httpx.AsyncClient`` in this process: the least a
    worker spends on a run's provider call (the baseline of the worker CPU figure)."""

    async def go() -> float:
        body = {"model": "fake-model", "messages": [{"role": "user", "content": "bench"}]}
        limits = httpx.Limits(max_connections=parallel)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
            queue = list(range(calls))

            async def lane() -> None:
                while queue:
                    queue.pop()
                    (await client.post("/v1/chat/completions", json=body)).raise_for_status()

            await asyncio.gather(*(lane() for _ in range(parallel)))  # warm-up
            queue = list(range(calls))
            start = time.process_time()
            await asyncio.gather(*(lane() for _ in range(parallel)))
            return (time.process_time() - start) / calls

    return asyncio.run(go())


# --- the figures -------------------------------------------------------------------------------


def worker_cpu(server: str | None, backend: str) -> None:
    runs, rounds, slots, idle_s = benchlib.sized(300, 100), benchlib.sized(3, 1), 10, 3.0
    fake = FakeProvider(0.0)
    per_run: list[float] = []
    try:
        with gateway(server, fake.url, slots, runs * rounds) as (gw, approved):
            before = benchlib.cpu_seconds(gw.pid)
            time.sleep(idle_s)
            idle_rate = (benchlib.cpu_seconds(gw.pid) - before) / idle_s
            cpu_all = wall_all = 0.0
            user0, sys0 = benchlib.cpu_times(gw.pid)
            for r in range(rounds):
                before, start = benchlib.cpu_seconds(gw.pid), time.perf_counter()
                ids = [
                    gw.services.runs.create(approved_id=a, actor=OPERATOR)[0].id
                    for a in approved[r * runs : (r + 1) * runs]
                ]
                with benchlib.profiled(gw.pid, f"worker_cpu.{backend}.{r}"):
                    wait_done(gw, ids)
                wall = time.perf_counter() - start
                cpu = benchlib.cpu_seconds(gw.pid) - before
                per_run.append((cpu - idle_rate * wall) / runs * 1000)
                cpu_all, wall_all = cpu_all + cpu, wall_all + wall
            user1, sys1 = benchlib.cpu_times(gw.pid)
        bare_ms = bare_call_cpu(fake.url, runs, slots) * 1000
    finally:
        fake.close()
    per_run_ms = statistics.median(per_run)
    benchlib.record(
        "worker_cpu",
        backend,
        per_run_ms,
        f"{per_run_ms:.2f} ms (÷ a bare httpx call's {bare_ms:.2f} ms: {per_run_ms / bare_ms:.1f}; "
        f"median of {rounds} rounds of {runs} runs)",
        bare_call_ms=bare_ms,
    )
    say(
        f"1. worker CPU per run, embedded (ops-trigger serve, {slots} slots, provider answers at "
        f"once): {per_run_ms:.2f} ms ({benchlib.verdict('worker_cpu', per_run_ms)})"
    )
    say(
        f"   baseline: the same chat call with a bare httpx.AsyncClient, {slots} at once, costs "
        f"{bare_ms:.2f} ms CPU; worker ÷ bare call = {per_run_ms / bare_ms:.1f}"
    )
    say(
        f"   serve process: {cpu_all:.2f} s CPU over {rounds} x {runs} runs in {wall_all:.2f} s "
        f"wall ({(user1 - user0) * 1000 / (runs * rounds):.1f} ms user + "
        f"{(sys1 - sys0) * 1000 / (runs * rounds):.1f} ms system per run), minus idle "
        f"{idle_rate * 1000:.1f} ms CPU per second; rounds: "
        + ", ".join(f"{v:.2f} ms" for v in per_run)
    )


def makespan(
    key: str, server: str | None, backend: str, runs: int, delay: float, slots: int, conns: int
) -> None:
    ideal = runs / slots * delay
    fake = FakeProvider(delay)
    try:
        with gateway(server, fake.url, slots, runs) as (gw, approved):
            cpu, start = benchlib.cpu_seconds(gw.pid), time.perf_counter()
            with benchlib.profiled(gw.pid, f"{key}.{backend}"):
                ids = create_over_http(gw, approved, conns)
                created_s = time.perf_counter() - start
                times = wait_done(gw, ids)
            wall = time.perf_counter() - start
            cpu = benchlib.cpu_seconds(gw.pid) - cpu
            mean_run = sum(r.finished - r.started for r in times) / len(times)
            fake_line, fake_ok = fake.summary(wall, slots, mean_run)
    finally:
        fake.close()
    span = max(r.finished for r in times) - min(r.created for r in times)
    from_start = max(r.finished for r in times) - min(r.started for r in times)
    ratio = span / ideal
    peak, mean = slots_busy(times)
    how = "by one client" if conns == 1 else f"over {conns} connections"
    benchlib.record(
        key,
        backend,
        ratio,
        f"{ratio:.2f} ({span:.2f} s vs {ideal:.2f} s; slots busy ≤ {peak}, mean {mean:.1f})",
        fake_ok=fake_ok,
    )
    say(
        f"{'2' if key == 'makespan_20' else '3'}. {runs} runs × {delay * 1000:.0f} ms at {slots} "
        f"slots, created over HTTP {how}: makespan {span:.3f} s ÷ ideal {ideal:.3f} s = "
        f"{ratio:.2f} ({benchlib.verdict(key, ratio)})"
    )
    say(
        f"   first start -> last finish {from_start:.3f} s ({from_start / ideal:.2f}); the "
        f"{runs} POSTs took {created_s:.2f} s; slots busy: at most {peak}, mean {mean:.1f}"
    )
    say(
        f"   a run took {mean_run * 1000:.0f} ms on average from started to finished; the serve "
        f"process used {cpu:.2f} s CPU over the {wall:.2f} s ({cpu / wall:.0%} of a core)"
    )
    say(fake_line)


def burst(server: str | None, backend: str) -> None:
    slots, bursts, delay = 10, benchlib.sized(8, 3), 0.05
    fake = FakeProvider(delay)
    try:
        with gateway(server, fake.url, slots, slots * bursts) as (gw, approved):
            waits: list[float] = []
            for b in range(bursts):
                ids = create_over_http(gw, approved[b * slots : (b + 1) * slots], slots)
                waits += [r.started - r.created for r in wait_done(gw, ids)]
                time.sleep(0.2)
    finally:
        fake.close()
    p50 = statistics.median(waits) * 1000
    benchlib.record(
        "burst_p50",
        backend,
        p50,
        f"{p50:.1f} ms (max {max(waits) * 1000:.0f} ms, {len(waits)} runs)",
    )
    say(
        f"4. runs created in a burst over HTTP ({slots} at once, {slots} free slots, "
        f"{bursts} bursts): created -> started p50 {p50:.1f} ms, max {max(waits) * 1000:.1f} ms "
        f"({benchlib.verdict('burst_p50', p50)})"
    )


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=None, help="a server URL: run on PostgreSQL")
    parser.add_argument("--only", default=None, help="cpu, m20, m10 or burst")
    args = parser.parse_args()
    backend = benchlib.backend_of(args.postgres)
    say(f"bench/runs_http.py on {'PostgreSQL' if args.postgres else 'SQLite (WAL)'}")
    if args.only in (None, "cpu"):
        worker_cpu(args.postgres, backend)
    if args.only in (None, "m20"):
        runs = benchlib.sized(1000, 200)
        makespan("makespan_20", args.postgres, backend, runs, 0.05, 20, 16)
    if args.only in (None, "m10"):
        runs = benchlib.sized(100, 40)
        makespan("makespan_10", args.postgres, backend, runs, 0.2, 10, 1)
    if args.only in (None, "burst"):
        burst(args.postgres, backend)


if __name__ == "__main__":
    main()
