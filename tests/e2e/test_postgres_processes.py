"""Real processes on one PostgreSQL database: 2 gateways (``serve --no-worker``), 3 workers,
300 runs, one worker killed mid-run, and two processes racing to approve one draft."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from core.auth import Principal
from core.bootstrap import Services
from core.models import ConfigPatch, DraftIn, ProviderConfigIn, ProviderEntryIn, RunStatus
from tests.backends import Backend
from tests.fake_llm import FakeLlmServer

pytestmark = pytest.mark.postgres_only

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "pg-e2e-admin-token-0123456789"
OPERATOR = "pg-e2e-operator-token-0123456789"
RUNS = 300
MAX_RUNNING = 4
PROVIDER_DELAY_S = 0.05


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _peak_concurrency(fake: FakeLlmServer) -> int:
    """Most provider calls in progress at one moment (from the fake's own records)."""
    edges: list[tuple[float, int]] = []
    for record in fake.app.records:
        edges.append((record.received_at, 1))
        edges.append((record.finished_at or time.monotonic(), -1))
    peak = current = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):
        current += step
        peak = max(peak, current)
    return peak


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in started:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_gateways_and_workers_share_one_postgresql_store(
    backend: Backend,
    services: Services,
    admin: Principal,
    operator: Principal,
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    assert backend.url is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPS_", "ORCH_"))}
    env |= {
        "OPS_DATABASE_URL": backend.url,
        "OPS_DATA_DIR": str(tmp_path / "data"),
        "ORCH_TOKEN": ADMIN,
        "ORCH_OPERATOR_TOKEN": OPERATOR,
        "OPS_RATE_LIMIT_PER_MINUTE": "1000000",
        "OPS_RUN_LEASE_S": "2",
        "OPS_RUN_HEARTBEAT_S": "0.3",
        "OPS_WORKER_STOP_GRACE_S": "2",
    }
    fake = FakeLlmServer()
    fake.start()
    clients: list[httpx.Client] = []
    try:
        fake.app.delay = PROVIDER_DELAY_S
        entry = ProviderEntryIn(base_url=fake.url, model="fake-model", max_retries=0)
        services.provider.update(
            data=ProviderConfigIn(active="fake", providers={"fake": entry}), actor=admin
        )
        services.config.update(patch=ConfigPatch(max_concurrent_runs=MAX_RUNNING), actor=admin)
        approved = []
        for i in range(RUNS):
            draft = services.drafts.create(data=DraftIn(prompt=f"job {i:04d}#"), actor=admin)
            approved.append(
                services.approvals.approve(
                    draft_id=draft.id, actor=operator, auto_run=False
                ).approved
            )

        logs = tmp_path / "logs"
        logs.mkdir()

        def spawn(name: str, *args: str) -> subprocess.Popen[bytes]:
            with (logs / f"{name}.log").open("wb") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-c", "from cli.main import main; main()", *args],
                    cwd=ROOT,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            processes.append(proc)
            return proc

        ports = [_free_port(), _free_port()]
        for n, port in enumerate(ports):
            spawn(f"gateway-{n}", "serve", "--no-worker", "--port", str(port))
        workers = {
            f"w{n}": spawn(f"worker-{n}", "worker", "--worker-id", f"w{n}") for n in range(3)
        }
        clients = [httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) for port in ports]

        def up(client: httpx.Client) -> bool:
            try:
                return client.get("/healthz").status_code == 200
            except httpx.HTTPError:
                return False

        for client in clients:
            _wait_for(lambda c=client: up(c), 60, "the gateways")

        started = time.monotonic()
        run_ids: list[str] = []
        errors: list[str] = []
        lock = threading.Lock()

        def create(part: int) -> None:
            client = clients[part % 2]
            for item in approved[part::4]:
                response = client.post(
                    "/ops/runs",
                    json={"approved_id": item.id},
                    headers={"Authorization": f"Bearer {OPERATOR}"},
                )
                with lock:
                    if response.status_code == 201:
                        run_ids.append(response.json()["id"])
                    else:
                        errors.append(response.text)

        creators = [threading.Thread(target=create, args=(part,)) for part in range(4)]
        for thread in creators:
            thread.start()

        # Kill a worker while it holds runs.
        victim: str | None = None
        held: list[str] = []
        deadline = time.monotonic() + 60
        while victim is None and time.monotonic() < deadline:
            running = services.runs.list(status=RunStatus.RUNNING, limit=50).items
            for run in running:
                owner = _lease_owner(services, run.id)
                if owner in workers and workers[owner].poll() is None:
                    victim = owner
                    break
            time.sleep(0.01)
        assert victim is not None, "no worker ever held a run"
        os.kill(workers[victim].pid, signal.SIGKILL)
        held = [
            run.id
            for run in services.runs.list(status=RunStatus.RUNNING, limit=50).items
            if _lease_owner(services, run.id) == victim
        ]
        for thread in creators:
            thread.join()
        assert errors == [] and len(run_ids) == RUNS

        def all_done() -> bool:
            return _count(services, "done") == RUNS

        _wait_for(all_done, 180, "every run done")
        elapsed = time.monotonic() - started

        runs = {run.id: services.runs.get(run_id=run.id) for run in _all_runs(services)}
        assert all(runs[r].status is RunStatus.DONE for r in run_ids)
        reclaimed = [r for r in run_ids if runs[r].attempt > 1]
        by_approved = {runs[r].approved_id: runs[r] for r in run_ids}
        for i, item in enumerate(approved):
            calls = fake.app.calls_containing(f"job {i:04d}#")
            # Executed exactly once; a run the killed worker held is executed again (if the
            # killed worker had already called the provider: at most twice).
            if by_approved[item.id].attempt == 1:
                assert calls == 1, (item.prompt, calls)
            else:
                assert 1 <= calls <= 2, (item.prompt, calls)
        assert set(held) <= set(reclaimed)
        assert all(runs[r].attempt == 2 for r in reclaimed)
        peak = _peak_concurrency(fake)
        assert peak <= MAX_RUNNING
        # 16 threads in each of 2 processes approve one draft.
        race = services.drafts.create(data=DraftIn(prompt="race #r1"), actor=admin)
        start_file = tmp_path / "go"
        racers = [
            subprocess.Popen(
                [sys.executable, "-m", "tests.e2e.helpers_store", "approve-many", race.id]
                + [str(start_file), "16"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            for _ in range(2)
        ]
        for proc in racers:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        start_file.touch()
        answers = []
        for proc in racers:
            out, _ = proc.communicate(timeout=60)
            answers += [json.loads(line) for line in out.splitlines() if line.strip()]
        assert len(answers) == 32 and all("approved_id" in a for a in answers), answers
        assert len({a["approved_id"] for a in answers}) == 1
        assert len({a["run_id"] for a in answers if a["run_id"]}) <= 1
        assert _count_approved(services, race.id) == 1

        result = services.maintenance.verify_audit()
        assert result.ok, result
        sys.stderr.write(
            f"\npostgres processes: {RUNS} runs in {elapsed:.1f} s through 2 gateways and 3 "
            f"workers; peak provider concurrency {peak} (limit {MAX_RUNNING}); worker {victim} "
            f"killed holding {len(held)} runs, {len(reclaimed)} reclaimed and done; "
            f"audit {result.entries} entries ok\n"
        )
    finally:
        for client in clients:
            client.close()
        fake.stop()


def _lease_owner(services: Services, run_id: str) -> str | None:
    from core.storage.sql import SqlUnitOfWork

    with SqlUnitOfWork(services._engine) as uow:
        owner, _ = uow.runs.lease(run_id)
    return owner


def _count(services: Services, status: str) -> int:
    from core.storage.sql import SqlUnitOfWork

    with SqlUnitOfWork(services._engine) as uow:
        return int(uow.runs.count_by_status().get(status, 0))


def _all_runs(services: Services) -> list[object]:
    from core.storage.sql import SqlUnitOfWork

    with SqlUnitOfWork(services._engine) as uow:
        return list(uow.runs.iter_all())


def _count_approved(services: Services, draft_id: str) -> int:
    from core.storage.sql import SqlUnitOfWork

    with SqlUnitOfWork(services._engine) as uow:
        return sum(1 for item in uow.approved.iter_all() if item.draft_id == draft_id)
