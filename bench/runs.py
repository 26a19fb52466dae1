"""Run worker benchmark: 100 runs against a provider that takes 200 ms, 10 at a time.

Prints, from the runs' own timestamps:
  1. makespan (first start to last finish) divided by the 2.0 s ideal   goal <= 1.15
  2. creation -> start for runs that found a free slot                  goal p50 <= 100 ms
  3. cancel latency (cancel request -> run ``cancelled``)                SPEC: within 1 s

The provider is ``tests/fake_llm.py`` in its own process on 127.0.0.1; the worker is the
embedded one (same process as the code creating runs, as in ``ops-trigger serve``).

    .venv/bin/python bench/runs.py [--runs 100] [--delay 0.2] [--slots 10]
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test]

With ``--postgres`` the store is a fresh PostgreSQL database on that server (created for the
run and dropped afterwards) instead of a SQLite file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from anyio import to_thread  # noqa: E402

from bench import benchlib  # noqa: E402
from core.auth import Principal  # noqa: E402
from core.bootstrap import (  # noqa: E402
    Services,
    build_services,
    build_worker,  # noqa: E402
)
from core.config import Settings  # noqa: E402
from core.models import (  # noqa: E402
    ConfigPatch,
    DraftIn,
    ProviderConfigIn,
    ProviderEntryIn,
    Role,
    Run,
    RunStatus,
)
from core.timeutil import parse_ts  # noqa: E402

ADMIN = Principal(role=Role.ADMIN, name="bench")
OPERATOR = Principal(role=Role.OPERATOR, name="bench")


def out(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_provider(delay: float) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_llm", "--port", str(port), "--delay", str(delay)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(url + "/v1/models", timeout=1):
                return proc, url
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise SystemExit("the fake provider did not start") from None
            time.sleep(0.05)


def approved_ids(services: Services, prefix: str, count: int) -> list[str]:
    ids = []
    for i in range(count):
        draft = services.drafts.create(
            data=DraftIn(prompt=f"{prefix} {i:04d}", content="benchmark item"), actor=ADMIN
        )
        result = services.approvals.approve(draft_id=draft.id, actor=OPERATOR, auto_run=False)
        ids.append(result.approved.id)
    return ids


def seconds(a: str, b: str) -> float:
    return (parse_ts(b) - parse_ts(a)).total_seconds()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def wait_all(services: Services, run_ids: list[str], timeout: float = 120) -> list[Run]:
    """Wait until no run is pending or running (one cheap query per poll), then read them."""
    deadline = time.monotonic() + timeout
    while True:
        counts = (await to_thread.run_sync(services.maintenance.status)).runs
        if counts["pending"] == 0 and counts["running"] == 0:
            return await to_thread.run_sync(lambda: [services.runs.get(run_id=r) for r in run_ids])
        if time.monotonic() > deadline:
            raise SystemExit("runs did not finish in time")
        await asyncio.sleep(0.05)


def free_slot_latencies(runs: list[Run], slots: int) -> list[float]:
    """creation -> start of the runs that found a free slot: fewer than ``slots`` runs
    created before them were still unfinished when they were created."""
    result = []
    for run in runs:
        created = parse_ts(run.created_at)
        ahead = sum(
            1
            for other in runs
            if parse_ts(other.created_at) < created and parse_ts(other.finished_at or "") > created
        )
        if ahead < slots:
            result.append(seconds(run.created_at, run.started_at or ""))
    return result


def create_runs(services: Services, approved: list[str]) -> list[str]:
    return [services.runs.create(approved_id=a, actor=OPERATOR)[0].id for a in approved]


def makespan_of(runs: list[Run]) -> float:
    bad = [r for r in runs if r.status is not RunStatus.DONE]
    if bad:
        raise SystemExit(f"{len(bad)} runs did not end done: {bad[0].error}")
    first = min(parse_ts(r.started_at or "") for r in runs)
    last = max(parse_ts(r.finished_at or "") for r in runs)
    return (last - first).total_seconds()


async def bench(args: argparse.Namespace, services: Services) -> None:
    # 1a. Makespan of the worker itself: 100 runs queued, then a worker starts (per trial).
    makespans: list[float] = []
    for trial in range(args.trials):
        queued_ids = await to_thread.run_sync(approved_ids, services, f"queued{trial}", args.runs)
        queued = await to_thread.run_sync(create_runs, services, queued_ids)
        worker = build_worker(services, worker_id=f"bench-{trial}")
        task = asyncio.create_task(worker.run())
        try:
            queued_runs = await wait_all(services, queued)
        finally:
            worker.stop()
            await task
        makespans.append(makespan_of(queued_runs))
        if args.dump:
            dump = [r.model_dump(mode="json") for r in queued_runs]
            Path(args.dump).write_text(json.dumps(dump))

    worker = build_worker(services, worker_id="bench")
    task = asyncio.create_task(worker.run())
    try:
        # 1b. The same 100 runs created in one burst while the worker runs: creation and
        # execution share the process (as in ``ops-trigger serve``).
        burst_ids = await to_thread.run_sync(approved_ids, services, "burst", args.runs)
        burst = await wait_all(services, await to_thread.run_sync(create_runs, services, burst_ids))
        burst_makespan = makespan_of(burst)
        burst_free = free_slot_latencies(burst, args.slots)

        # 2. Creation -> start with a free slot: runs created one by one while others work.
        single_ids = await to_thread.run_sync(approved_ids, services, "single", args.singles)
        singles: list[str] = []
        for approved_id in single_ids:
            singles += await to_thread.run_sync(create_runs, services, [approved_id])
            await asyncio.sleep(args.delay / 4)
        single_runs = await wait_all(services, singles)
        latencies = [seconds(r.created_at, r.started_at or "") for r in single_runs]

        # 3. Cancel latency: a run whose provider call hangs, cancelled once it is running.
        cancel_ids = await to_thread.run_sync(
            approved_ids, services, "[[delay=30]] cancel me", args.cancels
        )
        cancel_latency: list[float] = []
        for approved_id in cancel_ids:
            (run_id,) = await to_thread.run_sync(create_runs, services, [approved_id])
            while True:
                current = await to_thread.run_sync(partial(services.runs.get, run_id=run_id))
                if current.status is not RunStatus.PENDING:
                    break
                await asyncio.sleep(0.005)
            await asyncio.sleep(0.1)  # the provider call is under way
            requested = time.monotonic()
            await to_thread.run_sync(partial(services.runs.cancel, run_id=run_id, actor=OPERATOR))
            while True:
                current = await to_thread.run_sync(partial(services.runs.get, run_id=run_id))
                if current.status.terminal:
                    break
                await asyncio.sleep(0.002)
            if current.status is not RunStatus.CANCELLED:
                raise SystemExit(f"cancel ended {current.status.value}: {current.error}")
            cancel_latency.append(time.monotonic() - requested)
    finally:
        worker.stop()
        await task
        await services.generation.aclose()

    ideal = args.runs / args.slots * args.delay
    ms = 1000.0
    out(f"runs: {args.runs} x {args.delay * ms:.0f} ms provider, max_concurrent_runs={args.slots}")
    makespan = statistics.median(makespans)
    trials = ", ".join(f"{m / ideal:.3f}" for m in makespans)
    out(
        f"1. makespan {makespan:.3f} s / ideal {ideal:.3f} s = {makespan / ideal:.3f}"
        f"  (goal <= 1.15; median of {len(makespans)} trials: {trials};"
        " runs queued, then a worker starts)"
    )
    out(
        f"   created in one burst while the worker runs: {burst_makespan:.3f} s"
        f" = {burst_makespan / ideal:.3f} x ideal"
    )
    out(
        f"2. creation -> start with a free slot: p50 {statistics.median(latencies) * ms:.1f} ms,"
        f" p95 {pct(latencies, 0.95) * ms:.1f} ms, max {max(latencies) * ms:.1f} ms"
        f" over {len(latencies)} runs created one by one (goal p50 <= 100 ms, aim 20 ms)"
    )
    if burst_free:
        out(
            f"   in the burst, the {len(burst_free)} runs that found a free slot:"
            f" p50 {statistics.median(burst_free) * ms:.1f} ms,"
            f" max {max(burst_free) * ms:.1f} ms"
        )
    out(
        "3. cancel latency (request -> cancelled):"
        f" p50 {statistics.median(cancel_latency) * ms:.1f} ms,"
        f" max {max(cancel_latency) * ms:.1f} ms over {len(cancel_latency)} runs"
        " (SPEC: within 1 s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--delay", type=float, default=0.2, help="provider answer time (s)")
    parser.add_argument("--slots", type=int, default=10, help="max_concurrent_runs")
    parser.add_argument("--singles", type=int, default=30)
    parser.add_argument("--cancels", type=int, default=10)
    parser.add_argument("--trials", type=int, default=3, help="makespan trials (median)")
    parser.add_argument("--dump", default=None, help="write the 100 runs as JSON here")
    parser.add_argument("--postgres", default=None, help="a server URL: run on PostgreSQL")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    provider, url = start_provider(args.delay)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="ops-bench-") as tmp,
            benchlib.fresh_database(args.postgres) as db,
        ):
            out(f"store: {'PostgreSQL' if db else 'SQLite'}")
            services = build_services(Settings(data_dir=Path(tmp), database_url=db))
            try:
                services.provider.update(
                    data=ProviderConfigIn(
                        active="fake",
                        providers={
                            "fake": ProviderEntryIn(
                                base_url=url, model="fake-model", max_retries=0, timeout_s=60
                            )
                        },
                    ),
                    actor=ADMIN,
                )
                services.config.update(
                    patch=ConfigPatch(max_concurrent_runs=args.slots), actor=ADMIN
                )
                asyncio.run(bench(args, services))
            finally:
                services.close()
    finally:
        provider.terminate()
        provider.wait(timeout=10)


if __name__ == "__main__":
    main()
