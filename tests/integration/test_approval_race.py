"""Three operators in three processes approve one draft that needs two approvals, at the same
moment, on each backend: exactly one approved item, at most one run, a verifying audit chain."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from core.auth import Principal
from core.bootstrap import Services
from core.models import ConfigPatch, DraftIn
from tests.backends import Backend, RawDb

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("ada", "bob", "cyd")


def test_a_quorum_of_two_raced_by_three_processes(
    backend: Backend, services: Services, admin: Principal, data_dir: Path, tmp_path: Path
) -> None:
    services.config.update(patch=ConfigPatch(approvals_required=2), actor=admin)
    draft = services.drafts.create(data=DraftIn(prompt="race", content="go"), actor=admin)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPS_", "ORCH_"))}
    env["OPS_DATA_DIR"] = str(data_dir)
    if backend.url is not None:
        env["OPS_DATABASE_URL"] = backend.url
    start = tmp_path / "start"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.e2e.helpers_store",
                "approve-as",
                name,
                draft.id,
                str(start),
            ],  # fmt: skip
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in NAMES
    ]
    answers = []
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", proc.stderr
        start.touch()
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, (out, err)
            answers.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    # Serialised by the store's write lock: the first gathers, the second completes, the
    # third finds the draft approved.
    assert sorted(a["have"] for a in answers) == [1, 2, 2]
    assert all(a["need"] == 2 for a in answers)
    gathered = [a for a in answers if a["approved_id"] is None]
    assert len(gathered) == 1 and gathered[0]["run_id"] is None
    assert len({a["approved_id"] for a in answers if a["approved_id"]}) == 1
    assert len([a for a in answers if a["run_id"]]) == 1
    raw = RawDb(services.settings)
    try:
        assert raw("SELECT count(*) FROM approved WHERE draft_id = ?", draft.id) == [(1,)]
        assert raw.count("runs") == 1
        statuses = raw("SELECT status FROM approvals WHERE draft_id = ?", draft.id)
        assert sorted(s for (s,) in statuses) == ["used", "used"]
    finally:
        raw.close()
    result = services.maintenance.verify_audit()
    assert result.ok, result
