"""A real ``ops-trigger worker`` process delivers webhooks: an event committed by another
process reaches a receiver on loopback, signed, and the worker stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.auth import Principal
from core.bootstrap import Services
from core.config import Settings
from core.models import DraftIn
from core.webhooks.models import WebhookIn
from tests.backends import Backend
from tests.webhook_receiver import docs_verify, receiver

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings(data_dir: Path, backend: Backend) -> Settings:
    return Settings(data_dir=data_dir, database_url=backend.url, webhook_allow_private=True)


def test_a_worker_process_posts_events_committed_elsewhere(
    services: Services, admin: Principal, tmp_path: Path
) -> None:
    env = os.environ | {"OPS_WEBHOOK_ALLOW_PRIVATE": "true"}
    with receiver() as rx:
        hook = services.webhooks.create(
            data=WebhookIn(url=rx.url, types=["draft.created"]), actor=admin
        )
        with (tmp_path / "worker.log").open("wb") as out:
            worker = subprocess.Popen(
                [sys.executable, "-c", "from cli.main import main; main()", "worker"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 30
            while not services.maintenance.status().worker_alive:
                assert worker.poll() is None, (tmp_path / "worker.log").read_text()
                assert time.monotonic() < deadline, "the worker never registered"
                time.sleep(0.05)
            time.sleep(0.5)  # its delivery loop starts right after it registers
            draft = services.drafts.create(data=DraftIn(prompt="p", content="c"), actor=admin)
            committed = time.monotonic()
            [item] = rx.wait_for(1, timeout=15)
            latency = item.at - committed
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=20) == 0, (tmp_path / "worker.log").read_text()
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    assert docs_verify()(hook.secret, item.headers, item.body)
    assert item.json()["subject"] == draft.id
    assert latency < 5.0, latency  # a guard: across processes it is tens of milliseconds
    [record] = services.webhooks.deliveries(webhook_id=hook.id).items
    assert record.outcome == "delivered" and record.status_code == 204
