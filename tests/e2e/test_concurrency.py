"""16 threads and 2 separate processes approve the same draft at the same moment."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from contextlib import closing
from pathlib import Path

from core.auth import Principal
from core.bootstrap import Services
from core.models import DraftIn, Role

REPO = Path(__file__).resolve().parents[2]
THREADS = 16
PROCESSES = 2


def _spawn(args: list[str], data_dir: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPS_", "ORCH_"))}
    env["OPS_DATA_DIR"] = str(data_dir)
    return subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.helpers_store", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_one_approval_and_at_most_one_run_under_a_stampede(
    services: Services, admin: Principal, data_dir: Path, tmp_path: Path
) -> None:
    draft = services.drafts.create(data=DraftIn(prompt="race", content="go"), actor=admin)
    start = tmp_path / "start"
    procs = [_spawn(["approve", draft.id, str(start)], data_dir) for _ in range(PROCESSES)]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", proc.stderr
        go = threading.Event()
        results: list[tuple[str, str | None]] = []
        errors: list[BaseException] = []
        lock = threading.Lock()

        def approve(n: int) -> None:
            go.wait()
            try:
                actor = Principal(role=Role.OPERATOR, name=f"thread-{n}")
                result = services.approvals.approve(draft_id=draft.id, actor=actor, auto_run=True)
                with lock:
                    results.append((result.approved.id, result.run.id if result.run else None))
            except BaseException as exc:  # surfaced by the assertion below
                with lock:
                    errors.append(exc)

        threads = [threading.Thread(target=approve, args=(n,)) for n in range(THREADS)]
        for thread in threads:
            thread.start()
        start.touch()
        go.set()
        for thread in threads:
            thread.join(timeout=120)
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            answer = json.loads(out.strip().splitlines()[-1])
            results.append((answer["approved_id"], answer["run_id"]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    assert not errors, errors
    assert len(results) == THREADS + PROCESSES
    assert len({approved_id for approved_id, _ in results}) == 1
    runs_returned = [run_id for _, run_id in results if run_id is not None]
    assert len(runs_returned) <= 1
    with closing(sqlite3.connect(data_dir / "ops.db")) as conn:
        approved = conn.execute(
            "SELECT id FROM approved WHERE draft_id = ?", (draft.id,)
        ).fetchall()
        runs = conn.execute("SELECT id FROM runs").fetchall()
    assert [row[0] for row in approved] == [results[0][0]]
    assert len(runs) <= 1 and [row[0] for row in runs] == runs_returned
    assert services.maintenance.verify_audit().ok
