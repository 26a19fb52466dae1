"""A writer process killed with SIGKILL mid-stream loses nothing it had acknowledged."""

from __future__ import annotations

import os
import queue
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from contextlib import closing
from pathlib import Path

from core.bootstrap import build_services
from core.config import Settings

REPO = Path(__file__).resolve().parents[2]


def _pump(stream: object, lines: queue.Queue[str | None]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        lines.put(line.strip())
    lines.put(None)


def test_sigkill_mid_stream_keeps_every_acknowledged_approval(data_dir: Path) -> None:
    build_services(Settings(data_dir=data_dir)).close()  # schema in place before the writer
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPS_", "ORCH_"))}
    env["OPS_DATA_DIR"] = str(data_dir)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.helpers_store", "stream"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True)
    reader.start()
    acked: list[str] = []
    try:
        assert lines.get(timeout=60) == "ready"
        target = random.randint(25, 60)
        while len(acked) < target:
            line = lines.get(timeout=60)
            assert line is not None, "the writer stopped on its own"
            acked.append(line)
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream: it is busy with the next approval
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=30)
    assert proc.stdout is not None
    proc.stdout.close()
    while (line := lines.get(timeout=5)) is not None:
        acked.append(line)  # printed after commit, before the kill
    assert proc.returncode == -signal.SIGKILL
    assert len(acked) >= 25 and all(a.startswith("a_") for a in acked)

    with closing(sqlite3.connect(data_dir / "ops.db")) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        stored = {row[0] for row in conn.execute("SELECT id FROM approved")}
        with_runs = {row[0] for row in conn.execute("SELECT approved_id FROM runs")}
        approved_drafts = conn.execute(
            "SELECT count(*) FROM drafts WHERE status = 'approved'"
        ).fetchone()[0]
    missing = [a for a in acked if a not in stored]
    assert not missing, f"acknowledged approvals lost: {missing}"
    assert set(acked) <= with_runs  # each auto-run committed with its approval
    assert approved_drafts == len(stored) and stored == with_runs  # nothing half-written
    services = build_services(Settings(data_dir=data_dir))
    try:
        assert services.maintenance.verify_audit().ok
    finally:
        services.close()
