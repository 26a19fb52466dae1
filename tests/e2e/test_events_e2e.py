"""An event committed by a separate ``ops-trigger worker`` process reaches a stream on
``serve`` (real processes, one SQLite store)."""

from __future__ import annotations

import json
import signal
import subprocess

import httpx

from core.auth import Principal
from core.bootstrap import build_services
from core.config import Settings
from core.models import DraftIn, Role
from tests.e2e.test_gateway_e2e import Gateway, _env, _executable, gateway  # noqa: F401


def test_an_event_from_a_worker_process_reaches_a_stream_on_serve(gateway: Gateway) -> None:  # noqa: F811
    token = (gateway.data_dir / "tokens" / "actions.token").read_text().strip()
    worker = subprocess.Popen(
        [_executable(), "worker", "--data-dir", str(gateway.data_dir), "--worker-id", "w-e2e"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(),
    )
    services = build_services(Settings(data_dir=gateway.data_dir))
    try:
        url = f"{gateway.url}/ops/events?types=run.started,run.finished"
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.stream("GET", url, headers=headers, timeout=60) as response:
            lines = response.iter_lines()
            assert next(lines) == ": stream open"
            admin = Principal(role=Role.ADMIN, name="e2e")
            draft = services.drafts.create(data=DraftIn(prompt="p", content="c"), actor=admin)
            # This process approves; the worker process claims (no provider: it fails fast).
            run = services.approvals.approve(draft_id=draft.id, actor=admin, auto_run=True).run
            assert run is not None
            events = []
            for line in lines:
                if line.startswith("data:"):
                    events.append(json.loads(line[5:]))
                    if len(events) == 2:
                        break
        assert [e["type"] for e in events] == ["run.started", "run.finished"]
        assert events[0]["data"]["worker"] == "w-e2e" and events[0]["subject"] == run.id
        assert events[1]["data"]["status"] == "error"
    finally:
        services.close()
        worker.send_signal(signal.SIGINT)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
