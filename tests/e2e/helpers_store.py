"""A writer process for the real-process store tests.

Run as ``python -m tests.e2e.helpers_store MODE ...`` with ``OPS_DATA_DIR`` set:

- ``approve DRAFT_ID START_FILE``: open the store, print ``ready``, wait until START_FILE
  exists, approve DRAFT_ID with auto_run, print one JSON line ``{approved_id, run_id}``.
- ``approve-many DRAFT_ID START_FILE THREADS``: the same from THREADS threads at once, one
  JSON line per thread.
- ``approve-as NAME DRAFT_ID START_FILE``: like ``approve``, as operator token NAME, printing
  ``{approved_id|null, run_id, have, need}`` (approval policies: the quorum may not be met).
- ``stream``: print ``ready``, then create and approve drafts (auto_run) forever, printing each
  approved id only after its transaction has committed.

It talks to the store only through the core services, like any other writer process.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from core.auth import Principal
from core.bootstrap import build_services
from core.config import Settings
from core.errors import OpsError
from core.models import DraftIn, Role


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def approve_once(draft_id: str, start_file: Path) -> int:
    """Approve one draft as soon as the start file appears (an operator of this process)."""
    return approve_as(f"proc-{os.getpid()}", draft_id, start_file)


def approve_as(name: str, draft_id: str, start_file: Path) -> int:
    """Approve one draft as operator ``name`` as soon as the start file appears."""
    services = build_services(Settings())
    actor = Principal(role=Role.OPERATOR, name=name)
    try:
        _say("ready")
        deadline = time.monotonic() + 60
        while not start_file.exists():
            if time.monotonic() > deadline:
                _say(json.dumps({"error": "start file never appeared"}))
                return 1
            time.sleep(0.001)
        try:
            result = services.approvals.approve(draft_id=draft_id, actor=actor, auto_run=True)
        except OpsError as exc:
            _say(json.dumps({"error": f"{exc.code}: {exc.message}"}))
            return 1
        answer = {
            "approved_id": result.approved.id if result.approved is not None else None,
            "run_id": result.run.id if result.run is not None else None,
            "have": result.approvals.have,
            "need": result.approvals.need,
        }
        _say(json.dumps(answer))
        return 0
    finally:
        services.close()


def approve_many(draft_id: str, start_file: Path, threads: int) -> int:
    """``threads`` threads approve the same draft at once; one JSON line per thread."""
    import threading

    services = build_services(Settings())
    actor = Principal(role=Role.OPERATOR, name=f"proc-{os.getpid()}")
    lines: list[str] = []
    lock = threading.Lock()

    def one() -> None:
        while not start_file.exists():
            time.sleep(0.001)
        try:
            result = services.approvals.approve(draft_id=draft_id, actor=actor, auto_run=True)
            line = json.dumps(
                {"approved_id": result.approved.id, "run_id": result.run and result.run.id}
            )
        except OpsError as exc:
            line = json.dumps({"error": f"{exc.code}: {exc.message}"})
        with lock:
            lines.append(line)

    try:
        workers = [threading.Thread(target=one) for _ in range(threads)]
        for worker in workers:
            worker.start()
        _say("ready")
        for worker in workers:
            worker.join()
        for line in lines:
            _say(line)
        return 0
    finally:
        services.close()


def stream() -> int:
    """Create and approve drafts until killed; each id is printed after its commit."""
    services = build_services(Settings())
    admin = Principal(role=Role.ADMIN, name="writer")
    operator = Principal(role=Role.OPERATOR, name="writer")
    _say("ready")
    n = 0
    while True:
        n += 1
        draft = services.drafts.create(
            data=DraftIn(prompt=f"stream {n}", content="x" * (n % 4096)), actor=admin
        )
        result = services.approvals.approve(draft_id=draft.id, actor=operator, auto_run=True)
        _say(result.approved.id)


def main(argv: list[str]) -> int:
    if argv[:1] == ["approve"] and len(argv) == 3:
        return approve_once(argv[1], Path(argv[2]))
    if argv[:1] == ["approve-many"] and len(argv) == 4:
        return approve_many(argv[1], Path(argv[2]), int(argv[3]))
    if argv[:1] == ["approve-as"] and len(argv) == 4:
        return approve_as(argv[1], argv[2], Path(argv[3]))
    if argv == ["stream"]:
        return stream()
    sys.stderr.write("usage: helpers_store approve DRAFT_ID START_FILE | stream\n")
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
