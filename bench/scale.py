"""Scale-out benchmark on PostgreSQL: worker processes sharing one database.

Prints, each measured in this run:
  1. runs per second with a no-latency provider at 1, 2 and 4 ``ops-trigger worker``
     processes, and the scaling ratio 2 workers / 1                 goal >= 1.6 (cores allow)
  2. creation -> start p50 for a run that finds a free slot        goal <= 25 ms
  3. approvals per second through the services ÷ raw psycopg transactions issuing the same
     statements (``bench/approvals_pg.py``)                          goal >= 0.5
  4. the makespan figures of ``bench/runs.py`` with the store on PostgreSQL

The provider is ``tests/fake_llm.py`` in its own process on 127.0.0.1. Needs a server where
the user may create databases (``OPS_TEST_DATABASE_URL`` or ``--url``); one database is
created per measurement and dropped afterwards.

    .venv/bin/python bench/scale.py [--url postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from core.auth import Principal  # noqa: E402
from core.bootstrap import Services, build_services  # noqa: E402
from core.config import Settings  # noqa: E402
from core.models import (  # noqa: E402
    ConfigPatch,
    DraftIn,
    ProviderConfigIn,
    ProviderEntryIn,
    Role,
    RunStatus,
)
from core.timeutil import parse_ts  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
import approvals_pg  # noqa: E402

ADMIN = Principal(role=Role.ADMIN, name="bench")
OPERATOR = Principal(role=Role.OPERATOR, name="bench-op")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _admin(url: sa.URL) -> psycopg.Connection[tuple[object, ...]]:
    info = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return psycopg.connect(info, autocommit=True)


def _count(services: Services, status: RunStatus) -> int:
    from core.storage.sql import SqlUnitOfWork

    with SqlUnitOfWork(services._engine) as uow:
        return int(uow.runs.count_by_status().get(status.value, 0))


def measure(base: sa.URL, provider: str, workers: int, runs: int) -> tuple[float, list[float]]:
    """(runs per second, creation -> start seconds of single runs) for ``workers`` workers."""
    name = f"ops_bench_{secrets.token_hex(4)}"
    with _admin(base) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = base.set(database=name).render_as_string(hide_password=False)
    data = Path(tempfile.mkdtemp(prefix="ops-scale-"))
    settings = Settings(data_dir=data, database_url=url)
    services = build_services(settings)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        services.provider.update(
            data=ProviderConfigIn(
                active="fake",
                providers={"fake": ProviderEntryIn(base_url=provider, model="m", max_retries=0)},
            ),
            actor=ADMIN,
        )
        services.config.update(patch=ConfigPatch(max_concurrent_runs=8), actor=ADMIN)
        items = []
        for i in range(runs + 20):
            draft = services.drafts.create(data=DraftIn(prompt=f"bench {i}#"), actor=ADMIN)
            items.append(
                services.approvals.approve(draft_id=draft.id, actor=OPERATOR, auto_run=False)
            )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPS_", "ORCH_"))}
        env |= {"OPS_DATABASE_URL": url, "OPS_DATA_DIR": str(data)}
        for _ in range(workers):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", "from cli.main import main; main()", "worker"],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        time.sleep(3.0)  # every worker registered and idle
        # Latency: one run at a time, each with a free slot.
        waits: list[float] = []
        for result in items[runs:]:
            run, _ = services.runs.create(approved_id=result.approved.id, actor=OPERATOR)
            while True:
                current = services.runs.get(run_id=run.id)
                if current.status is RunStatus.DONE:
                    break
                time.sleep(0.005)
            assert current.started_at is not None
            waits.append(
                (parse_ts(current.started_at) - parse_ts(current.created_at)).total_seconds()
            )
        # Throughput: a burst of runs, until every one is done.
        start = time.monotonic()
        for result in items[:runs]:
            services.runs.create(approved_id=result.approved.id, actor=OPERATOR)
        while _count(services, RunStatus.DONE) < runs + 20:
            time.sleep(0.02)
        elapsed = time.monotonic() - start
        return runs / elapsed, waits
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        services.close()
        with _admin(base) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url",
        default=os.environ.get(
            "OPS_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--approvals", type=int, default=600)
    args = parser.parse_args()
    base = sa.make_url(Settings(database_url=args.url).db_url)
    port = _free_port()
    fake = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_llm", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.5)
        rates: dict[int, float] = {}
        waits: list[float] = []
        for workers in (1, 2, 4):
            rates[workers], found = measure(base, f"http://127.0.0.1:{port}/v1", workers, args.runs)
            waits += found
            sys.stdout.write(f"1. {workers} worker(s): {rates[workers]:.1f} runs/s\n")
        sys.stdout.write(
            f"scaling 2 workers / 1: {rates[2] / rates[1]:.2f}   (goal >= 1.6; "
            f"{os.cpu_count()} cores for workers, database, provider and this driver)\n"
        )
        sys.stdout.write(
            f"2. created -> started p50 with a free slot: {statistics.median(waits) * 1000:.1f} ms"
            f" over {len(waits)} runs   (goal <= 25 ms)\n"
        )
    finally:
        fake.terminate()
        fake.wait(timeout=10)
    sys.stdout.write(f"3. {approvals_pg.report(base, args.approvals)}\n")
    sys.stdout.write("4. bench/runs.py on PostgreSQL:\n")
    sys.stdout.flush()
    server = base.render_as_string(hide_password=False)
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "runs.py"), "--postgres", server], check=True
    )


if __name__ == "__main__":
    main()
